"""The collector in tests: its config, in a thread or as a process to kill -9, and events to feed it."""

from __future__ import annotations

import io
import json
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stdout
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import uuid6
from paho.mqtt.enums import CallbackAPIVersion

from collector import cli
from collector import tables as t
from collector.ingest import Collector
from collector.settings import Settings
from collector.store import Store
from device import contract, mqtt_client
from device.notify import Notifier
from tests.support.commands import run_module
from tests.support.paths import ROOT
from tests.support.slowdown import scaled
from tests.support.wait import wait_until

PREFIX = "checkin"
INCARNATION = "6f1c2a34-9a3e-4c41-8f0e-5a2b7c9d1e01"


def write_config(path: Path, *, port: int, url: str, **sections: dict[str, Any]) -> Path:
    """A collector.toml for a test broker and database; `sections` add or override keys."""
    base: dict[str, dict[str, Any]] = {
        "broker": {
            "host": "127.0.0.1",
            "port": port,
            "keepalive": 5,
            "client_id": f"collector-{uuid.uuid4().hex[:8]}",
            "reconnect_min_s": 0.1,
            "reconnect_max_s": 0.5,
        },
        "database": {"url": url},
        "gaps": {"settle_s": 0.5, "retry_min_s": 1.0, "retry_max_s": 2.0, "check_s": 0.2},
        "presence": {"heartbeat_s": 60},
    }
    for name, values in sections.items():
        base.setdefault(name, {}).update(values)
    lines = []
    for name, values in base.items():
        lines.append(f"[{name}]")
        lines += [f"{key} = {json.dumps(value)}" for key, value in values.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


@contextmanager
def running(
    settings: Settings, notifier: Notifier | None = None, kind: type[Collector] = Collector
) -> Iterator[Collector]:
    """The collector's writer loop in a thread, connected and subscribed before the body runs."""
    collector = kind(settings, notifier=notifier)
    thread = threading.Thread(target=collector.run, name="collector", daemon=True)
    thread.start()
    try:
        if not collector.connected.wait(15):
            raise TimeoutError("collector did not connect")
        time.sleep(0.2)  # the SUBACK follows the CONNACK
        yield collector
    finally:
        collector.stop()
        thread.join(15)
        assert not thread.is_alive(), "collector did not stop"


class CollectorProcess:
    """`qr-collector run` as a process, to be killed -9 at any moment."""

    def __init__(self, config: Path) -> None:
        self.config = config
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = config.with_suffix(".log")

    def start(self) -> CollectorProcess:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "collector.cli", "run", "--config", str(self.config)],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
            )
        return self

    def connections(self) -> int:
        """How many times the collector has connected to the broker, over all its runs."""
        try:
            return self.log.read_text(errors="replace").count("connected to ")
        except FileNotFoundError:
            return 0

    def wait_connected(self, times: int = 1, timeout: float = 20) -> None:
        deadline = time.monotonic() + scaled(timeout)
        while time.monotonic() < deadline:
            if self.connections() >= times:
                return
            assert self.proc is not None and self.proc.poll() is None, self.log.read_text()[-2000:]
            time.sleep(0.05)
        raise TimeoutError(f"collector not connected {times} times: {self.log.read_text()[-2000:]}")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(20)
        return int(self.proc.returncode)


def run_cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """`qr-collector ARGS...` as an operator runs it."""
    return run_module("collector.cli", *args, timeout=timeout, env={"PYTHONWARNINGS": "ignore"})


def cli_json(*args: str) -> dict[str, Any]:
    """`qr-collector ARGS... --json` run in this process (the same code path, without a new interpreter)."""
    out = io.StringIO()
    with redirect_stdout(out):
        code = cli.main([*args, "--json"])
    assert code == 0, out.getvalue()
    result: dict[str, Any] = json.loads(out.getvalue())
    return result


def cli_text(*args: str) -> str:
    out = io.StringIO()
    with redirect_stdout(out):
        code = cli.main(list(args))
    assert code == 0, out.getvalue()
    return out.getvalue()


def make_event(
    seq: int,
    *,
    device_id: str = "bus-1",
    location_id: str = "98C12345",
    incarnation: str = INCARNATION,
    subject: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A valid checkin.event/1 as a device in mode hmac publishes it."""
    return contract.build_event(
        event_id=str(uuid6.uuid7()),
        seq=seq,
        incarnation=incarnation,
        device_id=device_id,
        location_id=location_id,
        location_kind="bus",
        location_name="Shuttle",
        wall=time.time(),
        synced=True,
        boot_id="boot-1",
        monotonic_s=time.monotonic(),
        source="stdin",
        direction="in",
        code_type="cccd",
        code_variant="chip",
        subject=subject
        or {"mode": "hmac", "hmac": f"{seq:064x}", "key_id": "0badc0de", "masked": "0010******01"},
        software="test",
    )


class Publisher:
    """A device's MQTT side without the device: publishes QoS 1 and waits for every PUBACK."""

    def __init__(self, port: int, client_id: str | None = None, *, protocol: int = mqtt.MQTTv5) -> None:
        # RabbitMQ 3.10's MQTT plugin speaks 3.1.1 only.
        self.client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=client_id or f"pub-{uuid.uuid4().hex[:8]}",
            protocol=mqtt.MQTTProtocolVersion(protocol),
        )
        self.client.max_inflight_messages_set(1000)
        self.client.max_queued_messages_set(0)
        self.client.reconnect_delay_set(0.1, 0.5)  # type: ignore[arg-type]
        self.connects = 0
        self.subscriptions: list[tuple[str, int]] = []
        self.client.on_connect = self._on_connect
        self.client.connect("127.0.0.1", port, keepalive=10)
        self.client.loop_start()
        self.wait_connected(1)

    def _on_connect(self, client: mqtt.Client, *_: Any) -> None:
        # The broker may have lost the session with the subscriptions: subscribe every time.
        if self.subscriptions:
            client.subscribe(self.subscriptions)
        self.connects += 1

    def wait_connected(self, times: int, timeout: float = 20) -> None:
        wait_until(
            lambda: self.connects >= times and self.client.is_connected(), timeout, "publisher connected"
        )

    def publish(self, topic: str, payload: str | bytes, *, retain: bool = False) -> mqtt.MQTTMessageInfo:
        return self.client.publish(topic, payload, qos=1, retain=retain)

    def events(self, events: list[dict[str, Any]], timeout: float = 30) -> None:
        infos = [self.publish(events_topic(e), json.dumps(e)) for e in events]
        for info in infos:
            info.wait_for_publish(scaled(timeout))

    def close(self) -> None:
        mqtt_client.disconnect(self.client)


def events_topic(event: dict[str, Any]) -> str:
    return contract.Topics.of(PREFIX, event["location_id"], event["device_id"]).events


def status_topic(device_id: str = "bus-1", location_id: str = "98C12345") -> str:
    return contract.Topics.of(PREFIX, location_id, device_id).status


def stored_ids(store: Store) -> list[str]:
    return [r["event_id"] for r in store.rows(t.events)]


class StandInDevice(Publisher):
    """A device's replay side (protocol.md) for the collector's own tests: holds its events by seq,
    answers cmd/replay by republishing what it holds and a status naming what is gone."""

    def __init__(
        self,
        port: int,
        events: list[dict[str, Any]],
        *,
        holds: set[int] | None = None,
        protocol: int = mqtt.MQTTv5,
    ) -> None:
        super().__init__(port, protocol=protocol)
        first = events[0]
        self.device_id, self.location_id, self.incarnation = (
            first["device_id"],
            first["location_id"],
            first["incarnation"],
        )
        self.by_seq = {e["seq"]: e for e in events}
        self.holds = set(self.by_seq) if holds is None else holds
        self.requests: list[dict[str, Any]] = []
        topics = contract.Topics.of(PREFIX, self.location_id, self.device_id)
        self.topics = topics
        self.client.message_callback_add(topics.cmd_replay, self._on_replay)
        self.client.message_callback_add(topics.cmd_committed, self._on_committed)
        self.committed: list[dict[str, Any]] = []
        self.subscriptions = [(topics.cmd_replay, 1), (topics.cmd_committed, 1)]
        self.client.subscribe(self.subscriptions)

    def _on_committed(self, _c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        self.committed.append(json.loads(msg.payload))

    def _on_replay(self, _c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        request = contract.parse_replay(bytes(msg.payload))
        self.requests.append(request.body())
        seqs = range(request.from_seq, request.to_seq + 1)
        replayed = [s for s in seqs if s in self.holds and s in self.by_seq]
        for seq in replayed:
            self.client.publish(events_topic(self.by_seq[seq]), json.dumps(self.by_seq[seq]), qos=1)
        gone = contract.missing_ranges(request.from_seq, request.to_seq, replayed)
        answer = contract.replay_answer(
            request.request_id, self.incarnation, contract.seq_ranges(replayed), gone
        )
        self.status(replay=answer)

    def status(self, **extra: Any) -> mqtt.MQTTMessageInfo:
        body = contract.online_status(
            contract.status_fields(
                device_id=self.device_id,
                location_id=self.location_id,
                location_kind="bus",
                location_name="Shuttle",
                version="test",
                config_hash="c0ffee",
                incarnation=self.incarnation,
                boot_id="boot-1",
                last_seq=max(self.by_seq),
                backlog=0,
                oldest_undelivered_age_s=None,
                dead_letters=0,
                unheard=0,
                counters={},
            )
        )
        return self.client.publish(self.topics.status, json.dumps({**body, **extra}), qos=1, retain=True)
