"""Ingest from a RabbitMQ cluster over AMQP 0-9-1: competing consumers on one quorum queue.

RabbitMQ's MQTT plugin routes every device publish through the topic exchange `amq.topic`, the topic's
`/` becoming the routing key's `.`. Every collector instance declares the same quorum queue (durable,
replicated by Raft across the nodes), binds it to the events and status keys and consumes from it:
RabbitMQ hands each delivery to one consumer, a consumer that dies has its unacknowledged deliveries
handed to the others, and the queue outlives every instance and any one node. This is what an MQTT
shared subscription cannot give on RabbitMQ (the plugin has none) nor on mosquitto (the group's
queue dies with its members).

The batch, store, gaps and presence code are the MQTT collector's (collector/ingest.py); only the
transport differs: deliveries enter the same inbox, acknowledgements go out after the commit (on the
channel they came in on: delivery tags are per channel), and commands to devices are published to the
exchange, which delivers them to the devices' MQTT subscriptions.

What RabbitMQ does differently, and how it is handled:
- a `.` inside an id splits a routing-key word: such a topic never matches `checkin.v1.*.*.events`.
  The queue is bound with `#` instead, so those messages arrive, fail the topic parser and are kept
  as invalid messages (named, not silently unrouted); provisioning refuses `.` in new ids for such a
  site (`qr-provision --broker-kind rabbitmq`).
- retained messages are not delivered to wildcard subscriptions (and are node-local): presence comes
  from live heartbeats and wills only, every status here is news. The `cmd/committed` mark cannot be
  retained over AMQP; the collector repeats it as the prefix advances, and a device that misses it
  keeps its events a little longer (its grace), which loses nothing.
- MQTT sessions expire after a day by default (`mqtt.max_session_expiry_interval_seconds`): that
  touches the devices' command subscriptions, not this queue, which has no expiry.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import random
import threading
import time
from collections.abc import Sequence
from typing import Any

import pika
import pika.exceptions
from pika.adapters.blocking_connection import BlockingChannel

from collector.ingest import Collector, Inbound
from collector.metrics import Metrics
from collector.settings import Settings
from device.notify import Notifier

log = logging.getLogger(__name__)
# pika logs every step of every connection at INFO; ours says what an operator needs.
logging.getLogger("pika").setLevel(logging.WARNING)
POLL_S = 0.2


def routing_key(topic: str) -> str:
    """The AMQP routing key RabbitMQ's MQTT plugin gives an MQTT topic."""
    return topic.replace("/", ".")


def topic_of(key: str) -> str:
    return key.replace(".", "/")


def bindings(prefix: str) -> tuple[str, str]:
    # `#` rather than `*` for the two id levels: a dotted id arrives (and is refused by name).
    return f"{routing_key(prefix)}.v1.#.events", f"{routing_key(prefix)}.v1.#.status"


class AmqpCollector(Collector):
    def __init__(
        self, settings: Settings, *, metrics: Metrics | None = None, notifier: Notifier | None = None
    ):
        super().__init__(settings, metrics=metrics, notifier=notifier)
        self._channel: tuple[pika.BlockingConnection, BlockingChannel, int] | None = None
        self._thread = threading.Thread(target=self._consume, name="amqp", daemon=True)
        self.node: str | None = None

    def start(self) -> None:
        self._thread.start()

    def _disconnect(self) -> None:
        self._thread.join(10)

    # -- the AMQP thread: owns the connection; others reach it through add_callback_threadsafe ------

    def _consume(self) -> None:
        a = self.settings.amqp
        urls = [u.get_secret_value() for u in a.urls]
        start = random.randrange(len(urls))  # instances spread over the nodes
        attempt = 0
        while not self._stop.is_set():
            url = urls[(start + attempt) % len(urls)]
            try:
                self._session(url)
                attempt = 0
            except (pika.exceptions.AMQPError, OSError) as exc:
                self._lost(f"{type(exc).__name__}: {exc}"[:200])
            attempt += 1
            if attempt % len(urls) == 0:
                # Every node tried: back off (with jitter) before the next round.
                rounds = attempt // len(urls)
                delay = min(a.reconnect_max_s, a.reconnect_min_s * 2 ** min(rounds, 16))
                self._stop.wait(random.uniform(delay / 2, delay))

    def _session(self, url: str) -> None:
        a = self.settings.amqp
        params = pika.URLParameters(url)
        params.heartbeat = a.heartbeat_s
        params.blocked_connection_timeout = 60
        params.connection_attempts = 1
        connection = pika.BlockingConnection(params)
        try:
            channel = connection.channel()
            channel.queue_declare(a.queue, durable=True, arguments={"x-queue-type": "quorum"})
            for key in bindings(self.prefix):
                channel.queue_bind(a.queue, a.exchange, routing_key=key)
            channel.basic_qos(prefetch_count=a.prefetch)
            with self._ack_lock:
                self._connection += 1
                number = self._connection
                self._channel = (connection, channel, number)

            def deliver(_ch: Any, method: Any, _props: Any, body: bytes) -> None:
                self._inbox.put(
                    Inbound(
                        topic_of(method.routing_key),
                        body,
                        method.delivery_tag,
                        1,
                        False,
                        number,
                        time.monotonic(),
                    )
                )

            channel.basic_consume(a.queue, deliver)
            self.node = f"{params.host}:{params.port}"
            self.metrics.connected.set(1)
            self.connected.set()
            log.info("connected to %s (amqp, queue %s)", self.node, a.queue)
            while not self._stop.is_set():
                connection.process_data_events(time_limit=POLL_S)
        finally:
            with self._ack_lock:
                self._channel = None
                self._connection += 1
            if connection.is_open:
                with contextlib.suppress(pika.exceptions.AMQPError, OSError):
                    connection.close()

    def _lost(self, why: str) -> None:
        if self.connected.is_set():
            log.warning("lost the AMQP node %s: %s", self.node, why)
        self.connected.clear()
        self.metrics.connected.set(0)

    # -- from the writer thread -----------------------------------------------------------------------

    def _ack(self, messages: Sequence[Inbound]) -> None:
        with self._ack_lock:
            if self._channel is None:
                return
            connection, channel, number = self._channel
            tags = [m.mid for m in messages if m.connection == number]
            if tags:
                # One ack for the batch: the writer takes deliveries in order and acknowledges every
                # batch it commits, so each earlier tag on this channel is acknowledged already.
                connection.add_callback_threadsafe(
                    functools.partial(channel.basic_ack, delivery_tag=max(tags), multiple=True)
                )

    def _publish(self, topic: str, payload: str, *, retain: bool) -> None:
        # Not retained: AMQP has no such flag (see the module's notes on cmd/committed).
        with self._ack_lock:
            if self._channel is None:
                return  # the gap sweep asks again; the mark is repeated when the prefix moves
            connection, channel, _ = self._channel
            props = pika.BasicProperties(delivery_mode=2)  # persistent: QoS 1 to the subscriber
            connection.add_callback_threadsafe(
                functools.partial(
                    channel.basic_publish,
                    self.settings.amqp.exchange,
                    routing_key(topic),
                    payload.encode(),
                    props,
                )
            )
