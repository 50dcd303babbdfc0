"""Gaps found by seq, asked for with cmd/replay, repaired or named as known losses; committed marks."""

from __future__ import annotations

from pathlib import Path

import jsonschema_rs

from collector import tables as t
from collector.settings import load_settings
from collector.store import Store
from device import contract
from tests.support.collector import (
    StandInDevice,
    cli_json,
    cli_text,
    make_event,
    running,
    stored_ids,
    wait_until,
    write_config,
)
from tests.support.mosquitto import Mosquitto


def gap_states(store: Store) -> list[tuple[int, int, str]]:
    return [
        (r["from_seq"], r["to_seq"], r["state"]) for r in store.rows(t.gaps, order_by=[t.gaps.c.from_seq])
    ]


def test_a_gap_below_the_highest_seq_is_replayed_and_shown_repaired(
    broker: Mosquitto, database: str, tmp_path: Path
) -> None:
    config = write_config(tmp_path / "collector.toml", port=broker.port, url=database)
    settings = load_settings(config)
    store = Store(settings.database_url)
    events = [make_event(seq) for seq in range(1, 21)]
    device = StandInDevice(broker.port, events)
    with running(settings):
        device.events([e for e in events if e["seq"] not in (5, 6, 7, 12)])
        wait_until(lambda: store.count(t.events) == 20, what="the gaps replayed")
        wait_until(lambda: [s for *_, s in gap_states(store)] == ["repaired", "repaired"], what="gaps closed")
        wait_until(
            lambda: bool(device.committed) and device.committed[-1]["through_seq"] == 20, what="the mark"
        )
    assert sorted(stored_ids(store)) == sorted(e["event_id"] for e in events)
    assert gap_states(store) == [(5, 7, "repaired"), (12, 12, "repaired")]
    assert {(r["from_seq"], r["to_seq"]) for r in device.requests} == {(5, 7), (12, 12)}
    assert all(r["incarnation"] == events[0]["incarnation"] for r in device.requests)
    # What the collector says to devices is what the shipped schemas allow.
    for schema_id, messages in (
        (contract.REPLAY_SCHEMA, device.requests),
        (contract.COMMITTED_SCHEMA, device.committed),
    ):
        validator = jsonschema_rs.validator_for(contract.load_schema(schema_id))
        assert messages and all(validator.is_valid(m) for m in messages), schema_id
    assert device.committed[-1] == {
        "schema": "checkin.committed/1",
        "incarnation": events[0]["incarnation"],
        "through_seq": 20,
    }
    shown = cli_json("gaps", "--config", str(config))
    (stream,) = shown["streams"]
    assert stream["through_seq"] == 20 and stream["open"] == [] and stream["known_losses"] == []
    assert [(g["from_seq"], g["to_seq"]) for g in stream["repaired"]] == [(5, 7), (12, 12)]
    assert "repaired  seq 5-7" in cli_text("gaps", "--config", str(config))
    device.close()
    store.close()


def test_what_the_device_no_longer_holds_is_a_known_loss(
    broker: Mosquitto, database: str, tmp_path: Path
) -> None:
    config = write_config(tmp_path / "collector.toml", port=broker.port, url=database)
    settings = load_settings(config)
    store = Store(settings.database_url)
    events = [make_event(seq) for seq in range(1, 11)]
    device = StandInDevice(broker.port, events, holds=set(range(1, 11)) - {5, 6})
    with running(settings):
        device.events([e for e in events if e["seq"] not in (5, 6, 7, 8)])
        wait_until(lambda: store.count(t.known_losses) == 1, what="the known loss")
        wait_until(lambda: gap_states(store) == [(5, 8, "lost")], what="the gap closed as lost")
        wait_until(
            lambda: bool(device.committed) and device.committed[-1]["through_seq"] == 10, what="the mark"
        )
    assert store.count(t.events) == 8
    (loss,) = store.rows(t.known_losses)
    assert (loss["from_seq"], loss["to_seq"], loss["incarnation"]) == (5, 6, events[0]["incarnation"])
    status = cli_json("status", "--config", str(config))
    assert (status["known_losses"], status["known_lost_seqs"], status["open_gaps"]) == (1, 2, 0)
    text = cli_text("gaps", "--config", str(config))
    assert "KNOWN LOSS seq 5-6" in text
    device.close()
    store.close()


def test_a_status_last_seq_above_every_event_is_asked_for(
    broker: Mosquitto, database: str, tmp_path: Path
) -> None:
    settings = load_settings(write_config(tmp_path / "collector.toml", port=broker.port, url=database))
    store = Store(settings.database_url)
    events = [make_event(seq) for seq in range(1, 9)]
    device = StandInDevice(broker.port, events)
    with running(settings):
        device.events(events[:5])
        device.status().wait_for_publish(10)  # last_seq 8: three events never reached the broker
        wait_until(lambda: store.count(t.events) == 8, what="the tail replayed")
    assert {(r["from_seq"], r["to_seq"]) for r in device.requests} == {(6, 8)}
    (row,) = store.rows(t.devices)
    assert (row["last_seq"], row["incarnation"], row["state"]) == (8, events[0]["incarnation"], "online")
    device.close()
    store.close()
