"""The real daemon as a subprocess: a config in a temp dir, scans on stdin, decisions from stdout."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from device.label_code import format_label_code
from tests.support.commands import run_module
from tests.support.paths import ROOT
from tests.support.slowdown import scaled
from tests.support.wait import wait_until


def write_config(
    path: Path, *, port: int, storage: Path, extra: str = "", **sections: dict[str, Any]
) -> Path:
    """A minimal device.toml; `sections` override or add keys per section (values as TOML literals)."""
    base: dict[str, dict[str, Any]] = {
        "device": {"id": "bus-dev-1", "dev": True},
        "location": {"id": "98C12345", "kind": "bus"},
        "broker": {
            "host": "127.0.0.1",
            "port": port,
            "keepalive": 5,
            "reconnect_min_s": 0.2,
            "reconnect_max_s": 1.0,
        },
        "storage": {"dir": str(storage)},
        "scanner": {"sources": ["stdin"]},
        "feedback": {"backend": "console"},
    }
    for name, values in sections.items():
        base.setdefault(name, {}).update(values)
    lines = []
    for name, values in base.items():
        lines.append(f"[{name}]")
        lines += [f"{key} = {json.dumps(value)}" for key, value in values.items()]
    path.write_text("\n".join(lines) + "\n" + extra)
    return path


class DaemonProcess:
    def __init__(self, config: Path, env: dict[str, str] | None = None) -> None:
        self.config = config
        self.env = {**os.environ, **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None
        self.decisions: queue.Queue[dict[str, Any]] = queue.Queue()
        self.stderr_lines: list[str] = []
        self.stdout_lines: list[str] = []

    def start(self) -> DaemonProcess:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "device.cli", "run", "--config", str(self.config)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=ROOT,
            env=self.env,
        )
        threading.Thread(target=self._read_stdout, args=(self.proc,), daemon=True).start()
        threading.Thread(target=self._read_stderr, args=(self.proc,), daemon=True).start()
        self.wait_log("ready", timeout=20)
        return self

    def _read_stdout(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdout is not None
        for raw in proc.stdout:
            line = raw.decode("utf-8", "replace")
            self.stdout_lines.append(line)
            self.decisions.put(json.loads(line))

    def _read_stderr(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stderr is not None
        for raw in proc.stderr:
            self.stderr_lines.append(raw.decode("utf-8", "replace"))

    def wait_log(self, needle: str, timeout: float = 10.0, after: int = 0) -> str:
        """Waits for a stderr line containing `needle`, among lines from index `after` on."""
        deadline = time.monotonic() + scaled(timeout)
        while time.monotonic() < deadline:
            for line in self.stderr_lines[after:]:
                if needle in line:
                    return line
            if self.proc is not None and self.proc.poll() is not None:
                break
            time.sleep(0.02)
        raise AssertionError(f"daemon never logged {needle!r}; stderr:\n{''.join(self.stderr_lines[-40:])}")

    def send(self, text: str) -> None:
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write(text.encode() + b"\n")
        self.proc.stdin.flush()

    def next_decision(self, timeout: float = 10.0) -> dict[str, Any]:
        try:
            return self.decisions.get(timeout=scaled(timeout))
        except queue.Empty:
            raise AssertionError(
                f"no decision within {timeout}s; stderr:\n{''.join(self.stderr_lines[-40:])}"
            ) from None

    def scan(self, text: str, timeout: float = 10.0) -> dict[str, Any]:
        self.send(text)
        return self.next_decision(timeout)

    def kill(self) -> None:
        """SIGKILL: a crash or a power cut."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def terminate(self, timeout: float = 10.0) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(scaled(timeout))

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def mark(self) -> int:
        """A position in the log, for wait_log(after=...)."""
        return len(self.stderr_lines)

    @property
    def stderr(self) -> str:
        return "".join(self.stderr_lines)


def ask_for_status(daemon: DaemonProcess, statuses: Callable[[], list[dict[str, Any]]]) -> None:
    """Scans a label of another device, which asks the daemon to publish its status at once (a
    provisioning check), and waits until `statuses` (a subscriber's) holds that status."""
    daemon.send(format_label_code("another-device", "GATE-9", "0" * 12))
    wait_until(lambda: any("provisioning_check" in s for s in statuses()), 10, "a provisioning-check status")


def run_cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """`qr-checkin ARGS...` as a technician runs it."""
    return run_module("device.cli", *args, timeout=timeout)


def serial_daemon(tmp_path: Path, broker_port: int, port: str, **serial: Any) -> DaemonProcess:
    """The daemon reading one serial scanner at `port` (a pty's link), started and holding the port:
    pyserial drops what arrives before it opens the port, so this waits until the source has it."""
    config = write_config(
        tmp_path / "device.toml",
        port=broker_port,
        storage=tmp_path / "state",
        scanner={"sources": ["serial"]},
        **{"scanner.serial": {"port": port, "rescan_s": 0.2, **serial}},  # type: ignore[arg-type]
    )
    daemon = DaemonProcess(config).start()
    try:
        daemon.wait_log(f"serial scanner {port} connected")
    except BaseException:
        daemon.stop()
        raise
    return daemon
