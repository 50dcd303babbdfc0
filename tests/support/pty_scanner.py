"""Serial-mode scanners on a pty pair: the test holds the master (the scanner's end), the source opens
the slave through a stable link, the way udev's /dev/serial/by-id links name a real ttyACM.

An unplug closes the master: the source's pending read then fails exactly as on a real ttyACM
(pyserial raises SerialException). A replug is a new pty behind the same link.

Pitfall (platform-notes §6): pyserial flushes input when it opens the port, so bytes written before
the source has the port open are lost. Wait for the source's state to say "connected" first.
"""

from __future__ import annotations

import os
import tty
from pathlib import Path


class PtyScanner:
    def __init__(self, link: Path) -> None:
        self.link = link
        self.master = -1
        self._slave = -1

    @property
    def tty_path(self) -> str:
        return os.ttyname(self._slave)

    def plug(self) -> PtyScanner:
        self.master, self._slave = os.openpty()
        # Raw before anyone opens it: no echo of early bytes back to the master, no CR -> LF mapping.
        tty.setraw(self._slave)
        self.link.parent.mkdir(parents=True, exist_ok=True)
        self.link.unlink(missing_ok=True)
        self.link.symlink_to(self.tty_path)
        return self

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(self.master, view) :]

    def unplug(self) -> None:
        self.link.unlink(missing_ok=True)
        for fd in (self.master, self._slave):
            if fd >= 0:
                os.close(fd)
        self.master = self._slave = -1

    @property
    def plugged(self) -> bool:
        return self.master >= 0


def fake_usb_tty(
    root: Path,
    name: str,
    *,
    vendor: str = "1eab",
    product: str = "1d06",
    manufacturer: str = "Test",
    model: str = "QR Serial Scanner",
    serial: str = "S123",
) -> Path:
    """A USB CDC tty as sysfs shows it: the tty's `device` is the interface, its parent the USB device."""
    usb = root / "sys/devices/pci0000:00/usb1/1-1"
    interface = usb / "1-1:1.0"
    interface.mkdir(parents=True, exist_ok=True)
    for key, value in {
        "idVendor": vendor,
        "idProduct": product,
        "manufacturer": manufacturer,
        "product": model,
        "serial": serial,
    }.items():
        (usb / key).write_text(value + "\n")
    entry = root / "sys/class/tty" / name
    entry.mkdir(parents=True, exist_ok=True)
    (entry / "device").symlink_to(interface)
    node = root / "dev" / name
    node.parent.mkdir(parents=True, exist_ok=True)
    node.write_bytes(b"")
    return node
