"""The device's own diary: an append-only JSON-lines log of what happened to it.

Start, stop, configuration hash changes, exports, scanner connects and disconnects, drops: what a
technician needs a month later to explain a gap. Records hold counts, ids and hashes only, never a
payload, so event names and field names must be identifiers and text values are short (a longer one
is cut to MAX_TEXT characters, marked with an ellipsis).

A record is one line, flushed and fsynced. A full or read-only disk costs the record (logged, counted
in `lost`), never the daemon. The file is rotated once at `max_bytes` (one older generation kept) so
years of hot-plugging cannot fill the SD card.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from device.clock import Clock, SystemClock
from device.contract import iso_utc, parse_iso_utc
from device.durable import fsync_dir, owned_like_directory

log = logging.getLogger(__name__)

FieldValue = str | int | float | bool | None
NAME = re.compile(r"^[a-z][a-z0-9_.-]{0,63}$")
RESERVED = frozenset({"ts", "event", "clock", "boot_id"})
MAX_TEXT = 128
TRUNCATED = "…"
DEFAULT_MAX_BYTES = 1024 * 1024
# The log's file name under storage.dir.
AUDIT_FILE = "audit.jsonl"


class AuditLog:
    def __init__(
        self, path: Path | str, *, clock: Clock | None = None, max_bytes: int = DEFAULT_MAX_BYTES
    ) -> None:
        self.path = Path(path)
        self.max_bytes = max_bytes
        # Records lost to a full or read-only disk since start; the status message can show it.
        self.lost = 0
        self._clock = clock or SystemClock()
        self._lock = threading.Lock()
        self._failing = False

    @property
    def previous(self) -> Path:
        return self.path.with_name(self.path.name + ".1")

    def record(self, event: str, /, **fields: FieldValue) -> bool:
        """Appends one record; False when the disk refused it. Bad names or value types are a caller bug;
        long texts are cut, never refused."""
        line = self._line(event, fields)
        with self._lock:
            try:
                self._append(line)
            except OSError as exc:
                self.lost += 1
                if not self._failing:
                    log.warning(
                        "audit log %s: cannot write %r record: %s", self.path, event, exc.strerror or exc
                    )
                self._failing = True
                return False
            if self._failing:
                log.info("audit log %s writable again after %d lost record(s)", self.path, self.lost)
                self._failing = False
        return True

    def read(self, since: datetime | None = None) -> list[dict[str, Any]]:
        """Records oldest first (both generations), optionally only those at or after `since`."""
        cutoff = None if since is None else _utc(since)
        records: list[dict[str, Any]] = []
        for path in (self.previous, self.path):
            for record in _records(path):
                if cutoff is None or _timestamp(record) >= cutoff:
                    records.append(record)
        return records

    def _line(self, event: str, fields: dict[str, FieldValue]) -> bytes:
        if not NAME.fullmatch(event):
            raise ValueError(f"audit event name {event!r} is not an identifier (a-z 0-9 _ . -)")
        for key, value in fields.items():
            if not NAME.fullmatch(key) or key in RESERVED:
                raise ValueError(f"audit field name {key!r} is reserved or not an identifier")
            if not isinstance(value, FieldValue):
                raise TypeError(f"audit field {key!r} must be str, int, float, bool or None")
        fields = {key: _bounded(value) for key, value in fields.items()}
        wall = self._clock.wall()
        record: dict[str, FieldValue] = {
            "ts": iso_utc(wall),
            "clock": "synced" if self._clock.synced() else "unsynced",
            "boot_id": self._clock.boot_id(),
            "event": event,
            **fields,
        }
        return (json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")

    def _append(self, line: bytes) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._rotate_if_full(len(line))
        created = not self.path.exists()
        fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
        try:
            size = os.fstat(fd).st_size
            # A write cut short by a full disk leaves half a line; start on a fresh one so it stays alone.
            if size and os.pread(fd, 1, size - 1) != b"\n":
                line = b"\n" + line
            _write_all(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)
        if created:
            owned_like_directory(self.path)
            fsync_dir(self.path.parent)

    def _rotate_if_full(self, incoming: int) -> None:
        try:
            size = self.path.stat().st_size
        except FileNotFoundError:
            return
        if size + incoming > self.max_bytes:
            os.replace(self.path, self.previous)
            fsync_dir(self.path.parent)


def _bounded(value: FieldValue) -> FieldValue:
    """A text cut to MAX_TEXT characters, the cut marked. Values come from the outside world too (a
    scanner's by-id name is made of its USB descriptors): a long one costs its tail, never the record
    or the daemon that writes it. Payloads never reach the log, so nothing personal is ever cut short."""
    if isinstance(value, str) and len(value) > MAX_TEXT:
        return value[: MAX_TEXT - len(TRUNCATED)] + TRUNCATED
    return value


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _records(path: Path) -> list[dict[str, Any]]:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return []
    except OSError as exc:
        log.warning("audit log %s: cannot read: %s", path, exc.strerror or exc)
        return []
    records: list[dict[str, Any]] = []
    skipped = 0
    for line in raw.splitlines():
        try:
            record = json.loads(line)
        except (ValueError, UnicodeDecodeError):
            record = None
        if isinstance(record, dict) and isinstance(record.get("ts"), str) and "event" in record:
            records.append(record)
        elif line.strip():
            skipped += 1
    if skipped:
        log.warning("audit log %s: skipped %d damaged line(s)", path, skipped)
    return records


def _timestamp(record: dict[str, Any]) -> datetime:
    try:
        return parse_iso_utc(record["ts"])
    except ValueError:
        return datetime.min.replace(tzinfo=UTC)


def _utc(moment: datetime) -> datetime:
    # A naive datetime is read as UTC: the log is UTC and a technician types UTC times.
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
