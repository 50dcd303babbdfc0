"""Dead letters (`dead_letters`): events the broker refused for good, kept aside for a technician
and never retried unless one asks (`qr-checkin dead-letters --retry`)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from typing import Any

from device import contract
from device.store import events


def put_aside(db: sqlite3.Connection, seq: int, reason: str, at: float) -> None:
    """Moves event `seq` out of the queue into the dead letters (nothing when it is gone)."""
    taken = events.take(db, seq)
    if taken is not None:
        db.execute("INSERT OR REPLACE INTO dead_letters VALUES (?, ?, ?, ?, ?)", (seq, *taken, reason, at))


def retry(db: sqlite3.Connection) -> list[int]:
    """Puts every dead letter back among the undelivered events; their seqs. Their age counts from
    the scan (the body's own times), as for any undelivered event."""
    back = []
    rows = db.execute("SELECT seq, event_id, body, at FROM dead_letters ORDER BY seq").fetchall()
    for seq, event_id, body, at in rows:
        event = json.loads(body)
        try:
            wall = contract.parse_iso_utc(event.get("scanned_at")).timestamp()
        except ValueError:
            wall = at
        row = (
            seq,
            event_id,
            body,
            wall,
            float(event.get("monotonic_s", 0.0)),
            str(event.get("boot_id", "")),
            int(event.get("clock") == "synced"),
        )
        if events.restore(db, [row]):
            back.append(int(seq))
    db.executemany("DELETE FROM dead_letters WHERE seq=?", [(seq,) for seq in back])
    return back


def listing(db: sqlite3.Connection) -> list[dict[str, Any]]:
    rows = db.execute("SELECT seq, event_id, reason, at FROM dead_letters ORDER BY seq").fetchall()
    return [{"seq": s, "event_id": e, "reason": r, "at": a} for s, e, r, a in rows]


def count(db: sqlite3.Connection) -> int:
    (n,) = db.execute("SELECT COUNT(*) FROM dead_letters").fetchone()
    return int(n)


def restore(db: sqlite3.Connection, rows: Iterable[tuple[Any, ...]]) -> None:
    db.executemany("INSERT OR IGNORE INTO dead_letters VALUES (?, ?, ?, ?, ?)", rows)
