"""The event queue (`events`, with `unheard` beside it): every accepted check-in from its commit
until the broker has it and the delivered grace is over, or until it is too old to keep.

Bodies are kept as the JSON that is published, byte for byte: the publisher sends them as they are.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from device import contract
from device.clock import Stamp

COLUMNS = "seq, event_id, body, created_wall, created_mono, boot_id, clock_synced"
_INTO = f"INTO events ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)"


@dataclass(frozen=True, slots=True)
class Pending:
    seq: int
    event_id: str
    body: str


def encode(event: dict[str, Any]) -> str:
    """The body as stored and published: compact, keys sorted, UTF-8 as it is."""
    return json.dumps(event, ensure_ascii=False, separators=(",", ":"), sort_keys=True)


def append(db: sqlite3.Connection, seq: int, event: dict[str, Any], stamp: Stamp) -> None:
    db.execute(
        f"INSERT {_INTO}",
        (seq, event["event_id"], encode(event), stamp.wall, stamp.mono, stamp.boot_id, int(stamp.synced)),
    )


def restore(db: sqlite3.Connection, rows: Iterable[tuple[Any, ...]]) -> list[int]:
    """Puts undelivered events back (rows of COLUMNS); a seq still present stays as it is. Returns the
    seqs put back."""
    return [int(row[0]) for row in rows if db.execute(f"INSERT OR IGNORE {_INTO}", row).rowcount]


def take(db: sqlite3.Connection, seq: int) -> tuple[str, str] | None:
    """Removes an event from the queue for good; its event_id and body (None when it is gone)."""
    row = db.execute("SELECT event_id, body FROM events WHERE seq=?", (seq,)).fetchone()
    if row is None:
        return None
    db.execute("DELETE FROM events WHERE seq=?", (seq,))
    db.execute("DELETE FROM unheard WHERE seq=?", (seq,))
    return str(row[0]), str(row[1])


def pending(db: sqlite3.Connection, limit: int, after: int = 0, upto: int | None = None) -> list[Pending]:
    """Undelivered events with after < seq <= upto, oldest first (an index range scan)."""
    rows = db.execute(
        "SELECT seq, event_id, body FROM events WHERE delivered_at IS NULL AND seq > ? AND seq <= ?"
        " ORDER BY seq LIMIT ?",
        (after, upto if upto is not None else 2**62, limit),
    ).fetchall()
    return [Pending(*row) for row in rows]


def replay_rows(db: sqlite3.Connection, limit: int, after: int, upto: int) -> list[Pending]:
    """Every event still kept with after < seq <= upto, delivered or not, oldest first."""
    rows = db.execute(
        "SELECT seq, event_id, body FROM events WHERE seq > ? AND seq <= ? ORDER BY seq LIMIT ?",
        (after, upto, limit),
    ).fetchall()
    return [Pending(*row) for row in rows]


def mark_delivered(db: sqlite3.Connection, seqs: list[int], when: float, unheard: list[int]) -> None:
    # A replayed or re-sent event keeps the time of its first acknowledgement.
    db.executemany(
        "UPDATE events SET delivered_at=? WHERE seq=? AND delivered_at IS NULL", [(when, s) for s in seqs]
    )
    db.executemany(
        "INSERT OR IGNORE INTO unheard SELECT seq FROM events WHERE seq=?", [(s,) for s in unheard]
    )


def release(db: sqlite3.Connection, through_seq: int, when: float) -> int:
    """Every seq <= through_seq counts as delivered, the unheard ones too; how many unheard it freed."""
    released = db.execute("DELETE FROM unheard WHERE seq <= ?", (through_seq,)).rowcount
    db.execute(
        "UPDATE events SET delivered_at=? WHERE delivered_at IS NULL AND seq <= ?", (when, through_seq)
    )
    return int(released)


def restamp_unsynced(db: sqlite3.Connection, boot_id: str, wall_now: float, mono_now: float) -> int:
    """Undelivered events of this boot stamped before the clock was synchronised get the wall time
    their monotonic time gives (the body's rewrite is the contract's); how many."""
    rows = db.execute(
        "SELECT seq, body, created_mono FROM events"
        " WHERE delivered_at IS NULL AND clock_synced=0 AND boot_id=?",
        (boot_id,),
    ).fetchall()
    for seq, body, mono in rows:
        wall = wall_now - (mono_now - mono)
        db.execute(
            "UPDATE events SET body=?, created_wall=?, clock_synced=1 WHERE seq=?",
            (encode(contract.restamp(json.loads(body), wall)), wall, seq),
        )
    return len(rows)


def purge(db: sqlite3.Connection, stamp: Stamp, delivered_grace_s: float, max_age_s: float) -> int:
    """Removes delivered events past the grace; drops undelivered (or unheard) events older than
    max_age_s and returns how many (see Outbox.purge for which clock ages which event)."""
    now = stamp.wall
    db.execute(
        "DELETE FROM events WHERE delivered_at IS NOT NULL AND delivered_at < ?"
        " AND seq NOT IN (SELECT seq FROM unheard)",
        (now - delivered_grace_s,),
    )
    # Within this boot the monotonic clock alone ages an event: a synchronised clock that steps
    # (a bad NTP answer, a GPS fix) moves the wall clock, never an event's true age.
    # An unheard event reached nobody: it ages like an undelivered one.
    dropped = db.execute(
        "DELETE FROM events WHERE (delivered_at IS NULL OR seq IN (SELECT seq FROM unheard))"
        " AND boot_id = ? AND created_mono < ?",
        (stamp.boot_id, stamp.mono - max_age_s),
    ).rowcount
    if stamp.synced:
        dropped += db.execute(
            "DELETE FROM events WHERE delivered_at IS NULL AND boot_id != ? AND clock_synced = 1"
            " AND created_wall < ?",
            (stamp.boot_id, now - max_age_s),
        ).rowcount
        dropped += db.execute(
            "DELETE FROM events WHERE seq IN (SELECT seq FROM unheard) AND boot_id != ?"
            " AND clock_synced = 1 AND created_wall < ?",
            (stamp.boot_id, now - max_age_s),
        ).rowcount
    db.execute("DELETE FROM unheard WHERE seq NOT IN (SELECT seq FROM events)")
    return int(dropped)


def undelivered(
    db: sqlite3.Connection,
) -> tuple[int, tuple[float | None, float | None, str | None]]:
    """How many events wait for the broker, and the wall time of the oldest."""
    # Read every second for the status: both from the pending index, never a scan of the bodies.
    # Events are created in seq order, so the lowest pending seq is the oldest.
    (count,) = db.execute("SELECT COUNT(*) FROM events WHERE delivered_at IS NULL").fetchone()
    row = db.execute(
        "SELECT created_wall, created_mono, boot_id FROM events WHERE delivered_at IS NULL"
        " ORDER BY seq LIMIT 1"
    ).fetchone()
    # The oldest one's wall time, monotonic stamp and boot.
    return int(count), (None, None, None) if row is None else tuple(row)


def unheard(db: sqlite3.Connection) -> int:
    try:
        (count,) = db.execute("SELECT COUNT(*) FROM unheard").fetchone()
    except sqlite3.OperationalError:
        return 0  # a store older than the table, read without migrating it
    return int(count)


def history(db: sqlite3.Connection, since: float | None, until: float | None) -> list[dict[str, Any]]:
    """Events still kept on the device (as published: masked per the privacy mode)."""
    rows = db.execute(
        "SELECT body, delivered_at FROM events WHERE created_wall >= ? AND created_wall < ? ORDER BY seq",
        (since if since is not None else float("-inf"), until if until is not None else float("inf")),
    ).fetchall()
    out = []
    for body, delivered in rows:
        event = json.loads(body)
        event["delivered"] = delivered is not None
        out.append(event)
    return out
