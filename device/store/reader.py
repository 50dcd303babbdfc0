"""The store opened for reading only: `status`, `history`, `dead-letters`, and a store on a disk too
full to open it for writing."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from device.errors import StorageError
from device.store import counters, dead_letters, events, schema, sequence
from device.store.errors import read_only, storage_error


@dataclass(frozen=True, slots=True)
class Backlog:
    count: int
    oldest_wall: float | None
    dead_letters: int
    unheard: int
    # The oldest one's monotonic stamp and boot: within a boot its age survives a wall-clock step.
    oldest_mono: float | None = None
    oldest_boot_id: str | None = None


class StoreReader:
    """Beside a running daemon without its write lock, on a read-only filesystem too; it never
    creates, migrates or moves a store, and it has no method that writes. `Outbox` is the writer and
    reads the same way."""

    _db: sqlite3.Connection

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db = connect_read_only(path)

    @property
    def incarnation(self) -> str:
        """This store file's incarnation id ("" for a store older than incarnations, read-only)."""
        return sequence.incarnation(self._db)

    def max_seq(self) -> int:
        return sequence.max_seq(self._db)

    def backlog(self) -> Backlog:
        count, (wall, mono, boot) = events.undelivered(self._db)
        return Backlog(count, wall, dead_letters.count(self._db), events.unheard(self._db), mono, boot)

    def dead_letters(self) -> list[dict[str, Any]]:
        return dead_letters.listing(self._db)

    def counters(self) -> dict[str, int]:
        return counters.totals(self._db)

    def history(self, since: float | None = None, until: float | None = None) -> list[dict[str, Any]]:
        """Events still kept on the device (as published: masked per the privacy mode)."""
        return events.history(self._db, since, until)

    def close(self) -> None:
        self._db.close()


def connect_read_only(path: Path) -> sqlite3.Connection:
    """Reads beside a running daemon without its write lock, on a read-only filesystem too, and never
    creates, migrates or moves a store."""
    if not path.is_file():
        raise StorageError(f"no store at {path}")
    uri = path.resolve().as_uri()
    try:
        return _probed(
            sqlite3.connect(
                f"{uri}?mode=ro", uri=True, timeout=10, isolation_level=None, check_same_thread=False
            )
        )
    except sqlite3.OperationalError as exc:
        # A clean stop removes the WAL index, which SQLite cannot recreate on a read-only filesystem;
        # there nobody can change the file either, which is what `immutable` promises.
        if not read_only(path.parent):
            raise storage_error(exc, path.parent) from None
    except sqlite3.DatabaseError as exc:
        raise StorageError(f"store {path} is unreadable: {exc}") from None
    try:
        return _immutable(path)
    except sqlite3.DatabaseError as exc:
        raise StorageError(f"store {path} is unreadable: {exc}") from None


def connect_for_reading(path: Path) -> sqlite3.Connection:
    """Whatever can be read of a store on a full disk: the file, read-only, or if SQLite cannot even
    open it so (no room for its WAL index), the file as immutable; with no file, an empty store."""
    if path.is_file():
        try:
            return connect_read_only(path)
        except StorageError:
            pass
        try:
            return _immutable(path)
        except sqlite3.Error:
            pass
    db = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
    schema.create_tables(db)
    sequence.start(db)
    return db


def _immutable(path: Path) -> sqlite3.Connection:
    uri = path.resolve().as_uri()
    return _probed(
        sqlite3.connect(f"{uri}?immutable=1", uri=True, isolation_level=None, check_same_thread=False)
    )


def _probed(db: sqlite3.Connection) -> sqlite3.Connection:
    """The connection, once a read went through (SQLite opens lazily); closed if it did not."""
    try:
        db.execute("SELECT value FROM meta WHERE key='next_seq'").fetchone()
    except sqlite3.Error:
        db.close()
        raise
    return db
