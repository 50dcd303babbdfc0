"""The device side of the end-to-end protocol: the real daemon, a real mosquitto, the collector's two
commands sent as the collector sends them (replay requests, retained confirmations)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from device import contract
from device.store import DB_NAME, RESERVE_NAME, StoreReader
from tests.support.daemon import DaemonProcess, run_cli, write_config
from tests.support.mosquitto import Mosquitto
from tests.support.payloads import other_codes
from tests.support.schema import validate_event, validate_message, validate_status
from tests.support.subscriber import Subscriber

TOPICS = contract.Topics.of("checkin", "98C12345", "bus-dev-1")


@pytest.fixture
def subscriber(broker: Mosquitto) -> Iterator[Subscriber]:
    sub = Subscriber(broker.port)
    yield sub
    sub.close()


def start_daemon(tmp_path: Path, port: int, grace_h: float | None = None) -> DaemonProcess:
    config = write_config(
        tmp_path / "device.toml", port=port, storage=tmp_path / "state", broker={"heartbeat_s": 0.5}
    )
    env = {} if grace_h is None else {"QRCHECKIN_STORAGE__DELIVERED_GRACE_H": str(grace_h)}
    daemon = DaemonProcess(config, env=env).start()
    daemon.wait_log("connected to broker")
    return daemon


def stored_seqs(tmp_path: Path) -> list[int]:
    box = StoreReader(tmp_path / "state" / DB_NAME)
    try:
        return [e["seq"] for e in box.history()]
    finally:
        box.close()


def wait_stored(tmp_path: Path, seqs: list[int], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and stored_seqs(tmp_path) != seqs:
        time.sleep(0.1)
    assert stored_seqs(tmp_path) == seqs


def accept(daemon: DaemonProcess, count: int, prefix: str) -> list[str]:
    ids = []
    for code in other_codes(count, prefix=prefix):
        decision = daemon.scan(code)
        assert decision["feedback"] == "accepted", decision
        ids.append(decision["event_id"])
    return ids


def all_valid(sub: Subscriber) -> None:
    for event in sub.events():
        validate_event(event)
    for status in sub.statuses():
        validate_status(status)


def test_a_replay_request_gets_the_original_bodies_and_the_gone_ranges(
    tmp_path: Path, broker: Mosquitto, subscriber: Subscriber
) -> None:
    # No grace: a delivered event leaves the disk at the next purge (the first one a second after start).
    daemon = start_daemon(tmp_path, broker.port, grace_h=0)
    accept(daemon, 3, "EARLY")
    subscriber.wait_events(lambda evs: len(evs) == 3)
    daemon.stop()
    daemon = start_daemon(tmp_path, broker.port, grace_h=0)
    try:
        wait_stored(tmp_path, [])  # 1-3 were purged
        later = accept(daemon, 3, "LATE")
        first_copies = subscriber.wait_event_ids(set(later))
        originals = {json.loads(p)["event_id"]: p for p in subscriber.event_payloads()}
        incarnation = first_copies[0]["incarnation"]

        request = contract.ReplayRequest("gap-1", 1, 20_000)
        validate_message(request.body())
        subscriber.send(TOPICS.cmd_replay, request.body())
        answer = subscriber.wait_status(lambda s: s.get("replay", {}).get("request_id") == "gap-1")["replay"]
        # Clipped to the maximum span; the stored ones replayed, the purged and never-made ones gone.
        assert answer == {
            "request_id": "gap-1",
            "incarnation": incarnation,
            "replayed": [[4, 6]],
            "gone": [[1, 3], [7, contract.MAX_REPLAY_SPAN]],
        }
        copies = [p for p in subscriber.event_payloads() if json.loads(p)["event_id"] in later]
        assert len(copies) >= 6, "each event twice: first delivery and replay"
        assert all(p == originals[json.loads(p)["event_id"]] for p in copies), "original bodies"

        # A request for another incarnation (the card before this one) gets everything as gone.
        old = contract.ReplayRequest("gap-2", 4, 5, incarnation="00000000-0000-4000-8000-000000000000")
        subscriber.send(TOPICS.cmd_replay, old.body())
        answer = subscriber.wait_status(lambda s: s.get("replay", {}).get("request_id") == "gap-2")["replay"]
        assert answer["replayed"] == [] and answer["gone"] == [[4, 5]]
        assert len([p for p in subscriber.event_payloads() if json.loads(p)["event_id"] in later]) == len(
            copies
        )
        # The heartbeat's body is refreshed every second.
        status = subscriber.wait_status(lambda s: s.get("last_seq") == 6)
        assert status["incarnation"] == incarnation
        assert status["boot_id"] == first_copies[0]["boot_id"]
        all_valid(subscriber)
    finally:
        daemon.stop()


def test_malformed_and_excess_replay_requests_are_logged_once_and_ignored(
    tmp_path: Path, broker: Mosquitto, subscriber: Subscriber
) -> None:
    daemon = start_daemon(tmp_path, broker.port)
    try:
        accept(daemon, 2, "PAX")
        for payload in (b"not json", b'{"schema": "checkin.replay/1", "request_id": "x"}', b"[]"):
            subscriber.send(TOPICS.cmd_replay, payload)
        daemon.wait_log("ignored a malformed command")
        for i in range(12):
            subscriber.send(TOPICS.cmd_replay, contract.ReplayRequest(f"flood-{i}", 1, 2).body())
        daemon.wait_log("ignored replay request")
        # The device still answers scans and publishes.
        last = accept(daemon, 1, "AFTER")
        subscriber.wait_event_ids(set(last))
        time.sleep(1.0)  # let the accepted requests finish
        answered = {s["replay"]["request_id"] for s in subscriber.statuses() if "replay" in s}
        assert 1 <= len(answered) < 12
        assert daemon.stderr.count("ignored a malformed command") == 1
        assert daemon.stderr.count("ignored replay request") == 1
        all_valid(subscriber)
    finally:
        daemon.stop()


def test_unheard_events_stay_until_the_collector_commits_them(tmp_path: Path) -> None:
    # A broker restarted without persistence has forgotten the consumer's subscription until it is
    # back: every PUBACK says 0x10 "no matching subscribers".
    broker = Mosquitto(tmp_path / "broker").start()
    daemon = start_daemon(tmp_path, broker.port, grace_h=0)
    try:
        accept(daemon, 4, "LOST")
        daemon.wait_log("ALARM: the broker says no subscriber got event seq=1")
        assert daemon.stderr.count("no subscriber got event") == 1, "one alarm per episode"
        watcher = Subscriber(broker.port, topic=TOPICS.status)
        status = watcher.wait_status(lambda s: s.get("unheard") == 4)
        assert status["backlog"] == 0 and status["last_seq"] == 4
        incarnation = status["incarnation"]
        local = json.loads(run_cli("status", "--json", "--config", str(tmp_path / "device.toml")).stdout)
        assert (local["unheard"], local["incarnation"], local["last_seq"]) == (4, incarnation, 4)
        # The purge (grace 0) runs every minute and at start: a restart proves it keeps them.
        daemon.stop()
        daemon = start_daemon(tmp_path, broker.port, grace_h=0)
        time.sleep(1.5)
        assert stored_seqs(tmp_path) == [1, 2, 3, 4]

        other = contract.Committed("00000000-0000-4000-8000-000000000000", 4)
        watcher.send(TOPICS.cmd_committed, other.body(), retain=True)
        daemon.wait_log("ignored the collector's confirmation for incarnation")
        confirmation = contract.Committed(incarnation, 2)
        validate_message(confirmation.body())
        watcher.send(TOPICS.cmd_committed, confirmation.body(), retain=True)
        daemon.wait_log("released 2 unheard")
        watcher.wait_status(lambda s: s.get("unheard") == 2)

        mark = daemon.mark()
        watcher.send(TOPICS.cmd_committed, contract.Committed(incarnation, 4).body(), retain=True)
        daemon.wait_log("released 2 unheard", after=mark)
        # Retained: a restarted device learns it again on connecting.
        daemon.stop()
        daemon = start_daemon(tmp_path, broker.port, grace_h=0)
        daemon.wait_log("committed every event through seq=4")
        wait_stored(tmp_path, [])
        for s in watcher.statuses():
            validate_status(s)
        watcher.close()
    finally:
        daemon.stop()
        broker.kill()


def test_a_replaced_store_is_a_new_incarnation_and_seq_starts_again(
    tmp_path: Path, broker: Mosquitto, subscriber: Subscriber
) -> None:
    daemon = start_daemon(tmp_path, broker.port)
    first = subscriber.wait_event_ids(set(accept(daemon, 2, "CARD1")))
    daemon.stop()
    # A new SD card with the same bundle: the key and the configuration stay, the store is new.
    state = tmp_path / "state"
    for path in [*state.glob(f"{DB_NAME}*"), state / RESERVE_NAME]:
        path.unlink()
    daemon = start_daemon(tmp_path, broker.port)
    try:
        ids = set(accept(daemon, 1, "CARD2"))
        (second,) = [e for e in subscriber.wait_event_ids(ids) if e["event_id"] in ids]
    finally:
        daemon.stop()
    (old_incarnation,) = {e["incarnation"] for e in first}
    assert second["seq"] == 1 and second["incarnation"] != old_incarnation
    assert {e["seq"] for e in first} == {1, 2}
    assert subscriber.statuses()[-2]["incarnation"] == second["incarnation"]
    all_valid(subscriber)
