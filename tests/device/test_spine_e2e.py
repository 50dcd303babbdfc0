"""End to end: the real daemon, a real mosquitto, faults in between. Nothing accepted may be lost."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.daemon import DaemonProcess, ask_for_status, write_config
from tests.support.mosquitto import Mosquitto
from tests.support.payloads import other_codes, valid_payloads
from tests.support.proxy import Proxy
from tests.support.schema import validate_event, validate_status
from tests.support.subscriber import Subscriber


@pytest.fixture
def subscriber(broker: Mosquitto) -> Iterator[Subscriber]:
    sub = Subscriber(broker.port)
    yield sub
    sub.close()


def start_daemon(tmp_path: Path, port: int, name: str = "device.toml") -> DaemonProcess:
    config = write_config(tmp_path / name, port=port, storage=tmp_path / "state")
    return DaemonProcess(config).start()


def assert_contiguous(events: list[dict], accepted_ids: set[str]) -> None:
    """Every accepted event arrived (repeats allowed: at least once) and seq has no gap."""
    for event in events:
        validate_event(event)
    got = {e["event_id"] for e in events}
    assert accepted_ids <= got, f"lost {len(accepted_ids - got)} accepted events"
    seqs = sorted({e["seq"] for e in events})
    assert seqs == list(range(1, len(seqs) + 1)), f"seq gap: {seqs[:5]}...{seqs[-5:]}"
    by_id = {e["event_id"]: e["seq"] for e in events}
    assert len(set(by_id.values())) == len(by_id), "two events share a seq"


def test_scans_are_answered_and_reach_the_broker(
    tmp_path: Path, broker: Mosquitto, subscriber: Subscriber
) -> None:
    daemon = start_daemon(tmp_path, broker.port)
    try:
        accepted = set()
        for payload in valid_payloads():
            d = daemon.scan(payload)
            assert d["feedback"] == "accepted", d
            assert d["code_type"] in ("bhyt", "cccd")
            accepted.add(d["event_id"])
        assert daemon.scan(valid_payloads()[0])["feedback"] == "duplicate"
        garbage = daemon.scan("\x01\x02binary")
        assert garbage["feedback"] == "rejected" and "control character" in garbage["reason"]
        assert daemon.scan("   ")["feedback"] == "rejected"
        assert daemon.scan("X" * 5000)["reason"].startswith("too long")
        other = daemon.scan("VISITOR-42")
        assert other["feedback"] == "accepted" and other["code_type"] == "other"
        accepted.add(other["event_id"])

        events = subscriber.wait_event_ids(accepted)
        assert_contiguous(events, accepted)
        assert {e["source"] for e in events} == {"stdin"}
        assert {e["location_id"] for e in events} == {"98C12345"}
        assert all(e["subject"]["mode"] == "hmac" for e in events)
        assert len(events) == len(accepted), "a duplicate scan must not be published"

        assert daemon.terminate(timeout=5) == 0
    finally:
        daemon.stop()
    statuses = subscriber.statuses()
    for status in statuses:
        validate_status(status)
    assert statuses[0]["state"] == "online" and statuses[-1]["state"] == "offline"
    assert statuses[-1]["reason"] == "stopped"


def test_broker_restart_mid_stream_loses_nothing(
    tmp_path: Path, broker: Mosquitto, subscriber: Subscriber
) -> None:
    # The restarted broker has no persistence: the audit subscriber must be back before the daemon,
    # so the daemon's link goes through a proxy that refuses it until then.
    proxy = Proxy(broker.port)
    daemon = start_daemon(tmp_path, proxy.port)
    accepted = set()
    try:
        codes = other_codes(60)
        for i, code in enumerate(codes):
            if i == 20:
                proxy.blackhole()
                broker.kill()
            if i == 40:
                broker.start()
                subscriber.wait_subscribed(2)
                proxy.blackhole(False)
            d = daemon.scan(code)
            assert d["feedback"] == "accepted", d
            accepted.add(d["event_id"])
        events = subscriber.wait_event_ids(accepted, timeout=40)
        assert_contiguous(events, accepted)
    finally:
        daemon.stop()
        proxy.close()


def test_scans_are_answered_while_the_broker_is_unreachable(tmp_path: Path, broker: Mosquitto) -> None:
    broker.kill()
    proxy = Proxy(broker.port)
    proxy.blackhole()  # the daemon gets through only once the audit subscriber listens
    daemon = start_daemon(tmp_path, proxy.port)
    try:
        answers = [daemon.scan(code, timeout=2) for code in other_codes(100)]
        assert all(a["feedback"] == "accepted" for a in answers)
        daemon.wait_log("(offline)")
        broker.start()
        sub = Subscriber(broker.port)
        proxy.blackhole(False)
        try:
            events = sub.wait_event_ids({a["event_id"] for a in answers}, timeout=40)
            assert_contiguous(events, {a["event_id"] for a in answers})
        finally:
            sub.close()
    finally:
        daemon.stop()
        proxy.close()


def test_network_reset_and_black_hole(tmp_path: Path, broker: Mosquitto, subscriber: Subscriber) -> None:
    proxy = Proxy(broker.port)
    daemon = start_daemon(tmp_path, proxy.port)
    accepted = set()
    try:
        daemon.wait_log("connected to broker")
        codes = other_codes(30)
        for code in codes[:10]:
            accepted.add(daemon.scan(code)["event_id"])
        reset_mark = daemon.mark()
        proxy.reset()
        for code in codes[10:20]:
            accepted.add(daemon.scan(code)["event_id"])
        daemon.wait_log("connected to broker", after=reset_mark)
        hole_mark = daemon.mark()
        proxy.blackhole()
        for code in codes[20:]:
            accepted.add(daemon.scan(code)["event_id"])
        # Only keepalive (5 s here) can notice a black hole; then the daemon reconnects once it lifts.
        daemon.wait_log("disconnected from broker", timeout=20, after=hole_mark)
        proxy.blackhole(False)
        events = subscriber.wait_event_ids(accepted, timeout=40)
        assert_contiguous(events, accepted)
    finally:
        daemon.stop()
        proxy.close()


def test_kill_9_mid_burst_then_restart(tmp_path: Path, broker: Mosquitto, subscriber: Subscriber) -> None:
    daemon = start_daemon(tmp_path, broker.port)
    codes = other_codes(80, prefix="WORKER")
    for code in codes:
        daemon.send(code)
    accepted: dict[str, str] = {}
    for code in codes[:40]:
        d = daemon.next_decision()
        assert d["feedback"] == "accepted"
        accepted[d["event_id"]] = code
    daemon.kill()  # mid-burst: more scans were sent than answered

    again = start_daemon(tmp_path, broker.port)
    try:
        # The duplicate window survived the crash.
        assert again.scan(codes[0])["feedback"] == "duplicate"
        fresh = again.scan("WORKER-AFTER-CRASH")
        assert fresh["feedback"] == "accepted"
        accepted[fresh["event_id"]] = "WORKER-AFTER-CRASH"
        events = subscriber.wait_event_ids(set(accepted), timeout=40)
        assert_contiguous(events, set(accepted))
    finally:
        again.stop()


def test_sigterm_publishes_offline_and_exits_quickly(
    tmp_path: Path, broker: Mosquitto, subscriber: Subscriber
) -> None:
    daemon = start_daemon(tmp_path, broker.port)
    daemon.wait_log("connected to broker")
    started = time.monotonic()
    assert daemon.terminate(timeout=5) == 0
    assert time.monotonic() - started < 5
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not any(s["state"] == "offline" for s in subscriber.statuses()):
        time.sleep(0.05)
    assert subscriber.statuses()[-1]["state"] == "offline"


def test_will_marks_a_crashed_device_offline(
    tmp_path: Path, broker: Mosquitto, subscriber: Subscriber
) -> None:
    daemon = start_daemon(tmp_path, broker.port)
    daemon.wait_log("connected to broker")
    daemon.kill()
    # The broker publishes the will once it notices the dead connection (at once on a closed socket).
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and subscriber.statuses()[-1]["state"] != "offline":
        time.sleep(0.1)
    last = subscriber.statuses()[-1]
    assert last["state"] == "offline" and last["reason"] == "connection lost"


def test_the_status_reports_how_long_workers_waited(
    tmp_path: Path, broker: Mosquitto, subscriber: Subscriber
) -> None:
    daemon = start_daemon(tmp_path, broker.port)
    try:
        daemon.wait_log("connected to broker")
        assert daemon.scan("VISITOR-WAIT")["feedback"] == "accepted"
        time.sleep(1.5)  # the status snapshot is refreshed every second
        ask_for_status(daemon, subscriber.statuses)
    finally:
        daemon.stop()
    (check,) = [s for s in subscriber.statuses() if "provisioning_check" in s]
    validate_status(check)
    assert 0 < check["slowest_answer_ms"] < 5000
