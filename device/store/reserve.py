"""The two small files beside the store: the sequence numbers reserved ahead, and room held back for
SQLite's journal on a full disk."""

from __future__ import annotations

import errno
import os
from pathlib import Path

from device.durable import owned_like_directory, write_atomic
from device.errors import StorageError, StorageFull
from device.store.errors import free_bytes

# Sequence numbers are reserved in blocks in a small file beside the store, so a store lost to
# corruption restarts above every seq it may have handed out: seq is never reused, and the gap
# shows consumers what the moved-aside store still holds.
RESERVE_NAME = "seq.reserve"
SEQ_RESERVE_BLOCK = 1000
SPACE_RESERVE_NAME = "space.reserve"
# SQLite's WAL needs a few MB of headroom to open and checkpoint a busy store.
SPACE_RESERVE_MAX = 8 * 1024 * 1024


class SeqReserve:
    """The block of sequence numbers reserved in a small file beside the store (see RESERVE_NAME)."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / RESERVE_NAME
        try:
            self.upto = int(self.path.read_text().strip() or 0)
        except (OSError, ValueError):
            self.upto = 0

    def cover(self, seq: int) -> None:
        """Makes sure `seq` is reserved (durably, before any event takes it), a block at a time."""
        if seq <= self.upto:
            return
        upto = seq + SEQ_RESERVE_BLOCK
        try:
            write_atomic(self.path, f"{upto}\n".encode(), 0o640)
            owned_like_directory(self.path)
        except OSError as exc:
            raise (
                StorageFull("storage full") if exc.errno == errno.ENOSPC else StorageError(str(exc))
            ) from None
        self.upto = upto


class SpaceReserve:
    """A preallocated file beside the store, given back when the disk runs full: room for SQLite's
    journal to open and checkpoint the store, and for the daemon to start on a full card.

    Its size is SPACE_RESERVE_MAX, or an eighth of a small filesystem."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / SPACE_RESERVE_NAME
        try:
            st = os.statvfs(directory)
            self.size = min(SPACE_RESERVE_MAX, st.f_blocks * st.f_frsize // 8)
        except OSError:
            self.size = SPACE_RESERVE_MAX

    def held(self) -> bool:
        return self.path.exists()

    def ensure(self) -> bool:
        """Makes the reserve when it is missing and the disk has room for it three times over (the
        reserve, and the room check-ins resume at, see Outbox.append_unless_recent)."""
        if self.held():
            return True
        free = free_bytes(self.path.parent)
        if free is None or free < 3 * self.size:
            return False
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        except FileExistsError:
            return True
        except OSError:
            return False
        try:
            os.posix_fallocate(fd, 0, self.size)  # real blocks, not a sparse promise
            os.fsync(fd)
        except OSError:
            os.close(fd)
            self.path.unlink(missing_ok=True)
            return False
        os.close(fd)
        owned_like_directory(self.path)
        return True

    def release(self) -> int:
        """Gives the reserve back to the filesystem; the bytes freed (0 when there was none)."""
        try:
            size = self.path.stat().st_size
            self.path.unlink()
        except OSError:
            return 0
        return size
