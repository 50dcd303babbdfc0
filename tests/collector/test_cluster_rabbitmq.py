"""Collectors sharing one quorum queue on a three-node RabbitMQ cluster, and nodes lost mid-stream.

One cluster for the module (a node takes tens of seconds to boot on two busy cores); every test has
its own queue and database, so they do not see each other's messages.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from collector import tables as t
from collector.amqp import AmqpCollector, routing_key, topic_of
from collector.settings import load_settings
from collector.store import Store
from device import contract
from tests.support.collector import (
    CollectorProcess,
    Publisher,
    make_event,
    running,
    wait_until,
    write_config,
)
from tests.support.fleet import Fleet, wait_exactly_once
from tests.support.postgres import Postgres
from tests.support.rabbitmq import RabbitCluster, available

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(600),
    pytest.mark.skipif(not available(), reason="rabbitmq-server is not installed (make setup as root)"),
]
MQTT311 = mqtt.MQTTv311


@pytest.fixture(scope="module")
def rabbit(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RabbitCluster]:
    cluster = RabbitCluster(tmp_path_factory.mktemp("rabbitmq")).start()
    try:
        yield cluster
    finally:
        cluster.stop()


def _config(path: Path, rabbit: RabbitCluster, url: str, queue: str, name: str) -> Path:
    return write_config(
        path / f"{name}.toml",
        port=rabbit.mqtt_ports[0],
        url=url,
        broker={"client_id": name},
        amqp={
            "urls": list(rabbit.amqp_urls),
            "queue": queue,
            "heartbeat_s": 5,
            "reconnect_min_s": 0.2,
            "reconnect_max_s": 1.0,
        },
    )


def test_routing_keys_are_the_plugins() -> None:
    topic = contract.Topics.of("checkin", "98C12345", "bus-1").events
    assert routing_key(topic) == "checkin.v1.98C12345.bus-1.events"
    assert topic_of(routing_key(topic)) == topic


def test_competing_consumers_share_one_queue(
    rabbit: RabbitCluster, postgres: Postgres, tmp_path: Path
) -> None:
    url, queue = postgres.create_database(), f"q-{uuid.uuid4().hex[:6]}"
    names = [f"collector-{i}" for i in range(3)]
    with ExitStack() as stack:
        for name in names:
            settings = load_settings(_config(tmp_path, rabbit, url, queue, name))
            stack.enter_context(running(settings, kind=AmqpCollector))
        fleet = Fleet(list(rabbit.mqtt_ports), devices=3, per_device=300, protocol=MQTT311)
        stack.callback(fleet.close)
        fleet.stream(rate_per_device=300)
        fleet.join()
        store = Store(settings.database_url)
        stack.callback(store.close)
        wait_exactly_once(store, fleet.event_ids, timeout=60)
        per_instance = {
            r["instance"]: r["value"] for r in store.rows(t.counters, t.counters.c.name == "stored")
        }
    # Each instance took its share of the one queue: none idle, none took it all.
    assert sorted(per_instance) == names
    assert all(0 < v < 900 for v in per_instance.values()), per_instance


def test_a_dotted_id_is_named_not_lost(rabbit: RabbitCluster, postgres: Postgres, tmp_path: Path) -> None:
    url, queue = postgres.create_database(), f"q-{uuid.uuid4().hex[:6]}"
    settings = load_settings(_config(tmp_path, rabbit, url, queue, "collector-dots"))
    with running(settings, kind=AmqpCollector) as collector:
        publisher = Publisher(rabbit.mqtt_ports[1], protocol=MQTT311)
        try:
            event = make_event(1, location_id="98C.123")
            topic = contract.Topics.of("checkin", "98C.123", "bus-1").events
            publisher.publish(topic, json.dumps(event)).wait_for_publish(10)
            wait_until(lambda: collector.store.count(t.invalid_messages) == 1, 30, "invalid kept")
        finally:
            publisher.close()
        (row,) = collector.store.rows(t.invalid_messages)
    # RabbitMQ split the level: the collector sees an extra level and says so.
    assert row["topic"] == "checkin/v1/98C/123/bus-1/events"
    assert collector.store.count(t.events) == 0


def test_broker_node_and_collector_lost_mid_stream(
    rabbit: RabbitCluster, postgres: Postgres, tmp_path: Path
) -> None:
    """Three collectors, three nodes, six devices: node 1 killed, then collector 0 killed, then both
    restarted, all while the devices publish. Every event ends in the database exactly once."""
    url, queue = postgres.create_database(), f"q-{uuid.uuid4().hex[:6]}"
    procs = [CollectorProcess(_config(tmp_path, rabbit, url, queue, f"collector-{i}")) for i in range(3)]
    store = Store(load_settings(procs[0].config).database_url)
    fleet: Fleet | None = None
    try:
        procs[0].start().wait_connected()  # migrates alone first; the others find the schema
        for p in procs[1:]:
            p.start()
        for p in procs[1:]:
            p.wait_connected()
        fleet = Fleet(list(rabbit.mqtt_ports), devices=6, per_device=400, protocol=MQTT311)
        fleet.stream(rate_per_device=40)  # ten seconds of traffic
        time.sleep(2)
        rabbit.kill_node(rabbit.nodes[1])
        time.sleep(2)
        procs[0].kill()
        time.sleep(2)
        rabbit.start_node(rabbit.nodes[1])
        procs[0].start()
        fleet.join(timeout=180)
        counters = wait_exactly_once(store, fleet.event_ids, timeout=120)
        assert counters["stored"] == 2400
    finally:
        if fleet is not None:
            fleet.close()
        for p in procs:
            p.kill()
        store.close()
        if not rabbit.nodes[1].running:
            rabbit.start_node(rabbit.nodes[1])
