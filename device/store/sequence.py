"""The sequence in `meta`: the next seq, and the incarnation the seqs are counted in.

The next seq lives here, not in the events table, so it is never reused even after every event has
been delivered and deleted. The reserve file beside the store (reserve.SeqReserve) bounds it from
outside, for a store that is lost.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterable
from typing import Any

# Meta rows that are not the store's identity: the salvage rewrites them rather than copying them.
COUNTING_KEYS = ("next_seq", "schema_version")


def start(db: sqlite3.Connection) -> None:
    """A store without a sequence begins at seq 1."""
    db.execute("INSERT OR IGNORE INTO meta VALUES ('next_seq', '1')")


def new_incarnation(db: sqlite3.Connection) -> None:
    """Made once per store file: a replaced card (same bundle, seq from 1 again) gets a new one, so
    consumers key seq by (device_id, incarnation)."""
    db.execute("INSERT OR IGNORE INTO meta VALUES ('incarnation', ?)", (str(uuid.uuid4()),))


def incarnation(db: sqlite3.Connection) -> str:
    """This store file's incarnation id ("" for a store older than incarnations)."""
    row = db.execute("SELECT value FROM meta WHERE key='incarnation'").fetchone()
    return "" if row is None else str(row[0])


def next_seq(db: sqlite3.Connection) -> int:
    (value,) = db.execute("SELECT CAST(value AS INTEGER) FROM meta WHERE key='next_seq'").fetchone()
    return int(value)


def max_seq(db: sqlite3.Connection) -> int:
    """The last seq handed out (0 before the first)."""
    (value,) = db.execute("SELECT CAST(value AS INTEGER) - 1 FROM meta WHERE key='next_seq'").fetchone()
    return int(value)


def set_next(db: sqlite3.Connection, seq: int) -> None:
    db.execute("UPDATE meta SET value=? WHERE key='next_seq'", (str(seq),))


def restore_identity(db: sqlite3.Connection, rows: Iterable[tuple[Any, ...]]) -> None:
    """Copies a salvaged store's own meta rows (its incarnation, whatever else it keeps there)."""
    db.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)", rows)
