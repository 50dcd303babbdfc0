"""The chain with the real daemon: the broker's queue overflows while the collector is down, the
collector finds the gap and the device replays it; every accepted scan ends in the database once."""

from __future__ import annotations

import json
from pathlib import Path

from collector import tables as t
from collector.settings import load_settings
from collector.store import Store
from tests.support.collector import Publisher, cli_json, running, stored_ids, wait_until, write_config
from tests.support.daemon import DaemonProcess
from tests.support.daemon import write_config as device_config
from tests.support.mosquitto import Mosquitto

SCANS = 40


def test_events_the_broker_dropped_come_back_from_the_real_device(database: str, tmp_path: Path) -> None:
    # mosquitto keeps at most 10 messages for the absent collector and drops the rest, silently.
    broker = Mosquitto(tmp_path / "broker", extra="max_queued_messages 10").start()
    config = write_config(tmp_path / "collector.toml", port=broker.port, url=database)
    settings = load_settings(config)
    store = Store(settings.database_url)
    daemon = DaemonProcess(
        device_config(tmp_path / "device.toml", port=broker.port, storage=tmp_path / "state")
    )
    watcher = Publisher(broker.port)
    marks: list[dict[str, object]] = []
    watcher.client.message_callback_add(
        "checkin/v1/+/+/cmd/committed", lambda _c, _u, m: marks.append(json.loads(m.payload))
    )
    watcher.subscriptions = [("checkin/v1/+/+/cmd/committed", 1)]
    watcher.client.subscribe(watcher.subscriptions)
    try:
        with running(settings):
            pass  # the collector's session now waits at the broker
        daemon.start()
        accepted = []
        for i in range(SCANS):
            decision = daemon.scan(f"VISITOR-PASS-{i:04d}-NOT-A-CARD")
            assert decision["feedback"] == "accepted", decision
            accepted.append(decision["event_id"])
        with running(settings):
            wait_until(lambda: set(accepted) <= set(stored_ids(store)), timeout=90, what="every scan stored")
            wait_until(lambda: any(m.get("through_seq") == SCANS for m in marks), timeout=30, what="the mark")
        assert sorted(stored_ids(store)) == sorted(accepted)
        (stream,) = cli_json("gaps", "--config", str(config))["streams"]
        assert stream["through_seq"] == SCANS and stream["open"] == [] and stream["known_losses"] == []
        assert stream["repaired"], "the broker dropped nothing: the queue did not overflow"
        c = store.counters()
        assert c["received"] == c["stored"] + c["duplicate"] + c["invalid"] and c["invalid"] == 0
        assert store.count(t.known_losses) == 0
    finally:
        daemon.stop()
        watcher.close()
        broker.kill()
        store.close()
