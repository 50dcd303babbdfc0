"""The duplicate window's table (`recent`): each key's last acceptance, kept across restarts.

What counts as the same check-in is not decided here: device/duplicate_window.py is the policy (which
clock tells, and when an entry expires); this module only keeps and deletes the entries it names.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from typing import Any, NamedTuple

from device.clock import Stamp


class Acceptance(NamedTuple):
    wall: float
    mono: float
    boot_id: str


def last(db: sqlite3.Connection, key: str) -> Acceptance | None:
    row = db.execute("SELECT wall, mono, boot_id FROM recent WHERE key=?", (key,)).fetchone()
    return None if row is None else Acceptance(*row)


def remember(db: sqlite3.Connection, key: str, stamp: Stamp) -> None:
    db.execute(
        "INSERT OR REPLACE INTO recent VALUES (?, ?, ?, ?)", (key, stamp.wall, stamp.mono, stamp.boot_id)
    )


def expire(db: sqlite3.Connection, boot_id: str, mono_cut: float, wall_cut: float) -> None:
    """Deletes the entries of boot `boot_id` accepted before monotonic `mono_cut`, and those of any
    other boot accepted before wall `wall_cut`."""
    db.execute(
        "DELETE FROM recent WHERE (boot_id = ? AND mono < ?) OR (boot_id != ? AND wall < ?)",
        (boot_id, mono_cut, boot_id, wall_cut),
    )


def restore(db: sqlite3.Connection, rows: Iterable[tuple[Any, ...]]) -> None:
    db.executemany("INSERT OR IGNORE INTO recent VALUES (?, ?, ?, ?)", rows)
