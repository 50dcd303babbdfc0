"""The daemon as systemd sees it: sd_notify from the real process, and a provisioning label at the reader.

A temporary AF_UNIX datagram socket stands in for systemd's notify socket (NOTIFY_SOCKET), exactly as
systemd passes it to a Type=notify service.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from device.daemon import AUDIT_FILE
from device.label_code import format_label_code
from device.settings import load_settings
from tests.support.daemon import DaemonProcess, write_config
from tests.support.mosquitto import Mosquitto, free_port
from tests.support.notify import NotifySocket
from tests.support.payloads import other_codes
from tests.support.schema import validate_status
from tests.support.slowdown import scaled
from tests.support.subscriber import Subscriber

WATCHDOG_USEC = 2_000_000


def test_ready_without_a_broker_watchdog_from_the_loop_status_lines_and_stopping(
    tmp_path: Path, notify: NotifySocket
) -> None:
    # Nothing listens on this port: a bus in a depot with no network.
    config = write_config(tmp_path / "device.toml", port=free_port(), storage=tmp_path / "state")
    daemon = DaemonProcess(config, env={"NOTIFY_SOCKET": notify.address, "WATCHDOG_USEC": str(WATCHDOG_USEC)})
    spawned = time.monotonic()
    daemon.start()
    try:
        # Scans in a burst keep the event loop busy while the watchdog is watched.
        codes = other_codes(200)
        daemon.send("\n".join(codes))
        answers = [daemon.next_decision() for _ in codes]
        assert all(a["feedback"] == "accepted" for a in answers)
        notify.wait_for(lambda: any("accepted 200" in s for s in notify.statuses()), timeout=8)
        notify.wait_for(lambda: len(notify.times_of("WATCHDOG=1")) >= 5, timeout=8)
        assert daemon.terminate(timeout=10) == 0
    finally:
        daemon.stop()
    notify.wait_for(lambda: notify.times_of("STOPPING=1"), timeout=2)

    (ready,) = notify.times_of("READY=1")
    took = ready - spawned
    assert took < scaled(5.0), f"READY=1 {took:.1f}s after spawn, with no broker reachable"
    ready_lines = next(lines for at, lines in notify.received if "READY=1" in lines)
    assert any(line.startswith("STATUS=buffering, backlog 0") for line in ready_lines), ready_lines

    pings = notify.times_of("WATCHDOG=1")
    (stopping,) = notify.times_of("STOPPING=1")
    assert all(ping < stopping for ping in pings), "the watchdog was fed after STOPPING=1"
    gaps = [b - a for a, b in zip([ready, *pings], pings, strict=False)]
    # Half of WatchdogSec (1 s) is the cadence; 1.5 s leaves room for a busy CI core, and more than
    # 0.5 s shows the pings follow the interval rather than every turn of the loop.
    assert len(gaps) >= 5 and all(0.5 <= gap <= 1.5 for gap in gaps[1:]), [round(g, 2) for g in gaps]
    assert gaps[0] <= 1.5

    *status_lines, last = notify.statuses()
    assert last == "STATUS=stopping"
    assert all(" backlog " in line and " clock " in line for line in status_lines)
    assert any(
        line.startswith("STATUS=buffering, backlog 200, accepted 200, rejected 0") for line in status_lines
    )


def test_a_provisioning_label_identifies_the_device_and_is_no_checkin(
    tmp_path: Path, broker: Mosquitto
) -> None:
    sub = Subscriber(broker.port)
    config = write_config(tmp_path / "device.toml", port=broker.port, storage=tmp_path / "state")
    settings = load_settings(config)
    own = format_label_code(settings.device.id, settings.location.id, settings.config_hash())
    foreign = format_label_code("bus-other-9", settings.location.id, "0123456789ab")
    daemon = DaemonProcess(config).start()
    try:
        daemon.wait_log("connected to broker")
        mark = daemon.mark()
        daemon.send(own + "\r")
        daemon.wait_log("feedback signal: identify", after=mark)
        daemon.wait_log("provisioning label scanned: device matches=True, configuration matches=True")
        daemon.send(foreign)
        daemon.wait_log("provisioning label scanned: device matches=False, configuration matches=False")
        # A label gets no answer on the decision channel: the next answer is this visitor's.
        visitor = daemon.scan("VISITOR-AFTER-LABELS")
        assert visitor["feedback"] == "accepted"
        events = sub.wait_event_ids({visitor["event_id"]}, timeout=10)
        checks = _provisioning_checks(sub, count=2)
        assert daemon.terminate() == 0
    finally:
        daemon.stop()
        sub.close()

    assert [e["seq"] for e in events] == [1], "a label must not publish a check-in nor use a seq"
    assert checks[0] == {
        "label_device_id": settings.device.id,
        "label_location_id": settings.location.id,
        "label_config_hash": settings.config_hash(),
        "matches": True,
        "config_matches": True,
    }
    assert checks[1]["label_device_id"] == "bus-other-9"
    assert checks[1]["matches"] is False and checks[1]["config_matches"] is False
    audit = [json.loads(line) for line in (tmp_path / "state" / AUDIT_FILE).read_text().splitlines()]
    labels = [(r["matches"], r["config_matches"]) for r in audit if r["event"] == "label_scanned"]
    assert labels == [(True, True), (False, False)]


def _provisioning_checks(sub: Subscriber, count: int, timeout: float = 10.0) -> list[dict[str, object]]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        statuses = [s for s in sub.statuses() if "provisioning_check" in s]
        if len(statuses) >= count:
            for status in statuses:
                validate_status(status)
                assert status["state"] == "online"
            return [s["provisioning_check"] for s in statuses]
        time.sleep(0.05)
    raise AssertionError(f"fewer than {count} status messages with a provisioning_check")
