"""The publisher against a real broker: permanent refusals end in the dead letters."""

from __future__ import annotations

import json
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from device.audit import AUDIT_FILE, AuditLog
from device.checkin import Checkin
from device.clock import FakeClock
from device.contract import Topics
from device.privacy import Privacy
from device.publisher import Publisher
from device.scan import Scan
from device.settings import BrokerSettings, DeviceSettings, LocationSettings, Settings, StorageSettings
from device.store import Backlog, Outbox
from tests.support.daemon import DaemonProcess, run_cli, write_config
from tests.support.mosquitto import Mosquitto
from tests.support.payloads import other_codes
from tests.support.proxy import Proxy
from tests.support.subscriber import Subscriber
from tests.support.tls import make_pki
from tests.support.wait import wait_until


def test_a_refused_event_is_kept_and_sent_once_the_acl_allows_it(tmp_path: Path) -> None:
    acl = tmp_path / "acl"
    # Anonymous clients may write their status but not yet events: the broker answers 0x87 (MQTT v5),
    # as while an ACL is being fixed.
    acl.write_text("topic read checkin/#\ntopic write checkin/v1/+/+/status\n")
    broker = Mosquitto(tmp_path / "broker", extra=f"acl_file {acl}").start()
    sub = Subscriber(broker.port)
    config = write_config(tmp_path / "device.toml", port=broker.port, storage=tmp_path / "state")
    daemon = DaemonProcess(config).start()
    try:
        daemon.wait_log("connected to broker")
        ids = {daemon.scan(code)["event_id"] for code in other_codes(3)}
        daemon.wait_log("ALARM: broker refused event seq=1 (Not authorized, 0x87)", timeout=20)
        # Past the first retry (5 s): refused again, still one ALARM line, nothing dead-lettered.
        time.sleep(6)
        assert daemon.stderr.count("ALARM: broker refused event") == 1
        box = Outbox(tmp_path / "state" / "outbox.sqlite")
        assert box.dead_letters() == [] and box.backlog().count == 3
        assert sub.events() == []

        acl.write_text(acl.read_text() + "topic write checkin/v1/+/+/events\n")
        assert broker.proc is not None
        broker.proc.send_signal(signal.SIGHUP)  # mosquitto reads its ACL again
        sub.wait_event_ids(ids, timeout=40)
        daemon.wait_log("broker accepts events again")
        wait_until(lambda: box.backlog().count == 0)
        assert box.dead_letters() == []
    finally:
        daemon.stop()
        sub.close()
        broker.kill()


def test_mqtt_3_1_1_is_selectable(tmp_path: Path, broker: Mosquitto) -> None:
    sub = Subscriber(broker.port)
    config = write_config(tmp_path / "device.toml", port=broker.port, storage=tmp_path / "state")
    config.write_text(config.read_text().replace("[broker]\n", '[broker]\nprotocol = "3.1.1"\n'))
    daemon = DaemonProcess(config).start()
    try:
        ids = {daemon.scan(code)["event_id"] for code in other_codes(5)}
        events = sub.wait_event_ids(ids)
        assert sorted(e["seq"] for e in events) == [1, 2, 3, 4, 5]
    finally:
        daemon.stop()
        sub.close()


def test_live_events_overtake_the_backlog(tmp_path: Path, broker: Mosquitto) -> None:
    settings = Settings(
        device=DeviceSettings(id="dev-live"),
        location=LocationSettings(id="LIVE1"),
        broker=BrokerSettings(host="127.0.0.1", port=broker.port),
        storage=StorageSettings(dir=tmp_path),
    )
    box = Outbox.open(tmp_path)
    checkin = Checkin(settings, box, Privacy("hmac", b"k" * 32), FakeClock())
    backlog = 2000
    for code in other_codes(backlog, prefix="OLD"):
        checkin.decide(Scan(text=code, source="stdin"))
    sub = Subscriber(broker.port)
    topics = Topics.of("checkin", "LIVE1", "dev-live")
    publisher = Publisher(settings.broker, topics, "dev-live", Outbox(box.path), lambda: {})
    publisher.start()
    try:
        deadline = time.monotonic() + 10
        while not publisher.connected and time.monotonic() < deadline:
            time.sleep(0.01)
        broker.pause()  # the window fills up with backlog and no acks come back
        live = checkin.decide(Scan(text="NEW-PASSENGER", source="stdin"))
        publisher.wake()
        time.sleep(0.3)
        broker.resume()
        events = sub.wait_events(lambda evs: len({e["seq"] for e in evs}) > backlog, timeout=60)
        order = [e["seq"] for e in events]
        assert live.seq == backlog + 1
        # Oldest first would put it last. Ahead of it may stand only what was delivered before the
        # broker stopped and what was then in flight: a small part of the backlog.
        assert order.index(live.seq) < backlog // 2
    finally:
        publisher.stop()
        sub.close()


class Bench:
    """A store with a decision in front and an in-process publisher behind, on a real broker."""

    def __init__(self, tmp_path: Path, port: int, window: int = 10, **publisher: Any) -> None:
        self.settings = Settings(
            device=DeviceSettings(id="dev-pub"),
            location=LocationSettings(id="PUB1"),
            broker=BrokerSettings(
                host="127.0.0.1",
                port=port,
                inflight_window=window,
                keepalive=5,
                reconnect_min_s=0.1,
                reconnect_max_s=0.5,
            ),
            storage=StorageSettings(dir=tmp_path),
        )
        self.box = Outbox.open(tmp_path)
        self.checkin = Checkin(self.settings, self.box, Privacy("hmac", b"k" * 32), FakeClock())
        self.topics = Topics.of("checkin", "PUB1", "dev-pub")
        self.publisher = Publisher(
            self.settings.broker, self.topics, "dev-pub", Outbox(self.box.path), lambda: {}, **publisher
        )

    def accept(self, count: int, prefix: str) -> list[int]:
        seqs = []
        for code in other_codes(count, prefix=prefix):
            decision = self.checkin.decide(Scan(text=code, source="stdin"))
            assert decision.seq is not None
            seqs.append(decision.seq)
        self.publisher.wake()
        return seqs

    def start(self) -> Bench:
        self.publisher.start()
        wait_until(lambda: self.publisher.connected)
        return self

    def stop(self) -> None:
        self.publisher.stop()


def missing(sub: Subscriber, seqs: set[int]) -> Callable[[], str]:
    return lambda: f"(never received seq {sorted(seqs - {e['seq'] for e in sub.events()})})"


def test_a_wrapped_message_id_never_confirms_an_event_that_was_not_sent(
    tmp_path: Path, broker: Mosquitto
) -> None:
    held = threading.Event()
    target: list[int] = []

    def withhold_the_first(packet_id: int, code: int) -> int | None:
        if target and packet_id == target[0] and not held.is_set():
            held.set()
            return None
        return code

    proxy = Proxy(broker.port, puback=withhold_the_first)
    sub = Subscriber(broker.port)
    bench = Bench(tmp_path, proxy.port).start()
    client = bench.publisher._client
    try:
        time.sleep(0.5)  # the birth status and the subscription have their answers
        target.append(client._last_mid + 1)
        bench.accept(1, "FIRST")
        wait_until(held.is_set)
        # Stands in for 65 000 publishes while the first event waits for its PUBACK: paho's message
        # ids run up to 65535, start at 1 again and come to the one paho still holds.
        with client._mid_generate_mutex:
            client._last_mid = 65533
        seqs = bench.accept(3 + target[0], "WRAP")
        wait_until(lambda: {2, 3} <= {e["seq"] for e in sub.events()})
        time.sleep(0.5)
        proxy.reset()  # the reconnect re-sends the held event, whose PUBACK now comes back
        wanted = {1, *seqs}
        wait_until(lambda: wanted <= {e["seq"] for e in sub.events()}, 20, missing(sub, wanted))
        wait_until(lambda: bench.box.backlog().count == 0)
    finally:
        bench.stop()
        sub.close()
        proxy.close()


def test_a_broker_that_never_acks_is_never_handed_a_row_twice(tmp_path: Path, broker: Mosquitto) -> None:
    withhold = threading.Event()
    withhold.set()
    proxy = Proxy(broker.port, puback=lambda _pid, code: None if withhold.is_set() else code)
    sub = Subscriber(broker.port)
    window = 10
    bench = Bench(tmp_path, proxy.port, window=window, ack_timeout_s=0.5)
    backlog = 30
    bench.accept(backlog, "WAIT")
    bench.start()
    try:
        time.sleep(4)  # eight ack timeouts without a single PUBACK
        withhold.clear()
        before = len(sub.event_payloads())
        proxy.reset()  # on reconnect paho re-sends everything it holds
        wait_until(lambda: bench.box.backlog().count == 0, timeout=30)
        time.sleep(0.5)
        repeats = len(sub.event_payloads()) - before
        assert {e["seq"] for e in sub.events()} == set(range(1, backlog + 1))
        # Each event once, plus at most what was on the wire: never a window per timeout.
        assert repeats <= backlog + window, repeats
    finally:
        bench.stop()
        sub.close()
        proxy.close()


@pytest.mark.parametrize(
    ("trusted", "reason"),
    [
        ("right CA, wrong host", "certificate is not valid for '127.0.0.1'"),
        ("untrusted CA", "certificate verify failed"),
    ],
)
def test_tls_failures_are_logged_once_per_distinct_reason(tmp_path: Path, trusted: str, reason: str) -> None:
    site = make_pki(tmp_path / "site", server_names=("broker.example",))
    rogue = make_pki(tmp_path / "rogue", ca_name="rogue CA")
    broker = Mosquitto(tmp_path / "broker", extra=site.listener(client_certs=False)).start()
    ca = site.ca_cert if trusted.startswith("right") else rogue.ca_cert
    config = write_config(
        tmp_path / "device.toml",
        port=broker.port,
        storage=tmp_path / "state",
        broker={"tls": True, "ca": str(ca), "reconnect_min_s": 0.1, "reconnect_max_s": 0.2},
        logging={"level": "DEBUG"},
    )
    daemon = DaemonProcess(config).start()
    try:
        line = daemon.wait_log("TLS with broker")
        assert line.startswith("WARNING") and reason in line, line
        daemon.wait_log("(attempt 5)")  # failing again and again, for the same reason
        assert daemon.stderr.count("TLS with broker") == 1
        assert "connected to broker" not in daemon.stderr
        assert daemon.scan("VISITOR-TLS")["feedback"] == "accepted"  # buffering, as before
    finally:
        daemon.stop()
        broker.kill()


def test_a_refused_status_is_published_again_on_the_next_connection(tmp_path: Path) -> None:
    acl = tmp_path / "acl"
    # Events may go out, the status may not (a username that does not match the device id, say).
    acl.write_text("topic read checkin/#\ntopic write checkin/v1/+/+/events\n")
    # mosquitto with max_queued_messages 0 drops the link after each refused publish; with a queue
    # limit it does not, so the reconnect below is the test's own.
    extra = f"acl_file {acl}\nmax_queued_messages 1000"
    broker = Mosquitto(tmp_path / "broker", extra=extra).start()
    proxy = Proxy(broker.port)
    sub = Subscriber(broker.port)
    config = write_config(tmp_path / "device.toml", port=proxy.port, storage=tmp_path / "state")
    daemon = DaemonProcess(config).start()
    try:
        daemon.wait_log("ALARM: broker refused the status topic")
        ids = {daemon.scan(code)["event_id"] for code in other_codes(2)}
        sub.wait_event_ids(ids)  # the events are not held up by the refused status
        assert sub.statuses() == []

        acl.write_text(acl.read_text() + "topic write checkin/v1/+/+/status\n")
        assert broker.proc is not None
        broker.proc.send_signal(signal.SIGHUP)
        time.sleep(0.5)
        proxy.reset()
        status = sub.wait_status(lambda s: s["state"] == "online")
        assert status["device_id"] == "bus-dev-1"
        assert daemon.stderr.count("ALARM: broker refused the status topic") == 1
    finally:
        daemon.stop()
        sub.close()
        proxy.close()
        broker.kill()


def test_a_final_refusal_dead_letters_and_the_command_sends_them_again(
    tmp_path: Path, broker: Mosquitto
) -> None:
    malformed = threading.Event()
    # A broker (or a bridge behind it) that judges the payload malformed: 0x99, which no retry cures.
    proxy = Proxy(broker.port, puback=lambda _pid, code: 0x99 if malformed.is_set() else code)
    sub = Subscriber(broker.port)
    config = write_config(tmp_path / "device.toml", port=proxy.port, storage=tmp_path / "state")
    daemon = DaemonProcess(config).start()
    try:
        daemon.wait_log("connected to broker")
        time.sleep(0.5)  # the birth status has its answer
        malformed.set()
        ids = [daemon.scan(code)["event_id"] for code in other_codes(3)]
        box = Outbox(tmp_path / "state" / "outbox.sqlite")
        wait_until(lambda: len(box.dead_letters()) == 3)
        assert daemon.stderr.count("for good") == 1, "one ALARM line per episode"
        assert "0x99" in daemon.wait_log("ALARM: broker refused event seq=1 for good")

        listed = json.loads(run_cli("dead-letters", "--json", "--config", str(config)).stdout)
        assert [d["event_id"] for d in listed["dead_letters"]] == ids
        assert all(d["reason"].endswith("(0x99)") for d in listed["dead_letters"])
        assert "Payload format invalid (0x99)" in run_cli("dead-letters", "--config", str(config)).stdout

        malformed.clear()  # the cause is fixed
        done = run_cli("dead-letters", "--retry", "--config", str(config))
        assert done.returncode == 0 and "put 3 dead letter(s) back" in done.stdout
        sub.wait_event_ids(set(ids))
        wait_until(lambda: box.backlog() == Backlog(0, None, 0, 0))
        assert json.loads(run_cli("dead-letters", "--json", "--config", str(config)).stdout) == {
            "dead_letters": []
        }
        retried = [
            r
            for r in AuditLog(tmp_path / "state" / AUDIT_FILE).read()
            if r["event"] == "dead_letters_retried"
        ]
        assert [(r["count"], r["first_seq"], r["last_seq"]) for r in retried] == [(3, 1, 3)]
    finally:
        daemon.stop()
        sub.close()
        proxy.close()
