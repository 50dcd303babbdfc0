"""A real mosquitto broker on a free loopback port, started and killed by tests."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from tests.support.slowdown import scaled

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 10.0, host: str = "127.0.0.1") -> None:
    deadline = time.monotonic() + scaled(timeout)
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.02)
    raise TimeoutError(f"nothing listens on {host}:{port} after {timeout}s")


class Mosquitto:
    """One broker process. `extra` lines go into its config (TLS, ACL, persistence...)."""

    def __init__(
        self, workdir: Path, port: int | None = None, extra: str = "", persistence: bool = False
    ) -> None:
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.extra = extra
        self.persistence = persistence
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = workdir / "mosquitto.log"

    def config(self) -> str:
        lines = [
            "user root",
            "per_listener_settings false",
            f"listener {self.port} 127.0.0.1",
            # Unlimited queue: the default 1000 silently drops QoS1 messages for a slow subscriber.
            "max_queued_messages 0",
            # As provisioning writes it: an MQTT 3.1.1 subscriber acknowledging after each commit (the
            # collector's protocol "3.1.1") gets no more than this unacknowledged; the default is 20.
            # MQTT 5 clients name their own window (Receive Maximum) and ignore it.
            "max_inflight_messages 2000",
            "allow_anonymous true" if "allow_anonymous" not in self.extra else "",
        ]
        if self.persistence:
            lines += ["persistence true", f"persistence_location {self.workdir}/", "autosave_interval 1"]
        else:
            lines.append("persistence false")
        lines.append(self.extra)
        return "\n".join(line for line in lines if line) + "\n"

    def start(self) -> Mosquitto:
        conf = self.workdir / "mosquitto.conf"
        conf.write_text(self.config())
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen([MOSQUITTO, "-c", str(conf)], stdout=log, stderr=subprocess.STDOUT)
        wait_port(self.port)
        return self

    def kill(self) -> None:
        """SIGKILL: the broker dies as in a crash or a power cut."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        self.proc = None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def pause(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGCONT)

    def restart(self) -> None:
        self.kill()
        self.start()

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None
