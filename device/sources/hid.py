"""Keyboard-mode ("wedge") USB scanners through python-evdev.

Each configured device is opened and grabbed exclusively, so its keystrokes reach only us and never
a console or a login prompt. Key events become text through `keystrokes.KeystrokeDecoder` on the
configured layout. A device that goes away (ENODEV) loses its half-read code: it is dropped, never
published, and the device is reopened when it comes back (see hotplug.Hotplug).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import time
from collections.abc import AsyncIterator, Callable

import evdev

from device.errors import ConfigError, SourceBusy, SourceError, SourceUnavailable
from device.scan import Direction, Scan, SourceKind
from device.settings import HidSourceSettings
from device.sources import NO_TERMINATOR_S
from device.sources.hotplug import Hotplug, HotplugSource
from device.sources.inventory import Inventory, match
from device.sources.keystrokes import NO_TERMINATOR, KeystrokeDecoder, Typed

log = logging.getLogger(__name__)

GONE = frozenset({errno.ENODEV, errno.ENOENT, errno.ENXIO})

OpenDevice = Callable[[str], evdev.InputDevice]


def strip_affixes(text: str, prefix: str, suffix: str) -> str:
    """Removes the scanner's configured prefix and suffix where they are present."""
    if prefix and text.startswith(prefix):
        text = text[len(prefix) :]
    if suffix and text.endswith(suffix):
        text = text[: -len(suffix)]
    return text


class HidSource(HotplugSource):
    kind: SourceKind = "hid"

    def __init__(
        self,
        settings: HidSourceSettings,
        *,
        open_device: OpenDevice = evdev.InputDevice,
        inventory: Inventory | None = None,
    ) -> None:
        if not settings.devices:
            raise ConfigError(
                "scanner.hid.devices is empty: name the scanner (`qr-checkin scanners` lists them)"
            )
        self._settings = settings
        self._open_device = open_device
        self._listing = inventory or Inventory()
        self._readers = settings.readers()
        # Reader -> the direction of the config line that named it.
        self._directions: dict[str, Direction | None] = {}
        self._hotplug = Hotplug(
            "hid",
            list(self._readers),
            self._find,
            self._open,
            rescan_s=settings.rescan_s,
            retry_s=settings.retry_s,
        )

    def _find(self) -> dict[str, list[str]]:
        found = match(list(self._readers), self._listing.input_devices)
        for selector, names in found.items():
            self._directions.update(dict.fromkeys(names, self._readers[selector]))
        return found

    def _open(self, name: str) -> EvdevReader:
        try:
            device = self._open_device(name)
        except PermissionError as exc:
            raise SourceError("cannot open: permission denied (is the service user in 'input'?)") from exc
        except OSError as exc:
            if exc.errno in GONE:
                raise SourceUnavailable("gone") from exc
            raise SourceError(f"cannot open: {exc.strerror or exc}") from exc
        try:
            device.grab()
        except OSError as exc:
            device.close()
            if exc.errno == errno.EBUSY:
                raise SourceBusy(
                    "grabbed by another process (a second qr-checkin, evtest --grab, a kiosk app?)"
                ) from exc
            if exc.errno in GONE:
                raise SourceUnavailable("gone") from exc
            raise SourceError(f"cannot grab: {exc.strerror or exc}") from exc
        return EvdevReader(name, device, self._settings, self._directions.get(name, self._settings.direction))


class EvdevReader:
    """One grabbed input device, read through evdev's own asyncio read loop."""

    def __init__(
        self, name: str, device: evdev.InputDevice, settings: HidSourceSettings, direction: Direction | None
    ) -> None:
        self.name = name
        self._direction = direction
        self._device = device
        self._settings = settings
        self._decoder = KeystrokeDecoder(
            settings.layout, terminator=settings.terminator, gap_s=settings.gap_ms / 1000
        )
        self._gap_s = settings.gap_ms / 1000 if settings.terminator == "gap" else None
        self._closed = False
        self._told_no_terminator = False

    async def scans(self) -> AsyncIterator[Scan]:
        events = self._device.async_read_loop()
        # One pending read at a time, kept across gap timeouts: cancelling evdev's read future would
        # lose the first event of the batch it is about to deliver.
        next_event: asyncio.Future[evdev.InputEvent] | None = None
        try:
            while True:
                if next_event is None:
                    next_event = asyncio.ensure_future(events.__anext__())
                silence = self._gap_s if self._gap_s is not None else NO_TERMINATOR_S
                timeout = silence if self._decoder.pending else None
                done, _ = await asyncio.wait({next_event}, timeout=timeout)
                if not done:
                    decoded = self._decoder.flush() if self._gap_s is not None else self._unterminated()
                else:
                    event = self._event(next_event)
                    next_event = None
                    decoded = self._decoder.feed(event) if event is not None else None
                if decoded is not None:
                    yield self._scan(decoded)
        finally:
            if next_event is not None:
                next_event.cancel()

    def _event(self, future: asyncio.Future[evdev.InputEvent]) -> evdev.InputEvent | None:
        try:
            return future.result()
        except BlockingIOError:  # woken with nothing to read
            return None
        except OSError as exc:
            if self._decoder.pending:  # this reader and its decoder end here: the half code goes with them
                log.warning("hid scanner %s went away mid-code: the partial code was dropped", self.name)
            if exc.errno in GONE:
                raise SourceUnavailable("unplugged") from exc
            raise SourceError(f"read failed: {exc.strerror or exc}") from exc

    def _unterminated(self) -> Typed | None:
        return self._decoder.unterminated(
            f'{NO_TERMINATOR} after the code: set scanner.hid.terminator = "gap" for a scanner without one'
        )

    def _tell_no_terminator(self) -> None:
        """Once per reader: every such scan is rejected with a reason, but one log line says why."""
        terminator = self._settings.terminator
        if not self._told_no_terminator:
            self._told_no_terminator = True
            log.warning(
                "hid scanner %s: a code arrived without the %s that ends it (scanner.hid.terminator"
                ' = "%s"); if this scanner sends no suffix, set terminator = "gap"',
                self.name,
                "Tab" if terminator == "tab" else "Enter",
                terminator,
            )

    def _scan(self, decoded: Typed) -> Scan:
        if decoded.damage is not None and decoded.damage.startswith(NO_TERMINATOR):
            self._tell_no_terminator()
        text = strip_affixes(decoded.text, self._settings.prefix, self._settings.suffix)
        return Scan(
            text=text,
            source="hid",
            direction=self._direction,
            reader=self.name,
            at_monotonic=time.monotonic(),
            damage=decoded.damage,
        )

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(OSError):
            self._device.ungrab()
        with contextlib.suppress(OSError):
            self._device.close()
