"""A corrupt store recovered: what its pages still give goes into a fresh store, which takes its
place; the damaged file is moved aside for forensics.

The fresh store is built under another name and moved in last: a power cut part way leaves either the
damaged store (salvaged again at the next start) or the finished fresh one.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from device.durable import fsync_dir
from device.store import counters, dead_letters, events, recent, sequence
from device.store.schema import DB_NAME

log = logging.getLogger(__name__)

# A fresh store is built under this name from what a corrupt one still gives, then moved in.
SALVAGE_NAME = f"{DB_NAME}.salvage"
# Past a row a damaged page hides, the salvage looks this many seqs further before it gives up.
SALVAGE_PROBE_LIMIT = 1 << 20
_FILES = ("", "-wal", "-shm")


@dataclass
class Salvage:
    """The rows a damaged store still gives; each table read on its own, so one bad table costs only
    itself."""

    events: list[tuple[Any, ...]] = field(default_factory=list)
    dead_letters: list[tuple[Any, ...]] = field(default_factory=list)
    recent: list[tuple[Any, ...]] = field(default_factory=list)
    counters: list[tuple[Any, ...]] = field(default_factory=list)
    meta: list[tuple[Any, ...]] = field(default_factory=list)
    next_seq: int = 1
    # Reads that failed on a damaged page (rows behind it may be lost).
    unreadable: int = 0


def finish_interrupted(path: Path) -> None:
    """A salvage finished and moved the damaged store aside, then the power went: moves the fresh
    store in."""
    building = path.with_name(SALVAGE_NAME)
    if not path.exists() and building.exists():
        os.replace(building, path)


def replace(path: Path, damage: Exception, build: Callable[[Path, Salvage], int]) -> tuple[Path, int]:
    """Salvages the damaged store at `path` into a fresh one that `build(at, salvage)` makes (and
    closes), then moves the old one aside; where it went, and how many undelivered events came back."""
    aside = path.with_name(f"{DB_NAME}.corrupt-{time.strftime('%Y%m%dT%H%M%S')}")
    building = path.with_name(SALVAGE_NAME)
    for suffix in _FILES:
        Path(f"{building}{suffix}").unlink(missing_ok=True)
    salvage = read(path)
    restored = build(building, salvage)
    log.error(
        "ALARM: outbox %s is corrupt (%s); salvaged %d undelivered events%s, moved it aside to %s,"
        " continuing in a fresh store",
        path,
        damage,
        restored,
        f" ({salvage.unreadable} unreadable)" if salvage.unreadable else "",
        aside,
    )
    for suffix in _FILES:
        src = Path(f"{path}{suffix}")
        if src.exists():
            os.replace(src, f"{aside}{suffix}")
    os.replace(building, path)
    fsync_dir(path.parent)
    return aside, restored


def restore(db: sqlite3.Connection, salvage: Salvage, reserved: int) -> int:
    """Writes the salvaged rows into a fresh store (inside its transaction); how many undelivered
    events. `reserved` is the highest seq the reserve file says may have been handed out."""
    sequence.restore_identity(db, salvage.meta)
    events.restore(db, salvage.events)
    dead_letters.restore(db, salvage.dead_letters)
    recent.restore(db, salvage.recent)
    counters.restore(db, salvage.counters)
    # Above every seq the old store may have handed out: never reused, and the gap tells.
    highest = max([reserved, salvage.next_seq - 1, *(row[0] for row in salvage.events)])
    sequence.set_next(db, highest + 1)
    return len(salvage.events)


def read(path: Path) -> Salvage:
    """Everything still readable of a damaged store: undelivered (and unheard) events and dead letters
    (by their rowid b-tree, NOT INDEXED, since a damaged index must not hide a row), the duplicate
    window, the counters and the meta values (next seq, and whatever identity the store keeps there)."""
    out = Salvage()
    if not path.exists():
        return out
    try:
        db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, isolation_level=None)
    except sqlite3.Error:
        return out
    try:
        # An unheard event was "delivered" to nobody: until the collector confirms it, it is as
        # undelivered as any, so it comes back to be sent again (consumers drop repeats by event_id).
        unheard = {int(row[0]) for row in _readable(db, "SELECT seq FROM unheard NOT INDEXED", out)}
        everything = f"SELECT {events.COLUMNS}, delivered_at FROM events NOT INDEXED WHERE 1"
        rows = _rows_by_rowid(db, everything, out)
        out.events = [row[:-1] for row in rows if row[-1] is None or row[0] in unheard]
        out.dead_letters = _rows_by_rowid(db, "SELECT * FROM dead_letters NOT INDEXED WHERE 1", out)
        out.recent = _readable(db, "SELECT key, wall, mono, boot_id FROM recent NOT INDEXED", out)
        out.counters = _readable(db, "SELECT name, value FROM counters NOT INDEXED", out)
        meta = _readable(db, "SELECT key, value FROM meta NOT INDEXED", out)
        out.meta = [(k, v) for k, v in meta if k not in sequence.COUNTING_KEYS]
        out.next_seq = max([1, *(int(v) for k, v in meta if k == "next_seq" and str(v).isdigit())])
    finally:
        db.close()
    return out


def _readable(db: sqlite3.Connection, sql: str, out: Salvage) -> list[tuple[Any, ...]]:
    rows: list[tuple[Any, ...]] = []
    try:
        for row in db.execute(sql):
            rows.append(tuple(row))
    except sqlite3.DatabaseError:
        out.unreadable += 1
    return rows


def _rows_by_rowid(db: sqlite3.Connection, sql: str, out: Salvage) -> list[tuple[Any, ...]]:
    """Rows of a table whose first column is its rowid (seq), in order, stepping over damaged pages:
    a read that fails resumes by a seek past the last good row, probing ever further ahead."""
    rows: list[tuple[Any, ...]] = []
    after = 0
    while True:
        try:
            for row in db.execute(f"{sql} AND seq > ? ORDER BY seq", (after,)):
                rows.append(tuple(row))
                after = int(row[0])
            return rows
        except sqlite3.DatabaseError:
            out.unreadable += 1
        # A seek into the damaged page fails, one past it works: find the first seq that works.
        bad, good = after, after + 1
        while not _seekable(db, sql, good):
            bad, good = good, after + 2 * (good - after)
            if good - after > SALVAGE_PROBE_LIMIT:
                return rows
        while good - bad > 1:
            middle = (bad + good) // 2
            bad, good = (bad, middle) if _seekable(db, sql, middle) else (middle, good)
        after = good


def _seekable(db: sqlite3.Connection, sql: str, after: int) -> bool:
    try:
        db.execute(f"{sql} AND seq > ? ORDER BY seq LIMIT 1", (after,)).fetchall()
    except sqlite3.DatabaseError:
        return False
    return True
