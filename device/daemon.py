"""The daemon: builds the pipeline from settings and runs it until SIGTERM.

    sources --(Scan)--> queue --> Checkin.decide (durable) --> feedback
                                        outbox --> Publisher --> broker

Scans are answered in the event loop's thread; the publisher drains the outbox in its own thread,
so feedback never waits for the network. The event loop also feeds systemd's watchdog, so a stuck
loop gets the daemon restarted.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import importlib
import logging
import os
import signal
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from device import __version__, contract, health
from device.audit import AUDIT_FILE, AuditLog
from device.checkin import Checkin
from device.clock import Clock, SystemClock
from device.contract import Topics
from device.decision import Decision
from device.errors import CheckinError, StorageError, StorageFull
from device.feedback import Feedback, Signal, Status, build_feedback
from device.label import LabelCode, parse_label
from device.notify import Notifier
from device.outbox import Outbox, Stamp, free_bytes
from device.privacy import build_privacy
from device.publisher import Publisher
from device.scan import Scan
from device.settings import Settings
from device.sources import Source

log = logging.getLogger(__name__)

MAINTENANCE_S = 1.0
PURGE_EVERY_S = 60.0
STATUS_LINE_EVERY_S = 5.0
# Alarms that would flood the journal are repeated at most this often.
ALARM_REPEAT_S = 60.0
# Warn about undelivered events once they are this far into their allowed age.
AGE_ALARM_FRACTION = 0.5
ANSWER_WINDOW_S = 60.0
EXIT_CANNOT_START = 3
# Started on a full card, the disk has room again: systemd's restart opens the store properly.
EXIT_STORAGE_BACK = 75
# A source that failed with an unexpected error is started again, backing off up to a minute.
SOURCE_RESTART_MIN_S = 1.0
SOURCE_RESTART_MAX_S = 60.0

_SOURCE_CLASSES = {
    "stdin": ("device.sources.stdin", "StdinSource"),
    "hid": ("device.sources.hid", "HidSource"),
    "serial": ("device.sources.serial", "SerialSource"),
    "camera": ("device.sources.camera", "CameraSource"),
}


def build_sources(settings: Settings) -> list[Source]:
    sources: list[Source] = []
    for name in settings.scanner.sources:
        module_name, class_name = _SOURCE_CLASSES[name]
        cls = getattr(importlib.import_module(module_name), class_name)
        sources.append(cls(getattr(settings.scanner, name)))
    return sources


class Daemon:
    def __init__(
        self,
        settings: Settings,
        *,
        clock: Clock | None = None,
        feedback: Feedback | None = None,
        sources: list[Source] | None = None,
        notifier: Notifier | None = None,
    ) -> None:
        self.settings = settings
        self.clock = clock or SystemClock()
        self.feedback = feedback or build_feedback(settings.feedback)
        self.sources = sources if sources is not None else build_sources(settings)
        self.notifier = notifier or Notifier.from_env()
        self.audit = AuditLog(settings.storage.dir / AUDIT_FILE, clock=self.clock)
        self.started_mono = time.monotonic()
        self.config_hash = settings.config_hash()
        self._snapshot: dict[str, Any] = {}
        self._stop = asyncio.Event()
        self._was_synced = False
        self._last_purge = 0.0
        self._last_status_line = 0.0
        self._alarmed: dict[str, float] = {}
        self._storage_fault: str | None = None
        self._exit_code = 0
        self._light: Status | None = None
        self._reader_states: dict[str, str] = {}
        # (when, ms) of recent answers, for the status's slowest answer of the last minute.
        self._answers: collections.deque[tuple[float, float]] = collections.deque(maxlen=10_000)

    # -- lifecycle ---------------------------------------------------------------------------------

    async def run(self) -> int:
        s = self.settings
        try:
            self.outbox = self._open_store()
            privacy = build_privacy(s)
            self._refresh_snapshot()  # the publisher's MQTT will quotes it
            self.publisher = Publisher(
                s.broker,
                Topics.of(s.broker.topic_prefix, s.location.id, s.device.id),
                s.device.id,
                self.outbox.twin(),
                self.status_snapshot,
            )
        except CheckinError as exc:
            log.critical("cannot start: %s", exc)
            self.audit.record("start_failed", reason=type(exc).__name__)
            self.notifier.status(f"cannot start: {exc}")
            self.feedback.signal(Signal.FAULT)
            self.feedback.close()
            return EXIT_CANNOT_START
        self._audit_start()
        hand_state_to_owner(s.storage.dir)
        self.checkin = Checkin(s, self.outbox, privacy, self.clock)
        self._was_synced = self.clock.synced()
        self._watch_readers()
        self._refresh_snapshot()  # the birth status carries the readers and what _audit_start found
        self.publisher.start()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stop.set)
        scans: asyncio.Queue[Scan] = asyncio.Queue()
        tasks = [
            asyncio.create_task(self._pump(src, scans), name=f"source-{src.kind}") for src in self.sources
        ]
        vital = [
            asyncio.create_task(self._consume(scans), name="consume"),
            asyncio.create_task(self._maintain(), name="maintain"),
        ]
        for task in vital:
            task.add_done_callback(self._vital_ended)
        tasks += vital
        tasks.append(asyncio.create_task(self._feed_watchdog(vital), name="watchdog"))
        log.info(
            "qr-checkin %s ready: device %s at %s %s, sources %s, broker %s:%s",
            __version__,
            s.device.id,
            s.location.kind,
            s.location.id,
            ",".join(src.kind for src in self.sources) or "none",
            s.broker.host,
            s.broker.port,
        )
        # Ready means storage and sources are up; the broker may come much later (or never, on a bus).
        self.notifier.ready(self._status_line())
        self.feedback.signal(Signal.READY)
        await self._stop.wait()
        log.info("stopping")
        self.notifier.stopping("stopping")
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._shutdown()
        return self._exit_code

    def _open_store(self) -> Outbox:
        """The store; on a card too full to open it, one that refuses every check-in as "storage
        full" (so the device starts, and answers), until the disk has room and the daemon restarts."""
        directory = self.settings.storage.dir
        try:
            box = Outbox.open(directory)
        except StorageFull:
            log.error("ALARM: storage full: cannot open the store; every scan is answered 'storage full'")
            self._storage_fault = "storage full"
            return Outbox.refusing_writes(directory)
        box.space.ensure()
        return box

    def _watch_space(self) -> None:
        """Keeps the space reserve made; a store opened refusing is reopened (by a restart, which
        systemd does) once the disk has room again."""
        if not self.outbox.refusing:
            self.outbox.space.ensure()
            return
        free = free_bytes(self.settings.storage.dir)
        if free is not None and free >= 2 * self.outbox.space.size:
            log.warning("storage has room again (%.1f MB): restarting to open the store", free / 2**20)
            self.audit.record("restart", reason="storage_room_again")
            self._exit_code = EXIT_STORAGE_BACK
            self._stop.set()

    def _audit_start(self) -> None:
        previous = [r for r in self.audit.read() if r.get("event") == "start"]
        if previous and previous[-1].get("config_hash") != self.config_hash:
            self.audit.record(
                "config_changed", previous_hash=previous[-1].get("config_hash"), config_hash=self.config_hash
            )
        self.audit.record("start", version=__version__, config_hash=self.config_hash)
        if self.outbox.refusing:
            self.audit.record("storage_full_at_start")
            self.feedback.signal(Signal.FAULT)
        if self.outbox.moved_aside is not None:
            self.audit.record(
                "store_corrupt", moved_to=self.outbox.moved_aside.name, salvaged=self.outbox.salvaged
            )
            self._storage_fault = "corrupt store moved aside"
            self.feedback.signal(Signal.FAULT)

    def _shutdown(self) -> None:
        for src in self.sources:
            with contextlib.suppress(Exception):
                src.close()
        self.checkin.flush_counters()
        self._refresh_snapshot()
        self.publisher.stop()
        self.feedback.close()
        self.audit.record("stop", backlog=self._snapshot.get("backlog", 0))
        self.outbox.close()
        hand_state_to_owner(self.settings.storage.dir)
        self.notifier.close()
        log.info("stopped")

    def stop(self) -> None:
        self._stop.set()

    # -- the pipeline --------------------------------------------------------------------------------

    async def _pump(self, source: Source, scans: asyncio.Queue[Scan]) -> None:
        pause = SOURCE_RESTART_MIN_S
        while True:
            try:
                async for scan in source.scans():
                    pause = SOURCE_RESTART_MIN_S
                    await scans.put(scan)
                return  # the source ended on its own (stdin at EOF, a replay finished)
            except asyncio.CancelledError:
                raise
            except Exception:
                # A camera or driver error of a class the source did not expect: the reader comes back.
                log.exception("source %s failed; restarting it in %.0f s", source.kind, pause)
                self._quietly(self.feedback.signal, Signal.FAULT)
            await asyncio.sleep(pause)
            pause = min(pause * 2, SOURCE_RESTART_MAX_S)

    async def _consume(self, scans: asyncio.Queue[Scan]) -> None:
        while True:
            scan = await scans.get()
            try:
                self._handle(scan)
            except Exception:
                # One scan's failure (a closed console pipe, a GPIO error, a bug) must not end the loop
                # that answers every later one; the traceback names no scanned text.
                log.exception("scan from %s could not be answered", scan.source)
                self._quietly(self.feedback.signal, Signal.FAULT)
            # A queue of thousands of scans must not starve the watchdog and the housekeeping.
            await asyncio.sleep(0)

    def _handle(self, scan: Scan) -> None:
        label = parse_label(scan.text) if scan.damage is None else None
        if label is not None:
            self._identify(label)
            return
        self._answer(self.checkin.decide(scan, offline=not self.publisher.connected))
        # From the scanner's terminator (or the decoded frame) to the answer: what the worker waits.
        now = time.monotonic()
        self._answers.append((now, (now - scan.at_monotonic) * 1000))

    @staticmethod
    def _quietly(call: Callable[[Signal], None], signal_: Signal) -> None:
        """A fault pattern is worth trying, but the hardware that failed may fail again."""
        try:
            call(signal_)
        except Exception as exc:
            log.error("feedback failed too: %s: %s", type(exc).__name__, exc)

    def _answer(self, decision: Decision) -> None:
        self.feedback.decision(decision)
        if decision.outcome == "accepted":
            self._storage_fault = None
            self.publisher.wake()
        elif decision.reason and decision.reason.startswith("storage"):
            self._storage_fault = decision.reason
            # The worker sees the fault pattern, not a plain "rejected": it is the device, not the card.
            self.feedback.signal(Signal.FAULT)
            self._alarm(
                "storage", "ALARM: %s: scans are answered 'rejected' until it recovers", decision.reason
            )

    def _identify(self, label: LabelCode) -> None:
        """A technician showed this device's label: prove which device it is, publish no check-in."""
        matches = (
            label.device_id == self.settings.device.id and label.location_id == self.settings.location.id
        )
        same_config = label.config_hash == self.config_hash
        log.info(
            "provisioning label scanned: device matches=%s, configuration matches=%s", matches, same_config
        )
        self.feedback.signal(Signal.IDENTIFY)
        self.audit.record("label_scanned", matches=matches, config_matches=same_config)
        self.publisher.announce(
            provisioning_check={
                "label_device_id": label.device_id,
                "label_location_id": label.location_id,
                "label_config_hash": label.config_hash,
                "matches": matches,
                "config_matches": same_config,
            }
        )

    # -- housekeeping ----------------------------------------------------------------------------------

    async def _feed_watchdog(self, vital: list[asyncio.Task[None]]) -> None:
        """Pings systemd only while the scan loop and the housekeeping run: a loop that turns while
        either is dead must still get the daemon restarted."""
        interval = self.notifier.watchdog_interval()
        if interval is None:
            return
        while not any(task.done() for task in vital):
            self.notifier.watchdog()
            await asyncio.sleep(interval)

    def _vital_ended(self, task: asyncio.Task[None]) -> None:
        if self._stop.is_set():
            return
        # Only a bug gets here (both loops catch per turn): say so, and let the watchdog end the daemon.
        exc = None if task.cancelled() else task.exception()
        log.critical("ALARM: %s stopped (%r): the watchdog is no longer fed", task.get_name(), exc)

    async def _maintain(self) -> None:
        while True:
            await asyncio.sleep(MAINTENANCE_S)
            try:
                self._maintain_once()
            except StorageError as exc:
                self._alarm("maintenance", "maintenance: %s", exc)
            except sqlite3.Error as exc:  # a read of the backlog or the counters on a failing store
                self._alarm("maintenance", "maintenance: storage error: %s", exc)
            except Exception:
                if self._alarm(
                    "maintenance", "ALARM: maintenance failed; retrying every %.0f s", MAINTENANCE_S
                ):
                    log.exception("maintenance failure")

    def _maintain_once(self) -> None:
        now = self.clock.wall()
        synced = self.clock.synced()
        if synced and not self._was_synced:
            fixed = self.outbox.correct_unsynced(self.clock.boot_id(), now, self.clock.monotonic())
            log.info("clock synchronised; corrected the time of %d undelivered events", fixed)
            self.audit.record("clock_synchronised", corrected=fixed)
            self.publisher.wake()
        self._was_synced = synced
        if time.monotonic() - self._last_purge >= PURGE_EVERY_S:
            self._last_purge = time.monotonic()
            if not self.outbox.refusing:
                self._purge()
        self._watch_space()
        hand_state_to_owner(self.settings.storage.dir)
        readers_changed = self._watch_readers()
        self._refresh_snapshot()
        if readers_changed:
            # A scanner plugged in or lost is news now (for `qr-provision verify`), not at the heartbeat.
            self.publisher.announce()
        self._watch_disk()
        light = self._status_light()
        if light is not self._light:
            self._light = light
            self.feedback.status(light)
        if time.monotonic() - self._last_status_line >= STATUS_LINE_EVERY_S:
            self._last_status_line = time.monotonic()
            self.notifier.status(self._status_line())

    def _purge(self) -> None:
        st = self.settings.storage
        dropped = self.outbox.purge(
            Stamp.now(self.clock),
            delivered_grace_s=st.delivered_grace_h * 3600,
            max_age_s=st.max_age_days * 86400,
            window_s=self.settings.checkin.duplicate_window_s,
        )
        if dropped:
            log.error("ALARM: dropped %d undelivered events older than %s days", dropped, st.max_age_days)
            self.audit.record("drop", count=dropped, reason="max_age_days")
        self.checkin.flush_counters()

    def _watch_readers(self) -> bool:
        changed = False
        for src in self.sources:
            for name, state in src.state.items():
                key = f"{src.kind}:{name}"
                before = self._reader_states.get(key)
                if state != before:
                    changed = True
                    self._reader_states[key] = state
                    if before is not None or state != "connected":
                        log.info("scanner %s is %s", key, state)
                    self.audit.record(f"scanner_{state}", source=src.kind, device=name)
        return changed

    def _watch_disk(self) -> None:
        free = self._snapshot.get("disk_free_mb")
        low = free is not None and free < self.settings.storage.low_space_mb
        if low and self._alarm("disk", "ALARM: only %.1f MB free for the store", free):
            self.feedback.signal(Signal.STORAGE_LOW)

    def _alarm(self, kind: str, message: str, *args: object) -> bool:
        """Logs an alarm, at most once a minute per kind; True when it was logged."""
        if time.monotonic() - self._alarmed.get(kind, -ALARM_REPEAT_S) < ALARM_REPEAT_S:
            return False
        self._alarmed[kind] = time.monotonic()
        log.error(message, *args)
        return True

    def _status_light(self) -> Status:
        if self._storage_fault or not self._any_source_connected():
            return Status.FAULT
        return Status.ONLINE if self.publisher.connected else Status.BUFFERING

    def _any_source_connected(self) -> bool:
        return not self.sources or "connected" in self._reader_states.values()

    def _status_line(self) -> str:
        snap = self._snapshot
        link = "online" if getattr(self, "publisher", None) and self.publisher.connected else "buffering"
        counters = snap.get("counters", {})
        return (
            f"{link}, backlog {snap.get('backlog', 0)}, accepted {counters.get('accepted', 0)},"
            f" rejected {counters.get('rejected', 0)}, clock {snap.get('clock', '?')}"
        )

    def _refresh_snapshot(self) -> None:
        backlog = self.outbox.backlog()
        now = self.clock.wall()
        oldest_age = None if backlog.oldest_wall is None else round(now - backlog.oldest_wall, 1)
        max_age_s = self.settings.storage.max_age_days * 86400
        if oldest_age is not None and oldest_age > AGE_ALARM_FRACTION * max_age_s:
            self._alarm("age", "ALARM: the oldest undelivered event is %.1f days old", oldest_age / 86400)
        stored = self.outbox.counters()
        unflushed = self.checkin.unflushed if hasattr(self, "checkin") else {}
        totals = {name: stored.get(name, 0) + unflushed.get(name, 0) for name in contract.COUNTER_NAMES}
        totals["dropped"] = stored.get("dropped", 0)
        s = self.settings
        self._snapshot = {
            **contract.status_fields(
                device_id=s.device.id,
                location_id=s.location.id,
                location_kind=s.location.kind,
                location_name=s.location.name,
                version=__version__,
                config_hash=self.config_hash,
                incarnation=self.outbox.incarnation,
                boot_id=self.clock.boot_id(),
                last_seq=self.outbox.max_seq(),
                backlog=backlog.count,
                oldest_undelivered_age_s=oldest_age,
                dead_letters=backlog.dead_letters,
                unheard=backlog.unheard,
                counters=totals,
            ),
            # Where the location is (issue 18): the province's list of check-in locations.
            "location_address": s.location.address,
            "location_ward": s.location.ward,
            "location_district": s.location.district,
            "location_province": s.location.province,
            **health.readings(s.storage.dir),
            "uptime_s": round(time.monotonic() - self.started_mono, 1),
            "slowest_answer_ms": self._slowest_answer_ms(),
            "scanners": dict(self._reader_states),
            "clock": "synced" if self.clock.synced() else "unsynced",
            "storage_fault": self._storage_fault,
            "audit_lost": self.audit.lost,
        }

    def _slowest_answer_ms(self) -> float:
        while self._answers and self._answers[0][0] < time.monotonic() - ANSWER_WINDOW_S:
            self._answers.popleft()
        return round(max((ms for _, ms in self._answers), default=0.0), 1)

    def status_snapshot(self) -> dict[str, Any]:
        """The status message's body; read from the publisher's thread, so it is a finished dict."""
        return dict(self._snapshot)


def hand_state_to_owner(directory: Path) -> None:
    """Run as root on a state directory another user owns (a technician's one-off `sudo qr-checkin
    run` on a device whose service runs as qr-checkin): gives every file in it to that owner, so the
    service can open the WAL, the audit log and the reserves this run made."""
    if os.geteuid() != 0:
        return
    try:
        owner = directory.stat()
        if owner.st_uid == 0:
            return
        entries = list(directory.iterdir())
    except OSError:
        return
    for path in entries:
        try:
            st = path.lstat()
            if (st.st_uid, st.st_gid) != (owner.st_uid, owner.st_gid):
                os.chown(path, owner.st_uid, owner.st_gid, follow_symlinks=False)
        except OSError:  # gone meanwhile, or a filesystem without owners
            continue


def run(settings: Settings) -> int:
    directory = settings.storage.dir
    if os.geteuid() == 0 and directory.is_dir() and directory.stat().st_uid != 0:
        log.warning(
            "running as root on %s, which uid %d owns: the files this run writes are handed to it",
            directory,
            directory.stat().st_uid,
        )
    return asyncio.run(Daemon(settings).run())
