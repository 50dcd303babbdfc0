"""Provisioned bundles against a real mosquitto: TLS client certificates, the generated ACL and password
file, `qr-provision verify`, and the real daemon running a provisioned configuration."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from device.settings import load_settings
from device.store import Outbox
from tests.support.daemon import DaemonProcess
from tests.support.mosquitto import Mosquitto, free_port
from tests.support.payloads import other_codes
from tests.support.provision import provision, provision_registry
from tests.support.pty_scanner import PtyScanner
from tests.support.tls import Pki, Probe, make_pki

__all__ = ["provision_registry"]  # the autouse fixture, imported so pytest applies it here

NOT_AUTHORIZED = 0x87


@dataclass(frozen=True)
class Device:
    id: str
    location_id: str
    etc: Path
    config_hash: str

    @property
    def events(self) -> str:
        return f"checkin/v1/{self.location_id}/{self.id}/events"

    @property
    def status(self) -> str:
        return f"checkin/v1/{self.location_id}/{self.id}/status"

    def probe(self, port: int) -> Probe:
        return Probe(port, ca=self.etc / "ca.crt", cert=self.etc / "client.crt", key=self.etc / "client.key")


@dataclass(frozen=True)
class Fleet:
    out: Path
    pki: Pki
    broker: Mosquitto
    bus: Device
    door: Device

    @property
    def url(self) -> str:
        return f"mqtts://localhost:{self.broker.port}"

    def consumer(self) -> Probe:
        c = self.out / "consumer"
        return Probe(self.broker.port, ca=c / "ca.crt", cert=c / "client.crt", key=c / "client.key")

    def consumer_login(self) -> tuple[str, ...]:
        c = self.out / "consumer"
        return ("--ca", str(c / "ca.crt"), "--cert", str(c / "client.crt"), "--key", str(c / "client.key"))


def devices(out: Path) -> dict[str, Device]:
    with (out / "devices.csv").open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    return {
        r["location_id"]: Device(
            r["device_id"], r["location_id"], out / r["bundle"] / "etc/qr-checkin", r["config_hash"]
        )
        for r in rows
    }


@pytest.fixture
def fleet(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Iterator[Fleet]:
    """Two devices provisioned by `batch` with client certificates; the broker runs the generated ACL."""
    pki = make_pki(tmp_path / "pki")
    port = free_port()
    fleet_csv = tmp_path / "fleet.csv"
    fleet_csv.write_text(
        "kind,plate,location_id,address,ward,district,province\n"
        "bus,98C-123.45,,,,,\n"
        "door,,gate-1,Thôn A,Xã Hương Gián,Huyện Yên Dũng,Bắc Giang\n",
        encoding="utf-8",
    )
    out = tmp_path / "out"
    code, _, err = provision(
        capsys, "batch", fleet_csv, "--out", out, "--broker", f"mqtts://localhost:{port}",
        "--ca", pki.ca_cert, "--ca-key", pki.ca_key, "--no-labels",
    )  # fmt: skip
    assert code == 0, err
    extra = f"allow_anonymous false\nacl_file {out / 'broker' / 'acl'}\n{pki.listener(client_certs=True)}"
    broker = Mosquitto(tmp_path / "broker", port=port, extra=extra).start()
    try:
        found = devices(out)
        yield Fleet(out, pki, broker, found["98C12345"], found["gate-1"])
    finally:
        broker.kill()


def test_a_device_publishes_on_its_own_topics_and_is_refused_on_anothers(fleet: Fleet) -> None:
    consumer, bus = fleet.consumer(), fleet.bus.probe(fleet.broker.port)
    try:
        assert_connects(consumer)
        assert [rc.value for rc in consumer.subscribe("checkin/v1/#")] == [1]
        assert_connects(bus)
        assert bus.publish(fleet.bus.events, '{"n": 1}') == 0
        assert consumer.message() == (fleet.bus.events, b'{"n": 1}', False)

        assert bus.publish(fleet.door.events, '{"forged": true}') == NOT_AUTHORIZED
        assert bus.publish(fleet.door.status, '{"state": "offline"}', retain=True) == NOT_AUTHORIZED
        # mosquitto 2.0.11 also drops the connection after a refusal; paho reconnects. The consumer saw
        # nothing forged: the next message it gets is the bus's own.
        assert bus.publish(fleet.bus.events, '{"n": 2}') == 0
        assert consumer.message() == (fleet.bus.events, b'{"n": 2}', False)
    finally:
        bus.close()
        consumer.close()


def test_a_certificate_from_another_ca_is_not_let_in(fleet: Fleet, tmp_path: Path) -> None:
    rogue = make_pki(tmp_path / "rogue", ca_name="rogue CA")
    cert, key = rogue.client(fleet.door.id)
    probe = Probe(fleet.broker.port, ca=fleet.pki.ca_cert, cert=cert, key=key)
    try:
        # TLS 1.3 rejects the certificate after the handshake: no CONNACK rather than an exception.
        assert probe.connect(timeout=5) is None
    finally:
        probe.close()


def test_the_password_file_and_acl_work_in_mosquitto(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    port = free_port()
    fleet_csv = tmp_path / "fleet.csv"
    fleet_csv.write_text("plate\n98C-123.45\n51G1-234.56\n")
    out = tmp_path / "out"
    code, _, err = provision(
        capsys, "batch", fleet_csv, "--out", out, "--broker", f"mqtt://localhost:{port}", "--insecure"
    )
    assert code == 0, err
    extra = f"allow_anonymous false\nacl_file {out / 'broker/acl'}\npassword_file {out / 'broker/passwd'}"
    broker = Mosquitto(tmp_path / "broker", port=port, extra=extra).start()
    found = devices(out)
    bus, other = found["98C12345"], found["51G123456"]
    login = load_settings(bus.etc / "device.toml").broker
    assert login.username == bus.id and login.password is not None
    consumer = Probe(port, username="consumer", password=(out / "consumer/password").read_text().strip())
    device = Probe(port, username=bus.id, password=login.password.get_secret_value())
    intruder = Probe(port, username=bus.id, password="not-the-password")
    try:
        assert_connects(consumer)
        consumer.subscribe("checkin/v1/#")
        assert_connects(device)
        assert device.publish(bus.events, "{}") == 0
        assert consumer.message()[0] == bus.events
        assert device.publish(other.events, "{}") == NOT_AUTHORIZED
        refused = intruder.connect()
        assert refused is None or refused.is_failure
    finally:
        for probe in (intruder, device, consumer):
            probe.close()
        broker.kill()


def assert_connects(probe: Probe) -> None:
    connack = probe.connect()
    assert connack is not None and not connack.is_failure, connack


def test_verify_reads_the_retained_status_against_the_provisioning_record(
    fleet: Fleet, capsys: pytest.CaptureFixture[str]
) -> None:
    bus = fleet.bus.probe(fleet.broker.port)
    verify = (
        "verify",
        "--broker",
        fleet.url,
        *fleet.consumer_login(),
        "--device",
        fleet.bus.id,
        "--timeout",
        "1",
    )
    try:
        bus.connect()
        code, _, err = provision(capsys, *verify)
        assert code == 1 and f"no status from {fleet.bus.id}" in err

        status = {"state": "online", "device_id": fleet.bus.id, "location_id": "98C12345", "version": "0.1.0"}
        bus.publish(
            fleet.bus.status, json.dumps({**status, "config_hash": "0" * 12, "backlog": 0}), retain=True
        )
        code, _, err = provision(capsys, *verify)
        assert code == 1 and f"runs configuration '000000000000', expected '{fleet.bus.config_hash}'" in err

        bus.publish(fleet.bus.status, json.dumps({**status, "state": "offline"}), retain=True)
        code, _, err = provision(capsys, *verify)
        assert code == 1 and "is 'offline', not online" in err

        good = {
            **status,
            "config_hash": fleet.bus.config_hash,
            "backlog": 0,
            "scanners": {"serial:/dev/qr-scanner-serial": "connected"},
        }
        bus.publish(fleet.bus.status, json.dumps(good), retain=True)
        code, out, _ = provision(capsys, *verify)
        assert code == 0 and f"online with configuration {fleet.bus.config_hash}" in out
    finally:
        bus.close()


def test_verify_without_a_login_the_broker_accepts_fails_with_the_reason(
    fleet: Fleet, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ("verify", "--broker", fleet.url, "--ca", str(fleet.pki.ca_cert), "--device", fleet.bus.id)
    code, _, err = provision(capsys, *args, "--timeout", "5")
    assert code == 1 and "FAILED" in err and "closed the connection" in err
    code, _, err = provision(capsys, "verify", "--broker", fleet.url, "--device", "qrc-unknown")
    assert code == 1 and "no record of provisioning qrc-unknown" in err


# The Pi's pins, mocked: the provisioned config drives LEDs and a buzzer.
MOCK_PINS = {"GPIOZERO_PIN_FACTORY": "mock", "GPIOZERO_MOCK_PIN_CLASS": "mockpwmpin"}


def scanner_link(work: Path) -> Path:
    """Where the provisioned serial scanner (the Pi's udev link) is on this machine."""
    return work / "qr-scanner-serial"


def on_this_machine(device: Device, work: Path, device_id: str | None = None, *, bench: bool = True) -> Path:
    """The bundle's config with the device's paths moved under `work` (the laptop is not the Pi).

    On the bench the test types scans on stdin and reads the answers on stdout (console feedback);
    otherwise the provisioned serial scanner is a pty link under `work` and the LEDs are mock pins.
    """
    text = (device.etc / "device.toml").read_text()
    text = text.replace('"/etc/qr-checkin/', f'"{device.etc}/').replace(
        '"/var/lib/qr-checkin"', f'"{work}/state"'
    )
    text = text.replace('"/dev/qr-scanner-serial"', f'"{scanner_link(work)}"')
    text = text.replace('sources = ["serial"]', 'sources = ["serial", "stdin"]')
    if bench:
        text = text.replace('backend = "gpio"', 'backend = "console"')
    if device_id is not None:
        text = text.replace(f'id = "{device.id}"', f'id = "{device_id}"')
    config = work / "device.toml"
    config.write_text(text)
    return config


def test_the_daemon_with_a_provisioned_tls_config_publishes_and_verifies(
    fleet: Fleet, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = on_this_machine(fleet.bus, tmp_path)
    consumer = fleet.consumer()
    daemon = DaemonProcess(config)
    scanner = PtyScanner(scanner_link(tmp_path)).plug()
    try:
        consumer.connect()
        consumer.subscribe(fleet.bus.events)
        daemon.start()
        accepted = {daemon.scan(code)["event_id"] for code in other_codes(3)}
        received = {json.loads(consumer.message(timeout=20)[1])["event_id"] for _ in accepted}
        assert received == accepted
        daemon.stop()

        # Verified as provisioned: the serial scanner connected and the LEDs driven, not the bench's.
        config = on_this_machine(fleet.bus, tmp_path, bench=False)
        daemon = DaemonProcess(config, env=MOCK_PINS).start()
        verify = ("verify", "--broker", fleet.url, *fleet.consumer_login(), "--device", fleet.bus.id)
        code, out, err = provision(capsys, *verify, "--config", config)
        assert code == 0, err
        assert f"online with configuration {load_settings(config).config_hash()}" in out
        # The provisioning record holds the SD card's configuration; this one differs in its paths.
        code, _, err = provision(capsys, *verify, "--timeout", "1")
        assert code == 1 and f"expected '{fleet.bus.config_hash}'" in err
    finally:
        daemon.stop()
        consumer.close()
        scanner.unplug()


def test_verify_fails_while_no_configured_scanner_is_connected(
    fleet: Fleet, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = on_this_machine(fleet.bus, tmp_path, bench=False)
    verify = ("verify", "--broker", fleet.url, *fleet.consumer_login(), "--device", fleet.bus.id)
    daemon = DaemonProcess(config, env=MOCK_PINS).start()
    scanner = PtyScanner(scanner_link(tmp_path))
    try:
        daemon.wait_log("connected to broker", timeout=20)
        code, _, err = provision(capsys, *verify, "--config", config, "--timeout", "3")
        # stdin is "connected" but reads /dev/null under systemd: it is no scanner on a production config.
        assert code == 1 and "has no configured scanner connected" in err, err
        assert f"serial:{scanner_link(tmp_path)} disconnected" in err
        scanner.plug()
        # The device announces the scanner as it connects: no waiting for the minute's heartbeat.
        code, out, err = provision(capsys, *verify, "--config", config, "--timeout", "20")
        assert code == 0, err
        assert f"scanners serial:{scanner_link(tmp_path)}" in out
    finally:
        daemon.stop()
        scanner.unplug()


def test_a_daemon_outside_its_acl_keeps_its_events_and_alarms_once(fleet: Fleet, tmp_path: Path) -> None:
    # The door's certificate, but a device id the ACL does not give it: every publish gets 0x87.
    # An ACL can be fixed: the events wait on the device (retried with a growing pause), none is
    # dead-lettered, and the journal has one ALARM line for the episode (issue 12 item 3).
    config = on_this_machine(fleet.door, tmp_path, device_id="qrc-intruder")
    daemon = DaemonProcess(config).start()
    try:
        daemon.wait_log("connected to broker", timeout=20)
        for code in other_codes(3):
            assert daemon.scan(code)["feedback"] == "accepted"
        daemon.wait_log("ALARM: broker refused event seq=1", timeout=10)
        box = Outbox.open(tmp_path / "state")
        try:
            assert box.dead_letters() == []
            assert box.backlog().count == 3
        finally:
            box.close()
        assert daemon.stderr.count("ALARM: broker refused event") == 1
    finally:
        daemon.stop()


def test_the_birth_status_carries_where_the_location_is(fleet: Fleet, tmp_path: Path) -> None:
    consumer = fleet.consumer()
    daemon = DaemonProcess(on_this_machine(fleet.door, tmp_path))
    try:
        assert_connects(consumer)
        consumer.subscribe(fleet.door.status)
        daemon.start()
        status = json.loads(consumer.message(timeout=20)[1])
        assert status["state"] == "online"
        assert {k: v for k, v in status.items() if k.startswith("location_")} == {
            "location_id": "gate-1",
            "location_kind": "door",
            "location_name": "",
            "location_address": "Thôn A",
            "location_ward": "Xã Hương Gián",
            "location_district": "Huyện Yên Dũng",
            "location_province": "Bắc Giang",
        }
    finally:
        daemon.stop()
        consumer.close()
