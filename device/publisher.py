"""The publisher: the outbox in, the broker's acknowledgements out.

paho-mqtt keeps its own network thread; we keep one drain thread that owns every publish and every
decision about the outbox, so the flow reads top to bottom: take acks and commands, record them,
refill the in-flight window (device/window.py), publish the status when due (device/status_schedule.py),
wait. The paho client, its reconnect backoff and the naming of connection errors are in
device/mqtt_client.py. paho's callbacks
only hand facts over through deques and never raise (an exception there would silently kill paho's
thread); the daemon's own requests (`announce`) go the same way.

A row leaves the outbox only after its PUBACK:
- 0x00 delivered;
- 0x10 "no matching subscribers" (nobody got it): delivered but unheard, kept until the collector's
  checkin.committed/1 covers it;
- a refusal that can never succeed for this message (FINAL_REFUSALS: a malformed topic or payload)
  moves it to the dead letters (`qr-checkin dead-letters --retry` puts them back);
- any other refusal (0x80 unspecified, 0x83, 0x87 not authorised while an ACL is being fixed, 0x97
  quota) keeps it and retries with a growing pause, one ALARM line per episode.
MQTT 3.1.1 has no reason codes: there a PUBACK is plain delivery.

A broker that never answers is not handed the same rows again (paho still holds them and re-sends them
after a reconnect): after ACK_TIMEOUT the publisher drops the connection, so paho sends them again.

The device also obeys the collector's two commands (protocol in device/contract.py): `cmd/replay`
republishes a range still on disk through the same window, then answers in the status; the retained
`cmd/committed` releases what the collector has stored.
"""

from __future__ import annotations

import collections
import contextlib
import json
import logging
import socket
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, cast

import paho.mqtt.client as mqtt
from paho.mqtt.reasoncodes import ReasonCode

from device import contract, mqtt_client
from device.contract import Topics
from device.errors import StorageError
from device.mqtt_client import Failover, describe_connect_error, make_client, reconnect_delay
from device.settings import BrokerSettings
from device.status_schedule import StatusSchedule
from device.store import Outbox
from device.window import Replay, Window

log = logging.getLogger(__name__)

# Seconds the drain thread sleeps when nothing wakes it: the cadence of heartbeats and retries.
IDLE_WAIT_S = 0.5
# Acknowledged events are marked delivered in batches of this many, or after this long.
DELIVERED_BATCH = 1000
DELIVERED_DELAY_S = 0.2
COMPLAINT_REPEAT_S = 60.0
# Replay requests: at most this many waiting, and a bucket of REPLAY_BURST requests refilled by one
# every REPLAY_EVERY_S, so a confused collector cannot keep a device busy re-sending its disk.
REPLAY_QUEUE = 4
REPLAY_BURST = 5
REPLAY_EVERY_S = 6.0
# The MQTT 5 reason code "no matching subscribers".
NO_MATCHING_SUBSCRIBERS = 0x10
# PUBACK reason codes after which the same message can never be accepted: only these dead-letter.
# (0x95 "packet too large" is no PUBACK code: mosquitto disconnects, and the event waits.)
FINAL_REFUSALS = {0x90: "topic name invalid", 0x99: "payload format invalid"}
# The pause before refused events are sent again: doubling from the first to the last.
REFUSED_RETRY_S = (5.0, 300.0)


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
        *,
        ack_timeout_s: float | None = None,
    ) -> None:
        self._broker = broker
        self.topics = topics
        self._outbox = outbox
        self._status = status
        self._client_id = client_id
        # How long a message may wait for its PUBACK before the connection is taken for dead.
        self._ack_timeout_s = ack_timeout_s or max(60.0, 4.0 * broker.keepalive)
        # Filled by paho's thread (and announce), emptied by ours: deque appends and pops are atomic,
        # and cheaper than a Queue's lock on paho's busiest path.
        self._acks: collections.deque[tuple[int, ReasonCode]] = collections.deque()
        self._commands: collections.deque[tuple[str, bytes]] = collections.deque()
        self._announcements: collections.deque[dict[str, Any]] = collections.deque()
        self._new_connection = threading.Event()
        self._wake = threading.Event()
        self._wake_after = max(1, broker.inflight_window // 4)
        self._stopping = threading.Event()
        self._window = Window(broker.inflight_window)
        self._delivered: list[int] = []
        self._unheard: list[int] = []
        self._delivered_since = 0.0
        self._replay_tokens = float(REPLAY_BURST)
        self._replay_tokens_at = time.monotonic()
        self._committed_through = 0
        # Troubles already logged; each is logged again only after it went away. paho's thread keeps
        # its own set (connection troubles), so neither thread races the other's.
        self._said: set[str] = set()
        self._said_net: set[str] = set()
        self._refused_until = 0.0
        self._refused_pause = 0.0
        self._schedule = StatusSchedule(broker.heartbeat_s)
        self._last_complaint = -COMPLAINT_REPEAT_S
        self._attempts = 0
        self.connected = False
        self.delivered = 0
        self._failover = Failover(broker, client_id)
        self._client = self._make_client(client_id)
        self._thread = threading.Thread(target=self._drain_loop, name="publisher", daemon=True)

    # -- set-up --------------------------------------------------------------------------------------

    def _make_client(self, client_id: str) -> mqtt.Client:
        b = self._broker
        client = make_client(b, client_id)
        # We hand paho at most the window; paho keeps half of it on the wire and queues the rest, so
        # an ack is answered by the next send in paho's own thread.
        client.max_inflight_messages_set(max(1, b.inflight_window // 2))
        # The window bounds what paho holds; the status and the offline message come on top.
        client.max_queued_messages_set(0)
        client.will_set(self.topics.status, self._offline_payload("connection lost"), qos=1, retain=True)
        client.on_connect = _guarded(self._on_connect)
        client.on_connect_fail = _guarded(self._on_connect_fail)
        client.on_disconnect = _guarded(self._on_disconnect)
        client.on_publish = _guarded(self._on_publish)
        client.on_subscribe = _guarded(self._on_subscribe)
        client.on_message = _guarded(self._on_message)
        self._set_backoff(client)
        return client

    def _offline_payload(self, reason: str) -> str:
        return json.dumps(contract.offline_status(reason, self._status()))

    def _set_backoff(self, client: mqtt.Client) -> None:
        delay = reconnect_delay(self._attempts, self._broker.reconnect_min_s, self._broker.reconnect_max_s)
        # paho annotates the delays as int but computes with them as numbers; sub-second waits matter.
        client.reconnect_delay_set(cast(int, delay), cast(int, delay))

    def _next_node(self, client: mqtt.Client) -> None:
        # paho reconnects to client.host/port after its wait: point it at the next node first.
        if not self._failover.several:
            return
        host, port = self._failover.advance()
        # paho's host/port setters refuse while its state says "connecting", which is what it says
        # between two attempts; its reconnect reads these two fields, and the socket is closed here.
        client._host, client._port = host, port
        log.info("next broker node: %s:%s", host, port)

    def start(self) -> None:
        host, port = self._failover.current()
        self._client.connect_async(host, port, keepalive=self._broker.keepalive)
        self._client.loop_start()
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def announce(self, **extra: Any) -> None:
        """Publishes the status soon, with extra fields (a provisioning check, say)."""
        if self.connected:
            self._announcements.append(extra)
            self._wake.set()

    # -- paho callbacks (network thread): hand facts over, never decide -------------------------------

    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, reason: ReasonCode, _p: Any) -> None:
        if reason.is_failure:
            self._say_once(
                f"connack {reason}", logging.ERROR, "broker refused the connection: %s", reason, net=True
            )
            return
        self._attempts = 0
        self._set_backoff(client)
        self._said_net = {key for key in self._said_net if not key.startswith(("connect ", "connack "))}
        self.connected = True
        self._new_connection.set()
        self._wake.set()

    def _on_connect_fail(self, client: mqtt.Client, _u: Any) -> None:
        self._attempts += 1
        self._set_backoff(client)
        # paho calls this from inside its `except OSError`: the exception is the reason.
        tls, why = describe_connect_error(sys.exc_info()[1])
        b = client  # the node that failed, before moving on
        if tls:
            self._say_once(
                f"connect {why}",
                logging.WARNING,
                "TLS with broker %s:%s failed: %s (retrying; logged once until it changes)",
                b.host,
                b.port,
                why,
                net=True,
            )
        else:
            self._say_once(
                f"connect {why}", logging.INFO, "broker %s:%s unreachable: %s", b.host, b.port, why, net=True
            )
        log.debug("broker unreachable (attempt %d)", self._attempts)
        self._next_node(client)

    def _on_disconnect(self, client: mqtt.Client, _u: Any, _f: Any, reason: ReasonCode, _p: Any) -> None:
        was = self.connected
        self.connected = False
        self._attempts += 1
        self._set_backoff(client)
        if was and not self._stopping.is_set():
            log.warning("disconnected from broker %s:%s: %s; buffering", client.host, client.port, reason)
        if not self._stopping.is_set():
            self._next_node(client)

    def _on_publish(self, _c: mqtt.Client, _u: Any, mid: int, reason: ReasonCode, _p: Any) -> None:
        self._acks.append((mid, reason))
        # Waking the drain thread for every ack would fight paho's thread for the GIL; a quarter
        # window of acks is worth a round (the idle timeout collects the rest).
        waiting = len(self._acks)
        if (waiting >= self._wake_after or waiting >= len(self._window)) and not self._wake.is_set():
            self._wake.set()

    def _on_subscribe(self, _c: mqtt.Client, _u: Any, _mid: int, reasons: list[ReasonCode], _p: Any) -> None:
        refused = [str(r) for r in reasons if r.is_failure]
        if refused:
            self._say_once(
                "subscribe",
                logging.WARNING,
                "broker refused the subscription to %s and %s (%s): replay requests and confirmations from"
                " the collector cannot reach this device; does the ACL let it read its cmd/ topics?",
                self.topics.cmd_replay,
                self.topics.cmd_committed,
                ", ".join(refused),
                net=True,
            )

    def _on_message(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        self._commands.append((msg.topic, bytes(msg.payload)))
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
            if self._delivered or self._unheard:
                timeout = max(0.0, DELIVERED_DELAY_S - (time.monotonic() - self._delivered_since))
            self._wake.wait(timeout)
            self._wake.clear()

    def _drain_once(self) -> None:
        self._take_acks()
        self._take_commands()
        if not self.connected:
            self._flush_delivered()
            return
        now = time.monotonic()
        if self._new_connection.is_set():
            self._new_connection.clear()
            # Whatever is accepted after this moment is "live" and overtakes the backlog; paho is
            # sending again what it held, so their wait starts now.
            self._window.connected(self._outbox.max_seq(), now)
            self._client.subscribe([(self.topics.cmd_replay, 1), (self.topics.cmd_committed, 1)])
            self._schedule.connected(now)
            self._publish_status()
            # Logged once the birth status is on its way: "connected" means others can see it.
            log.info("connected to broker %s:%s", self._client.host, self._client.port)
        while self._announcements:
            self._publish_status(self._announcements.popleft())
        if self._stalled(now):
            return
        if self._refused_until and now >= self._refused_until:
            self._refused_until = 0.0
            self._window.rewind()  # the refused rows are still pending: from the start
        room = self._window.room
        # Refilling one slot per ack would cost a query each; a quarter window at a time keeps the pipe
        # full, and a single live event still goes out at once (the window is then nearly empty).
        if not self._refused_until and room >= max(1, self._broker.inflight_window // 4):
            self._refill(room)
        if (
            len(self._delivered) + len(self._unheard) >= DELIVERED_BATCH
            or now - self._delivered_since >= DELIVERED_DELAY_S
        ):
            self._flush_delivered()
        if self._schedule.due(now):
            self._publish_status()

    def _stalled(self, now: float) -> bool:
        """A broker that takes messages and never answers: drop the link so paho sends them again."""
        waiting = self._window.stalled(now, self._ack_timeout_s)
        if not waiting:
            return False
        log.warning(
            "no PUBACK for %d message(s) in %.0f s: reconnecting, so they are sent again",
            waiting,
            self._ack_timeout_s,
        )
        self._window.connected(self._window.live_after, now)  # give the new link its own time
        sock = self._client.socket()
        if sock is not None:
            # paho notices the closed socket, reconnects with its backoff and re-sends what it holds.
            with contextlib.suppress(OSError):
                cast(socket.socket, sock).shutdown(socket.SHUT_RDWR)
        return True

    def _refill(self, room: int) -> None:
        rows, answered = self._window.next_rows(self._outbox, room)
        now = time.monotonic()
        for item in rows:
            info = self._client.publish(self.topics.events, item.body, qos=1)
            if not self._taken(info):
                self._window.rewind()  # the row is still pending: it goes out under another id
                break
            self._window.sent(info.mid, item.seq, now)
        # The answer follows its events on the same connection, so it arrives after them.
        for job in answered:
            self._answer_replay(job)

    def _taken(self, info: mqtt.MQTTMessageInfo) -> bool:
        """Whether paho holds the message now. It refuses (MQTT_ERR_QUEUE_SIZE) an id it still holds
        when its 16-bit counter wraps onto a message that waits for its PUBACK: recording that id
        would let the old message's PUBACK confirm a row that was never sent."""
        if info.rc in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):  # NO_CONN: sent on reconnect
            return True
        log.info("paho did not take a message (%s); it is sent again later", mqtt.error_string(info.rc))
        return False

    def _take_acks(self) -> None:
        while self._acks:
            mid, reason = self._acks.popleft()
            flight = self._window.acked(mid)
            if flight is None:
                continue  # an ack for a message we no longer count (the offline message at stop)
            code, text = reason.value, str(reason)
            if flight.seq is None:
                self._status_answered(code, text)
            elif code in FINAL_REFUSALS:
                self._dead_letter(flight.seq, code, text)
            elif code >= 0x80:
                self._refused(flight.seq, code, text)
            else:
                self._heard_back(flight.seq, code, text)

    def _heard_back(self, seq: int, code: int, text: str) -> None:
        if not self._delivered and not self._unheard:
            self._delivered_since = time.monotonic()
        if self._refused_pause:
            log.info("broker accepts events again")
            self._refused_pause = 0.0
            self._said.discard("refused")
        self._said.discard("final")
        self._window.recording(seq)
        if code == NO_MATCHING_SUBSCRIBERS:
            self._unheard.append(seq)
            self._say_once(
                "unheard",
                logging.ERROR,
                "ALARM: the broker says no subscriber got event seq=%d (%s): kept on the device as unheard"
                " until the collector confirms it",
                seq,
                text,
            )
        else:
            self._said.discard("unheard")  # someone hears again: the next 0x10 is a new episode
            self._delivered.append(seq)

    def _dead_letter(self, seq: int, code: int, text: str) -> None:
        self._outbox.dead_letter(seq, f"broker refused: {text} (0x{code:02x})")
        self._say_once(
            "final",
            logging.ERROR,
            "ALARM: broker refused event seq=%d for good (%s, 0x%02x: %s); moved to dead letters"
            " (`qr-checkin dead-letters --retry` sends them again)",
            seq,
            text,
            code,
            FINAL_REFUSALS[code],
        )

    def _refused(self, seq: int, code: int, text: str) -> None:
        now = time.monotonic()
        if now >= self._refused_until:  # a new round of refusals: the pause doubles
            low, high = REFUSED_RETRY_S
            self._refused_pause = min(high, self._refused_pause * 2) if self._refused_pause else low
            self._refused_until = now + self._refused_pause
        self._say_once(
            "refused",
            logging.ERROR,
            "ALARM: broker refused event seq=%d (%s, 0x%02x); the events are kept and sent again after"
            " %.0f s, then up to every %.0f s, until it accepts them",
            seq,
            text,
            code,
            self._refused_pause,
            REFUSED_RETRY_S[1],
        )

    def _status_answered(self, code: int, text: str) -> None:
        if self._schedule.answered(code >= 0x80, time.monotonic()):
            log.error(
                "ALARM: broker refused the status topic %s (%s): does the certificate CN or username match"
                " the device id %s?",
                self.topics.status,
                text,
                self._client_id,
            )

    def _flush_delivered(self) -> None:
        # One synced transaction per batch: a crash before it only means those events go out again.
        if not self._delivered and not self._unheard:
            return
        # What the collector already confirmed is not unheard, whatever this PUBACK says.
        unheard = [seq for seq in self._unheard if seq > self._committed_through]
        try:
            self._outbox.mark_delivered([*self._delivered, *self._unheard], unheard=unheard)
        except StorageError as exc:
            # A full or failing disk: keep the marks for a later round; delivery and heartbeats go on.
            self._complain(f"cannot record deliveries: {exc}")
            return
        self.delivered += len(self._delivered) + len(self._unheard)
        self._window.recorded([*self._delivered, *self._unheard])
        self._delivered = []
        self._unheard = []

    # -- the collector's commands (our thread) --------------------------------------------------------

    def _take_commands(self) -> None:
        while self._commands:
            topic, payload = self._commands.popleft()
            if not payload:
                continue  # a retained command being cleared
            try:
                if topic == self.topics.cmd_committed:
                    self._committed(contract.parse_committed(payload))
                elif topic == self.topics.cmd_replay:
                    self._request_replay(contract.parse_replay(payload))
            except ValueError as exc:
                self._say_once(
                    f"malformed {topic}",
                    logging.WARNING,
                    "ignored a malformed command on %s (%d bytes): %s; later ones are ignored silently",
                    topic,
                    len(payload),
                    exc,
                )

    def _committed(self, committed: contract.Committed) -> None:
        incarnation = self._outbox.incarnation
        if committed.incarnation != incarnation:
            # A card replaced with the same bundle hears the retained confirmation of its predecessor.
            self._say_once(
                "committed other incarnation",
                logging.INFO,
                "ignored the collector's confirmation for incarnation %s (this store is %s)",
                committed.incarnation,
                incarnation,
            )
            return
        self._committed_through = max(self._committed_through, committed.through_seq)
        released = self._outbox.release(committed.through_seq)
        log.info(
            "the collector has committed every event through seq=%d; released %d unheard",
            committed.through_seq,
            released,
        )

    def _request_replay(self, request: contract.ReplayRequest) -> None:
        now = time.monotonic()
        self._replay_tokens = min(
            float(REPLAY_BURST), self._replay_tokens + (now - self._replay_tokens_at) / REPLAY_EVERY_S
        )
        self._replay_tokens_at = now
        if self._replay_tokens < 1 or len(self._window.replays) >= REPLAY_QUEUE:
            self._say_once(
                "replay rate",
                logging.WARNING,
                "ignored replay request %r: more than %d requests waiting or %d in %.0f s",
                request.request_id,
                REPLAY_QUEUE,
                REPLAY_BURST,
                REPLAY_BURST * REPLAY_EVERY_S,
            )
            return
        self._replay_tokens -= 1
        clipped = request.clipped()
        log.info(
            "replay request %r: seq %d..%d%s",
            clipped.request_id,
            clipped.from_seq,
            clipped.to_seq,
            " (clipped)" * (clipped.to_seq != request.to_seq),
        )
        job = Replay(clipped, clipped.from_seq - 1)
        if request.incarnation is not None and request.incarnation != self._outbox.incarnation:
            self._answer_replay(job)  # none of those seqs are this store's
            return
        self._window.replays.append(job)
        self._wake.set()

    def _answer_replay(self, job: Replay) -> None:
        request = job.request
        answer = contract.replay_answer(
            request.request_id,
            self._outbox.incarnation,
            contract.seq_ranges(job.sent),
            contract.missing_ranges(request.from_seq, request.to_seq, job.sent),
        )
        log.info(
            "replay %r answered: replayed %s, gone %s", request.request_id, answer["replayed"], answer["gone"]
        )
        self._publish_status({"replay": answer})

    # -- the status (our thread) ------------------------------------------------------------------------

    def _publish_status(self, extra: dict[str, Any] | None = None) -> None:
        now = time.monotonic()
        self._schedule.sent(now)
        if not self._schedule.may_send():
            return
        payload = contract.online_status({**self._status(), **(extra or {})})
        info = self._client.publish(self.topics.status, json.dumps(payload), qos=1, retain=True)
        if self._taken(info):
            self._window.sent(info.mid, None, now)

    def _say_once(self, key: str, level: int, message: str, *args: object, net: bool = False) -> None:
        """Logs a trouble the first time it comes up; the same trouble again stays quiet."""
        said = self._said_net if net else self._said
        if key not in said:
            said.add(key)
            log.log(level, message, *args)

    def _complain(self, message: str) -> None:
        """Logs a fault at most once a minute, so a long fault does not flood the journal."""
        if time.monotonic() - self._last_complaint >= COMPLAINT_REPEAT_S:
            self._last_complaint = time.monotonic()
            log.error("%s", message)

    # -- stop -------------------------------------------------------------------------------------------

    def stop(self, timeout: float = 3.0) -> None:
        """Publishes the offline status, waits briefly for outstanding acks, disconnects."""
        deadline = time.monotonic() + timeout
        self._stopping.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(max(0.1, deadline - time.monotonic()))
        # The drain thread has ended: from here this thread is the only one to publish.
        if self.connected:
            info = self._client.publish(
                self.topics.status, self._offline_payload("stopped"), qos=1, retain=True
            )
            try:
                info.wait_for_publish(max(0.1, deadline - time.monotonic()))
            except (RuntimeError, ValueError):
                log.warning("offline status not acknowledged before stop")
            while self._window.events and self.connected and time.monotonic() < deadline:
                time.sleep(0.02)
                self._take_acks()
        self._take_acks()
        self._flush_delivered()
        mqtt_client.disconnect(self._client)
