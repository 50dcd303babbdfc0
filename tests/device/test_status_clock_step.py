"""The status's age of the oldest undelivered event survives a step of the wall clock (the age alarm
too): within a boot it is read from the monotonic clock the store records, as the purge ages events.

A synchronised clock that steps 22 days forward (a bad NTP answer, a GPS fix) made the status report,
and alarm on, a backlog of minutes as weeks old; a step back hid a backlog that really is old."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.faketime import CLOCK_CACHE_S, STEP_S, faketime, faketime_library
from device.clock import FakeClock
from device.status import AGE_ALARM_FRACTION
from tests.support.daemon import ROOT, DaemonProcess, write_config
from tests.support.harness import TRUE_NOW, Harness, run
from tests.support.mosquitto import free_port
from tests.support.payloads import other_codes

AGE_ALARM = "ALARM: the oldest undelivered event is"


def test_a_wall_clock_step_forward_makes_no_backlog_old(tmp_path: Path) -> None:
    """The real daemon and `qr-checkin status`, their wall clock stepped by libfaketime (monotonic time
    untouched, as an NTP step leaves it)."""
    clock_file = tmp_path / "clock-offset"
    lib, why_not = faketime_library()
    env, why_not = faketime(clock_file, lib) if lib else (None, why_not)
    if env is None:
        pytest.skip(why_not or "libfaketime unavailable")
    # No broker: the events stay undelivered.
    config = write_config(tmp_path / "device.toml", port=free_port(), storage=tmp_path / "state")
    daemon = DaemonProcess(config, env=env).start()
    try:
        for code in other_codes(3):
            assert daemon.scan(code)["feedback"] == "accepted"
        mark = daemon.mark()
        clock_file.write_text(f"+{STEP_S:.0f}\n")  # past max_age_days, and far past the age alarm
        # In force after CLOCK_CACHE_S; the housekeeping judges the age every second: several rounds.
        time.sleep(CLOCK_CACHE_S + 3)
        assert AGE_ALARM not in "".join(daemon.stderr_lines[mark:]), daemon.stderr[-2000:]
        # The technician's view, under the same stepped clock.
        status = subprocess.run(
            [sys.executable, "-m", "device.cli", "status", "--json", "--config", str(config)],
            capture_output=True,
            text=True,
            cwd=ROOT,
            env={**os.environ, **env},
            timeout=60,
        )
        assert status.returncode == 0, status.stderr
        body = json.loads(status.stdout)
        assert body["backlog"] == 3
        assert 0 <= body["oldest_undelivered_age_s"] < 600, body["oldest_undelivered_age_s"]
        assert daemon.terminate() == 0
    finally:
        daemon.stop()


def test_a_truly_old_backlog_still_alarms_when_the_wall_clock_steps_back(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clock = FakeClock(wall=TRUE_NOW, synced=True, boot="boot-age-test")
    h = Harness(tmp_path, free_port(), clock)
    alarm_after_s = AGE_ALARM_FRACTION * h.settings.storage.max_age_days * 86400

    async def scenario() -> None:
        await h.start()
        assert (await h.answer("WORKER-AGE-1"))["feedback"] == "accepted"
        # Days pass on both clocks, then the wall clock steps back a month.
        clock.advance(alarm_after_s + 3600)
        clock.set_wall(clock.wall() - 30 * 86400)
        h.parts.status.refresh()
        assert h.parts.status.body()["oldest_undelivered_age_s"] == pytest.approx(alarm_after_s + 3600, abs=1)
        assert await h.stop() == 0

    run(scenario)
    assert AGE_ALARM in caplog.text
