"""Writes that survive a power cut: whole files replaced atomically, directories synced."""

from __future__ import annotations

import os
import secrets
from pathlib import Path


def fsync_dir(directory: Path) -> None:
    """Makes a rename or a new name in `directory` durable (the file's own fsync does not)."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, content: bytes, mode: int = 0o600) -> None:
    """Replaces `path` with `content`: readers see the old file or the new one, never half of it."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    # O_EXCL and the mode at creation: a secret is never readable by others, not even for an instant.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(content)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)  # the umask may have narrowed it (never widened)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def owned_like_directory(path: Path) -> None:
    """Run as root in a directory another user owns (a one-off `sudo qr-checkin run` in the service's
    state directory): gives the new file to that owner, so the service can still open it."""
    if os.geteuid() != 0:
        return
    try:
        owner = path.parent.stat()
        if owner.st_uid != 0 and path.lstat().st_uid != owner.st_uid:
            os.chown(path, owner.st_uid, owner.st_gid, follow_symlinks=False)
    except OSError:
        return
