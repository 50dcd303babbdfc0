"""Collectors sharing one RabbitMQ quorum queue: a backlog drained into PostgreSQL by 1, 2 and 3.

Two shapes, each for 1, 2 and 3 collector processes in the same run:
- backlog: the queue holds `count` events before the collectors start (a night of a depot's buses);
- devices: 20 simulated devices publish their backlogs over MQTT at once while the collectors run
  (shift start). The simulator publishes the devices' messages directly (no daemon, no outbox).
The rate is events / (last received_at - first received_at), from the database itself: a collector
that starts a little later than another counts against the group, so the ratios are conservative.
Each stands next to a plain batched insert of the same rows into the same PostgreSQL (where the
database becomes the limit) and to one collector (the ratio the issue's targets name).
"""

from __future__ import annotations

import itertools
import tempfile
import threading
import time
import uuid
from pathlib import Path

import paho.mqtt.client as mqtt
import pika
import sqlalchemy as sa

from bench.common import Row, main_for, row
from bench.ingest import _payloads, _plain_insert_rate
from collector import tables as t
from collector.amqp import bindings, routing_key
from collector.settings import load_settings
from collector.store import Store
from tests.support.collector import CollectorProcess, Publisher, wait_until, write_config
from tests.support.postgres import Postgres
from tests.support.rabbitmq import RabbitCluster, available

DEVICES = 20


def _configs(tmp: Path, cluster: RabbitCluster, url: str, queue: str, n: int) -> list[CollectorProcess]:
    return [
        CollectorProcess(
            write_config(
                tmp / f"{queue}-{i}.toml",
                port=cluster.mqtt_ports[0],
                url=url,
                broker={"client_id": f"{queue}-{i}"},
                amqp={"urls": list(cluster.amqp_urls), "queue": queue},
            )
        )
        for i in range(n)
    ]


def _rate(store: Store, count: int, timeout: float) -> float:
    wait_until(lambda: store.count(t.events) >= count, timeout, f"{count} events stored")
    c = t.events.c
    with store.engine.connect() as conn:
        first, last = conn.execute(sa.select(sa.func.min(c.received_at), sa.func.max(c.received_at))).one()
    return count / max((last - first).total_seconds(), 1e-3)


def _drain(
    tmp: Path, cluster: RabbitCluster, pg: Postgres, payloads: list[tuple[str, bytes]], n: int, live: bool
) -> float:
    url, queue = pg.create_database(), f"bench-{uuid.uuid4().hex[:6]}"
    procs = _configs(tmp, cluster, url, queue, n)
    store = Store(load_settings(procs[0].config).database_url)
    store.migrate()
    try:
        if not live:
            _publish_amqp(cluster, queue, payloads)
        for p in procs:
            p.start()
        for p in procs:
            p.wait_connected(timeout=60)
        if live:
            _fleet(cluster, payloads)
        return _rate(store, len(payloads), timeout=600)
    finally:
        for p in procs:
            p.kill()  # everything is committed: nothing to wait for
        store.close()


def _publish_amqp(cluster: RabbitCluster, queue: str, payloads: list[tuple[str, bytes]]) -> None:
    """Declares and binds the queue as a collector does, then fills it through the exchange."""
    connection = pika.BlockingConnection(pika.URLParameters(cluster.amqp_urls[0]))
    channel = connection.channel()
    channel.queue_declare(queue, durable=True, arguments={"x-queue-type": "quorum"})
    for key in bindings("checkin"):
        channel.queue_bind(queue, "amq.topic", routing_key=key)
    props = pika.BasicProperties(delivery_mode=2)
    for topic, payload in payloads:
        channel.basic_publish("amq.topic", routing_key(topic), payload, props)
    deadline = time.monotonic() + 300
    while channel.queue_declare(queue, passive=True).method.message_count < len(payloads):
        if time.monotonic() > deadline:
            raise TimeoutError("the backlog did not reach the queue")
        time.sleep(0.2)
    connection.close()


def _fleet(cluster: RabbitCluster, payloads: list[tuple[str, bytes]]) -> None:
    """20 devices at once, spread over the nodes, each publishing its own backlog QoS 1."""
    by_device: dict[str, list[tuple[str, bytes]]] = {}
    for topic, payload in payloads:
        by_device.setdefault(topic, []).append((topic, payload))
    ports = itertools.cycle(cluster.mqtt_ports)

    def device(messages: list[tuple[str, bytes]], port: int) -> None:
        pub = Publisher(port, protocol=mqtt.MQTTv311)
        infos = [pub.publish(topic, payload) for topic, payload in messages]
        for info in infos:
            info.wait_for_publish(300)
        pub.close()

    threads = [threading.Thread(target=device, args=(m, next(ports))) for m in by_device.values()]
    for th in threads:
        th.start()
    for th in threads:
        th.join(600)


def run(quick: bool = False) -> list[Row]:
    if not available():
        return [row("cluster", "skipped", 0, "-", None, "rabbitmq-server not installed (make setup as root)")]
    count = 3_000 if quick else 100_000
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="qr-bench-cluster-") as tmp_name:
        tmp = Path(tmp_name)
        cluster = RabbitCluster(tmp / "rabbitmq").start()
        pg = Postgres(fsync=True).start()
        try:
            payloads = _payloads(count)
            plain = _plain_insert_rate(pg.create_database(), payloads)
            rows.append(
                row("cluster", "plain batched insert", plain, "ev/s", None, "the database's ceiling here")
            )
            for shape, live in (("backlog", False), (f"{DEVICES} devices", True)):
                one = 0.0
                for n in (1, 2, 3):
                    rate = _drain(tmp, cluster, pg, payloads, n, live)
                    one = one or rate
                    note = f"{count} events, {n} collector(s), 3 RabbitMQ nodes, PostgreSQL"
                    rows.append(row(f"cluster {shape}", f"{n} collectors vs 1", rate, "ev/s", one, note))
                    rows.append(
                        row(f"cluster {shape}", f"{n} collectors vs plain insert", rate, "ev/s", plain, note)
                    )
        finally:
            pg.close()
            cluster.stop()
    return rows


if __name__ == "__main__":
    main_for(run)
