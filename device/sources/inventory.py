"""Finding scanners: which input and serial devices are attached, and which of them a config line names.

Devices are listed from sysfs (name, USB vendor:product) and the udev links under /dev, so listing
opens nothing and needs no permission. A config line names devices by
  - a path: `/dev/input/by-id/usb-...-event-kbd`, `/dev/serial/by-id/...`, `/dev/ttyACM0`;
  - a glob over paths: `/dev/serial/by-id/*`;
  - a USB `vendor:product` pair in hex: `0c2e:0b61`;
  - a name pattern (fnmatch, any case): `*Honeywell*`.

Keeping one reader alive per named device is hotplug.py's, which asks this module at every rescan.
"""

from __future__ import annotations

import fnmatch
import glob
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from device.selectors import VENDOR_PRODUCT

GLOB_MAGIC = re.compile(r"[*?\[]")
# How far above a tty's sysfs device the USB device (with idVendor) may sit: interface, then device.
USB_PARENT_DEPTH = 4


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
