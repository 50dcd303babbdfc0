"""What the README tells consumers about mosquitto (and why `make chaos` loads its ACL only for the
refusing-broker episodes), shown on the installed mosquitto: with an `acl_file`, a persistent session
restored from the broker's store after a restart gets nothing published before its client is back,
while the publisher hears PUBACK 0x00; without an ACL the same messages wait for it.

A test of the broker, not of our code: when it fails, mosquitto changed, and the README's consumer
caveat and bench/chaos.py's comment on ACL_REFUSING should change with it."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from tests.support.mosquitto import Mosquitto

TOPIC = "checkin/v1/L/D/events"
MESSAGES = 5


class Consumer:
    """A consumer with a persistent session (clean start off from the first connect, an hour's expiry)."""

    def __init__(self, port: int) -> None:
        self.received: list[bytes] = []
        self._subscribed = threading.Event()
        self.client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2, client_id="consumer", protocol=mqtt.MQTTv5
        )
        self.client.on_connect = lambda client, *_: client.subscribe(TOPIC, qos=1)
        self.client.on_subscribe = lambda *_: self._subscribed.set()
        self.client.on_message = lambda _c, _u, msg: self.received.append(bytes(msg.payload))
        session = Properties(PacketTypes.CONNECT)
        session.SessionExpiryInterval = 3600
        self.client.connect("127.0.0.1", port, keepalive=5, clean_start=False, properties=session)
        self.client.loop_start()
        assert self._subscribed.wait(10), "the consumer could not subscribe"

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def after_a_restart(tmp_path: Path, extra: str) -> tuple[list[int], list[bytes]]:
    """The PUBACK codes of messages published to a restarted broker while the consumer was away, and
    what the consumer then received on coming back."""
    broker = Mosquitto(tmp_path / "broker", persistence=True, extra=f"autosave_on_changes true\n{extra}")
    broker.start()
    try:
        consumer = Consumer(broker.port)
        time.sleep(0.5)  # its session and subscription saved
        consumer.client.loop_stop()  # away from here on: the broker dies under it
        broker.kill()
        broker.start()
        codes: list[int] = []
        publisher = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        publisher.on_publish = lambda _c, _u, _mid, reason, _p: codes.append(reason.value)
        publisher.connect("127.0.0.1", broker.port)
        publisher.loop_start()
        for i in range(MESSAGES):
            publisher.publish(TOPIC, str(i), qos=1).wait_for_publish(10)
        publisher.loop_stop()
        back = Consumer(broker.port)
        deadline = time.monotonic() + 3
        while len(back.received) < MESSAGES and time.monotonic() < deadline:
            time.sleep(0.05)
        back.close()
        return codes, back.received
    finally:
        broker.kill()


@pytest.mark.parametrize("with_acl", [False, True], ids=["no-acl", "acl-file"])
def test_a_restored_session_gets_what_was_published_while_away_only_without_an_acl(
    tmp_path: Path, with_acl: bool
) -> None:
    acl = tmp_path / "acl"
    acl.write_text("topic readwrite #\n")
    codes, received = after_a_restart(tmp_path, f"acl_file {acl}" if with_acl else "")
    assert codes == [0] * MESSAGES, "the broker took every message, for a subscriber it knows"
    if with_acl:
        assert received == [], "mosquitto with an acl_file kept them for the restored session after all"
    else:
        assert received == [str(i).encode() for i in range(MESSAGES)]
