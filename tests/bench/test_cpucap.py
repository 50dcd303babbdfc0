"""The benchmark's CPU quota holds a busy process to its share (where a control group can be made)."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from bench import cpucap
from bench.common import cpu_seconds


def test_a_busy_process_in_a_cap_gets_no_more_than_its_share() -> None:
    why = cpucap.unavailable()
    if why is not None:
        pytest.skip(f"no CPU quota here: {why}")
    cap = cpucap.CpuCap(0.2, "qr-test-cap")
    proc = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        cap.add(proc.pid)
        before, start = cpu_seconds([proc.pid]), time.monotonic()
        time.sleep(2.0)
        used, wall = cpu_seconds([proc.pid]) - before, time.monotonic() - start
    finally:
        proc.kill()
        proc.wait(10)
        cap.close()
    # A ceiling whatever else the machine runs (uncapped, the loop takes a whole core when it can).
    assert 0 < used <= 0.2 * wall * 1.25 + 0.05, (used, wall)
    assert not cap.path.exists()
