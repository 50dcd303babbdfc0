"""`qr-collector run`: from the broker into the database, acknowledging only what is committed.

Two threads. paho's network thread only queues what arrives. The writer thread takes batches (at
most `ingest.batch_max` messages or `ingest.batch_ms` after the first), decodes and validates them,
writes each batch in one transaction, and only then sends their PUBACKs (manual acknowledgements), so
a crash at any point leaves every unacknowledged message with the broker, which redelivers it to our
persistent session; the idempotent insert turns the redelivery into a counted duplicate. Between
batches the writer sweeps the gaps: replay requests and committed marks go out from here.

An acknowledgement is sent only on the connection the message came in on: packet ids are reused
per connection, and a PUBACK for an old id on a new connection could confirm a different message.

MQTT 5 (the default) or 3.1.1 (`broker.protocol`): the same session, subscriptions, acknowledgements
and commands; 3.1.1 costs paho less CPU per message but leaves the in-flight window to the broker
(`max_inflight_messages`), which the collector can only watch (`InflightProbe`).
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import paho.mqtt.client as mqtt
import sqlalchemy as sa
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from collector import decode, partitions
from collector import tables as t
from collector.gaps import Policy, Tracker
from collector.metrics import Metrics
from collector.settings import Settings
from collector.store import Batch, BatchResult, Store, utc
from collector.subjects import Subjects
from device import contract, mqtt_client
from device.notify import Notifier

log = logging.getLogger(__name__)
DB_RETRY_MIN_S = 0.2
DB_RETRY_MAX_S = 5.0
TOPIC_CACHE = 100_000
# The systemd status line changes at most this often.
STATUS_EVERY_S = 1.0
# PostgreSQL: the coming days' partitions are made a week ahead, so hourly is plenty.
PARTITIONS_EVERY_S = 3600.0
# A delivery this soon after our PUBACKs was sent because of them (the broker had been waiting).
STALL_GAP_S = 0.05
# Batches in a row stalled at the same size before the warning.
STALL_BATCHES = 3


class Inbound(NamedTuple):
    topic: str
    payload: decode.Payload
    mid: int
    qos: int
    retain: bool
    connection: int
    arrived: float


@dataclass
class _Gone:
    device_id: str
    incarnation: str
    location_id: str
    ranges: list[tuple[int, int]]
    request_id: str


@dataclass
class _Decoded:
    batch: Batch = field(default_factory=Batch)
    events: list[decode.Event] = field(default_factory=list)
    statuses: list[decode.Status] = field(default_factory=list)
    # device_id -> wall of every device whose events the batch holds: the sweep writes the sightings.
    seen: dict[str, float] = field(default_factory=dict)


class Collector:
    def __init__(
        self, settings: Settings, *, metrics: Metrics | None = None, notifier: Notifier | None = None
    ):
        self.settings = settings
        self.prefix = settings.broker.topic_prefix
        self.store = Store(settings.database_url, instance=settings.broker.client_id)
        self.subjects = Subjects(settings.privacy.private_key_file, settings.privacy.site_key_file)
        g = settings.gaps
        self.tracker = Tracker(Policy(g.settle_s, g.retry_min_s, g.retry_max_s, g.committed_interval_s))
        self.metrics = metrics or Metrics()
        self.notifier = notifier or Notifier(None)
        self._inbox: queue.SimpleQueue[Inbound] = queue.SimpleQueue()
        self._connection = 0
        self._ack_lock = threading.Lock()
        self._stop = threading.Event()
        self._connected_once = False
        self.connected = threading.Event()
        self._gone: list[_Gone] = []
        # What this instance knows to be in the devices and streams tables (the batches insert the
        # others), and the devices' sightings the next sweep writes (device_id -> wall).
        self._recorded_devices: set[str] = set()
        self._recorded_streams: set[tuple[str, str]] = set()
        self._seen: dict[str, float] = {}
        self._topics: dict[str, contract.TopicParts] = {}
        self._unwritten: tuple[list[dict[str, Any]], list[dict[str, Any]]] = ([], [])
        self._last_sweep = float("-inf")
        self._last_watchdog = float("-inf")
        self._last_status = float("-inf")
        self._last_partitions = time.monotonic()
        self._status_text = ""
        self._probe = (
            InflightProbe(settings.ingest.batch_max) if settings.broker.protocol == "3.1.1" else None
        )
        self.client = self._make_client()

    # -- lifecycle ------------------------------------------------------------------------------------

    def prepare(self) -> None:
        """Migrates the schema and rebuilds the streams' state from the database."""
        if self.settings.database.migrate:
            self.store.migrate()
        partitions.ensure_ahead(self.store.engine)
        now = time.monotonic()
        streams = 0
        for row, seqs, losses in self.store.streams_state():
            stream = self.tracker.restore(
                row["device_id"],
                row["incarnation"],
                row["location_id"],
                int(row["through_seq"]),
                seqs,
                losses,
            )
            stream.saved = int(row["through_seq"])
            self._recorded_streams.add(stream.key)
            streams += 1
        for device in self.store.rows(t.devices):
            self._recorded_devices.add(device["device_id"])
            if device["incarnation"] is not None:
                self.tracker.current[device["device_id"]] = device["incarnation"]
        for gap in self.store.open_gap_rows():
            self.tracker.restore_gap(gap["device_id"], gap["incarnation"], gap["location_id"], gap, now)
        log.info(
            "database %s: %d streams, %d open gaps", self.store.safe_url, streams, self.tracker.open_gaps()
        )

    def start(self) -> None:
        b = self.settings.broker
        if b.protocol == "3.1.1":
            # The persistent session is the client's clean_session=False (see _make_client).
            self.client.connect_async(b.host, b.port, b.keepalive)
            self.client.loop_start()
            return
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = b.session_expiry_s
        props.ReceiveMaximum = b.receive_maximum
        # clean_start False from the very first connect: paho's default starts clean once, which
        # would throw away what the broker queued for us while we were down.
        self.client.connect_async(b.host, b.port, b.keepalive, clean_start=False, properties=props)
        self.client.loop_start()

    def stop(self) -> None:
        self._stop.set()

    def run(self) -> None:
        """prepare, start, ingest until stop(); then disconnect (unacknowledged messages stay queued)."""
        self.prepare()
        self.start()
        self.notifier.ready(f"collecting into {self.store.dialect}")
        try:
            while not self._stop.is_set():
                self.step()
        finally:
            self.notifier.stopping()
            self._disconnect()
            self.store.close()

    def step(self) -> None:
        """One round of the writer: a batch (if any arrives in time), then the sweep when due."""
        messages = self._collect(self.settings.gaps.check_s)
        if messages:
            self._commit(messages)
        now = time.monotonic()
        if now - self._last_sweep >= self.settings.gaps.check_s:
            self._last_sweep = now
            self.sweep()
        self._feed_watchdog(now)
        if now - self._last_partitions >= PARTITIONS_EVERY_S:
            self._last_partitions = now
            partitions.ensure_ahead(self.store.engine)
        if now - self._last_status >= STATUS_EVERY_S and (summary := self.summary()) != self._status_text:
            self._last_status, self._status_text = now, summary
            self.notifier.status(summary)

    def summary(self) -> str:
        """The one line `systemctl status` shows."""
        value = self.metrics.registry.get_sample_value
        counts = {
            n: int(value("qr_collector_messages_total", {"outcome": n}) or 0)
            for n in ("stored", "duplicate", "invalid")
        }
        link = "connected" if self.connected.is_set() else "broker unreachable"
        return (
            f"{link}; stored {counts['stored']}, duplicate {counts['duplicate']},"
            f" invalid {counts['invalid']}; open gaps {self.tracker.open_gaps()}"
        )

    # -- MQTT -----------------------------------------------------------------------------------------

    def _make_client(self) -> mqtt.Client:
        b = self.settings.broker
        client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=b.client_id,
            protocol=mqtt.MQTTv311 if b.protocol == "3.1.1" else mqtt.MQTTv5,
            # 3.1.1 keeps the session when the client never asks for a clean one (MQTT 5: clean_start).
            clean_session=False if b.protocol == "3.1.1" else None,
            manual_ack=True,
        )
        if b.username is not None:
            client.username_pw_set(b.username, b.password.get_secret_value() if b.password else None)
        if b.tls:
            client.tls_set(
                ca_certs=str(b.ca) if b.ca else None,
                certfile=str(b.cert) if b.cert else None,
                keyfile=str(b.key) if b.key else None,
            )
        client.reconnect_delay_set(b.reconnect_min_s, b.reconnect_max_s)  # type: ignore[arg-type]
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        return client

    def _on_connect(self, client: mqtt.Client, _u: Any, flags: Any, reason: ReasonCode, _p: Any) -> None:
        if reason.is_failure:
            log.error(
                "broker refused the collector (client id %s): %s", self.settings.broker.client_id, reason
            )
            return
        with self._ack_lock:
            self._connection += 1
        if self._connected_once and not flags.session_present:
            self.metrics.sessions_lost.inc()
            log.warning(
                "ALARM: the broker kept no session for %s: events queued while we were away are lost"
                " there; gap repair will ask the devices for them",
                self.settings.broker.client_id,
            )
        self._connected_once = True
        filters = contract.ConsumerFilters.of(self.prefix)
        events = (
            filters.shared(self.settings.broker.shared_group).events
            if self.settings.broker.shared_group
            else filters.events
        )
        # Subscribed every time: a broker that lost our session has lost the subscriptions with it.
        client.subscribe([(events, 1), (filters.status, 1)])
        self.metrics.connected.set(1)
        self.connected.set()
        log.info(
            "connected to %s:%d (session present: %s)",
            self.settings.broker.host,
            self.settings.broker.port,
            bool(flags.session_present),
        )

    def _on_disconnect(self, _c: mqtt.Client, _u: Any, _f: Any, reason: ReasonCode, _p: Any) -> None:
        with self._ack_lock:
            self._connection += 1
        self.connected.clear()
        self.metrics.connected.set(0)
        log.warning("disconnected from the broker: %s", reason)

    def _on_message(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        self._inbox.put(
            Inbound(
                msg.topic, msg.payload, msg.mid, msg.qos, bool(msg.retain), self._connection, time.monotonic()
            )
        )

    def _disconnect(self) -> None:
        mqtt_client.disconnect(self.client)

    def _publish(self, topic: str, payload: str, *, retain: bool) -> None:
        """A command to a device, QoS 1 (the transport's hook: collector/amqp.py publishes over AMQP)."""
        self.client.publish(topic, payload, qos=1, retain=retain)

    def _ack(self, messages: Sequence[Inbound]) -> None:
        if self._probe is not None:
            # Before the PUBACKs leave: what the broker sends in return arrives after this instant.
            self._probe.acked(len(messages), time.monotonic())
        with self._ack_lock:
            connection = self._connection
            for m in messages:
                if m.qos and m.connection == connection:
                    self.client.ack(m.mid, m.qos)

    # -- batches --------------------------------------------------------------------------------------

    def _collect(self, wait: float) -> list[Inbound]:
        try:
            first = self._inbox.get(timeout=wait)
        except queue.Empty:
            return []
        messages = [first]
        limit = self.settings.ingest.batch_max
        deadline = first.arrived + self.settings.ingest.batch_ms / 1000
        while len(messages) < limit:
            remaining = deadline - time.monotonic()
            try:
                messages.append(
                    self._inbox.get(timeout=remaining) if remaining > 0 else self._inbox.get_nowait()
                )
            except queue.Empty:
                break
        if self._probe is not None:
            self._probe.batch(first.arrived, len(messages))
        return messages

    def _decode(self, messages: Sequence[Inbound], wall: float) -> _Decoded:
        out = _Decoded()
        batch = out.batch
        max_bytes = self.settings.ingest.max_payload_bytes
        for m in messages:
            try:
                parts = self._parse_topic(m.topic)
            except ValueError as exc:
                batch.received += 1
                batch.invalid.append(decode.invalid_row(m.topic, m.payload, str(exc), wall))
                continue
            if parts.kind == "events":
                batch.received += 1
                try:
                    ev = decode.event(parts, m.payload, self.subjects, max_bytes, wall)
                except decode.Invalid as exc:
                    batch.invalid.append(decode.invalid_row(m.topic, m.payload, str(exc), wall))
                    continue
                out.events.append(ev)
                batch.events.append(ev.row)
                out.seen[ev.device_id] = wall
                if ev.device_id not in self._recorded_devices:
                    batch.seen[ev.device_id] = (ev.location_id, wall)
                key = (ev.device_id, ev.incarnation)
                if key not in self._recorded_streams:
                    known = batch.streams.setdefault(
                        key,
                        {
                            "device_id": ev.device_id,
                            "incarnation": ev.incarnation,
                            "location_id": ev.location_id,
                            # The row is a checkpoint the sweep advances; the events are the truth.
                            "through_seq": 0,
                            "max_seq": ev.seq,
                        },
                    )
                    known["max_seq"] = max(known["max_seq"], ev.seq)
            else:
                try:
                    st = decode.status(parts, m.payload, max_bytes)
                except decode.Invalid as exc:
                    batch.statuses_invalid += 1
                    batch.invalid.append(decode.invalid_row(m.topic, m.payload, str(exc), wall))
                    continue
                out.statuses.append(st)
                batch.statuses.append((st.row, not m.retain))
        return out

    def _parse_topic(self, topic: str) -> contract.TopicParts:
        # A site has a few thousand devices, each on the same two topics all day.
        parts = self._topics.get(topic)
        if parts is None:
            parts = contract.parse_topic(topic, self.prefix)
            if len(self._topics) >= TOPIC_CACHE:
                self._topics.clear()
            self._topics[topic] = parts
        return parts

    def _commit(self, messages: list[Inbound]) -> None:
        self.metrics.queue.set(len(messages) + self._inbox.qsize())
        wall = time.time()
        decoded = self._decode(messages, wall)
        try:
            result = self._write(decoded.batch, wall)
        except _Refused:
            # Some row the database will not take: alone, each message finds its fate.
            self._ack([m for m in messages if self._commit_alone(m, wall)])
            return
        if result is None:  # stopping while the database is down: nothing acknowledged
            return
        self._committed(decoded, result, messages)

    def _commit_alone(self, m: Inbound, wall: float) -> bool:
        """Stores one message (or, refused, its invalid_messages row); False if stopped before a commit."""
        decoded = self._decode([m], wall)
        try:
            result = self._write(decoded.batch, wall)
        except _Refused as exc:
            log.error("database refused a message on %s: %s", decode.mask_digits(m.topic), exc)
            refused = Batch(received=decoded.batch.received, statuses_invalid=len(decoded.statuses))
            refused.invalid.append(
                decode.invalid_row(m.topic, m.payload, f"database refused it: {exc}", wall)
            )
            result = self._write(refused, wall)
            decoded = _Decoded(refused)
        if result is None:
            return False
        self._committed(decoded, result, [])
        return True

    def _write(self, batch: Batch, wall: float) -> BatchResult | None:
        delay = DB_RETRY_MIN_S
        while True:
            try:
                return self.store.write_batch(batch, wall)
            except (sa.exc.IntegrityError, sa.exc.DataError) as exc:
                raise _Refused(
                    type(exc.orig).__name__ if exc.orig is not None else type(exc).__name__
                ) from exc
            except sa.exc.SQLAlchemyError as exc:
                self.metrics.database_errors.inc()
                log.warning(
                    "database write failed (retrying in %.1fs, nothing acknowledged): %s",
                    delay,
                    str(exc).splitlines()[0][:200],
                )
                self.notifier.status("database unavailable: holding acknowledgements")
                if self._stop.wait(delay):
                    return None
                self._feed_watchdog(time.monotonic())
                delay = min(delay * 2, DB_RETRY_MAX_S)

    def _committed(self, decoded: _Decoded, result: BatchResult, messages: Sequence[Inbound]) -> None:
        self._ack(messages)
        self._recorded_devices.update(decoded.batch.seen)
        self._recorded_devices.update(st.device_id for st in decoded.statuses)  # upserted with the batch
        self._recorded_streams.update(decoded.batch.streams)
        self._seen.update(decoded.seen)
        if messages:
            # The batch's oldest message waited longest: one observation per batch, not per message.
            self.metrics.commit_latency.observe(time.monotonic() - messages[0].arrived)
        self.metrics.count(result.deltas)
        self.metrics.batches.inc()
        # Per stream, not per event: a batch holds a few devices' runs of seqs.
        seqs: dict[tuple[str, str, str], list[int]] = {}
        for ev in decoded.events:
            seqs.setdefault((ev.device_id, ev.incarnation, ev.location_id), []).append(ev.seq)
        for (device_id, incarnation, location_id), run in seqs.items():
            self.tracker.committed(device_id, incarnation, location_id, run)
        for st in decoded.statuses:
            incarnation = st.incarnation if st.incarnation is not None else ""
            if st.last_seq is not None and st.row.get("state") == "online":
                self.tracker.reported(st.device_id, incarnation, st.location_id, st.last_seq)
            if st.replay is not None:
                self._take_replay_answer(st, incarnation)

    def _take_replay_answer(self, st: decode.Status, incarnation: str) -> None:
        answer = st.replay or {}
        ranges = [
            (int(r[0]), int(r[1]))
            for r in answer.get("gone") or []
            if isinstance(r, list) and len(r) == 2 and all(isinstance(x, int) for x in r)
        ]
        if ranges:
            named = answer.get("incarnation")
            inc = named if isinstance(named, str) else incarnation
            self._gone.append(
                _Gone(st.device_id, inc, st.location_id, ranges, str(answer.get("request_id", ""))[:64])
            )

    # -- gaps -----------------------------------------------------------------------------------------

    def sweep(self) -> None:
        now, wall = time.monotonic(), time.time()
        gap_rows, losses = self._unwritten
        for gone in self._gone:
            for a, b in self.tracker.gone(gone.device_id, gone.incarnation, gone.location_id, gone.ranges):
                log.error(
                    "KNOWN LOSS: device %s (location %s) incarnation %s seq %d-%d: the device no longer holds"
                    " them (replay request %s)",
                    gone.device_id,
                    gone.location_id,
                    gone.incarnation or "-",
                    a,
                    b,
                    gone.request_id or "-",
                )
                self.metrics.known_lost.inc(b - a + 1)
                losses.append(
                    {
                        "device_id": gone.device_id,
                        "incarnation": gone.incarnation,
                        "from_seq": a,
                        "to_seq": b,
                        "location_id": gone.location_id,
                        "request_id": gone.request_id or None,
                        "reported_at": utc(wall),
                        "detail": "gone: the device's answer to a replay request",
                    }
                )
        self._gone = []
        result = self.tracker.sweep(now, wall, self.store.seqs_in)
        gap_rows.extend(result.gap_rows)
        streams: list[dict[str, Any]] = [
            {
                "device_id": s.device_id,
                "incarnation": s.incarnation,
                "location_id": s.location_id,
                "through_seq": s.through,
                "max_seq": s.have.highest(),
            }
            for s in self.tracker.streams.values()
            if s.through > s.saved
        ]
        seen, self._seen = self._seen, {}
        if gap_rows or losses or streams or seen:
            try:
                self.store.write_sweep(gap_rows, losses, streams, seen)
                for row in streams:
                    self.tracker.streams[row["device_id"], row["incarnation"]].saved = int(row["through_seq"])
                self._unwritten = ([], [])
            except sa.exc.SQLAlchemyError as exc:
                log.warning(
                    "could not write the gaps (kept for the next sweep): %s", str(exc).splitlines()[0][:200]
                )
                self._unwritten = (gap_rows, losses)
                self._seen = {**seen, **self._seen}
        for req in result.requests:
            self._request_replay(req.device_id, req.location_id, req.incarnation, req.first, req.last)
        for mark in result.marks:
            topics = contract.Topics.of(self.prefix, mark.location_id, mark.device_id)
            body = contract.Committed(mark.incarnation, mark.through_seq).body()
            self._publish(topics.cmd_committed, json.dumps(body), retain=True)
            self.tracker.marked(mark, now)
        self.metrics.open_gaps.set(self.tracker.open_gaps())

    def _request_replay(
        self, device_id: str, location_id: str, incarnation: str, first: int, last: int
    ) -> None:
        request_id = uuid.uuid4().hex
        body = contract.ReplayRequest(request_id, first, last, incarnation or None).body()
        topics = contract.Topics.of(self.prefix, location_id, device_id)
        self._publish(topics.cmd_replay, json.dumps(body), retain=False)
        self.metrics.replay_requests.inc()
        log.info(
            "replay requested: device %s incarnation %s seq %d-%d (%s)",
            device_id,
            incarnation or "-",
            first,
            last,
            request_id,
        )

    def _feed_watchdog(self, now: float) -> None:
        interval = self.notifier.watchdog_interval()
        if interval is not None and now - self._last_watchdog >= interval:
            self._last_watchdog = now
            self.notifier.watchdog()


class InflightProbe:
    """Notices a broker that holds 3.1.1 deliveries back at a small in-flight limit.

    MQTT 5 tells the broker our window (Receive Maximum); 3.1.1 cannot, so mosquitto applies its
    `max_inflight_messages` (default 20) to us. We acknowledge only after a commit, so a window
    smaller than a batch makes every batch wait out `ingest.batch_ms` at that size: ~100 events/s at
    the default. The signature: batch after batch of the same size below `batch_max`, each one's first
    message arriving just after the previous batch's PUBACKs left. (mosquitto 2.0.11 lets each PUBACK
    release up to the limit again, so there its window grows 20, 400, 8000 and only the first batch
    of a burst waits; a broker that keeps its limit keeps the collector at it.)
    """

    def __init__(self, batch_max: int) -> None:
        self.batch_max = batch_max
        self.warned = False
        self._acked = (0, float("-inf"))
        self._streak = 0

    def acked(self, count: int, now: float) -> None:
        self._acked = (count, now)

    def batch(self, first_arrived: float, size: int) -> None:
        count, at = self._acked
        stalled = size == count < self.batch_max and 0 <= first_arrived - at < STALL_GAP_S
        self._streak = self._streak + 1 if stalled else 0
        if self._streak >= STALL_BATCHES and not self.warned:
            self.warned = True
            log.warning(
                "MQTT 3.1.1 deliveries stall at %d in flight: the broker sends no more until the batch"
                " commits and is acknowledged. Raise the broker's in-flight limit (mosquitto:"
                " max_inflight_messages %d or more, 0 for none; its default is 20)",
                size,
                2 * self.batch_max,
            )


class _Refused(Exception):
    """The database rejected the batch's data (not a connection problem): retrying cannot help."""
