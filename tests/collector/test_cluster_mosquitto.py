"""Several collectors sharing the work on mosquitto through an MQTT 5 shared subscription.

mosquitto does not cluster: the "lost node" is the one broker killed -9 mid-stream, and what it had
accepted but not yet saved comes back by replay from the devices (the collector issue's gap repair).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from collector import tables as t
from collector.settings import load_settings
from collector.store import Store
from tests.support.collector import (
    CollectorProcess,
    StandInDevice,
    make_event,
    running,
    wait_until,
    write_config,
)
from tests.support.fleet import Fleet, wait_exactly_once
from tests.support.mosquitto import Mosquitto
from tests.support.postgres import Postgres

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]
GROUP = "collectors"


@pytest.fixture
def persistent_broker(tmp_path: Path) -> Iterator[Mosquitto]:
    broker = Mosquitto(tmp_path / "mosquitto", persistence=True).start()
    try:
        yield broker
    finally:
        broker.stop()


def _collectors(tmp_path: Path, port: int, url: str, count: int) -> list[CollectorProcess]:
    return [
        CollectorProcess(
            write_config(
                tmp_path / f"collector-{i}.toml",
                port=port,
                url=url,
                broker={"client_id": f"collector-{i}", "shared_group": GROUP},
            )
        )
        for i in range(count)
    ]


def test_shared_group_splits_the_work_and_survives_faults(
    persistent_broker: Mosquitto, postgres: Postgres, tmp_path: Path
) -> None:
    """Three collectors in one group, six devices: the broker killed and restarted, then a collector
    killed and restarted, mid-stream. Every event exactly once; every instance stored a share."""
    url = postgres.create_database()
    procs = _collectors(tmp_path, persistent_broker.port, url, 3)
    store = Store(load_settings(procs[0].config).database_url)
    fleet: Fleet | None = None
    try:
        procs[0].start().wait_connected()  # migrates alone first
        for p in procs[1:]:
            p.start()
        for p in procs[1:]:
            p.wait_connected()
        time.sleep(0.5)  # the SUBACKs follow the CONNACKs
        fleet = Fleet([persistent_broker.port], devices=6, per_device=400)
        fleet.stream(rate_per_device=40)
        time.sleep(2)
        persistent_broker.kill()
        time.sleep(1)
        persistent_broker.start()
        time.sleep(2)
        procs[1].kill()
        time.sleep(1)
        procs[1].start()
        fleet.join(timeout=120)
        wait_exactly_once(store, fleet.event_ids, timeout=120)
        shares = {r["instance"]: r["value"] for r in store.rows(t.counters, t.counters.c.name == "stored")}
        assert len(shares) == 3 and all(v > 0 for v in shares.values()), shares
    finally:
        if fleet is not None:
            fleet.close()
        for p in procs:
            p.kill()
        store.close()


def test_a_batch_goes_on_while_another_instance_holds_the_device_and_stream_rows(
    broker: Mosquitto, postgres: Postgres, tmp_path: Path
) -> None:
    """Instances of a group store the same devices' events. The device's row and its stream's row
    are held here as another instance's transaction would hold them: a batch stores its events
    without waiting for it; the sighting and the prefix follow at the next sweep."""
    url = postgres.create_database()
    config = write_config(
        tmp_path / "collector.toml",
        port=broker.port,
        url=url,
        broker={"client_id": "collector-0", "shared_group": GROUP},
    )
    store = Store(load_settings(config).database_url)
    events = [make_event(seq) for seq in (1, 2)]
    device = StandInDevice(broker.port, events)

    def through() -> int:
        return int(store.rows(t.streams)[0]["through_seq"]) if store.count(t.streams) else 0

    try:
        with running(load_settings(config)):
            device.events(events[:1])
            wait_until(lambda: through() == 1, what="the first event and its sweep")
            with store.engine.connect() as other:
                held = other.begin()
                for table in ("devices", "streams"):
                    other.execute(sa.text(f"SELECT 1 FROM {table} WHERE device_id = 'bus-1' FOR UPDATE"))
                seen_before = store.rows(t.devices)[0]["last_seen_at"]
                device.events(events[1:])
                wait_until(lambda: store.count(t.events) == 2, 15, "stored while the rows are held")
                held.rollback()
            wait_until(lambda: through() == 2, what="the prefix, once the rows are free")
            wait_until(lambda: store.rows(t.devices)[0]["last_seen_at"] > seen_before, what="the sighting")
    finally:
        device.close()
        store.close()
