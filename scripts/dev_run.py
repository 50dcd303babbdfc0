"""`make run`: a local mosquitto on a free port, the daemon on stdin, what the broker receives, and a
collector storing it in SQLite under ./var.

Type (or paste) a code and press Enter: the daemon answers on stdout, the event arrives at the broker a
moment later (shown with a `[broker]` prefix), and the collector's database row follows (`[collector]`,
read back from ./var/collector.db). Ctrl-C stops everything.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "config" / "dev.toml"
COLLECTOR_DB = ROOT / "var" / "collector.db"


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


def start_collector(workdir: Path, port: int, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """`qr-collector run` against the local broker, into ./var/collector.db (kept between runs)."""
    conf = workdir / "collector.toml"
    conf.write_text(
        f'[broker]\nhost = "127.0.0.1"\nport = {port}\nclient_id = "qr-collector-dev"\n'
        f'[database]\nurl = "sqlite:///{COLLECTOR_DB}"\n[gaps]\nsettle_s = 2\n[logging]\nlevel = "WARNING"\n'
    )
    return subprocess.Popen(
        [sys.executable, "-m", "collector.cli", "run", "--config", str(conf)], env=env, cwd=ROOT
    )


def start_web(workdir: Path, env: dict[str, str]) -> tuple[subprocess.Popen[bytes], str]:
    """`qr-collector web` on the collector's database, with an `hr` account `dev` for this run."""
    import secrets

    import sqlalchemy as sa

    from collector.store import make_engine

    conf = str(workdir / "collector.toml")
    engine = make_engine(f"sqlite:///{COLLECTOR_DB}")
    deadline = time.monotonic() + 30
    # The collector migrates at start: accounts wait for its schema rather than race it.
    while not sa.inspect(engine).has_table("web_users") and time.monotonic() < deadline:
        time.sleep(0.2)
    engine.dispose()
    password = secrets.token_urlsafe(9)
    command = [sys.executable, "-m", "collector.cli"]
    subprocess.run(
        [*command, "users", "add", "dev", "--role", "hr", "--replace", "--config", conf],
        input=password.encode(),
        stdout=subprocess.DEVNULL,
        env=env,
        cwd=ROOT,
        check=True,
    )
    port = free_port()
    proc = subprocess.Popen(
        [*command, "web", "--config", conf, "--port", str(port), "--refresh", "5"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
        cwd=ROOT,
    )
    return proc, f"web page on http://127.0.0.1:{port}/ (user dev, password {password})"


def show_stored(stop: threading.Event) -> None:
    """Prints each event the collector commits, as the database holds it."""
    import sqlalchemy as sa

    from collector import tables as t
    from collector.store import Store, utc

    store = Store(f"sqlite:///{COLLECTOR_DB}")
    e = t.events.c
    shown: set[str] = set()
    started = time.time()
    while not stop.wait(0.3):
        try:
            rows = store.rows(t.events, e.received_at >= utc(started))
        except sa.exc.SQLAlchemyError:
            continue  # the collector has not created its schema yet
        for row in rows:
            if row["event_id"] not in shown:
                shown.add(row["event_id"])
                print(
                    f"[collector] stored {row['device_id']} seq {row['seq']} {row['code_type']}"
                    f" {row['masked']} at {row['location_id']} ({row['scanned_at']:%H:%M:%S})"
                    f" into {COLLECTOR_DB.name}",
                    flush=True,
                )
    store.close()


def main() -> int:
    children: list[subprocess.Popen[bytes]] = []
    env = dict(os.environ)
    stop = threading.Event()
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
            children.append(start_collector(Path(tmp), port, env))
            web, address = start_web(Path(tmp), env)
            children.append(web)
            threading.Thread(target=show_stored, args=(stop,), daemon=True).start()
            print(
                f"local broker on 127.0.0.1:{port}, collector into {COLLECTOR_DB}; {address};"
                " type a code and press Enter (Ctrl-C to stop)",
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
            stop.set()
            # Newest first: the collector and the subscriber leave before the broker they talk to.
            for child in reversed(children):
                child.terminate()
                child.wait(5)


if __name__ == "__main__":
    sys.exit(main())
