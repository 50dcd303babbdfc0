"""Counters that survive restarts (`counters`): totals of scans, acceptances, drops and the like."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Mapping
from typing import Any


def bump(db: sqlite3.Connection, name: str, delta: int) -> None:
    db.execute(
        "INSERT INTO counters VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET value = value + excluded.value",
        (name, delta),
    )


def add(db: sqlite3.Connection, deltas: Mapping[str, int]) -> None:
    for name, delta in deltas.items():
        if delta:
            bump(db, name, delta)


def totals(db: sqlite3.Connection) -> dict[str, int]:
    return {name: int(value) for name, value in db.execute("SELECT name, value FROM counters")}


def restore(db: sqlite3.Connection, rows: Iterable[tuple[Any, ...]]) -> None:
    db.executemany("INSERT OR IGNORE INTO counters VALUES (?, ?)", rows)
