"""`make run`: a local mosquitto on a free port, the daemon on stdin, and what the broker receives.

Type (or paste) a code and press Enter: the daemon answers on stdout, and the event arrives at the
broker a moment later, shown with a `[broker]` prefix. Ctrl-C stops everything.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "config" / "dev.toml"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_broker(workdir: Path) -> tuple[subprocess.Popen[bytes], int] | None:
    mosquitto = shutil.which("mosquitto") or (
        "/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None
    )
    if mosquitto is None:
        return None
    port = free_port()
    conf = workdir / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\nuser root\n")
    proc = subprocess.Popen(
        [mosquitto, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc, port
        except OSError:
            time.sleep(0.05)
    proc.kill()
    return None


def main() -> int:
    children: list[subprocess.Popen[bytes]] = []
    env = dict(os.environ)
    with tempfile.TemporaryDirectory(prefix="qr-checkin-dev-") as tmp:
        broker = start_broker(Path(tmp))
        if broker is None:
            print("mosquitto is not installed: the daemon runs offline and buffers events.", file=sys.stderr)
            env["QRCHECKIN_BROKER__PORT"] = str(free_port())
        else:
            proc, port = broker
            children.append(proc)
            env["QRCHECKIN_BROKER__PORT"] = str(port)
            sub = shutil.which("mosquitto_sub")
            if sub:
                children.append(
                    subprocess.Popen(
                        [
                            "sh",
                            "-c",
                            f"{sub} -h 127.0.0.1 -p {port} -q 1 -v -t 'checkin/#' | sed -u 's/^/[broker] /'",
                        ],
                        stdin=subprocess.DEVNULL,
                    )
                )
            print(
                f"local broker on 127.0.0.1:{port}; type a code and press Enter (Ctrl-C to stop)",
                file=sys.stderr,
            )
        daemon = subprocess.Popen(
            [sys.executable, "-m", "device.cli", "run", "--config", str(CONFIG)], env=env, cwd=ROOT
        )
        try:
            return daemon.wait()
        except KeyboardInterrupt:
            daemon.send_signal(signal.SIGTERM)
            return daemon.wait(10)
        finally:
            for child in children:
                child.terminate()
                child.wait(5)


if __name__ == "__main__":
    sys.exit(main())
