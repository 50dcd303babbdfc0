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
from device.scan import Direction, Scan, SourceKind
from device.settings import SerialSourceSettings
from device.sources import NO_TERMINATOR_S
from device.sources.hotplug import Hotplug, HotplugSource
from device.sources.inventory import Inventory, match

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

NO_TERMINATOR_DAMAGE = (
    'no CR/LF terminator after the code: set scanner.serial.terminator = "gap" for a scanner without one'
)

OpenPort = Callable[[str, int], serial.Serial]


def open_port(path: str, baudrate: int) -> serial.Serial:
    # timeout=0: reads return what is there; the event loop says when that is worth asking.
    return serial.Serial(path, baudrate, timeout=0, exclusive=True)


class Received(NamedTuple):
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

    def feed(self, data: bytes) -> list[Received]:
        self._buffer += data
        frames: list[Received] = []
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
                    Received("", f"no CR/LF terminator within {self._max} bytes: check the scanner's suffix")
                )
        return frames

    def flush(self, damage: str | None = None) -> Received | None:
        """Ends the pending frame after a silence: as a code (terminator "gap"), or rejected with
        `damage` (a terminator was expected and never came). None when nothing is pending."""
        raw = bytes(self._buffer)
        self._buffer.clear()
        if self._overflowed:  # the silence ends an over-long frame already answered
            self._overflowed = False
            return None
        if self._utf16:
            raw = raw.strip(b"\x00")
        if not raw:
            return None
        frame = decode_frame(raw)
        self._utf16 = frame.damage == UTF16_DAMAGE
        return frame if damage is None or frame.damage is not None else Received(frame.text, damage)


def decode_frame(raw: bytes) -> Received:
    if sent_as_utf16(raw):
        return Received(raw.decode("utf-8", "replace"), UTF16_DAMAGE)
    try:
        return Received(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        return Received(
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
        self._readers = settings.readers()
        # Reader -> the direction of the config line that named it.
        self._directions: dict[str, Direction | None] = {}
        self._warned_many: dict[str, tuple[str, ...]] = {}
        self._hotplug = Hotplug(
            "serial",
            list(self._readers),
            self._find,
            self._open,
            rescan_s=settings.rescan_s,
            retry_s=settings.retry_s,
        )

    def _find(self) -> dict[str, list[str]]:
        found = match(list(self._readers), self._listing.serial_devices)
        for port, names in found.items():
            if len(names) > 1 and tuple(names) != self._warned_many.get(port):
                # A glob such as /dev/serial/by-id/* can also catch a modem or a GPS: read one port only.
                log.warning(
                    "scanner.serial.port %s matches %d ports; reading %s only", port, len(names), names[0]
                )
            self._warned_many[port] = tuple(names) if len(names) > 1 else ()
            found[port] = names[:1]
            self._directions.update(dict.fromkeys(names[:1], self._readers[port]))
        return found

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
        return SerialReader(name, port, self._settings, self._directions.get(name, self._settings.direction))


class SerialReader:
    def __init__(
        self, name: str, port: serial.Serial, settings: SerialSourceSettings, direction: Direction | None
    ) -> None:
        self.name = name
        self._port = port
        self._settings = settings
        self._direction = direction
        self._framer = LineFramer()
        self._gap = settings.terminator == "gap"
        # The silence that ends a pending frame: the configured gap, or the wait for a terminator.
        self._silence_s = settings.gap_ms / 1000 if self._gap else NO_TERMINATOR_S
        self._told_no_terminator = False

    async def scans(self) -> AsyncIterator[Scan]:
        loop = asyncio.get_running_loop()
        while True:
            timeout = self._silence_s if self._framer.pending else None
            if not await _readable(loop, self._port.fileno(), timeout):
                frame = self._framer.flush(None if self._gap else NO_TERMINATOR_DAMAGE)
                if frame is not None:
                    yield self._scan(frame, time.monotonic())
                continue
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
                yield self._scan(frame, now)

    def _scan(self, frame: Received, at: float) -> Scan:
        if frame.damage == NO_TERMINATOR_DAMAGE and not self._told_no_terminator:
            # Once per reader: every such scan is rejected with the reason, one log line says why.
            self._told_no_terminator = True
            log.warning(
                "serial scanner %s: a code arrived without the CR/LF that ends it; if this scanner "
                'sends no suffix, set scanner.serial.terminator = "gap"',
                self.name,
            )
        return Scan(
            text=frame.text,
            source="serial",
            direction=self._direction,
            reader=self.name,
            at_monotonic=at,
            damage=frame.damage,
        )

    def close(self) -> None:
        with contextlib.suppress(OSError, serial.SerialException):
            self._port.close()


async def _readable(loop: asyncio.AbstractEventLoop, fd: int, timeout: float | None) -> bool:
    """Whether `fd` became readable within `timeout` seconds (None: waits as long as it takes)."""
    ready: asyncio.Future[None] = loop.create_future()

    def wake() -> None:
        if not ready.done():
            ready.set_result(None)

    loop.add_reader(fd, wake)
    try:
        await asyncio.wait_for(ready, timeout)
    except TimeoutError:
        return False
    finally:
        loop.remove_reader(fd)
    return True
