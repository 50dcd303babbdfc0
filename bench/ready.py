"""Time to READY=1: from spawning `qr-checkin run` to systemd's readiness datagram, no broker reachable.

The daemon gets a real AF_UNIX datagram socket as NOTIFY_SOCKET, as under systemd, and a broker port
nobody listens on: READY=1 must not wait for the network (on a bus the broker may be out of reach for
hours). The storage already exists (an untimed first start creates it), as after a reboot.

Baseline, in the same run: spawning the same interpreter to `import device` and exit, the floor any
Python daemon of this project pays before it can do anything.
"""

from __future__ import annotations

import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import Row, main_for, row
from tests.support.daemon import ROOT, write_config
from tests.support.mosquitto import free_port

READY_TIMEOUT_S = 30.0


def time_to_ready(config: Path, notify: socket.socket, address: str) -> float:
    """Seconds from spawn to the datagram that says READY=1; the daemon is stopped afterwards."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "device.cli", "run", "--config", str(config)],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=ROOT,
        env={**_environ(), "NOTIFY_SOCKET": address},
    )
    try:
        deadline = t0 + READY_TIMEOUT_S
        while (left := deadline - time.perf_counter()) > 0:
            notify.settimeout(left)
            try:
                datagram = notify.recv(4096)
            except TimeoutError:
                break
            if "READY=1" in datagram.decode("utf-8", "replace").splitlines():
                return time.perf_counter() - t0
        raise RuntimeError(f"no READY=1 within {READY_TIMEOUT_S:.0f}s (exit code {proc.poll()})")
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def time_to_import() -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import device"], check=True, cwd=ROOT, env=_environ())
    return time.perf_counter() - t0


def _environ() -> dict[str, str]:
    # An inherited NOTIFY_SOCKET (make bench under a systemd unit) must not receive our datagrams.
    return {k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET", "WATCHDOG_USEC")}


def run(quick: bool = False) -> list[Row]:
    runs = 3 if quick else 7
    with tempfile.TemporaryDirectory(prefix="bench-ready-") as name:
        tmp = Path(name)
        config = write_config(tmp / "device.toml", port=free_port(), storage=tmp / "state")
        address = str(tmp / "notify.sock")
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify:
            notify.bind(address)
            time_to_ready(config, notify, address)  # untimed: creates the store and the dev key
            ours, floor = [], []
            for _ in range(runs):  # alternated, so a burst of load elsewhere hits both sides
                ours.append(time_to_ready(config, notify, address) * 1000)
                floor.append(time_to_import() * 1000)
    return [
        row(
            "time to READY=1 (no broker reachable)",
            "median",
            statistics.median(ours),
            "ms",
            statistics.median(floor),
            f"median of {runs}; baseline: spawn the same interpreter to `import device` and exit",
        )
    ]


if __name__ == "__main__":
    main_for(run)
