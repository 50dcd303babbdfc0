"""PostgreSQL for volume: events partitioned by day on the event id, several writers at once."""

from __future__ import annotations

import datetime as dt
import random
import threading
import time
import uuid
from typing import Any

import pytest
import sqlalchemy as sa
import uuid6

from collector import partitions
from collector import tables as t
from collector.settings import Settings
from collector.store import Batch, Store
from tests.support.postgres import Postgres

pytestmark = pytest.mark.timeout(300)


def _store(url: str, instance: str = "test") -> Store:
    return Store(Settings(database={"url": url}).database_url, instance=instance)


def _row(
    event_id: str, seq: int, device: str = "bus-1", scanned: dt.datetime | None = None
) -> dict[str, Any]:
    now = dt.datetime.now(dt.UTC)
    return {
        "event_id": event_id,
        "device_id": device,
        "incarnation": "inc",
        "seq": seq,
        "location_id": "98C12345",
        "location_kind": "bus",
        "scanned_at": scanned or now,
        "clock": "synced",
        "code_type": "cccd",
        "subject_mode": "hmac",
        "subject_hmac": f"{seq:064x}",
        "key_id": "0badc0de",
        "masked": None,
        "direction": "in",
        "source": "stdin",
        "received_at": now,
        "body": {"seq": seq},
    }


def _partition_of(store: Store, event_id: str) -> str:
    with store.engine.connect() as conn:
        return str(
            conn.execute(
                sa.text("SELECT tableoid::regclass::text FROM events WHERE event_id = :e"), {"e": event_id}
            ).scalar_one()
        )


def test_floor_ids_bound_each_days_uuid7() -> None:
    day = dt.date(2026, 12, 1)
    inside = str(uuid6.uuid7())  # today's
    today = dt.datetime.now(dt.UTC).date()
    assert partitions.floor_id(today) <= inside < partitions.floor_id(today + dt.timedelta(days=1))
    assert partitions.floor_id(day) < partitions.floor_id(day + dt.timedelta(days=1))
    assert partitions.day_of(partitions.name(day)) == day


def test_events_land_in_their_days_partition_and_stay_unique(postgres: Postgres) -> None:
    store = _store(postgres.create_database())
    store.migrate()
    today = dt.datetime.now(dt.UTC).date()
    with store.engine.connect() as conn:
        assert partitions.is_partitioned(conn)
        held = partitions.existing(conn)
    assert held == partitions.window(today)
    fresh, clockless = str(uuid6.uuid7()), "00000000-0001-7000-8000-000000000001"  # 1970
    store.write_batch(Batch(events=[_row(fresh, 1), _row(clockless, 2)], received=2), time.time())
    assert _partition_of(store, fresh) == partitions.name(today)
    assert _partition_of(store, clockless) == partitions.DEFAULT
    # Re-stamped after a clock sync: the same event with another scanned_at is still a duplicate.
    later = dt.datetime.now(dt.UTC) + dt.timedelta(hours=3)
    result = store.write_batch(Batch(events=[_row(fresh, 1, scanned=later)], received=1), time.time())
    assert (result.deltas["stored"], result.deltas["duplicate"]) == (0, 1)
    assert store.count(t.events) == 2
    # Retention drops whole days; the default partition is never dropped.
    with store.engine.begin() as conn:
        gone = partitions.drop_before(conn, today + dt.timedelta(days=1))
    assert partitions.name(today) in gone and partitions.DEFAULT not in gone
    assert store.count(t.events) == 1
    store.close()


def test_rows_written_before_partitioning_are_kept(postgres: Postgres) -> None:
    from alembic import command
    from alembic.config import Config

    from collector.store import MIGRATIONS

    store = _store(postgres.create_database())
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with store.engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "0001")
    ids = [str(uuid6.uuid7()) for _ in range(5)] + [str(uuid.uuid4())]
    store.write_batch(Batch(events=[_row(e, i) for i, e in enumerate(ids, 1)], received=6), time.time())
    store.migrate()
    assert sorted(r["event_id"] for r in store.rows(t.events)) == sorted(ids)
    assert _partition_of(store, ids[0]) == partitions.name(dt.datetime.now(dt.UTC).date())
    with store.engine.connect() as conn:
        names = {ix["name"] for ix in sa.inspect(conn).get_indexes("events")}
    assert names == {ix.name for ix in t.events.indexes}
    store.close()


def test_writers_on_the_same_keys_neither_deadlock_nor_duplicate(postgres: Postgres) -> None:
    """Four collectors get the same events (redeliveries) and devices in different orders, at once."""
    url = postgres.create_database()
    first = _store(url)
    first.migrate()
    first.close()
    rows = [_row(str(uuid6.uuid7()), i, device=f"bus-{i % 20}") for i in range(2000)]
    errors: list[BaseException] = []
    stored: list[int] = []

    def writer(n: int) -> None:
        store = _store(url, instance=f"c{n}")
        rng = random.Random(n)
        try:
            for start in range(0, len(rows), 250):
                chunk = rows[start : start + 500]
                rng.shuffle(chunk)
                batch = Batch(events=chunk, received=len(chunk))
                for r in chunk:
                    batch.seen[r["device_id"]] = ("98C12345", time.time())
                stored.append(store.write_batch(batch, time.time()).stored)
        except BaseException as exc:  # a deadlock_detected would land here
            errors.append(exc)
        finally:
            store.close()

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(120)
    assert errors == []
    check = _store(url)
    assert check.count(t.events) == len(rows) == sum(stored)
    counters = check.counters()
    assert counters["received"] == counters["stored"] + counters["duplicate"]
    check.close()
