"""The publisher: the outbox in, the broker's acknowledgements out.

paho-mqtt keeps its own network thread; we keep one drain thread that owns every decision about the
outbox, so the flow reads top to bottom: take acks, record them, refill the in-flight window with the
oldest undelivered events (live ones first), wait. paho's callbacks only hand facts over through a
queue and never raise (an exception there would silently kill paho's thread).

A row leaves the outbox only after its PUBACK; a permanent refusal (MQTT v5 reason code >= 0x80, such
as 0x87 not authorised) moves it to the dead letters with a loud log instead of retrying forever.
"""

from __future__ import annotations

import collections
import json
import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

import paho.mqtt.client as mqtt
from paho.mqtt.reasoncodes import ReasonCode

from device import contract
from device.contract import Topics
from device.errors import StorageError
from device.mqtt_client import make_client
from device.outbox import Outbox
from device.settings import BrokerSettings

log = logging.getLogger(__name__)

# Seconds the drain thread sleeps when nothing wakes it: the cadence of heartbeats and retries.
IDLE_WAIT_S = 0.5
# Acknowledged events are marked delivered in batches of this many, or after this long.
DELIVERED_BATCH = 1000
DELIVERED_DELAY_S = 0.2
COMPLAINT_REPEAT_S = 60.0


@dataclass(slots=True)
class _InFlight:
    seq: int
    sent_at: float


def _guarded(fn: Callable[..., None]) -> Callable[..., None]:
    """paho's network thread dies on an exception in a callback: log it and carry on."""

    def wrapper(*args: Any) -> None:
        try:
            fn(*args)
        except Exception:
            log.exception("error in MQTT callback %s", fn.__name__)

    wrapper.__name__ = fn.__name__
    return wrapper


class Publisher:
    def __init__(
        self,
        broker: BrokerSettings,
        topics: Topics,
        client_id: str,
        outbox: Outbox,
        status: Callable[[], dict[str, Any]],
    ) -> None:
        self._broker = broker
        self.topics = topics
        self._outbox = outbox
        self._status = status
        # Filled by paho's thread, emptied by ours: deque appends and pops are atomic, and cheaper
        # than a Queue's lock on paho's busiest path.
        self._acks: collections.deque[tuple[int, ReasonCode]] = collections.deque()
        self._wake = threading.Event()
        self._wake_after = max(1, broker.inflight_window // 4)
        self._stopping = threading.Event()
        self._inflight: dict[int, _InFlight] = {}
        self._live_after = 0
        self._client_id = client_id
        self._status_mids: set[int] = set()
        self._status_refused = False
        self._live_cursor = 0
        self._backlog_cursor = 0
        self._delivered: list[int] = []
        self._delivered_since = 0.0
        self._last_complaint = -COMPLAINT_REPEAT_S
        self._new_connection = threading.Event()
        self._attempts = 0
        self._last_status = 0.0
        self.connected = False
        self.delivered = 0
        self._client = self._make_client(client_id)
        self._thread = threading.Thread(target=self._drain_loop, name="publisher", daemon=True)

    # -- set-up --------------------------------------------------------------------------------------

    def _make_client(self, client_id: str) -> mqtt.Client:
        b = self._broker
        client = make_client(b, client_id)
        # We hand paho at most the window; paho keeps half of it on the wire and queues the rest, so
        # an ack is answered by the next send in paho's own thread.
        client.max_inflight_messages_set(max(1, b.inflight_window // 2))
        client.max_queued_messages_set(0)
        client.will_set(self.topics.status, self._offline_payload("connection lost"), qos=1, retain=True)
        client.on_connect = _guarded(self._on_connect)
        client.on_connect_fail = _guarded(self._on_connect_fail)
        client.on_disconnect = _guarded(self._on_disconnect)
        client.on_publish = _guarded(self._on_publish)
        self._set_backoff(client)
        return client

    def _offline_payload(self, reason: str) -> str:
        return json.dumps(contract.offline_status(reason, self._status()))

    def _set_backoff(self, client: mqtt.Client) -> None:
        # Exponential backoff with jitter, so a fleet does not reconnect in lockstep after a broker
        # restart. paho's own doubling has no jitter, so we set each wait ourselves.
        b = self._broker
        delay = min(b.reconnect_max_s, b.reconnect_min_s * 2 ** min(self._attempts, 16))
        delay *= random.uniform(0.5, 1.0)
        # paho annotates the delays as int but computes with them as numbers; sub-second waits matter.
        client.reconnect_delay_set(cast(int, delay), cast(int, delay))

    def start(self) -> None:
        b = self._broker
        self._client.connect_async(b.host, b.port, keepalive=b.keepalive)
        self._client.loop_start()
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    # -- paho callbacks (network thread): hand facts over, never decide -------------------------------

    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, reason: ReasonCode, _p: Any) -> None:
        if reason.is_failure:
            log.error("broker refused the connection: %s", reason)
            return
        self._attempts = 0
        self._set_backoff(client)
        self.connected = True
        self._new_connection.set()
        self._publish_status()
        log.info("connected to broker %s:%s", self._broker.host, self._broker.port)
        self._wake.set()

    def _on_connect_fail(self, client: mqtt.Client, _u: Any) -> None:
        self._attempts += 1
        self._set_backoff(client)
        log.debug("broker unreachable (attempt %d)", self._attempts)

    def _on_disconnect(self, client: mqtt.Client, _u: Any, _f: Any, reason: ReasonCode, _p: Any) -> None:
        was = self.connected
        self.connected = False
        self._attempts += 1
        self._set_backoff(client)
        if was and not self._stopping.is_set():
            log.warning("disconnected from broker: %s; buffering", reason)

    def _on_publish(self, _c: mqtt.Client, _u: Any, mid: int, reason: ReasonCode, _p: Any) -> None:
        self._acks.append((mid, reason))
        # Waking the drain thread for every ack would fight paho's thread for the GIL; a quarter
        # window of acks is worth a round (the idle timeout collects the rest).
        waiting = len(self._acks)
        if (waiting >= self._wake_after or waiting >= len(self._inflight)) and not self._wake.is_set():
            self._wake.set()

    # -- the drain loop (our thread) ------------------------------------------------------------------

    def _drain_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                self._drain_once()
            except StorageError as exc:
                self._complain(f"publisher round failed: {exc}")
                self._stopping.wait(IDLE_WAIT_S)
            except Exception:
                # Nothing may end delivery for good; the next round tries again.
                log.exception("publisher round failed")
                self._stopping.wait(IDLE_WAIT_S)
            timeout = IDLE_WAIT_S
            if self._delivered:
                timeout = max(0.0, DELIVERED_DELAY_S - (time.monotonic() - self._delivered_since))
            self._wake.wait(timeout)
            self._wake.clear()

    def _drain_once(self) -> None:
        self._take_acks()
        if not self.connected:
            self._flush_delivered()
            return
        if self._new_connection.is_set():
            self._new_connection.clear()
            # Whatever is accepted after this moment is "live" and overtakes the backlog.
            self._live_after = self._outbox.max_seq()
            self._rewind()
        self._expire_stale()
        room = self._broker.inflight_window - len(self._inflight)
        # Refilling one slot per ack would cost a query each; a quarter window at a time keeps the pipe
        # full, and a single live event still goes out at once (the window is then nearly empty).
        if room >= max(1, self._broker.inflight_window // 4):
            self._refill(room)
        if (
            len(self._delivered) >= DELIVERED_BATCH
            or time.monotonic() - self._delivered_since >= DELIVERED_DELAY_S
        ):
            self._flush_delivered()
        if time.monotonic() - self._last_status >= self._broker.heartbeat_s:
            self._publish_status()

    def _rewind(self) -> None:
        self._live_cursor = self._live_after
        self._backlog_cursor = 0

    def _refill(self, room: int) -> None:
        taken = {f.seq for f in self._inflight.values()}
        rows = self._outbox.pending(room, after=self._live_cursor)
        if rows:
            self._live_cursor = rows[-1].seq
        if len(rows) < room:
            backlog = self._outbox.pending(
                room - len(rows), after=self._backlog_cursor, upto=self._live_after
            )
            if backlog:
                self._backlog_cursor = backlog[-1].seq
            rows += backlog
        for item in rows:
            # After a reconnect paho re-sends what it still holds; those rows are already in flight.
            if item.seq in taken:
                continue
            info = self._client.publish(self.topics.events, item.body, qos=1)
            self._inflight[info.mid] = _InFlight(item.seq, time.monotonic())

    def _take_acks(self) -> None:
        while self._acks:
            mid, reason = self._acks.popleft()
            code, text = reason.value, str(reason)
            if mid in self._status_mids:
                self._status_mids.discard(mid)
                self._status_answered(code, text)
                continue
            flight = self._inflight.pop(mid, None)
            if flight is None:
                continue  # an event already re-sent after a stale window
            if code >= 0x80:
                self._outbox.dead_letter(flight.seq, f"broker refused: {text} (0x{code:02x})")
                log.error(
                    "ALARM: broker refused event seq=%d permanently (%s); moved to dead letters",
                    flight.seq,
                    text,
                )
            else:
                if not self._delivered:
                    self._delivered_since = time.monotonic()
                self._delivered.append(flight.seq)

    def _status_answered(self, code: int, text: str) -> None:
        if code < 0x80:
            return
        # mosquitto closes the connection after a refused QoS 1 publish: re-sending the status at
        # every connect would then starve the events of their own answer (and their dead letter).
        if not self._status_refused:
            log.error(
                "ALARM: broker refused the status topic %s (%s): does the certificate CN or username match"
                " the device id %s?",
                self.topics.status,
                text,
                self._client_id,
            )
        self._status_refused = True

    def _flush_delivered(self) -> None:
        # One synced transaction per batch: a crash before it only means those events go out again.
        if not self._delivered:
            return
        try:
            self._outbox.mark_delivered(self._delivered)
        except StorageError as exc:
            # A full or failing disk: keep the marks for a later round; delivery and heartbeats go on.
            self._complain(f"cannot record deliveries: {exc}")
            return
        self.delivered += len(self._delivered)
        self._delivered = []

    def _complain(self, message: str) -> None:
        """Logs a fault at most once a minute, so a long fault does not flood the journal."""
        if time.monotonic() - self._last_complaint >= COMPLAINT_REPEAT_S:
            self._last_complaint = time.monotonic()
            log.error("%s", message)

    def _expire_stale(self) -> None:
        # paho re-sends unacked messages after a reconnect; an ack that never comes at all (a broker
        # that lost the session) must not hold a slot forever, so such rows go out again.
        limit = max(60.0, 4.0 * self._broker.keepalive)
        now = time.monotonic()
        stale = [m for m, f in self._inflight.items() if now - f.sent_at > limit]
        for mid in stale:
            del self._inflight[mid]
        if stale:
            self._rewind()

    def announce(self, **extra: Any) -> None:
        """Publishes the status now, with extra fields (a provisioning check, say)."""
        if self.connected:
            self._publish_status(extra)

    def _publish_status(self, extra: dict[str, Any] | None = None) -> None:
        self._last_status = time.monotonic()
        if self._status_refused:
            return
        payload = contract.online_status({**self._status(), **(extra or {})})
        info = self._client.publish(self.topics.status, json.dumps(payload), qos=1, retain=True)
        self._status_mids.add(info.mid)

    # -- stop -------------------------------------------------------------------------------------------

    def stop(self, timeout: float = 3.0) -> None:
        """Publishes the offline status, waits briefly for outstanding acks, disconnects."""
        deadline = time.monotonic() + timeout
        self._stopping.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(max(0.1, deadline - time.monotonic()))
        if self.connected:
            info = self._client.publish(
                self.topics.status, self._offline_payload("stopped"), qos=1, retain=True
            )
            try:
                info.wait_for_publish(max(0.1, deadline - time.monotonic()))
            except (RuntimeError, ValueError):
                log.warning("offline status not acknowledged before stop")
            while self._inflight and self.connected and time.monotonic() < deadline:
                time.sleep(0.02)
                self._take_acks()
        self._take_acks()
        self._flush_delivered()
        self._client.disconnect()
        self._client.loop_stop()
