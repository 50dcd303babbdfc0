"""Ingest through a real mosquitto into SQLite and PostgreSQL: exactly once, invalid kept, counted."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import sqlalchemy as sa

from collector import tables as t
from collector.settings import load_settings
from collector.store import Store
from device.notify import Notifier
from tests.support.collector import (
    Publisher,
    events_topic,
    make_event,
    running,
    stored_ids,
    wait_until,
    write_config,
)
from tests.support.mosquitto import Mosquitto
from tests.support.notify import NotifySocket

PROTOCOLS = ["5", "3.1.1"]


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_every_event_is_stored_once_duplicates_counted_invalid_kept(
    broker: Mosquitto, database: str, tmp_path: Path, protocol: str
) -> None:
    settings = load_settings(
        write_config(
            tmp_path / "collector.toml", port=broker.port, url=database, broker={"protocol": protocol}
        )
    )
    store = Store(settings.database_url)
    events = [make_event(seq) for seq in range(1, 301)]
    pub = Publisher(broker.port)
    with running(settings) as collector:
        pub.events(events)
        pub.events(events[:50])  # a device republishing after a lost PUBACK
        topic = events_topic(events[0])
        bad = [
            b"\xff\xfe not utf-8",
            b"{not json",
            b"[1, 2]",
            json.dumps({**events[0], "schema": "checkin.event/2"}).encode(),
            json.dumps({**events[0], "seq": "001099012345"}).encode(),
            json.dumps({**events[0], "device_id": "someone-else"}).encode(),
            b'{"schema": "checkin.event/1", "pad": "' + b"7" * 70_000 + b'"}',
        ]
        for payload in bad:
            pub.publish(topic, payload).wait_for_publish(10)
        wait_until(lambda: store.counters()["received"] == 350 + len(bad), what="all received")
        # The test broker's window covers the batches: the stall warning must not cry wolf.
        probe = collector._probe
        assert probe is None if protocol == "5" else probe is not None and not probe.warned
    counters = store.counters()
    assert counters["stored"] == 300 and counters["duplicate"] == 50 and counters["invalid"] == len(bad)
    assert counters["received"] == counters["stored"] + counters["duplicate"] + counters["invalid"]
    assert sorted(stored_ids(store)) == sorted(e["event_id"] for e in events)
    invalid = store.rows(t.invalid_messages, order_by=[t.invalid_messages.c.id])
    assert [r["topic"] for r in invalid] == [topic] * len(bad)
    reasons = [r["reason"] for r in invalid]
    assert reasons[0].startswith("not UTF-8 JSON") and reasons[1].startswith("not UTF-8 JSON")
    assert "not a JSON object" in reasons[2] and "checkin.event/2" in reasons[3]
    assert "seq" in reasons[4] and "someone-else" in reasons[5] and reasons[6].startswith("oversized")
    # No ID number survives into the table: digit runs are masked in excerpts and reasons.
    assert all("001099012345" not in r["excerpt"] + r["reason"] for r in invalid)
    assert "############" in invalid[4]["excerpt"] + invalid[4]["reason"]
    rows = {r["event_id"]: r for r in store.rows(t.events)}
    first = rows[events[0]["event_id"]]
    assert (first["device_id"], first["seq"], first["incarnation"], first["code_type"]) == (
        "bus-1",
        1,
        events[0]["incarnation"],
        "cccd",
    )
    assert first["subject_hmac"] == events[0]["subject"]["hmac"] and first["masked"] == "0010******01"
    assert first["body"]["event_id"] == events[0]["event_id"]
    pub.close()
    store.close()


def test_a_sent_id_in_clear_is_not_kept(broker: Mosquitto, database: str, tmp_path: Path) -> None:
    settings = load_settings(write_config(tmp_path / "collector.toml", port=broker.port, url=database))
    store = Store(settings.database_url)
    subject = {
        "mode": "id",
        "hmac": "c" * 64,
        "key_id": "0badc0de",
        "masked": "0010******01",
        "id": "001099012345",
    }
    event = make_event(1, subject=subject)
    pub = Publisher(broker.port)
    with running(settings):
        pub.events([event])
        wait_until(lambda: store.count(t.events) == 1)
    (row,) = store.rows(t.events)
    assert "001099012345" not in json.dumps(row["body"]) and row["subject_hmac"] == "c" * 64
    pub.close()
    store.close()


def test_the_body_kept_is_the_messages_and_a_repeated_key_hides_no_id(
    broker: Mosquitto, database: str, tmp_path: Path
) -> None:
    settings = load_settings(write_config(tmp_path / "collector.toml", port=broker.port, url=database))
    store = Store(settings.database_url)
    plain, repeated = make_event(1), make_event(2)
    # JSON parsers keep the last of repeated keys: the first "subject" (with the ID in clear) is text
    # that no dict holds, and must not reach the database by way of the message's own text.
    first = json.dumps({**repeated["subject"], "mode": "id", "id": "001099012345"})
    text = json.dumps(repeated).replace('"subject": ', f'"subject": {first}, "subject": ', 1)
    assert json.loads(text) == repeated
    pub = Publisher(broker.port)
    with running(settings):
        pub.events([plain])
        pub.publish(events_topic(repeated), text.encode()).wait_for_publish(10)
        wait_until(lambda: store.count(t.events) == 2)
    bodies = {row["seq"]: row["body"] for row in store.rows(t.events)}
    assert bodies == {1: plain, 2: repeated}
    with store.engine.connect() as conn:  # as the database holds it, not as a JSON reader sees it
        texts = conn.execute(sa.select(sa.cast(t.events.c.body, sa.Text))).scalars().all()
    assert len(texts) == 2 and not any("001099012345" in text for text in texts)
    pub.close()
    store.close()


def test_systemd_hears_ready_watchdog_status_and_stopping(
    broker: Mosquitto, tmp_path: Path, notify: NotifySocket
) -> None:
    notifier = Notifier.from_env({"NOTIFY_SOCKET": notify.address, "WATCHDOG_USEC": "200000"})
    settings = load_settings(
        write_config(tmp_path / "collector.toml", port=broker.port, url=f"sqlite:///{tmp_path / 'c.db'}")
    )
    pub = Publisher(broker.port)
    with running(settings, notifier):
        pub.events([make_event(seq) for seq in (1, 2, 3)])
        notify.wait_for(lambda: any("stored 3" in line for line in notify.lines()), 30)
    notify.wait_for(lambda: "STOPPING=1" in notify.lines(), 30)
    lines = notify.lines()
    assert lines[0] == "READY=1" and "WATCHDOG=1" in lines
    assert any(line.startswith("STATUS=connected; stored 3, duplicate 0, invalid 0") for line in lines)
    pub.close()


def test_a_row_the_database_refuses_is_kept_as_invalid_and_costs_its_batch_nothing(
    broker: Mosquitto, database: str, tmp_path: Path
) -> None:
    settings = load_settings(write_config(tmp_path / "collector.toml", port=broker.port, url=database))
    store = Store(settings.database_url)
    events = [make_event(seq) for seq in range(1, 11)]
    # Valid JSON and valid by the schema, but PostgreSQL's text and jsonb hold no NUL character.
    events[4]["location_name"] = "Shuttle\u0000"
    pub = Publisher(broker.port)
    with running(settings):
        pub.events(events)
        wait_until(lambda: store.counters()["received"] == 10)
    counters = store.counters()
    assert counters["received"] == counters["stored"] + counters["duplicate"] + counters["invalid"]
    stored = set(stored_ids(store))
    assert {e["event_id"] for i, e in enumerate(events) if i != 4} <= stored
    if store.dialect == "postgresql":
        (refused,) = store.rows(t.invalid_messages)
        assert refused["reason"].startswith("database refused it") and events[4]["event_id"] not in stored
    else:
        assert events[4]["event_id"] in stored
    pub.close()
    store.close()


def test_a_broker_holding_3_1_1_deliveries_back_is_named_in_the_log(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # mosquitto 2.0.11 lets each PUBACK release up to max_inflight_messages more, so its default of
    # 20 opens up after a batch or two; at 1 it holds the window as a strict broker holds it at 20.
    broker = Mosquitto(tmp_path / "broker", extra="max_inflight_messages 1").start()
    settings = load_settings(
        write_config(
            tmp_path / "collector.toml",
            port=broker.port,
            url=f"sqlite:///{tmp_path / 'c.db'}",
            broker={"protocol": "3.1.1"},
            ingest={"batch_ms": 20},
        )
    )
    store = Store(settings.database_url)
    pub = Publisher(broker.port)
    try:
        with caplog.at_level(logging.WARNING, logger="collector.ingest"), running(settings) as collector:
            pub.events([make_event(seq) for seq in range(1, 11)])
            wait_until(lambda: store.count(t.events) == 10, what="all 10 stored")
            assert collector._probe is not None and collector._probe.warned
        (warning,) = [r.getMessage() for r in caplog.records if "stall" in r.getMessage()]
        assert "stall at 1 in flight" in warning and "max_inflight_messages 1000" in warning
    finally:
        pub.close()
        store.close()
        broker.kill()
