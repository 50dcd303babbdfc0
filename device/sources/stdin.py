"""Development source: one scan per line on standard input."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import threading
from collections.abc import AsyncIterator
from typing import BinaryIO

from device.scan import Scan, SourceKind
from device.settings import StdinSourceSettings
from device.sources import SourceState

# A line no code can be (QR codes hold at most 7089 characters); the rest of it is skipped.
MAX_LINE_BYTES = 8192


def decode_line(raw: bytes) -> tuple[str, str | None]:
    """A scanned line's text and, when it cannot be a code as sent, the damage the daemon rejects it
    with (`inspect` judges argv and stdin bytes by this too)."""
    if len(raw) > MAX_LINE_BYTES:
        return raw[:MAX_LINE_BYTES].decode("utf-8", "replace"), f"line longer than {MAX_LINE_BYTES} bytes"
    try:
        return raw.decode("utf-8"), None
    except UnicodeDecodeError as exc:
        return raw.decode("utf-8", "replace"), f"not valid UTF-8 (byte 0x{raw[exc.start]:02x} at {exc.start})"


class StdinSource:
    kind: SourceKind = "stdin"

    def __init__(self, settings: StdinSourceSettings, stream: BinaryIO | None = None) -> None:
        self._settings = settings
        self._stream = stream if stream is not None else sys.stdin.buffer
        self._state: SourceState = "connected"

    @property
    def state(self) -> dict[str, SourceState]:
        return {"stdin": self._state}

    async def scans(self) -> AsyncIterator[Scan]:
        loop = asyncio.get_running_loop()
        lines: asyncio.Queue[bytes | None] = asyncio.Queue()

        def post(line: bytes | None) -> None:
            # The loop may have ended while this thread sat in os.read (the source was cancelled):
            # the line then has nobody to go to.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(lines.put_nowait, line)

        def reader() -> None:
            # A blocking os.read in a daemon thread works for a tty, a pipe and a file alike, and,
            # unlike the buffered stream, holds no lock that would abort the interpreter at exit.
            fd = self._stream.fileno()
            pending = b""
            # Set while the rest of an overlong line is skipped: one rejection, bounded memory.
            skipping = False
            while chunk := os.read(fd, 65536):
                *complete, pending = (pending + chunk).split(b"\n")
                for line in complete:
                    if not skipping:
                        post(line)
                    skipping = False
                if len(pending) > MAX_LINE_BYTES and not skipping:
                    post(pending)
                    skipping = True
                if skipping:
                    pending = b""
            if pending and not skipping:
                post(pending)
            post(None)

        threading.Thread(target=reader, name="stdin-source", daemon=True).start()
        while (raw := await lines.get()) is not None:
            yield self._scan(raw.rstrip(b"\r\n"))
        self._state = "disconnected"

    def _scan(self, raw: bytes) -> Scan:
        direction = self._settings.direction
        text, damage = decode_line(raw)
        return Scan(text=text, source="stdin", direction=direction, reader="stdin", damage=damage)

    def close(self) -> None:
        self._state = "disconnected"
