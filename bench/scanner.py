"""Serial scanner latency: terminator to feedback for a 300-character code, against the stdin path.

Two real daemons run side by side with the same broker-less config (the broker port is closed, so
every scan is accepted offline: the figure is the local path only), one reading stdin, one reading a
serial-mode scanner played by a pty; they take turns, so disk and CPU weather hits both alike. Each
code is written without its terminator; the clock starts as the terminator is written and stops when
the console feedback line is read on stdout.
"""

from __future__ import annotations

import socket
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench.common import Row, main_for, percentile, row
from tests.support.daemon import DaemonProcess, write_config
from tests.support.pty_scanner import PtyScanner

CODE_CHARS = 300
# Untimed first scans: page cache, SQLite and the interpreter warm up.
WARMUP = 5
# Lets the daemon take in the code's body, so only the terminator's journey is timed.
SETTLE_S = 0.002


def _codes(n: int, tag: str) -> list[str]:
    # New every time, so each scan is a durable commit like a real check-in, never a duplicate.
    return [f"BENCH-{tag}-{i:06d}-".ljust(CODE_CHARS, "x") for i in range(n)]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _time_one(daemon: DaemonProcess, code: str, write: Callable[[bytes], None], terminator: bytes) -> float:
    write(code.encode())
    time.sleep(SETTLE_S)
    t0 = time.perf_counter()
    write(terminator)
    decision = daemon.next_decision()
    elapsed = (time.perf_counter() - t0) * 1000
    assert decision["feedback"] == "accepted", decision
    return elapsed


def _measure(tmp: Path, n: int, port: int) -> tuple[list[float], list[float]]:
    """Both daemons run side by side and take turns, so disk and CPU weather hits both alike."""
    scanner = PtyScanner(tmp / "dev/serial/by-id/usb-Bench_Scanner-if00").plug()
    serial_config = write_config(
        tmp / "serial.toml",
        port=port,
        storage=tmp / "serial-state",
        scanner={"sources": ["serial"]},
        **{"scanner.serial": {"port": str(scanner.link)}},  # type: ignore[arg-type]
    )
    by_stdin = DaemonProcess(write_config(tmp / "stdin.toml", port=port, storage=tmp / "stdin-state"))
    by_serial = DaemonProcess(serial_config)

    def to_stdin(data: bytes) -> None:
        assert by_stdin.proc is not None and by_stdin.proc.stdin is not None
        by_stdin.proc.stdin.write(data)
        by_stdin.proc.stdin.flush()

    stdin_ms: list[float] = []
    serial_ms: list[float] = []
    try:
        by_stdin.start()
        by_serial.start()
        by_serial.wait_log(f"serial scanner {scanner.link} connected")
        for stdin_code, serial_code in zip(
            _codes(n + WARMUP, "stdin"), _codes(n + WARMUP, "serial"), strict=True
        ):
            stdin_ms.append(_time_one(by_stdin, stdin_code, to_stdin, b"\n"))
            serial_ms.append(_time_one(by_serial, serial_code, scanner.write, b"\r"))
    finally:
        by_stdin.stop()
        by_serial.stop()
        scanner.unplug()
    return stdin_ms[WARMUP:], serial_ms[WARMUP:]


def run(quick: bool = False) -> list[Row]:
    n = 20 if quick else 300
    port = _closed_port()
    with tempfile.TemporaryDirectory(prefix="bench-scanner-") as tmp:
        stdin, serial = _measure(Path(tmp), n, port)
    name = f"terminator-to-feedback, {CODE_CHARS}-char code (serial pty)"
    note = f"baseline: a twin daemon reading stdin, taking turns; {n} codes each, broker unreachable"
    return [
        row(name, "p50", percentile(serial, 50), "ms", percentile(stdin, 50), note),
        row(name, "p99", percentile(serial, 99), "ms", percentile(stdin, 99), note),
    ]


if __name__ == "__main__":
    main_for(run)
