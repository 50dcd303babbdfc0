"""End to end: a pty playing a serial-mode scanner against `qr-checkin run` and a real mosquitto."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from device.audit import AuditLog
from device.daemon import AUDIT_FILE
from tests.support.daemon import DaemonProcess, run_cli, serial_daemon, write_config
from tests.support.mosquitto import Mosquitto
from tests.support.payloads import valid_payloads
from tests.support.pty_scanner import PtyScanner
from tests.support.schema import validate_event
from tests.support.subscriber import Subscriber


@pytest.fixture
def subscriber(broker: Mosquitto) -> Iterator[Subscriber]:
    sub = Subscriber(broker.port)
    yield sub
    sub.close()


def test_serial_scanner_codes_are_accepted_and_published(
    tmp_path: Path, broker: Mosquitto, subscriber: Subscriber, scanner: PtyScanner
) -> None:
    port = str(scanner.link)
    daemon = serial_daemon(tmp_path, broker.port, port, direction="in")
    try:
        payloads = valid_payloads()
        terminators = [b"\r\n", b"\r", b"\n"]
        accepted = set()
        for i, payload in enumerate(payloads):
            raw = payload.encode()
            if any(ord(ch) > 0x7F for ch in payload):
                cut = next(j for j, byte in enumerate(raw) if byte >= 0xC0) + 1  # inside a multibyte char
                scanner.write(raw[:cut])
                time.sleep(0.05)
                scanner.write(raw[cut:] + terminators[i % 3])
            else:
                scanner.write(raw + terminators[i % 3])
            decision = daemon.next_decision()
            assert decision["feedback"] == "accepted", decision
            accepted.add(decision["event_id"])

        scanner.write(b"\xff\xfe\x80 not text\r\n")
        undecodable = daemon.next_decision()
        assert undecodable["feedback"] == "rejected" and "not UTF-8" in undecodable["reason"]
        scanner.write(b"\x01\x02binary\n")
        control = daemon.next_decision()
        assert control["feedback"] == "rejected" and "control character" in control["reason"]

        # Unplugged mid-code: nothing half is answered or published; the replug is picked up.
        scanner.write(payloads[0].encode()[:30])
        time.sleep(0.05)
        scanner.unplug()
        daemon.wait_log(f"serial scanner {port} disconnected")
        scanner.plug()
        deadline = time.monotonic() + 5
        while daemon.stderr.count(f"serial scanner {port} connected") < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        scanner.write(b"VISITOR-AFTER-REPLUG\r\n")
        replugged = daemon.next_decision()
        assert replugged["feedback"] == "accepted" and replugged["code_type"] == "other"
        accepted.add(replugged["event_id"])
        assert daemon.decisions.empty(), "the half code must not have been answered"

        events = subscriber.wait_event_ids(accepted)
        assert daemon.terminate(timeout=10) == 0
    finally:
        daemon.stop()
    for event in events:
        validate_event(event)
    published = {e["event_id"]: e for e in events}
    assert set(published) == accepted
    assert {e["source"] for e in published.values()} == {"serial"}
    assert {e["direction"] for e in published.values()} == {"in"}
    assert {e["code"]["type"] for e in published.values()} == {"bhyt", "cccd", "other"}
    for payload in valid_payloads():
        assert payload[:12] not in daemon.stderr


def test_a_scanner_path_longer_than_128_characters_is_no_crash(tmp_path: Path, broker: Mosquitto) -> None:
    """Issue 12 item 8: by-id names come from USB descriptors; a long one crash-looped `run` at start
    while `check-config` passed. Both agree now, and the audit log keeps the name cut short."""
    long_link = tmp_path / "dev/serial/by-id" / f"usb-{'Vendor_' * 20}QR_Scanner_S1-if00"
    assert len(str(long_link)) > 128
    pty = PtyScanner(long_link).plug()
    config = write_config(
        tmp_path / "device.toml",
        port=broker.port,
        storage=tmp_path / "state",
        scanner={"sources": ["serial"]},
        **{"scanner.serial": {"port": str(long_link), "rescan_s": 0.2}},  # type: ignore[arg-type]
    )
    assert run_cli("check-config", "--config", str(config)).returncode == 0
    daemon = DaemonProcess(config).start()
    try:
        daemon.wait_log(f"serial scanner {long_link} connected")
        pty.write(b"VISITOR-LONG-PATH\r\n")
        assert daemon.next_decision()["feedback"] == "accepted"
        assert daemon.terminate() == 0
    finally:
        daemon.stop()
        pty.unplug()
    audit = AuditLog(tmp_path / "state" / AUDIT_FILE).read()
    named = [r["device"] for r in audit if r["event"].startswith("scanner_")]
    assert named and all(len(n) == 128 and str(long_link).startswith(n[:-1]) for n in named), named
