"""device.health: real readings of this machine, and None (never an exception) where one is missing."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from device import health


def test_disk_free_matches_statvfs_of_the_same_filesystem(tmp_path: Path) -> None:
    free = health.disk_free_mb(tmp_path)
    assert free is not None
    expected = shutil.disk_usage(tmp_path).free / (1024 * 1024)
    # Other engineers write to this disk at the same time: allow a few MiB of drift.
    assert abs(free - expected) < 64


def test_disk_free_of_a_missing_path_is_none(tmp_path: Path) -> None:
    assert health.disk_free_mb(tmp_path / "nope") is None
    assert health.disk_free_mb("bad\0path") is None


def test_cpu_temperature_from_a_thermal_zone(tmp_path: Path) -> None:
    zone = tmp_path / "temp"
    zone.write_text("48312\n")
    assert health.cpu_temperature_c(zone) == pytest.approx(48.312)
    zone.write_text("")
    assert health.cpu_temperature_c(zone) is None
    assert health.cpu_temperature_c(tmp_path / "missing") is None


def test_cpu_temperature_of_this_machine_is_plausible_or_none() -> None:
    value = health.cpu_temperature_c()
    if health.THERMAL_ZONE.exists():
        assert value is not None and -40 < value < 150
    else:
        assert value is None


def test_uptime_agrees_with_the_boot_clock(tmp_path: Path) -> None:
    value = health.uptime_s()
    assert value is not None
    assert abs(value - time.clock_gettime(time.CLOCK_BOOTTIME)) < 5
    garbage = tmp_path / "uptime"
    garbage.write_text("soon")
    assert health.uptime_s(garbage) is None
    assert health.uptime_s(tmp_path / "missing") is None


def test_rss_grows_when_this_process_holds_more_memory(tmp_path: Path) -> None:
    before = health.rss_mb()
    assert before is not None and before > 1
    ballast = os.urandom(64 * 1024 * 1024)
    after = health.rss_mb()
    assert after is not None and after - before > 48
    del ballast
    status = tmp_path / "status"
    status.write_text("Name:\tpython\nVmRSS:\t  2048 kB\n")
    assert health.rss_mb(status) == 2.0
    status.write_text("Name:\tpython\n")
    assert health.rss_mb(status) is None
    assert health.rss_mb(tmp_path / "missing") is None


def test_readings_are_rounded_and_keyed_for_the_status_message(tmp_path: Path) -> None:
    values = health.readings(tmp_path)
    assert set(values) == {"disk_free_mb", "cpu_temp_c", "system_uptime_s", "rss_mb"}
    assert values["disk_free_mb"] is not None and values["disk_free_mb"] == round(values["disk_free_mb"], 1)
    assert health.readings(tmp_path / "missing")["disk_free_mb"] is None
