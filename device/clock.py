"""Time as the device knows it: wall clock, monotonic clock, whether the wall clock is true, boot id.

A bus Pi has no real-time clock: until NTP synchronises, the wall clock may say 1970 or last week.
Events are stamped with monotonic time and the boot id too, so their wall time can be corrected once
the clock is synchronised.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

BOOT_ID_PATH = Path("/proc/sys/kernel/random/boot_id")
TIMESYNCD_MARKER = Path("/run/systemd/timesync/synchronized")
# The kernel reports TIME_ERROR (5) from adjtimex while the clock is unsynchronised (STA_UNSYNC).
_TIME_ERROR = 5


class Clock(Protocol):
    def wall(self) -> float: ...

    def monotonic(self) -> float: ...

    def synced(self) -> bool: ...

    def boot_id(self) -> str: ...


class _Timex(ctypes.Structure):
    # struct timex from <sys/timex.h>; only the leading fields are read, the tail is padding.
    _fields_ = [
        ("modes", ctypes.c_uint),
        ("offset", ctypes.c_long),
        ("freq", ctypes.c_long),
        ("maxerror", ctypes.c_long),
        ("esterror", ctypes.c_long),
        ("status", ctypes.c_int),
        ("constant", ctypes.c_long),
        ("precision", ctypes.c_long),
        ("tolerance", ctypes.c_long),
        ("time_sec", ctypes.c_long),
        ("time_usec", ctypes.c_long),
        ("tick", ctypes.c_long),
        ("ppsfreq", ctypes.c_long),
        ("jitter", ctypes.c_long),
        ("shift", ctypes.c_int),
        ("stabil", ctypes.c_long),
        ("jitcnt", ctypes.c_long),
        ("calcnt", ctypes.c_long),
        ("errcnt", ctypes.c_long),
        ("stbcnt", ctypes.c_long),
        ("tai", ctypes.c_int),
        ("_pad", ctypes.c_int * 11),
    ]


@functools.cache
def _libc() -> ctypes.CDLL | None:
    # find_library runs ldconfig: milliseconds, so once per process, never per scan.
    name = ctypes.util.find_library("c")
    try:
        return None if name is None else ctypes.CDLL(name, use_errno=True)
    except OSError:
        return None


def kernel_clock_synced() -> bool | None:
    """The kernel's own view (adjtimex), or None where it cannot be asked."""
    libc = _libc()
    if libc is None:
        return None
    try:
        tx = _Timex()
        state = int(libc.adjtimex(ctypes.byref(tx)))
    except (OSError, AttributeError):
        return None
    if state < 0:
        return None
    return state != _TIME_ERROR


class SystemClock:
    """The real clock. Synchronised if the kernel says so or systemd-timesyncd left its marker."""

    def __init__(self, marker: Path = TIMESYNCD_MARKER) -> None:
        self._marker = marker
        self._boot_id = _read_boot_id()

    def wall(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    def synced(self) -> bool:
        if self._marker.exists():
            return True
        return bool(kernel_clock_synced())

    def boot_id(self) -> str:
        return self._boot_id


def _read_boot_id() -> str:
    try:
        return BOOT_ID_PATH.read_text().strip()
    except OSError:
        # Without /proc (tests in odd sandboxes) one id per process is the honest fallback.
        return f"proc-{os.getpid()}-{uuid.uuid4().hex[:8]}"


class FakeClock:
    """An injected clock for tests: set or advance wall and monotonic time, flip the sync state."""

    def __init__(self, wall: float = 1_700_000_000.0, *, synced: bool = True, boot: str = "boot-1") -> None:
        self._wall = wall
        self._mono = 1000.0
        self.is_synced = synced
        self.boot = boot

    def wall(self) -> float:
        return self._wall

    def monotonic(self) -> float:
        return self._mono

    def synced(self) -> bool:
        return self.is_synced

    def boot_id(self) -> str:
        return self.boot

    def advance(self, seconds: float) -> None:
        self._wall += seconds
        self._mono += seconds

    def set_wall(self, wall: float) -> None:
        self._wall = wall


@dataclass(frozen=True, slots=True)
class Stamp:
    """When a scan happened, by both clocks, and whether the wall clock was true then."""

    wall: float
    mono: float
    boot_id: str
    synced: bool

    @classmethod
    def now(cls, clock: Clock) -> Stamp:
        return cls(wall=clock.wall(), mono=clock.monotonic(), boot_id=clock.boot_id(), synced=clock.synced())
