"""The collector's figures: ingest events/s into SQLite and PostgreSQL, and broker-to-committed latency.

Each ingest rate stands next to two baselines of the same run and machine: a plain batched insert of
the same rows (500 per transaction, no validation, no conflict handling, no MQTT) into the same
database, and a paho subscriber that only counts the same messages. Both the collector and the
counting subscriber drain a queue the broker holds for their persistent session, so the figures are
the consumer's, not the publisher's. Latency: events published at 1 000/s while the collector runs,
from the publish to the moment a reader of the database sees the row.

The collector on MQTT 3.1.1 (`broker.protocol`) gets its own rows against the same plain insert,
a counting subscriber on 3.1.1, and the MQTT 5 collector of the same run. 3.1.1 has no Receive
Maximum: the bench's broker gives 3.1.1 clients the same window (`max_inflight_messages`).
"""

from __future__ import annotations

import json
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import sqlalchemy as sa
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from bench.common import Row, main_for, percentile, row
from collector import decode
from collector import tables as t
from collector.ingest import Collector
from collector.settings import GapSettings, Settings
from collector.store import Store
from collector.subjects import Subjects
from device import contract
from tests.support.collector import CollectorProcess, Publisher, events_topic, make_event, write_config
from tests.support.mosquitto import Mosquitto
from tests.support.postgres import Postgres

BATCH = 500
WORKERS = 2  # the machine's cores
RECEIVE_MAXIMUM = 2000
V311 = "3.1.1"


def _client(client_id: str, protocol: str) -> mqtt.Client:
    return mqtt.Client(
        callback_api_version=CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=mqtt.MQTTv311 if protocol == V311 else mqtt.MQTTv5,
        clean_session=False if protocol == V311 else None,
    )


def _connect(client: mqtt.Client, port: int, protocol: str) -> None:
    """A persistent session: clean_session False (3.1.1, set on the client) or an expiry (MQTT 5)."""
    if protocol == V311:
        client.connect("127.0.0.1", port)
        return
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = 3600
    props.ReceiveMaximum = RECEIVE_MAXIMUM
    client.connect("127.0.0.1", port, clean_start=False, properties=props)


def _payloads(count: int) -> list[tuple[str, bytes]]:
    devices = [f"bus-{i}" for i in range(20)]
    out = []
    for i in range(count):
        event = make_event(i // len(devices) + 1, device_id=devices[i % len(devices)])
        out.append((events_topic(event), json.dumps(event).encode()))
    return out


def _session(port: int, client_id: str, group: str = "", protocol: str = "5") -> None:
    """Creates a persistent session with the collector's subscription, then leaves it queueing."""
    client = _client(client_id, protocol)
    _connect(client, port, protocol)
    client.loop_start()
    done = threading.Event()
    client.on_subscribe = lambda *_: done.set()
    filters = contract.ConsumerFilters.of("checkin")
    client.subscribe((filters.shared(group) if group else filters).events, qos=1)
    done.wait(10)
    client.disconnect()
    client.loop_stop()


def _preload(port: int, payloads: list[tuple[str, bytes]]) -> None:
    pub = Publisher(port)
    infos = [pub.publish(topic, payload) for topic, payload in payloads]
    for info in infos:
        info.wait_for_publish(60)
    pub.close()


def _settings(port: int, url: str, client_id: str, protocol: str = "5") -> Settings:
    return Settings(
        broker={
            "host": "127.0.0.1",
            "port": port,
            "client_id": client_id,
            "receive_maximum": RECEIVE_MAXIMUM,
            "protocol": protocol,
        },
        database={"url": url},
        logging={"level": "WARNING"},
    )


def _collector_rate(port: int, url: str, payloads: list[tuple[str, bytes]], protocol: str = "5") -> float:
    client_id = f"bench-collector-{uuid.uuid4().hex[:6]}"
    settings = _settings(port, url, client_id, protocol)
    Store(settings.database_url).migrate()
    _session(port, client_id, protocol=protocol)
    _preload(port, payloads)
    collector = Collector(settings)
    thread = threading.Thread(target=collector.run, daemon=True)
    thread.start()
    if not collector.connected.wait(30):
        raise TimeoutError("collector did not connect")
    started = time.monotonic()
    registry = collector.metrics.registry
    while (registry.get_sample_value("qr_collector_messages_total", {"outcome": "stored"}) or 0) < len(
        payloads
    ):
        time.sleep(0.01)
        if time.monotonic() - started > 300:
            raise TimeoutError("collector did not drain the queue")
    elapsed = time.monotonic() - started
    collector.stop()
    thread.join(30)
    return len(payloads) / elapsed


def _workers_rate(broker: Mosquitto, url: str, payloads: list[tuple[str, bytes]], workers: int) -> float:
    """`workers` collector processes sharing the events through `broker.shared_group`.

    Processes, not threads: each has its own interpreter lock. They start while the broker is
    stopped (SIGSTOP), so the clock starts when all of them can begin, not when the first one does;
    the end is read from the counters the collectors commit with their rows."""
    group = f"bench{uuid.uuid4().hex[:6]}"
    ids = [f"bench-worker-{group}-{i}" for i in range(workers)]
    store = Store(_settings(broker.port, url, ids[0]).database_url)
    store.migrate()
    for client_id in ids:
        _session(broker.port, client_id, group)
    _preload(broker.port, payloads)
    configs = [
        write_config(
            broker.workdir / f"{client_id}.toml",
            port=broker.port,
            url=url,
            broker={"client_id": client_id, "shared_group": group, "receive_maximum": RECEIVE_MAXIMUM},
            gaps=GapSettings().model_dump(),
            logging={"level": "WARNING"},
        )
        for client_id in ids
    ]
    broker.pause()
    try:
        procs = [CollectorProcess(config).start() for config in configs]
        deadline = time.monotonic() + 60
        while _connections_to(broker.port) < workers:  # the kernel accepts them for the stopped broker
            if time.monotonic() > deadline:
                raise TimeoutError("the workers did not connect")
            time.sleep(0.01)
    finally:
        broker.resume()
    try:
        started = time.monotonic()
        while (stored := store.counters()["stored"]) < len(payloads):
            if time.monotonic() - started > 300:
                raise TimeoutError(f"{workers} workers stored {stored} of {len(payloads)}")
            time.sleep(0.01)
        elapsed = time.monotonic() - started
    finally:
        for proc in procs:
            proc.stop()
        store.close()
    return len(payloads) / elapsed


def _connections_to(port: int) -> int:
    """Established TCP connections to a local port (from /proc/net/tcp, state 01)."""
    with open("/proc/net/tcp") as fh:
        next(fh)
        return sum(
            1 for line in fh if (f := line.split())[3] == "01" and int(f[1].rsplit(":", 1)[1], 16) == port
        )


def _counting_rate(port: int, payloads: list[tuple[str, bytes]], protocol: str = "5") -> float:
    client_id = f"bench-counter-{uuid.uuid4().hex[:6]}"
    _session(port, client_id, protocol=protocol)
    _preload(port, payloads)
    count = 0
    finished = threading.Event()
    started = [0.0]

    def on_connect(*_: Any) -> None:
        started[0] = time.monotonic()

    def on_message(*_: Any) -> None:
        nonlocal count
        count += 1
        if count == len(payloads):
            finished.set()

    client = _client(client_id, protocol)
    client.on_connect = on_connect
    client.on_message = on_message
    _connect(client, port, protocol)
    client.loop_start()
    if not finished.wait(300):
        raise TimeoutError(f"counting subscriber got {count} of {len(payloads)}")
    elapsed = time.monotonic() - started[0]
    client.disconnect()
    client.loop_stop()
    return len(payloads) / elapsed


def _plain_insert_rate(url: str, payloads: list[tuple[str, bytes]]) -> float:
    """The same rows the collector stores, in transactions of 500, with nothing else around them."""
    store = Store(Settings(database={"url": url}).database_url)
    store.migrate()
    subjects = Subjects(None, None)
    wall = time.time()
    rows = [
        decode.event(contract.parse_topic(topic), payload, subjects, 65536, wall).row
        for topic, payload in payloads
    ]
    started = time.monotonic()
    for i in range(0, len(rows), BATCH):
        with store.engine.begin() as conn:
            conn.execute(sa.insert(t.events), rows[i : i + BATCH])
    elapsed = time.monotonic() - started
    store.close()
    return len(rows) / elapsed


def _latency(port: int, url: str, seconds: float, rate: float = 1000) -> list[float]:
    """Publish time to visible-in-the-database time, per event, at `rate` events per second."""
    client_id = f"bench-latency-{uuid.uuid4().hex[:6]}"
    settings = _settings(port, url, client_id)
    Store(settings.database_url).migrate()
    collector = Collector(settings)
    thread = threading.Thread(target=collector.run, daemon=True)
    thread.start()
    collector.connected.wait(30)
    time.sleep(0.5)
    count = int(seconds * rate)
    events = [make_event(seq, device_id="bus-latency") for seq in range(1, count + 1)]
    published: list[float] = []
    visible: list[float] = []
    reader = Store(settings.database_url)
    stop = threading.Event()

    def watch() -> None:
        # Events of one device commit in order: once n rows are visible, seqs 1..n are.
        with reader.engine.connect() as conn:
            while not stop.is_set():
                n = int(conn.execute(sa.select(sa.func.count()).select_from(t.events)).scalar_one())
                conn.commit()  # a fresh snapshot each time
                now = time.monotonic()
                visible.extend([now] * (n - len(visible)))
                if n >= count:
                    return
                time.sleep(0.005)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    pub = Publisher(port)
    start = time.monotonic()
    for i, event in enumerate(events):
        delay = start + i / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        published.append(time.monotonic())
        pub.publish(events_topic(event), json.dumps(event))
    watcher.join(60)
    stop.set()
    pub.close()
    collector.stop()
    thread.join(30)
    reader.close()
    if len(visible) < count:
        raise TimeoutError(f"only {len(visible)} of {count} events became visible")
    return [v - p for p, v in zip(published, visible, strict=True)]


@contextmanager
def _databases(tmp: Path) -> Iterator[dict[str, Any]]:
    server = Postgres(fsync=True).start()
    try:
        yield {
            "sqlite": lambda: f"sqlite:///{tmp / uuid.uuid4().hex}.db",
            "postgresql": server.create_database,
        }
    finally:
        server.close()


def run(quick: bool = False) -> list[Row]:
    count = 1_500 if quick else 40_000
    seconds = 1.0 if quick else 10.0
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="qr-bench-ingest-") as tmp:
        # 3.1.1's window is the broker's (mosquitto's default of 20 would hold every batch back).
        extra = f"max_inflight_messages {RECEIVE_MAXIMUM}"
        broker = Mosquitto(Path(tmp) / "broker", extra=extra).start()
        try:
            payloads = _payloads(count)
            counting = _counting_rate(broker.port, payloads)
            counting_v311 = _counting_rate(broker.port, payloads, V311)
            with _databases(Path(tmp)) as databases:
                for name, new_url in databases.items():
                    plain = _plain_insert_rate(new_url(), payloads)
                    ingest = _collector_rate(broker.port, new_url(), payloads)
                    note = f"{count} events drained from the broker; batches of {BATCH}"
                    rows.append(
                        row(f"ingest {name}", "events/s vs plain batched insert", ingest, "ev/s", plain, note)
                    )
                    rows.append(
                        row(
                            f"ingest {name}",
                            "events/s vs counting subscriber",
                            ingest,
                            "ev/s",
                            counting,
                            note,
                        )
                    )
                    v311 = _collector_rate(broker.port, new_url(), payloads, V311)
                    label = f"ingest {name} mqtt {V311}"
                    rows += [
                        row(label, "events/s vs plain batched insert", v311, "ev/s", plain, note),
                        row(
                            label,
                            "events/s vs counting subscriber (3.1.1)",
                            v311,
                            "ev/s",
                            counting_v311,
                            note,
                        ),
                        row(label, "events/s vs the MQTT 5 collector", v311, "ev/s", ingest, note),
                    ]
                    if name == "postgresql":
                        one = _workers_rate(broker, new_url(), payloads, 1)
                        workers = _workers_rate(broker, new_url(), payloads, WORKERS)
                        rows.append(
                            row(
                                f"ingest {name} {WORKERS} workers",
                                "events/s vs one worker process",
                                workers,
                                "ev/s",
                                one,
                                f"{WORKERS} qr-collector processes on one shared subscription; {note}",
                            )
                        )
                    latencies = _latency(broker.port, new_url(), seconds)
                    note = f"{len(latencies)} events at 1000/s, publish to visible in the database"
                    rows.append(
                        row(
                            f"ingest {name}",
                            "broker-to-committed p50",
                            percentile(latencies, 50) * 1000,
                            "ms",
                            None,
                            note,
                        )
                    )
                    rows.append(
                        row(
                            f"ingest {name}",
                            "broker-to-committed p99",
                            percentile(latencies, 99) * 1000,
                            "ms",
                            None,
                            note,
                        )
                    )
        finally:
            broker.kill()
    return rows


if __name__ == "__main__":
    main_for(run)
