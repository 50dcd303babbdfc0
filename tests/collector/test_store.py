"""The schema and the batch transaction, on SQLite and PostgreSQL alike."""

from __future__ import annotations

import datetime as dt
import threading
import time
import uuid
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from collector import tables as t
from collector.settings import Settings
from collector.store import Batch, Store
from tests.support.postgres import Postgres


def open_store(url: str) -> Store:
    store = Store(Settings(database={"url": url}).database_url, instance="test")
    store.migrate()
    return store


def row(seq: int, event_id: str | None = None) -> dict[str, Any]:
    now = dt.datetime.now(dt.UTC)
    return {
        "event_id": event_id or str(uuid.uuid4()),
        "device_id": "bus-1",
        "incarnation": "inc",
        "seq": seq,
        "location_id": "98C12345",
        "location_kind": "bus",
        "scanned_at": now,
        "clock": "synced",
        "code_type": "cccd",
        "subject_mode": "hmac",
        "subject_hmac": "ab" * 32,
        "key_id": "0badc0de",
        "masked": "0010******01",
        "direction": "in",
        "source": "stdin",
        "received_at": now,
        "body": {"seq": seq, "subject": {"masked": "0010******01"}},
    }


def test_migrations_build_exactly_the_declared_schema_and_run_twice(database: str) -> None:
    store = open_store(database)
    store.migrate()
    with store.engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), t.metadata) == []
    store.close()


def test_a_redelivered_event_is_a_duplicate_never_a_second_row(database: str) -> None:
    store = open_store(database)
    first = [row(1), row(2)]
    result = store.write_batch(Batch(events=first, received=2), time.time())
    assert result.deltas["stored"] == 2
    again = [row(2, first[1]["event_id"]), row(3), row(3, first[0]["event_id"])]
    again[1]["event_id"] = again[2]["event_id"] = str(uuid.uuid4())  # twice within one batch too
    result = store.write_batch(Batch(events=again, received=3), time.time())
    assert (result.deltas["stored"], result.deltas["duplicate"]) == (1, 2)
    assert store.count(t.events) == 3
    assert store.counters() == {
        "received": 5,
        "stored": 3,
        "duplicate": 2,
        "invalid": 0,
        "statuses": 0,
        "statuses_invalid": 0,
    }
    store.close()


def test_a_will_only_changes_what_it_names(database: str) -> None:
    store = open_store(database)
    birth = {
        "device_id": "bus-1",
        "location_id": "98C12345",
        "state": "online",
        "version": "1.2",
        "backlog": 3,
    }
    store.write_batch(Batch(statuses=[(birth, True)]), time.time())
    will = {"device_id": "bus-1", "location_id": "98C12345", "state": "offline", "reason": "connection lost"}
    store.write_batch(Batch(statuses=[(will, True)]), time.time())
    (device,) = store.rows(t.devices)
    assert (device["state"], device["version"], device["backlog"], device["reason"]) == (
        "offline",
        "1.2",
        3,
        "connection lost",
    )
    assert device["last_heartbeat_at"] is not None
    store.close()


def test_counters_add_up_over_instances(database: str) -> None:
    instances = 2
    stores = [
        Store(Settings(database={"url": database}).database_url, instance=f"c{i}") for i in range(instances)
    ]
    stores[0].migrate()
    for store in stores:
        store.write_batch(Batch(events=[row(1)], received=1), time.time())
    assert stores[0].counters()["stored"] == instances
    for store in stores:
        store.close()


def test_a_batch_keeps_empty_columns_and_times_the_readers_compare(database: str) -> None:
    # The events go in as one statement of columns (PostgreSQL) or through the driver's executemany
    # (SQLite): NULLs, times and bodies must come back as SQLAlchemy's own insert would leave them.
    store = open_store(database)
    early, late = row(1), row(2)
    early.update(masked=None, direction=None, scanned_at=dt.datetime(2026, 12, 1, 23, 59, 59, 1000, dt.UTC))
    late["scanned_at"] = dt.datetime(2026, 12, 2, 0, 0, 0, 5000, dt.UTC)
    store.write_batch(Batch(events=[late, early], received=2), time.time())
    c = t.events.c
    (got,) = store.rows(t.events, c.masked.is_(None))
    assert (got["seq"], got["direction"], got["body"]) == (1, None, early["body"])
    midnight = dt.datetime(2026, 12, 2, tzinfo=dt.UTC)
    assert [r["seq"] for r in store.rows(t.events, c.scanned_at >= midnight)] == [2]
    assert [r["seq"] for r in store.rows(t.events, c.scanned_at < midnight)] == [1]
    # SQLite compares the text: the stored time must be written exactly as a bound one is.
    assert [r["seq"] for r in store.rows(t.events, c.scanned_at == late["scanned_at"])] == [2]
    stored = {r["seq"]: r["scanned_at"] for r in store.rows(t.events)}
    assert all(
        (value if value.tzinfo else value.replace(tzinfo=dt.UTC)) == expected["scanned_at"]
        for value, expected in ((stored[1], early), (stored[2], late))
    )
    store.close()


def test_two_collectors_sweeping_the_same_streams_queue_instead_of_deadlocking(postgres: Postgres) -> None:
    """A shared group: every instance tracks every stream, so two sweeps write the same rows at once,
    each in the order its own tracker holds them."""
    url = postgres.create_database()
    stores = [open_store(url), open_store(url)]
    streams = [
        {"device_id": f"bus-{n:02d}", "incarnation": "i1", "location_id": "L", "through_seq": 1, "max_seq": 1}
        for n in range(60)
    ]
    gaps = [
        {
            "device_id": s["device_id"],
            "incarnation": "i1",
            "location_id": "L",
            "from_seq": 5,
            "to_seq": 6,
            "state": "open",
            "missing": 2,
            "requests": 0,
            "opened_wall": 1_700_000_000.0,
            "last_request_wall": None,
            "closed_wall": None,
        }
        for s in streams
    ]
    failures: list[BaseException] = []

    def sweep(store: Store, order: int) -> None:
        try:
            for round_ in range(2, 40):
                mine = [{**s, "through_seq": round_} for s in streams[::order]]
                store.write_sweep(gaps[::order], [], mine)
        except BaseException as exc:  # a deadlock is an OperationalError raised in this thread
            failures.append(exc)

    threads = [
        threading.Thread(target=sweep, args=(store, order))
        for store, order in zip(stores, (1, -1), strict=True)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    for store in stores:
        store.close()
    assert [type(f).__name__ for f in failures] == []


def test_the_gap_lookup_answers_every_span_of_a_sweep(database: str) -> None:
    store = open_store(database)
    batch = Batch(events=[row(seq) for seq in (1, 2, 4, 7, 9)])
    store.write_batch(batch, time.time())
    other = [{**row(seq), "device_id": "bus-2"} for seq in (3, 4)]
    store.write_batch(Batch(events=other), time.time())
    spans = [("bus-1", "inc", 2, 7), ("bus-2", "inc", 1, 3), ("bus-1", "other", 1, 9), ("bus-9", "inc", 1, 9)]
    assert sorted(store.seqs_in(spans)) == [
        ("bus-1", "inc", 2),
        ("bus-1", "inc", 4),
        ("bus-1", "inc", 7),
        ("bus-2", "inc", 3),
    ]
    # More spans than one query takes: the same answer, in several.
    many = [("bus-1", "inc", s, s) for s in range(1, 1200)]
    assert sorted(seq for *_, seq in store.seqs_in(many)) == [1, 2, 4, 7, 9]
    store.close()
