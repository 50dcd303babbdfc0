"""An audit subscriber: a paho client that collects every message under a topic filter."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from device import mqtt_client
from tests.support.slowdown import scaled


class Subscriber:
    def __init__(self, port: int, topic: str = "checkin/#", host: str = "127.0.0.1") -> None:
        self.topic = topic
        self.messages: list[tuple[str, bytes, bool]] = []
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self.client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.subscriptions = 0
        self.client.on_subscribe = self._on_subscribe
        self.client.reconnect_delay_set(0.2, 1)  # type: ignore[arg-type]
        self.client.connect_async(host, port, keepalive=5)
        self.client.loop_start()
        if not self._subscribed.wait(10):
            raise TimeoutError("subscriber could not subscribe")

    def _on_connect(self, client: mqtt.Client, *_: Any) -> None:
        # The broker may have restarted without persistence: subscribe again every time.
        client.subscribe(self.topic, qos=1)

    def _on_subscribe(self, *_: Any) -> None:
        self.subscriptions += 1
        self._subscribed.set()

    def wait_subscribed(self, count: int, timeout: float = 15.0) -> None:
        """Waits until the subscription has been made `count` times (again after a broker restart)."""
        deadline = time.monotonic() + scaled(timeout)
        while self.subscriptions < count and time.monotonic() < deadline:
            time.sleep(0.02)
        if self.subscriptions < count:
            raise TimeoutError(f"subscribed {self.subscriptions} times, expected {count}")

    def _on_message(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.messages.append((msg.topic, bytes(msg.payload), bool(msg.retain)))

    def events(self) -> list[dict[str, Any]]:
        with self._lock:
            return [json.loads(p) for t, p, _ in self.messages if t.endswith("/events")]

    def statuses(self) -> list[dict[str, Any]]:
        with self._lock:
            return [json.loads(p) for t, p, _ in self.messages if t.endswith("/status")]

    def wait_events(self, predicate: Any, timeout: float = 30.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + scaled(timeout)
        while time.monotonic() < deadline:
            events = self.events()
            if predicate(events):
                return events
            time.sleep(0.05)
        raise AssertionError(f"condition not met within {timeout}s; {len(self.events())} events received")

    def wait_event_ids(self, ids: set[str], timeout: float = 30.0) -> list[dict[str, Any]]:
        return self.wait_events(lambda evs: ids <= {e["event_id"] for e in evs}, timeout)

    def event_payloads(self) -> list[bytes]:
        """The events as they came over the wire, for byte-for-byte comparisons."""
        with self._lock:
            return [p for t, p, _ in self.messages if t.endswith("/events")]

    def wait_status(self, predicate: Any, timeout: float = 15.0) -> dict[str, Any]:
        """The first status message satisfying `predicate` (received before or within `timeout`)."""
        deadline = time.monotonic() + scaled(timeout)
        while time.monotonic() < deadline:
            found = [s for s in self.statuses() if predicate(s)]
            if found:
                return found[0]
            time.sleep(0.05)
        raise AssertionError(f"no such status within {timeout}s; last: {self.statuses()[-1:]}")

    def send(self, topic: str, body: dict[str, Any] | bytes, retain: bool = False) -> None:
        """Publishes a command as the collector does (QoS 1) and waits for the broker to take it."""
        payload = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(10)

    def close(self) -> None:
        mqtt_client.disconnect(self.client)
