"""What a failing write means: SQLite's errors mapped to ours, told apart by the filesystem itself."""

from __future__ import annotations

import errno
import os
import sqlite3
import tempfile
from pathlib import Path

from device.errors import StorageCorrupt, StorageError, StorageFull, StorageReadOnly

# Below this much free space a failing write is taken for a full disk, whatever SQLite called it.
NO_SPACE_BYTES = 256 * 1024


def storage_error(exc: sqlite3.Error, directory: Path | None = None) -> StorageError:
    """Maps SQLite's errors to ours, so callers can tell a full disk from a read-only one."""
    text = str(exc).lower()
    code = getattr(exc, "sqlite_errorcode", None)
    if code == sqlite3.SQLITE_FULL or "disk is full" in text:
        return StorageFull("storage full")
    if code == sqlite3.SQLITE_READONLY or "readonly" in text or "read-only" in text:
        return StorageReadOnly("storage is read-only")
    if code is not None and (code & 0xFF) in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB):
        return StorageCorrupt(f"storage is corrupt: {exc}")
    # SQLite names a read-only filesystem only when it knew at open: a card the kernel turned read-only
    # under an open store (errors=remount-ro) gives "disk I/O error", a store opened on one afterwards
    # "unable to open database file". The filesystem itself tells.
    if directory is not None and read_only(directory):
        return StorageReadOnly("storage is read-only")
    # On a full disk SQLite may say only "disk I/O error" (opening the WAL, say): the free space tells.
    if directory is not None and (free := free_bytes(directory)) is not None and free < NO_SPACE_BYTES:
        return StorageFull("storage full")
    return StorageError(f"storage error: {exc}")


def free_bytes(directory: Path) -> int | None:
    """Bytes an unprivileged writer may still use on the filesystem holding `directory`."""
    try:
        st = os.statvfs(directory)
    except OSError:
        return None
    return st.f_bavail * st.f_frsize


def read_only(directory: Path) -> bool:
    """Whether the filesystem holding `directory` refuses every write (EROFS)."""
    try:
        with tempfile.TemporaryFile(dir=directory):
            return False
    except OSError as exc:
        return exc.errno == errno.EROFS
