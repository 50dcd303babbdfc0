"""The broker configuration and ACL `qr-provision batch` writes, run in a real mosquitto: each device
bound to its location and exact topics, its own commands readable by it only and writable by the
collector only, and no login able to take over another device's client id (issue 12 items 12, 13;
issue 17 item 5)."""

from __future__ import annotations

import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from device.settings import load_settings
from tests.support.mosquitto import Mosquitto, free_port
from tests.support.provision import provision, provision_registry, site_broker
from tests.support.tls import Pki, Probe, make_pki

__all__ = ["provision_registry"]  # the autouse fixture, imported so pytest applies it here

NOT_AUTHORIZED = 0x87
GRANTED_QOS1 = 1


@dataclass(frozen=True)
class Login:
    name: str
    etc: Path
    pki: Pki | None

    def probe(self, port: int, client_id: str = "") -> Probe:
        if self.pki is not None:
            cert, key = self.etc / "client.crt", self.etc / "client.key"
            return Probe(port, ca=self.pki.ca_cert, cert=cert, key=key, client_id=client_id)
        if (self.etc / "password").exists():
            password = (self.etc / "password").read_text().strip()
        elif (self.etc / "collector.toml").exists():
            password = tomllib.loads((self.etc / "collector.toml").read_text())["broker"]["password"]
        else:
            secret = load_settings(self.etc / "device.toml").broker.password
            assert secret is not None
            password = secret.get_secret_value()
        return Probe(port, username=self.name, password=password, client_id=client_id)


@dataclass(frozen=True)
class Site:
    broker: Mosquitto
    bus: Login
    door: Login
    bus_location: str
    door_location: str
    collector: Login
    consumer: Login

    def topic(self, device: Login, location: str, leaf: str) -> str:
        return f"checkin/v1/{location}/{device.name}/{leaf}"


def make_site(tmp_path: Path, capsys: pytest.CaptureFixture[str], *, certificates: bool) -> Site:
    port = free_port()
    fleet_csv = tmp_path / "fleet.csv"
    fleet_csv.write_text("kind,plate,location_id\nbus,98C-123.45,\ndoor,,gate-1\n")
    out = tmp_path / "out"
    pki = make_pki(tmp_path / "pki") if certificates else None
    login: tuple[str | Path, ...]
    if pki is not None:
        login = ("--broker", f"mqtts://localhost:{port}", "--ca", pki.ca_cert, "--ca-key", pki.ca_key)
    else:
        login = ("--broker", f"mqtt://localhost:{port}", "--insecure")
    code, _, err = provision(capsys, "batch", fleet_csv, "--out", out, *login, "--no-labels")
    assert code == 0, err
    broker = site_broker(out, tmp_path / "broker", port, pki)

    def device(location: str) -> Login:
        etc = out / location / "etc" / "qr-checkin"
        return Login(load_settings(etc / "device.toml").device.id, etc, pki)

    return Site(
        broker,
        device("98C12345"),
        device("gate-1"),
        "98C12345",
        "gate-1",
        Login("collector", out / "collector", pki),
        Login("consumer", out / "consumer", pki),
    )


@pytest.fixture
def site(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Iterator[Site]:
    s = make_site(tmp_path, capsys, certificates=True)
    try:
        yield s
    finally:
        s.broker.kill()


def connected(probe: Probe) -> Probe:
    connack = probe.connect()
    assert connack is not None and not connack.is_failure, connack
    return probe


def test_a_device_cannot_publish_under_another_location_or_below_its_topics(site: Site) -> None:
    port = site.broker.port
    collector = connected(site.collector.probe(port))
    bus = connected(site.bus.probe(port))
    try:
        assert [rc.value for rc in collector.subscribe("checkin/v1/#")] == [GRANTED_QOS1]
        own = site.topic(site.bus, site.bus_location, "events")
        forged = [
            site.topic(site.bus, site.door_location, "events"),  # its own id, another location
            site.topic(site.bus, "98C99999", "status"),
            own + "/deeper",
            site.topic(site.bus, site.bus_location, "status/x"),
            site.topic(site.bus, site.bus_location, "cmd/committed"),  # commands come from the collector
            f"checkin/v1/{site.bus_location}/{site.bus.name}",
        ]
        for topic in forged:
            assert bus.publish(topic, '{"forged": true}') == NOT_AUTHORIZED, topic
        assert bus.publish(own, '{"n": 1}') == 0
        assert bus.publish(site.topic(site.bus, site.bus_location, "status"), "{}", retain=True) == 0
        # The collector saw nothing forged: the first messages it gets are the bus's own.
        assert collector.message()[:2] == (own, b'{"n": 1}')
        assert collector.message()[0] == site.topic(site.bus, site.bus_location, "status")
    finally:
        bus.close()
        collector.close()


def test_a_device_reads_only_its_own_commands_and_only_the_collector_writes_them(site: Site) -> None:
    port = site.broker.port
    replay = site.topic(site.bus, site.bus_location, "cmd/replay")
    committed = site.topic(site.bus, site.bus_location, "cmd/committed")
    bus = connected(site.bus.probe(port))
    door = connected(site.door.probe(port))
    collector = connected(site.collector.probe(port))
    consumer = connected(site.consumer.probe(port))
    try:
        assert [rc.value for rc in bus.subscribe(replay)] == [GRANTED_QOS1]
        assert [rc.value for rc in bus.subscribe(committed)] == [GRANTED_QOS1]
        # mosquitto 2.0 grants any subscription and applies the ACL to each message it would deliver.
        door.subscribe("checkin/v1/+/+/cmd/#")

        assert collector.publish(replay, '{"schema": "checkin.replay/1"}') == 0
        assert bus.message() == (replay, b'{"schema": "checkin.replay/1"}', False)
        assert collector.publish(committed, '{"through_seq": 5}', retain=True) == 0
        assert bus.message()[:2] == (committed, b'{"through_seq": 5}')
        # One client's messages arrive in order: the door's first is its own command, not the bus's.
        door_replay = site.topic(site.door, site.door_location, "cmd/replay")
        assert collector.publish(door_replay, "door") == 0
        assert door.message() == (door_replay, b"door", False)

        # Neither another device nor the read-only consumer can command the bus; nor can the
        # collector forge a device's events.
        assert door.publish(replay, "{}") == NOT_AUTHORIZED
        assert consumer.publish(replay, "{}") == NOT_AUTHORIZED
        assert collector.publish(site.topic(site.bus, site.bus_location, "events"), "{}") == NOT_AUTHORIZED
        assert collector.publish(replay, "next") == 0
        assert bus.message() == (replay, b"next", False)
    finally:
        for probe in (consumer, collector, door, bus):
            probe.close()


def test_the_collector_reads_every_location_through_a_shared_subscription(site: Site) -> None:
    port = site.broker.port
    collector = connected(site.collector.probe(port))
    bus, door = connected(site.bus.probe(port)), connected(site.door.probe(port))
    try:
        group = "$share/collectors/checkin/v1/+/+/events"
        assert [rc.value for rc in collector.subscribe(group)] == [GRANTED_QOS1]
        assert [rc.value for rc in collector.subscribe("checkin/v1/+/+/status")] == [GRANTED_QOS1]
        assert bus.publish(site.topic(site.bus, site.bus_location, "events"), "1") == 0
        assert door.publish(site.topic(site.door, site.door_location, "events"), "2") == 0
        assert {collector.message()[1], collector.message()[1]} == {b"1", b"2"}
    finally:
        for probe in (door, bus, collector):
            probe.close()


@pytest.mark.parametrize("certificates", [True, False], ids=["client-certificates", "passwords"])
def test_a_login_cannot_take_over_another_devices_client_id(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], certificates: bool
) -> None:
    site = make_site(tmp_path, capsys, certificates=certificates)
    port = site.broker.port
    collector = connected(site.collector.probe(port))
    bus = connected(site.bus.probe(port, client_id=site.bus.name))
    # The door's own valid login, asking for the bus's client id: a takeover would close the bus's
    # connection before the door's CONNACK.
    door = connected(site.door.probe(port, client_id=site.bus.name))
    try:
        collector.subscribe("checkin/v1/+/+/events")
        events = site.topic(site.bus, site.bus_location, "events")
        # A PUBACK is a round trip after the door's CONNACK: had the bus been knocked off, its
        # disconnect would be queued before it (paho reconnects and the publish would still pass).
        assert bus.publish(events, '{"n": 1}') == 0
        assert bus.connacks.empty(), "the bus lost its connection to the door's login"
        assert collector.message()[:2] == (events, b'{"n": 1}')
        # The door stays itself: the broker named its connection after its login, not the bus.
        assert door.publish(site.topic(site.door, site.door_location, "events"), "{}") == 0
        assert door.publish(events, "{}") == NOT_AUTHORIZED
    finally:
        for probe in (door, bus, collector):
            probe.close()
        site.broker.kill()
