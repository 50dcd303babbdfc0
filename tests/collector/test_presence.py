"""Presence from statuses and wills; stale after two heartbeats without news, whatever is retained."""

from __future__ import annotations

import json
import time
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from collector import tables as t
from collector.settings import load_settings
from collector.store import Store
from device import contract
from tests.support.collector import (
    StandInDevice,
    cli_json,
    cli_text,
    make_event,
    running,
    wait_until,
    write_config,
)
from tests.support.mosquitto import Mosquitto


def devices(config: Path) -> dict[str, dict[str, object]]:
    return {d["device_id"]: d for d in cli_json("status", "--config", str(config))["devices"]}


def test_statuses_and_wills_fill_the_devices_table(broker: Mosquitto, database: str, tmp_path: Path) -> None:
    config = write_config(
        tmp_path / "collector.toml", port=broker.port, url=database, presence={"heartbeat_s": 1}
    )
    settings = load_settings(config)
    store = Store(settings.database_url)
    retained = StandInDevice(broker.port, [make_event(1, device_id="bus-old")])
    retained.status().wait_for_publish(10)  # retained at the broker before the collector exists
    retained.close()
    events = [make_event(seq) for seq in (1, 2)]
    device = StandInDevice(broker.port, events)
    # A device that vanishes: the broker publishes its will.
    doomed = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    will_topic = contract.Topics.of("checkin", "GATE1", "door-1").status
    will = contract.offline_status("connection lost", {"device_id": "door-1", "location_id": "GATE1"})
    doomed.will_set(will_topic, json.dumps(will), qos=1, retain=True)
    with running(settings):
        wait_until(lambda: store.count(t.devices) == 1, what="the retained status")
        assert devices(config)["bus-old"]["presence"] == "stale"  # retained is not news
        device.status().wait_for_publish(10)
        device.events(events)
        doomed.connect("127.0.0.1", broker.port, keepalive=5)
        doomed.loop_start()
        doomed.publish(
            will_topic,
            json.dumps(
                contract.online_status(
                    {
                        "device_id": "door-1",
                        "location_id": "GATE1",
                        "version": "1",
                        "config_hash": "x",
                        "incarnation": "i",
                        "boot_id": "b",
                        "last_seq": 0,
                        "backlog": 0,
                        "unheard": 0,
                        "counters": {},
                    }
                )
            ),
            qos=1,
            retain=True,
        )
        wait_until(lambda: store.count(t.devices) == 3, what="three devices")
        # The streams' prefix is written by the sweep that follows the commit.
        wait_until(lambda: devices(config)["bus-1"]["through_seq"] == 2, what="the prefix")
        shown = devices(config)
        assert shown["bus-1"]["presence"] == "online" and shown["door-1"]["presence"] == "online"
        assert (shown["bus-1"]["through_seq"], shown["bus-1"]["last_seq"], shown["bus-1"]["behind"]) == (
            2,
            2,
            0,
        )
        assert (shown["bus-1"]["version"], shown["bus-1"]["config_hash"], shown["bus-1"]["backlog"]) == (
            "test",
            "c0ffee",
            0,
        )
        doomed.loop_stop()
        sock = doomed.socket()
        assert sock is not None
        sock.close()  # no DISCONNECT: the broker sends the will after the keepalive
        wait_until(
            lambda: store.rows(t.devices, t.devices.c.device_id == "door-1")[0]["state"] == "offline",
            timeout=20,
            what="the will",
        )
        time.sleep(2.1)  # two heartbeats of 1 s without news
        shown = devices(config)
    assert shown["door-1"]["presence"] == "offline" and shown["door-1"]["version"] == "1"
    assert shown["bus-1"]["presence"] == "stale" and shown["bus-1"]["state"] == "online"
    text = cli_text("status", "--config", str(config))
    assert (
        "received 2 = stored 2 + duplicate 0 + invalid 0" in text and "bus-1 @ 98C12345 (bus): stale" in text
    )
    device.close()
    store.close()
