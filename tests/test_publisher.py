"""The publisher against a real broker: permanent refusals end in the dead letters."""

from __future__ import annotations

from pathlib import Path

from device.outbox import Outbox
from tests.support.daemon import DaemonProcess, write_config
from tests.support.mosquitto import Mosquitto
from tests.support.payloads import other_codes


def test_refused_publish_goes_to_dead_letters_not_endless_retry(tmp_path: Path) -> None:
    acl = tmp_path / "acl"
    # Anonymous clients may write their status but not events: the broker answers 0x87 (MQTT v5).
    acl.write_text("topic write checkin/v1/+/+/status\n")
    broker = Mosquitto(tmp_path / "broker", extra=f"acl_file {acl}").start()
    config = write_config(tmp_path / "device.toml", port=broker.port, storage=tmp_path / "state")
    daemon = DaemonProcess(config).start()
    try:
        daemon.wait_log("connected to broker")
        for code in other_codes(3):
            assert daemon.scan(code)["feedback"] == "accepted"
        daemon.wait_log("ALARM: broker refused event seq=3", timeout=20)
        box = Outbox(tmp_path / "state" / "outbox.sqlite")
        letters = box.dead_letters()
        assert [d["seq"] for d in letters] == [1, 2, 3]
        assert all("0x87" in d["reason"] for d in letters)
        assert box.backlog().count == 0
    finally:
        daemon.stop()
        broker.kill()
