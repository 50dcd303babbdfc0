"""Collectors sharing one RabbitMQ quorum queue: a backlog drained into PostgreSQL by 1, 2 and 3.

Two shapes, each for 1, 2 and 3 collector processes in the same run:
- backlog: the queue holds `count` events before the collectors start (a night of a depot's buses);
- devices: 20 simulated devices publish their backlogs over MQTT at once while the collectors run
  (shift start). The simulator publishes the devices' messages directly (no daemon, no outbox).
The rate is events / (last received_at - first received_at), from the database itself: a collector
that starts a little later than another counts against the group, so the ratios are conservative.
Each stands next to a plain batched insert of the same rows into the same PostgreSQL (where the
database becomes the limit) and to one collector (the ratio the issue's targets name).
`--quick` (the smoke test's budget has no room for RabbitMQ's boot) runs the devices' shape on
mosquitto with a `$share` group, 1 and 2 collectors.
"""

from __future__ import annotations

import itertools
import tempfile
import threading
import time
import uuid
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
from tests.support.mosquitto import Mosquitto
from tests.support.postgres import Postgres
from tests.support.rabbitmq import RabbitCluster, available

DEVICES = 20


@dataclass
class Site:
    """Where the collectors run: a RabbitMQ cluster (one quorum queue) or mosquitto (one $share group)."""

    ports: list[int]
    protocol: int
    cluster: RabbitCluster | None = None

    def collector_keys(self, group: str) -> dict[str, dict[str, Any]]:
        if self.cluster is not None:
            return {"amqp": {"urls": list(self.cluster.amqp_urls), "queue": group}}
        return {"broker": {"shared_group": group}}


def _configs(tmp: Path, site: Site, url: str, group: str, n: int) -> list[CollectorProcess]:
    procs = []
    for i in range(n):
        keys = site.collector_keys(group)
        keys.setdefault("broker", {})["client_id"] = f"{group}-{i}"
        procs.append(
            CollectorProcess(write_config(tmp / f"{group}-{i}.toml", port=site.ports[0], url=url, **keys))
        )
    return procs


def _rate(store: Store, count: int, timeout: float) -> float:
    wait_until(lambda: store.count(t.events) >= count, timeout, f"{count} events stored")
    c = t.events.c
    with store.engine.connect() as conn:
        first, last = conn.execute(sa.select(sa.func.min(c.received_at), sa.func.max(c.received_at))).one()
    return count / max((last - first).total_seconds(), 1e-3)


def _drain(
    tmp: Path, site: Site, pg: Postgres, payloads: list[tuple[str, bytes]], n: int, live: bool
) -> float:
    url, queue = pg.create_database(), f"bench-{uuid.uuid4().hex[:6]}"
    procs = _configs(tmp, site, url, queue, n)
    store = Store(load_settings(procs[0].config).database_url)
    store.migrate()
    try:
        if not live:
            assert site.cluster is not None, "a backlog is preloaded into a RabbitMQ queue only"
            _publish_amqp(site.cluster, queue, payloads)
        for p in procs:
            p.start()
        for p in procs:
            p.wait_connected(timeout=60)
        if live:
            time.sleep(0.5)  # the SUBACKs follow the CONNACKs
            _fleet(site, payloads)
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


def _fleet(site: Site, payloads: list[tuple[str, bytes]]) -> None:
    """20 devices at once, spread over the nodes, each publishing its own backlog QoS 1."""
    by_device: dict[str, list[tuple[str, bytes]]] = {}
    for topic, payload in payloads:
        by_device.setdefault(topic, []).append((topic, payload))
    ports = itertools.cycle(site.ports)

    def device(messages: list[tuple[str, bytes]], port: int) -> None:
        pub = Publisher(port, protocol=site.protocol)
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
    # --quick (the smoke test's budget): mosquitto and a $share group, the live shape, 1 and 2 collectors.
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="qr-bench-cluster-") as tmp_name, ExitStack() as stack:
        tmp = Path(tmp_name)
        if quick:
            broker = Mosquitto(tmp / "mosquitto").start()
            stack.callback(broker.kill)
            site, count = Site([broker.port], mqtt.MQTTv5), 2_000
            counts: tuple[int, ...] = (1, 2)
            shapes: tuple[tuple[str, bool], ...] = ((f"{DEVICES} devices", True),)
            where = "mosquitto $share"
        elif available():
            cluster = RabbitCluster(tmp / "rabbitmq").start()
            stack.callback(cluster.stop)
            site, count = Site(list(cluster.mqtt_ports), mqtt.MQTTv311, cluster), 100_000
            counts = (1, 2, 3)
            shapes = (("backlog", False), (f"{DEVICES} devices", True))
            where = "3 RabbitMQ nodes"
        else:
            return [
                row("cluster", "skipped", 0, "-", None, "rabbitmq-server not installed (make setup as root)")
            ]
        pg = Postgres(fsync=True).start()
        stack.callback(pg.close)
        payloads = _payloads(count)
        plain = _plain_insert_rate(pg.create_database(), payloads)
        rows.append(
            row("cluster", "plain batched insert", plain, "ev/s", None, "the database's ceiling here")
        )
        for shape, live in shapes:
            one = 0.0
            for n in counts:
                rate = _drain(tmp, site, pg, payloads, n, live)
                one = one or rate
                note = f"{count} events, {n} collector(s), {where}, PostgreSQL"
                rows.append(row(f"cluster {shape}", f"{n} collectors vs 1", rate, "ev/s", one, note))
                rows.append(
                    row(f"cluster {shape}", f"{n} collectors vs plain insert", rate, "ev/s", plain, note)
                )
    return rows


if __name__ == "__main__":
    main_for(run)
