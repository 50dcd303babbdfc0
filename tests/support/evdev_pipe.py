"""Keyboard-mode scanners without /dev/uinput: a real `evdev.InputDevice` whose fd is a pipe.

There is no uinput here and `InputDevice(path)` needs EVIOCG* ioctls a pipe cannot answer, so
`PipeInputDevice` skips the constructor's ioctls and sets only what they would have set. Everything
after that is evdev's own code: `read()` and `async_read_loop()` read packed `struct input_event`
records that the test writes into the pipe. An unplug is `OSError(ENODEV)` from `read()`, which is
what the kernel gives (a closed pipe would make evdev's C reader return a garbage event instead).

`PipeBus` also lays out the device files and sysfs entries under a temporary root, so the source's
real discovery and hot-plug rescans find, lose and find again the simulated scanners.
"""

from __future__ import annotations

import errno
import fcntl
import functools
import os
import shutil
import struct
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import evdev
from evdev import ecodes

from device.sources.keymaps import DEAD_SPACING, LAYOUTS, LayoutName, is_alphabetic

EVENT = struct.Struct("llHHi")  # struct input_event on 64-bit Linux (x86_64, aarch64)
F_SETPIPE_SZ = 1031
PIPE_SIZE = 1 << 20

Stroke = tuple[int, int]  # (key code, value: 1 down, 0 up)


class PipeInputDevice(evdev.InputDevice):
    def __init__(self, scanner: PipeScanner, path: str, fd: int) -> None:
        # No super().__init__(): it would issue ioctls a pipe does not answer.
        self.path = path
        self.fd = fd
        self.name = scanner.name
        self.phys = ""
        self.uniq = ""
        self.info = evdev.DeviceInfo(bustype=3, vendor=scanner.vendor, product=scanner.product, version=0x111)
        self.version = 0x10001
        self._rawcapabilities = {}
        self.ff_effects_count = 0
        self._scanner = scanner

    def grab(self) -> None:
        self._scanner.grab(self)

    def ungrab(self) -> None:
        self._scanner.ungrab(self)

    def read(self) -> Iterator[evdev.InputEvent]:
        events = list(super().read())
        if not events and self._scanner.unplugged:
            raise OSError(errno.ENODEV, os.strerror(errno.ENODEV))
        return iter(events)

    def close(self) -> None:
        self._scanner.ungrab(self)
        super().close()


@dataclass(eq=False)
class PipeScanner:
    """One simulated keyboard-mode scanner: plug, type, unplug, replug."""

    bus: PipeBus
    index: int
    name: str
    vendor: int
    product: int
    by_id: str
    held_by_other: bool = False
    unplugged: bool = True
    grabbed_by: PipeInputDevice | None = None
    opened: int = 0
    _read_fd: int = -1
    _write_fd: int = -1
    _clock: float = 1_700_000_000.0
    layout: LayoutName = "us"
    _strokes: list[Stroke] = field(default_factory=list)

    @property
    def node(self) -> Path:
        return self.bus.root / "dev/input" / f"event{self.index}"

    @property
    def link(self) -> Path:
        return self.bus.root / "dev/input/by-id" / self.by_id

    def plug(self) -> PipeScanner:
        self._read_fd, self._write_fd = os.pipe()
        os.set_blocking(self._read_fd, False)
        fcntl.fcntl(self._write_fd, F_SETPIPE_SZ, PIPE_SIZE)
        self.unplugged = False
        sysfs = self.bus.root / "sys/class/input" / f"event{self.index}" / "device"
        (sysfs / "id").mkdir(parents=True, exist_ok=True)
        (sysfs / "name").write_text(self.name + "\n")
        (sysfs / "id/vendor").write_text(f"{self.vendor:04x}\n")
        (sysfs / "id/product").write_text(f"{self.product:04x}\n")
        self.node.parent.mkdir(parents=True, exist_ok=True)
        self.node.write_bytes(b"")
        self.link.parent.mkdir(parents=True, exist_ok=True)
        self.link.symlink_to(f"../event{self.index}")
        return self

    def unplug(self) -> None:
        """The kernel's view: the node and its links vanish, a pending read fails with ENODEV."""
        self.unplugged = True
        self.link.unlink(missing_ok=True)
        self.node.unlink(missing_ok=True)
        shutil.rmtree(self.bus.root / "sys/class/input" / f"event{self.index}", ignore_errors=True)
        os.close(self._write_fd)  # wakes the reader; its read() then raises ENODEV
        os.close(self._read_fd)
        self._read_fd = self._write_fd = -1

    def open(self, path: str) -> PipeInputDevice:
        if self.unplugged:
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), path)
        self.opened += 1
        return PipeInputDevice(self, path, os.dup(self._read_fd))

    def grab(self, device: PipeInputDevice) -> None:
        if self.held_by_other or (self.grabbed_by is not None and self.grabbed_by is not device):
            raise OSError(errno.EBUSY, os.strerror(errno.EBUSY))
        self.grabbed_by = device

    def ungrab(self, device: PipeInputDevice) -> None:
        if self.grabbed_by is device:
            self.grabbed_by = None

    def send(self, strokes: Iterable[Stroke], *, step_s: float = 0.002) -> None:
        """Writes key events as the kernel would report them: each followed by a SYN_REPORT."""
        records = bytearray()
        for code, value in strokes:
            self._clock += step_s
            sec, usec = _sec_usec(self._clock)
            records += EVENT.pack(sec, usec, ecodes.EV_KEY, code, value)
            records += EVENT.pack(sec, usec, ecodes.EV_SYN, ecodes.SYN_REPORT, 0)
        os.write(self._write_fd, bytes(records))

    def pause(self, seconds: float) -> None:
        """Advances the event clock: the next keys arrive this much later (gap framing)."""
        self._clock += seconds

    def type(self, text: str, *, terminator: str = "enter", caps: bool = False) -> None:
        strokes = keystrokes(text, self.layout, caps=caps)
        if terminator:
            strokes += tap(ecodes.ecodes[f"KEY_{terminator.upper()}"])
        self.send(strokes)


class PipeBus:
    """The simulated scanners of one test, their /dev and /sys under `root`, and the open seam."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.scanners: list[PipeScanner] = []

    def add(self, name: str = "Test Scanner", vendor: int = 0x0C2E, product: int = 0x0B61) -> PipeScanner:
        index = 10 + len(self.scanners)
        by_id = f"usb-{name.replace(' ', '_')}_{index}-event-kbd"
        scanner = PipeScanner(self, index, name, vendor, product, by_id)
        self.scanners.append(scanner)
        return scanner

    def open_device(self, path: str) -> PipeInputDevice:
        """The `open_device` seam of HidSource: what `evdev.InputDevice(path)` is on a real Pi."""
        real = os.path.realpath(path)
        for scanner in self.scanners:
            if os.path.realpath(scanner.node) == real or str(scanner.link) == path:
                return scanner.open(path)
        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), path)

    def close(self) -> None:
        for scanner in self.scanners:
            if not scanner.unplugged:
                scanner.unplug()


def tap(code: int) -> list[Stroke]:
    return [(code, 1), (code, 0)]


def chord(modifier: int, code: int) -> list[Stroke]:
    return [(modifier, 1), *tap(code), (modifier, 0)]


def alt_code(digits: str) -> list[Stroke]:
    """Alt held while the digits are typed on the keypad."""
    keys = [stroke for d in digits for stroke in tap(ecodes.ecodes[f"KEY_KP{d}"])]
    return [(ecodes.KEY_LEFTALT, 1), *keys, (ecodes.KEY_LEFTALT, 0)]


@functools.cache
def _key_for(char: str, layout: LayoutName) -> tuple[int, int] | None:
    """(key code, level) typing `char` directly: the main block before the keypad, lower levels first."""
    table = LAYOUTS[layout].keys
    keypad = {code for code in table if str(ecodes.KEY[code]).startswith("KEY_KP")}
    found = [(code in keypad, level, code) for code, levels in table.items() for level in range(len(levels))]
    for _, level, code in sorted(found):
        if table[code][level] == char:
            return code, level
    return None


def keystrokes(text: str, layout: LayoutName = "us", *, caps: bool = False) -> list[Stroke]:
    """What a scanner set to `layout` presses to type `text`; Alt+numpad for what no key types."""
    strokes: list[Stroke] = tap(ecodes.KEY_CAPSLOCK) if caps else []
    for char in text:
        strokes += _strokes_for(char, layout, caps)
    if caps:
        strokes += tap(ecodes.KEY_CAPSLOCK)
    return strokes


def _strokes_for(char: str, layout: LayoutName, caps: bool) -> list[Stroke]:
    direct = _key_for(char, layout)
    if direct is not None:
        return _press(direct, layout, caps)
    for mark, spacing in DEAD_SPACING.items():
        dead = _key_for(mark, layout)
        if dead is None:
            continue
        if char == spacing:
            return _press(dead, layout, caps) + tap(ecodes.KEY_SPACE)
        base = unicodedata.normalize("NFD", char)
        if len(base) == 2 and base[1] == mark and (letter := _key_for(base[0], layout)) is not None:
            return _press(dead, layout, caps) + _press(letter, layout, caps)
    if ord(char) >= 256:
        return alt_code(str(ord(char)))
    return alt_code(f"0{char.encode('cp1252')[0]}" if ord(char) >= 128 else str(ord(char)))


def _press(key: tuple[int, int], layout: LayoutName, caps: bool) -> list[Stroke]:
    code, level = key
    if level == 2:
        return chord(ecodes.KEY_RIGHTALT, code)
    shifted = (level == 1) != (caps and is_alphabetic(LAYOUTS[layout].keys[code]))
    return chord(ecodes.KEY_LEFTSHIFT, code) if shifted else tap(code)


def input_events(
    strokes: Iterable[Stroke], *, start: float = 1_700_000_000.0, step_s: float = 0.002
) -> list[evdev.InputEvent]:
    """Strokes as `evdev.InputEvent`s, for feeding the pure decoder."""
    events = []
    for i, (code, value) in enumerate(strokes):
        events.append(evdev.InputEvent(*_sec_usec(start + i * step_s), ecodes.EV_KEY, code, value))
    return events


def _sec_usec(at: float) -> tuple[int, int]:
    sec, usec = divmod(round(at * 1e6), 1_000_000)
    return sec, usec
