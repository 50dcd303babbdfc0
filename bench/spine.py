"""The spine's figures: scan-to-feedback latency, backlog drain against raw paho, idle memory."""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from bench.common import Row, main_for, percentile, row
from device.checkin import Checkin
from device.clock import SystemClock
from device.contract import Topics
from device.privacy import Privacy
from device.publisher import Publisher
from device.scan import Scan
from device.settings import BrokerSettings, DeviceSettings, LocationSettings, Settings, StorageSettings
from device.store import Outbox
from tests.support.daemon import DaemonProcess, write_config
from tests.support.mosquitto import Mosquitto

# The floor of a durable answer: read a line, commit it to SQLite (WAL, synchronous=FULL), answer.
DURABLE_ECHO = """
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("PRAGMA journal_mode=WAL")
db.execute("PRAGMA synchronous=FULL")
db.execute("CREATE TABLE t (line TEXT)")
for line in sys.stdin:
    db.execute("BEGIN IMMEDIATE")
    db.execute("INSERT INTO t VALUES (?)", (line,))
    db.execute("COMMIT")
    sys.stdout.write(line)
    sys.stdout.flush()
"""


def _codes(n: int, tag: str) -> list[str]:
    # About the length of a CCCD payload, each one new so every scan is a durable commit.
    return [f"BENCH-{tag}-{i:06d}-" + "x" * 90 for i in range(n)]


def _round_trips(proc: subprocess.Popen[str], lines: list[str]) -> list[float]:
    """Milliseconds from writing each line to reading the answer line, on this thread alone."""
    assert proc.stdin is not None and proc.stdout is not None
    times = []
    for line in lines:
        t0 = time.perf_counter()
        proc.stdin.write(line + "\n")
        proc.stdin.flush()
        answer = proc.stdout.readline()
        times.append((time.perf_counter() - t0) * 1000)
        assert answer and '"rejected"' not in answer, answer
    return times


def _pipe_process(args: list[str], stderr: Any = subprocess.DEVNULL) -> subprocess.Popen[str]:
    return subprocess.Popen(
        args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr, text=True, bufsize=1
    )


def latency(n: int, tmp: Path, port: int) -> list[Row]:
    """Time from writing a line to the daemon's stdin to reading its decision (durable commit)."""
    config = write_config(tmp / "lat.toml", port=port, storage=tmp / "lat-state")
    log = (tmp / "lat.log").open("w")
    daemon = _pipe_process([sys.executable, "-m", "device.cli", "run", "--config", str(config)], stderr=log)
    try:
        deadline = time.monotonic() + 30
        while "ready" not in (tmp / "lat.log").read_text() and time.monotonic() < deadline:
            time.sleep(0.05)
        ours = _round_trips(daemon, _codes(n, "lat"))
    finally:
        daemon.terminate()
        daemon.wait(10)
        log.close()
    # Baseline: the same pipe round trip through a process that only makes each line durable.
    echo = _pipe_process([sys.executable, "-c", DURABLE_ECHO, str(tmp / "echo.sqlite")])
    floor = _round_trips(echo, _codes(n, "echo"))
    echo.terminate()
    echo.wait(10)
    note = "baseline: a process that only commits each line to SQLite (WAL, FULL); target p99 <= 20 ms"
    return [
        row("scan-to-feedback (stdin)", "p50", percentile(ours, 50), "ms", percentile(floor, 50), note),
        row("scan-to-feedback (stdin)", "p99", percentile(ours, 99), "ms", percentile(floor, 99), note),
    ]


def _settings(storage: Path, port: int) -> Settings:
    return Settings(
        device=DeviceSettings(id="bench-dev"),
        location=LocationSettings(id="BENCH1", kind="bus"),
        broker=BrokerSettings(host="127.0.0.1", port=port),
        storage=StorageSettings(dir=storage),
    )


def _fill(settings: Settings, n: int) -> list[str]:
    box = Outbox.open(settings.storage.dir)
    checkin = Checkin(settings, box, Privacy("hmac", b"k" * 32), SystemClock())
    for code in _codes(n, "drain"):
        assert checkin.decide(Scan(text=code, source="stdin")).outcome == "accepted"
    bodies = [p.body for p in box.pending(n)]
    box.close()
    return bodies


def drain_ours(settings: Settings, n: int) -> float:
    box = Outbox.open(settings.storage.dir)
    with box._write() as db:  # every event undelivered again, for another round on the same store
        db.execute("UPDATE events SET delivered_at = NULL")
    topics = Topics.of("checkin", settings.location.id, settings.device.id)
    pub = Publisher(settings.broker, topics, "bench-ours", box, lambda: {"device_id": "bench-dev"})
    pub.start()
    deadline = time.monotonic() + 120
    while not pub.connected and time.monotonic() < deadline:
        time.sleep(0.001)
    t0 = time.perf_counter()
    # The publisher's own count of events marked delivered in the store: the finish line, read
    # without a query that would compete with the drain.
    while pub.delivered < n and time.monotonic() < deadline:
        time.sleep(0.05)
    elapsed = time.perf_counter() - t0
    assert pub.delivered >= n, "drain did not finish"
    pub.stop()
    box.close()
    return elapsed


def drain_raw_paho(port: int, bodies: list[str]) -> float:
    """The baseline: paho alone, QoS 1, every message published at once (pipelined), window 100."""
    done = threading.Event()
    acked = 0
    connected = threading.Event()

    def on_publish(*_: object) -> None:
        nonlocal acked
        acked += 1
        if acked == len(bodies):
            done.set()

    client = mqtt.Client(
        callback_api_version=CallbackAPIVersion.VERSION2, client_id="bench-raw", protocol=mqtt.MQTTv5
    )
    client.max_inflight_messages_set(100)
    client.on_publish = on_publish
    client.on_connect = lambda *_: connected.set()
    client.connect("127.0.0.1", port, keepalive=30)
    client.loop_start()
    connected.wait(10)
    t0 = time.perf_counter()
    for body in bodies:
        client.publish("checkin/v1/BENCH1/bench-raw/events", body, qos=1)
    done.wait(120)
    elapsed = time.perf_counter() - t0
    client.disconnect()
    client.loop_stop()
    return elapsed


def drain(n: int, tmp: Path, broker: Mosquitto, rounds: int) -> list[Row]:
    settings = _settings(tmp / "drain-state", broker.port)
    bodies = _fill(settings, n)
    ours, raw = [], []
    for _ in range(rounds):  # alternated, so a burst of load elsewhere hits both sides
        ours.append(drain_ours(settings, n))
        raw.append(drain_raw_paho(broker.port, bodies))
    return [
        row(
            f"backlog drain ({n} events)",
            "events/s",
            n / statistics.median(ours),
            "ev/s",
            n / statistics.median(raw),
            f"median of {rounds}; baseline: raw paho QoS1 pipelined (window 100), same broker and bodies;"
            " target ratio >= 0.7",
        )
    ]


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def idle_rss(tmp: Path, port: int) -> list[Row]:
    daemon = DaemonProcess(write_config(tmp / "rss.toml", port=port, storage=tmp / "rss-state")).start()
    try:
        daemon.wait_log("connected to broker")
        time.sleep(2)
        assert daemon.proc is not None
        ours = _rss_mb(daemon.proc.pid)
    finally:
        daemon.stop()
    bare = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    time.sleep(0.5)
    floor = _rss_mb(bare.pid)
    bare.kill()
    bare.wait()
    return [
        row("idle daemon", "RSS", ours, "MB", floor, "baseline: a bare Python interpreter; target <= 60 MB")
    ]


def run(quick: bool = False) -> list[Row]:
    with tempfile.TemporaryDirectory(prefix="qr-bench-") as name:
        tmp = Path(name)
        broker = Mosquitto(tmp / "broker").start()
        try:
            rows = latency(30 if quick else 300, tmp, broker.port)
            rows += drain(500 if quick else 10_000, tmp, broker, 1 if quick else 3)
            rows += idle_rss(tmp, broker.port)
        finally:
            broker.kill()
    return rows


if __name__ == "__main__":
    main_for(run)
