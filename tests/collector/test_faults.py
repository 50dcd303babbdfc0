"""Faults with real parts: the collector killed -9 at random points, the database and the broker
restarted under load, the broker's queue overflowing while the collector is down. At the end every
event the broker accepted is in the database exactly once, or a known loss with the device's word."""

from __future__ import annotations

import logging
import random
import threading
import time
from pathlib import Path

import pytest

from collector import tables as t
from collector.settings import load_settings
from collector.store import Store
from tests.support.collector import (
    CollectorProcess,
    Publisher,
    StandInDevice,
    cli_json,
    make_event,
    running,
    stored_ids,
    wait_until,
    write_config,
)
from tests.support.mosquitto import Mosquitto
from tests.support.postgres import Postgres

pytestmark = pytest.mark.slow
# Per database; `make chaos` kills many more times.
KILLS = 4
# The collector's broker.protocol: every guarantee holds on both.
PROTOCOLS = ["5", "3.1.1"]


class Load:
    """Publishes fresh events at about `rate` per second until stopped; remembers what the broker acked."""

    def __init__(self, port: int, rate: float = 800) -> None:
        self.pub = Publisher(port)
        self.rate = rate
        self.acked: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        seq = 0
        while not self._stop.is_set():
            events = [make_event(seq + i + 1) for i in range(20)]
            seq += 20
            self.pub.events(events)
            self.acked += [e["event_id"] for e in events]
            time.sleep(20 / self.rate)

    def stop(self) -> list[str]:
        self._stop.set()
        self._thread.join(30)
        self.pub.close()
        return self.acked


def connected_with(broker: Mosquitto, config: Path, protocol: str) -> bool:
    """The broker's own word: this collector came in on `protocol` asking for a kept session (c0)."""
    client_id = load_settings(config).broker.client_id
    version = "p2" if protocol == "3.1.1" else "p5"
    return f"as {client_id} ({version}, c0," in broker.log.read_text(errors="replace")


def exactly_once(store: Store, acked: list[str]) -> None:
    ids = stored_ids(store)
    assert len(ids) == len(set(ids))
    missing = set(acked) - set(ids)
    assert not missing, f"{len(missing)} accepted events are not in the database"
    c = store.counters()
    assert c["received"] == c["stored"] + c["duplicate"] + c["invalid"]
    assert c["stored"] == len(ids) and c["invalid"] == 0


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_kill_9_at_random_points_loses_nothing_and_duplicates_nothing(
    broker: Mosquitto, database: str, tmp_path: Path, protocol: str
) -> None:
    config = write_config(
        tmp_path / "collector.toml", port=broker.port, url=database, broker={"protocol": protocol}
    )
    store = Store(load_settings(config).database_url)
    collector = CollectorProcess(config).start()
    collector.wait_connected()
    load = Load(broker.port)
    rng = random.Random(17)
    for kill in range(1, KILLS + 1):
        time.sleep(rng.uniform(0.1, 0.8))  # somewhere in receive, insert, commit or ack
        collector.kill()
        collector.start()
        collector.wait_connected(kill + 1)
    acked = load.stop()
    wait_until(lambda: len(set(acked) - set(stored_ids(store))) == 0, timeout=60, what="the backlog drained")
    assert collector.stop() == 0
    assert connected_with(broker, config, protocol)
    exactly_once(store, acked)
    store.close()


@pytest.mark.parametrize("database", ["postgresql"], indirect=True)
def test_database_stopped_and_restarted_under_load(
    broker: Mosquitto, database: str, postgres: Postgres, tmp_path: Path
) -> None:
    settings = load_settings(write_config(tmp_path / "collector.toml", port=broker.port, url=database))
    store = Store(settings.database_url)
    with running(settings) as collector:
        load = Load(broker.port)
        wait_until(lambda: store.count(t.events) > 200, what="ingest under way")
        store.close()
        postgres.stop("immediate")  # a crash: no checkpoint, recovery at the next start
        time.sleep(2)
        postgres.start()
        acked = load.stop()
        wait_until(lambda: len(set(acked) - set(stored_ids(store))) == 0, timeout=60, what="caught up")
        assert collector.metrics.database_errors._value.get() > 0
    exactly_once(store, acked)
    store.close()


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_broker_restarted_and_events_it_lost_come_back_by_replay(
    database: str, tmp_path: Path, protocol: str
) -> None:
    broker = Mosquitto(tmp_path / "broker", persistence=True).start()
    settings = load_settings(
        write_config(
            tmp_path / "collector.toml", port=broker.port, url=database, broker={"protocol": protocol}
        )
    )
    store = Store(settings.database_url)
    events = [make_event(seq) for seq in range(1, 401)]
    try:
        with running(settings) as collector:
            device = StandInDevice(broker.port, events)
            device.events(events[:200])
            for restart, crash in enumerate((False, True), start=2):
                # Clean, the sessions are saved; a crash loses what arrived since the last autosave.
                broker.kill() if crash else broker.stop()
                wait_until(lambda: not collector.connected.is_set(), what="the collector saw the broker go")
                broker.start()
                assert collector.connected.wait(20)
                if not crash:  # a clean stop saved our session: no alarm
                    assert collector.metrics.sessions_lost._value.get() == 0
                device.wait_connected(restart)
                device.events(events[100 * restart : 100 * restart + 100])
            device.status().wait_for_publish(10)
            wait_until(lambda: store.count(t.events) == 400, timeout=60, what="all 400 stored")
            device.close()
        assert sorted(stored_ids(store)) == sorted(e["event_id"] for e in events)
    finally:
        broker.kill()
        store.close()


def test_queue_overflow_while_the_collector_is_down_is_repaired_by_replay(
    database: str, tmp_path: Path
) -> None:
    # mosquitto drops QoS 1 messages for an offline client past max_queued_messages, silently.
    broker = Mosquitto(tmp_path / "broker", extra="max_queued_messages 10").start()
    config = write_config(tmp_path / "collector.toml", port=broker.port, url=database)
    settings = load_settings(config)
    store = Store(settings.database_url)
    events = [make_event(seq) for seq in range(1, 101)]
    try:
        with running(settings):
            pass  # the session stays at the broker, queueing at most 10
        device = StandInDevice(broker.port, events)
        device.events(events)
        device.status().wait_for_publish(10)
        with running(settings):
            wait_until(lambda: store.count(t.events) == 100, timeout=60, what="all 100 stored")
            wait_until(
                lambda: store.count(t.gaps) > 0 and all(r["state"] == "repaired" for r in store.rows(t.gaps))
            )
        assert sorted(stored_ids(store)) == sorted(e["event_id"] for e in events)
        assert device.requests, "the broker dropped nothing: the test did not overflow its queue"
        (stream,) = cli_json("gaps", "--config", str(config))["streams"]
        assert stream["through_seq"] == 100 and stream["open"] == [] and stream["known_losses"] == []
        assert sum(g["to_seq"] - g["from_seq"] + 1 for g in stream["repaired"]) >= 90  # 10 were queued
        device.close()
    finally:
        broker.kill()
        store.close()


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_broker_that_lost_the_session_raises_the_alarm_and_subscribes_again(
    broker: Mosquitto, tmp_path: Path, protocol: str, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"sqlite:///{tmp_path / 'collector.db'}"
    config = write_config(
        tmp_path / "collector.toml", port=broker.port, url=url, broker={"protocol": protocol}
    )
    settings = load_settings(config)
    store = Store(settings.database_url)
    events = [make_event(seq) for seq in range(1, 21)]
    with caplog.at_level(logging.WARNING, logger="collector.ingest"), running(settings) as collector:
        assert collector.metrics.sessions_lost._value.get() == 0  # the first connect is not a loss
        broker.restart()  # no persistence: the session and its subscriptions are gone
        wait_until(lambda: collector.metrics.sessions_lost._value.get() == 1, what="the alarm")
        time.sleep(0.2)  # the SUBACK follows the CONNACK
        pub = Publisher(broker.port)
        pub.events(events)
        wait_until(lambda: store.count(t.events) == 20, what="events after the new subscription")
        pub.close()
    assert any("ALARM: the broker kept no session" in r.getMessage() for r in caplog.records)
    assert connected_with(broker, config, protocol)
    store.close()
