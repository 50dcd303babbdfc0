"""Readings of the machine for the status message: free disk, CPU temperature, uptime, memory.

Each reading returns None where the machine cannot give it (no thermal zone in a VM, no /proc in a
sandbox) and never raises: a status heartbeat must not fail because a sensor is missing.
"""

from __future__ import annotations

import os
from pathlib import Path

THERMAL_ZONE = Path("/sys/class/thermal/thermal_zone0/temp")
PROC_UPTIME = Path("/proc/uptime")
PROC_SELF_STATUS = Path("/proc/self/status")
_MIB = 1024 * 1024


def disk_free_mb(path: Path | str) -> float | None:
    """MiB an unprivileged writer can still use on the filesystem holding `path`."""
    try:
        st = os.statvfs(path)
    except (OSError, ValueError):
        return None
    return st.f_bavail * st.f_frsize / _MIB


def cpu_temperature_c(zone: Path = THERMAL_ZONE) -> float | None:
    """The SoC temperature in °C (the kernel reports millidegrees)."""
    try:
        return int(zone.read_text(encoding="ascii").strip()) / 1000
    except (OSError, ValueError, UnicodeDecodeError):
        return None


def uptime_s(source: Path = PROC_UPTIME) -> float | None:
    """Seconds since the machine booted (suspend included), from /proc/uptime."""
    try:
        return float(source.read_text(encoding="ascii").split()[0])
    except (OSError, ValueError, IndexError, UnicodeDecodeError):
        return None


def rss_mb(source: Path = PROC_SELF_STATUS) -> float | None:
    """This process's resident memory in MiB (VmRSS), the figure that grows if something leaks."""
    try:
        for line in source.read_text(encoding="ascii", errors="replace").splitlines():
            if line.startswith("VmRSS:"):
                value, unit = line.split()[1:3]
                if unit.lower() != "kb":
                    return None
                return int(value) / 1024
    except (OSError, ValueError):
        return None
    return None


def readings(storage_dir: Path | str) -> dict[str, float | None]:
    """All readings at once, rounded for a status message."""
    values = {
        "disk_free_mb": disk_free_mb(storage_dir),
        "cpu_temp_c": cpu_temperature_c(),
        "system_uptime_s": uptime_s(),
        "rss_mb": rss_mb(),
    }
    return {key: None if value is None else round(value, 1) for key, value in values.items()}
