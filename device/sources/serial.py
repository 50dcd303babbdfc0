"""Serial-mode USB scanners (USB CDC, /dev/ttyACM*) through pyserial: the preferred mode.

The scanner sends the QR's bytes as they are, so CCCD names and addresses arrive as UTF-8 instead of
the keystrokes a keyboard-mode scanner cannot type. The port is opened exclusively and reopened
after an unplug.

Framing happens on bytes, before decoding: CR and LF never occur inside a UTF-8 multibyte sequence,
so a character split across reads is reassembled by waiting for the terminator, and a frame with bad
bytes is rejected on its own without throwing the next one out of step.

A scanner set to UTF-16 sends a NUL before or after every ASCII byte. Its frames are rejected with a
reason naming the setting, not decoded: which byte order a frame has cannot be told without guessing
once the terminator's NUL half has shifted the next frame, and decoding only the pure-ASCII codes would
make the misconfiguration look like intermittent failures of the Vietnamese ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import re
import time
from collections.abc import AsyncIterator, Callable
from typing import NamedTuple

import serial

from device.errors import SourceBusy, SourceError, SourceUnavailable
from device.scan import Scan, SourceKind
from device.settings import SerialSourceSettings
from device.sources.discovery import Hotplug, HotplugSource, Inventory, match

log = logging.getLogger(__name__)

TERMINATOR = re.compile(rb"[\r\n]")
READ_SIZE = 4096
# A QR holds at most ~3 KB; anything longer without a terminator is noise or a stuck line.
MAX_FRAME_BYTES = 8192
GONE = frozenset({errno.ENOENT, errno.ENODEV, errno.ENXIO, errno.EIO})
BUSY = frozenset({errno.EBUSY, errno.EAGAIN, errno.EWOULDBLOCK})
UTF16_MIN_CHARS = 6
UTF16_DAMAGE = (
    "the scanner sends UTF-16 (a NUL beside every character): set its serial output (character "
    "encoding) to UTF-8"
)

OpenPort = Callable[[str, int], serial.Serial]


def open_port(path: str, baudrate: int) -> serial.Serial:
    # timeout=0: reads return what is there; the event loop says when that is worth asking.
    return serial.Serial(path, baudrate, timeout=0, exclusive=True)


class Frame(NamedTuple):
    """One code between terminators. `text` is personal data."""

    text: str
    damage: str | None = None


class LineFramer:
    """Splits a byte stream at CR, LF or CRLF and decodes each frame as UTF-8. Empty frames vanish."""

    def __init__(self, max_bytes: int = MAX_FRAME_BYTES) -> None:
        self._max = max_bytes
        self._buffer = bytearray()
        self._overflowed = False
        # After a UTF-16 frame, NULs alone are the other half of its CR or LF, not a code, and a NUL
        # at the start of the next frame is that half too (little-endian: the NUL after the CR).
        self._utf16 = False

    @property
    def pending(self) -> bool:
        return bool(self._buffer)

    def feed(self, data: bytes) -> list[Frame]:
        self._buffer += data
        frames: list[Frame] = []
        while True:
            end = TERMINATOR.search(self._buffer)
            if end is None:
                break
            raw = bytes(self._buffer[: end.start()])
            del self._buffer[: end.end()]
            if self._overflowed:  # the tail of an over-long frame already answered
                self._overflowed = False
            elif self._utf16 and not raw.strip(b"\x00"):
                continue
            elif raw:
                frame = decode_frame(raw[1:] if self._utf16 and raw[0] == 0 else raw)
                self._utf16 = frame.damage == UTF16_DAMAGE
                frames.append(frame)
        if len(self._buffer) > self._max:
            self._buffer.clear()
            if not self._overflowed:
                self._overflowed = True
                frames.append(
                    Frame("", f"no CR/LF terminator within {self._max} bytes: check the scanner's suffix")
                )
        return frames


def decode_frame(raw: bytes) -> Frame:
    if sent_as_utf16(raw):
        return Frame(raw.decode("utf-8", "replace"), UTF16_DAMAGE)
    try:
        return Frame(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        return Frame(
            raw.decode("utf-8", "replace"),
            f"bytes that are not UTF-8 (at byte {exc.start} of {len(raw)}): "
            "set the scanner's serial output to UTF-8",
        )


def sent_as_utf16(raw: bytes) -> bool:
    """A NUL beside every printable ASCII byte, in either byte order. NULs at the ends are left out:
    they are halves of the terminator or padding (UTF-8 text padded with NULs is no UTF-16)."""
    body = raw.strip(b"\x00")
    printable = [i for i, byte in enumerate(body) if 0x20 <= byte < 0x7F]
    # 'a<NUL>b' is UTF-8 as much as UTF-16; a code of some length with a NUL beside every character
    # is only UTF-16 (and as UTF-8 it would be rejected for its NULs anyway).
    if len(printable) < UTF16_MIN_CHARS or 0 not in body:
        return False
    return all((i > 0 and body[i - 1] == 0) or (i + 1 < len(body) and body[i + 1] == 0) for i in printable)


class SerialSource(HotplugSource):
    kind: SourceKind = "serial"

    def __init__(
        self,
        settings: SerialSourceSettings,
        *,
        open_port: OpenPort = open_port,
        inventory: Inventory | None = None,
    ) -> None:
        self._settings = settings
        self._open_port = open_port
        self._listing = inventory or Inventory()
        self._warned_many: tuple[str, ...] = ()
        self._hotplug = Hotplug(
            "serial",
            [settings.port],
            self._find,
            self._open,
            rescan_s=settings.rescan_s,
            retry_s=settings.retry_s,
        )

    def _find(self) -> dict[str, list[str]]:
        port = self._settings.port
        found = match([port], self._listing.serial_devices)[port]
        if len(found) > 1 and tuple(found) != self._warned_many:
            # A glob such as /dev/serial/by-id/* can also catch a modem or a GPS: read one port only.
            log.warning(
                "scanner.serial.port %s matches %d ports; reading %s only", port, len(found), found[0]
            )
        self._warned_many = tuple(found) if len(found) > 1 else ()
        return {port: found[:1]}

    def _open(self, name: str) -> SerialReader:
        try:
            port = self._open_port(name, self._settings.baudrate)
        except (serial.SerialException, OSError) as exc:
            code = getattr(exc, "errno", None)
            if code in BUSY:
                raise SourceBusy("held by another process (ModemManager? a second qr-checkin?)") from exc
            if code in GONE:
                raise SourceUnavailable("gone") from exc
            if code == errno.EACCES:
                raise SourceError(
                    "cannot open: permission denied (is the service user in 'dialout'?)"
                ) from exc
            raise SourceError(f"cannot open: {exc}") from exc
        return SerialReader(name, port, self._settings)


class SerialReader:
    def __init__(self, name: str, port: serial.Serial, settings: SerialSourceSettings) -> None:
        self.name = name
        self._port = port
        self._settings = settings
        self._framer = LineFramer()

    async def scans(self) -> AsyncIterator[Scan]:
        loop = asyncio.get_running_loop()
        while True:
            await _readable(loop, self._port.fileno())
            try:
                chunk = self._port.read(READ_SIZE)
            except (serial.SerialException, OSError) as exc:
                if self._framer.pending:
                    log.warning(
                        "serial scanner %s went away mid-code: the partial code was dropped", self.name
                    )
                raise SourceUnavailable("unplugged") from exc
            now = time.monotonic()
            for frame in self._framer.feed(chunk):
                yield Scan(
                    text=frame.text,
                    source="serial",
                    direction=self._settings.direction,
                    reader=self.name,
                    at_monotonic=now,
                    damage=frame.damage,
                )

    def close(self) -> None:
        with contextlib.suppress(OSError, serial.SerialException):
            self._port.close()


async def _readable(loop: asyncio.AbstractEventLoop, fd: int) -> None:
    ready: asyncio.Future[None] = loop.create_future()

    def wake() -> None:
        if not ready.done():
            ready.set_result(None)

    loop.add_reader(fd, wake)
    try:
        await ready
    finally:
        loop.remove_reader(fd)
