"""Several stand-in devices publishing at once across broker nodes, and the exactly-once check."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from typing import Any

import paho.mqtt.client as mqtt

from collector import tables as t
from collector.store import Store
from tests.support.collector import StandInDevice, events_topic, make_event, wait_until
from tests.support.slowdown import scaled


class Fleet:
    """`devices` stand-ins, device i on ports[i % len(ports)], each with `per_device` events to send."""

    def __init__(
        self, ports: list[int], devices: int, per_device: int, *, protocol: int = mqtt.MQTTv5
    ) -> None:
        self.devices = [
            StandInDevice(
                ports[i % len(ports)],
                [
                    make_event(seq, device_id=f"bus-{i}", location_id=f"98C{i:05d}")
                    for seq in range(1, per_device + 1)
                ],
                protocol=protocol,
            )
            for i in range(devices)
        ]
        self._threads: list[threading.Thread] = []

    @property
    def event_ids(self) -> set[str]:
        return {e["event_id"] for d in self.devices for e in d.by_seq.values()}

    def stream(self, rate_per_device: float) -> None:
        """Every device publishes its events in seq order at `rate_per_device`/s, in the background.
        paho queues what it cannot send while its node is down and sends it on reconnecting."""

        def run(device: StandInDevice) -> None:
            period = 1 / rate_per_device
            for seq in sorted(device.by_seq):
                event = device.by_seq[seq]
                device.client.publish(events_topic(event), json.dumps(event), qos=1)
                time.sleep(period)
            device.status()

        self._threads = [threading.Thread(target=run, args=(d,), daemon=True) for d in self.devices]
        for thread in self._threads:
            thread.start()

    def join(self, timeout: float = 120) -> None:
        for thread in self._threads:
            thread.join(scaled(timeout))
            assert not thread.is_alive(), "a device is still publishing"

    def close(self) -> None:
        for device in self.devices:
            device.close()


def wait_exactly_once(store: Store, expected: set[str], timeout: float) -> dict[str, Any]:
    """Waits until every expected event is stored, then checks each is there once and nothing else."""
    wait_until(lambda: store.count(t.events) >= len(expected), timeout, f"{len(expected)} events stored")
    rows = Counter(r["event_id"] for r in store.rows(t.events))
    assert set(rows) == expected, (len(set(rows) - expected), len(expected - set(rows)))
    assert max(rows.values()) == 1
    counters = store.counters()
    assert counters["received"] == counters["stored"] + counters["duplicate"] + counters["invalid"]
    assert counters["stored"] == len(expected)
    return counters
