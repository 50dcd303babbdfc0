"""Finding scanners: which input and serial devices are attached, which of them a config line names,
and one reader per named device kept alive across unplugs, replugs and other processes holding it.

Devices are listed from sysfs (name, USB vendor:product) and the udev links under /dev, so listing
opens nothing and needs no permission. A config line names devices by
  - a path: `/dev/input/by-id/usb-...-event-kbd`, `/dev/serial/by-id/...`, `/dev/ttyACM0`;
  - a glob over paths: `/dev/serial/by-id/*`;
  - a USB `vendor:product` pair in hex: `0c2e:0b61`;
  - a name pattern (fnmatch, any case): `*Honeywell*`.

Hot-plug is a rescan (every second by default), not inotify. Python has no inotify without ctypes or
another dependency; udev creates the by-id links and sets permissions a moment after the kernel node
appears, so an inotify watcher would need a retry loop anyway; and a rescan costs a few stat() calls
and small sysfs reads. One second keeps a replug well inside the 3 s budget.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import glob
import logging
import os
import re
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

from device.errors import SourceBusy, SourceError, SourceUnavailable
from device.scan import Scan
from device.selectors import VENDOR_PRODUCT
from device.sources import SourceState

log = logging.getLogger(__name__)

GLOB_MAGIC = re.compile(r"[*?\[]")
# How far above a tty's sysfs device the USB device (with idVendor) may sit: interface, then device.
USB_PARENT_DEPTH = 4
QUEUE_SIZE = 64


@dataclass(frozen=True, slots=True)
class DeviceEntry:
    """One attached device as sysfs and udev describe it. Nothing here is personal data."""

    kind: Literal["input", "serial"]
    path: str
    # udev's stable names for it, by-id first: what a config line should use.
    links: tuple[str, ...]
    name: str
    vendor: str | None = None
    product: str | None = None
    serial: str | None = None

    @property
    def usb_id(self) -> str | None:
        return f"{self.vendor}:{self.product}" if self.vendor and self.product else None

    @property
    def reader(self) -> str:
        """The name a reader goes by in logs and status: its by-id link when it has one."""
        return self.links[0] if self.links else self.path

    @property
    def keyboard(self) -> bool:
        # udev names the link of a device with letter keys "...-event-kbd".
        return any(link.endswith("-event-kbd") for link in self.links)


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8", errors="replace").strip() or None
    except OSError:
        return None


def _natural(path: Path) -> tuple[str, int]:
    digits = re.search(r"\d+$", path.name)
    return (path.name[: digits.start()] if digits else path.name, int(digits.group()) if digits else -1)


class Inventory:
    """Lists devices under a root (`/` on the device; a temporary tree in tests)."""

    def __init__(self, root: Path | str = "/") -> None:
        self.root = Path(root)

    def _links(self, folders: Sequence[str], target: Path) -> tuple[str, ...]:
        real = os.path.realpath(target)
        found: list[str] = []
        for folder in folders:
            base = self.root / "dev" / folder
            if base.is_dir():
                found += sorted(str(link) for link in base.iterdir() if os.path.realpath(link) == real)
        return tuple(found)

    def input_devices(self) -> list[DeviceEntry]:
        entries = []
        for event in sorted((self.root / "sys/class/input").glob("event*"), key=_natural):
            info = event / "device"
            node = self.root / "dev/input" / event.name
            entries.append(
                DeviceEntry(
                    kind="input",
                    path=str(node),
                    links=self._links(("input/by-id", "input/by-path"), node),
                    name=_read(info / "name") or "",
                    vendor=_read(info / "id/vendor"),
                    product=_read(info / "id/product"),
                    serial=_read(info / "uniq"),
                )
            )
        return entries

    def serial_devices(self) -> list[DeviceEntry]:
        """USB serial ports only (ttyACM, ttyUSB...): the Pi's own UARTs are not scanners."""
        entries = []
        for tty in sorted((self.root / "sys/class/tty").glob("tty*"), key=_natural):
            usb = _usb_parent(tty / "device")
            if usb is None:
                continue
            node = self.root / "dev" / tty.name
            name = " ".join(filter(None, (_read(usb / "manufacturer"), _read(usb / "product"))))
            entries.append(
                DeviceEntry(
                    kind="serial",
                    path=str(node),
                    links=self._links(("serial/by-id", "serial/by-path"), node),
                    name=name,
                    vendor=_read(usb / "idVendor"),
                    product=_read(usb / "idProduct"),
                    serial=_read(usb / "serial"),
                )
            )
        return entries


def _usb_parent(device: Path) -> Path | None:
    if not device.exists():  # virtual consoles and ptys have no device behind them
        return None
    here = Path(os.path.realpath(device))
    for _ in range(USB_PARENT_DEPTH):
        if (here / "idVendor").is_file():
            return here
        here = here.parent
    return None


def match(selectors: Sequence[str], inventory: Callable[[], list[DeviceEntry]]) -> dict[str, list[str]]:
    """For each selector, the readers (device paths) it names right now; each device once."""
    listed: list[DeviceEntry] | None = None
    seen: set[str] = set()
    result: dict[str, list[str]] = {}
    for selector in selectors:
        if selector.startswith("/"):
            paths = sorted(glob.glob(selector)) if GLOB_MAGIC.search(selector) else [selector]
            names = [p for p in paths if os.path.exists(p)]
        else:
            listed = inventory() if listed is None else listed
            names = [entry.reader for entry in listed if _matches(selector, entry)]
        result[selector] = []
        for name in names:
            real = os.path.realpath(name)
            if real not in seen:
                seen.add(real)
                result[selector].append(name)
    return result


def _matches(selector: str, entry: DeviceEntry) -> bool:
    pair = VENDOR_PRODUCT.fullmatch(selector)
    if pair:
        return (entry.vendor or "").lower() == pair[1].lower() and (entry.product or "").lower() == pair[
            2
        ].lower()
    return fnmatch.fnmatchcase(entry.name.lower(), selector.lower())


class Reader(Protocol):
    """One opened physical reader."""

    def scans(self) -> AsyncIterator[Scan]:
        """Yields until the device goes away, then raises SourceUnavailable."""
        ...

    def close(self) -> None:
        """Releases the device. Idempotent."""
        ...


class Hotplug:
    """Keeps one reader task per device the config names, reopening after unplugs and busy spells.

    `find` says which readers are present per config line; `open_reader` opens one and raises
    SourceBusy (held by another process), SourceUnavailable (gone) or SourceError (anything else).
    Busy and faulty devices are retried every `retry_s`; missing ones at each rescan.
    """

    def __init__(
        self,
        kind: str,
        selectors: Sequence[str],
        find: Callable[[], Mapping[str, Sequence[str]]],
        open_reader: Callable[[str], Reader],
        *,
        rescan_s: float,
        retry_s: float,
    ) -> None:
        self._kind = kind
        self._selectors = list(selectors)
        self._find = find
        self._open = open_reader
        self._rescan_s = rescan_s
        self._retry_s = retry_s
        self._states: dict[str, SourceState] = {}
        self._readers: dict[str, Reader] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._retry_at: dict[str, float] = {}
        # Config line -> every reader it has named so far.
        self._seen: dict[str, set[str]] = {}
        # Config lines already reported as matching nothing, so the log says it once.
        self._announced: set[str] = set()
        self._closed = False

    @property
    def state(self) -> dict[str, SourceState]:
        # A config line that never matched anything shows as itself, so status names what is missing.
        states: dict[str, SourceState] = {
            sel: "disconnected" for sel in self._selectors if not self._seen.get(sel)
        }
        states.update(self._states)
        return states

    async def scans(self) -> AsyncGenerator[Scan, None]:
        queue: asyncio.Queue[Scan] = asyncio.Queue(QUEUE_SIZE)
        next_rescan = time.monotonic()
        try:
            while not self._closed:
                now = time.monotonic()
                if now >= next_rescan:
                    self._rescan(queue, now)
                    next_rescan = now + self._rescan_s
                try:
                    scan = await asyncio.wait_for(queue.get(), max(0.0, next_rescan - time.monotonic()))
                except TimeoutError:
                    continue
                yield scan
        finally:
            self._stop_all()

    def close(self) -> None:
        self._closed = True
        self._stop_all()

    def _rescan(self, queue: asyncio.Queue[Scan], now: float) -> None:
        try:
            found = self._find()
        except OSError as exc:
            log.warning("%s: cannot list devices: %s", self._kind, exc)
            return
        for selector, names in found.items():
            self._seen.setdefault(selector, set()).update(names)
            if not self._seen[selector] and selector not in self._announced:
                self._announced.add(selector)
                log.warning("%s scanner %s: no such device attached; waiting for it", self._kind, selector)
        present = {name for names in found.values() for name in names}
        for name, state in list(self._states.items()):
            if name not in present and name not in self._tasks and state != "disconnected":
                self._set(name, "disconnected", "no longer present")
        for name in sorted(present):
            if name in self._tasks or self._retry_at.get(name, 0.0) > now:
                continue
            self._start(name, queue, now)

    def _start(self, name: str, queue: asyncio.Queue[Scan], now: float) -> None:
        try:
            reader = self._open(name)
        except SourceBusy as exc:
            self._retry_at[name] = now + self._retry_s
            self._set(name, "busy", str(exc))
            return
        except SourceUnavailable as exc:
            self._set(name, "disconnected", str(exc))
            return
        except SourceError as exc:
            self._retry_at[name] = now + self._retry_s
            self._set(name, "fault", str(exc))
            return
        self._readers[name] = reader
        self._set(name, "connected", "open")
        self._tasks[name] = asyncio.create_task(self._pump(name, reader, queue), name=f"{self._kind}:{name}")

    async def _pump(self, name: str, reader: Reader, queue: asyncio.Queue[Scan]) -> None:
        try:
            async for scan in reader.scans():
                await queue.put(scan)
            self._set(name, "disconnected", "closed")
        except SourceUnavailable as exc:
            self._set(name, "disconnected", str(exc))
        except SourceError as exc:
            self._retry_at[name] = time.monotonic() + self._retry_s
            self._set(name, "fault", str(exc))
        except Exception:
            log.exception("%s: reader %s failed", self._kind, name)
            self._retry_at[name] = time.monotonic() + self._retry_s
            self._set(name, "fault", "reader failed")
        finally:
            reader.close()
            self._readers.pop(name, None)
            self._tasks.pop(name, None)

    def _set(self, name: str, state: SourceState, why: str) -> None:
        if self._states.get(name) == state:
            return
        self._states[name] = state
        if state == "connected":
            log.info("%s scanner %s connected", self._kind, name)
        elif state == "disconnected":
            log.warning("%s scanner %s disconnected: %s", self._kind, name, why)
        else:
            log.error(
                "%s scanner %s %s: %s (retrying every %gs)", self._kind, name, state, why, self._retry_s
            )

    def _stop_all(self) -> None:
        for task in list(self._tasks.values()):
            with contextlib.suppress(RuntimeError):  # the loop may already be closed at shutdown
                task.cancel()
        for reader in list(self._readers.values()):
            reader.close()


class HotplugSource:
    """A source whose readers come and go: its state, scans and close are its Hotplug's."""

    _hotplug: Hotplug

    @property
    def state(self) -> dict[str, SourceState]:
        return self._hotplug.state

    def scans(self) -> AsyncGenerator[Scan, None]:
        return self._hotplug.scans()

    def close(self) -> None:
        self._hotplug.close()
