"""The daemon: `build` makes every part from settings, `Daemon.run` runs them until SIGTERM.

    sources --(Scan)--> ScanLoop --> Checkin.decide (durable) --> feedback
                                           outbox --> Publisher --> broker
    Housekeeper, once a second --> StatusModel --> heartbeat, status light, systemd's status line

Every part exists before anything runs, so no part ever meets a half-built neighbour. The event loop
runs the scan loop and the housekeeping, and feeds systemd's watchdog only while both turn, so a
stuck loop gets the daemon restarted; the publisher drains the outbox in its own thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from dataclasses import dataclass

from device import __version__
from device.alarms import Alarms
from device.answering import ScanLoop
from device.audit import AUDIT_FILE, AuditLog
from device.checkin import Checkin
from device.clock import Clock, SystemClock
from device.contract import Topics
from device.durable import hand_state_to_owner
from device.errors import CheckinError, StorageFull
from device.feedback import Feedback, Signal, build_feedback
from device.housekeeping import Housekeeper
from device.notify import Notifier
from device.privacy import build_privacy
from device.publisher import Publisher
from device.settings import Settings
from device.sources import Source, build_sources
from device.status import StatusModel
from device.store import Outbox

log = logging.getLogger(__name__)

EXIT_CANNOT_START = 3
# Started on a full card, the disk has room again: systemd's restart opens the store properly.
EXIT_STORAGE_BACK = 75


class CannotStart(Exception):
    """The store or the privacy keys could not be opened; already logged, audited and signalled."""


@dataclass(frozen=True)
class Parts:
    """Everything the daemon runs, each part made and wired to the others."""

    settings: Settings
    clock: Clock
    feedback: Feedback
    sources: list[Source]
    notifier: Notifier
    audit: AuditLog
    alarms: Alarms
    outbox: Outbox
    checkin: Checkin
    status: StatusModel
    publisher: Publisher


def build(
    settings: Settings,
    *,
    clock: Clock | None = None,
    feedback: Feedback | None = None,
    sources: list[Source] | None = None,
    notifier: Notifier | None = None,
) -> Parts:
    """Every part, made in dependency order; the arguments replace the hardware-backed defaults.

    Raises CannotStart (after logging, auditing and signalling it) when the store or the privacy
    keys cannot be opened."""
    clock = clock or SystemClock()
    feedback = feedback or build_feedback(settings.feedback)
    sources = sources if sources is not None else build_sources(settings.scanner)
    notifier = notifier or Notifier.from_env()
    audit = AuditLog(settings.storage.dir / AUDIT_FILE, clock=clock)
    alarms = Alarms()
    try:
        outbox, storage_fault = _open_store(settings)
        checkin = Checkin(settings, outbox, build_privacy(settings), clock)
        status = StatusModel(settings, outbox, clock, audit, lambda: checkin.unflushed, alarms, sources)
        status.storage_fault = storage_fault
        status.refresh()  # the publisher's MQTT will quotes it
        publisher = Publisher(
            settings.broker,
            Topics.of(settings.broker.topic_prefix, settings.location.id, settings.device.id),
            settings.device.id,
            outbox.twin(),
            status.body,
        )
    except CheckinError as exc:
        log.critical("cannot start: %s", exc)
        audit.record("start_failed", reason=type(exc).__name__)
        notifier.status(f"cannot start: {exc}")
        feedback.signal(Signal.FAULT)
        feedback.close()
        raise CannotStart(str(exc)) from exc
    return Parts(
        settings, clock, feedback, sources, notifier, audit, alarms, outbox, checkin, status, publisher
    )


def _open_store(settings: Settings) -> tuple[Outbox, str | None]:
    """The store and the fault it starts with; on a card too full to open it, one that refuses every
    check-in as "storage full" (so the device starts, and answers), until the disk has room and the
    daemon restarts."""
    directory = settings.storage.dir
    try:
        box = Outbox.open(directory)
    except StorageFull:
        log.error("ALARM: storage full: cannot open the store; every scan is answered 'storage full'")
        return Outbox.refusing_writes(directory), "storage full"
    box.space.ensure()
    return box, None


class Daemon:
    """The lifecycle: start records, the tasks, READY/STOPPING, the watchdog and the shutdown order."""

    def __init__(self, parts: Parts) -> None:
        self.parts = parts
        self._stop = asyncio.Event()
        self._exit_code = 0
        p = parts
        self.scan_loop = ScanLoop(p.settings, p.checkin, p.feedback, p.publisher, p.status, p.audit, p.alarms)
        self.housekeeper = Housekeeper(
            p.settings,
            clock=p.clock,
            outbox=p.outbox,
            checkin=p.checkin,
            publisher=p.publisher,
            feedback=p.feedback,
            sources=p.sources,
            notifier=p.notifier,
            audit=p.audit,
            status=p.status,
            alarms=p.alarms,
            restart=self._restart_for_storage,
        )

    async def run(self) -> int:
        p = self.parts
        s = p.settings
        self._audit_start()
        hand_state_to_owner(s.storage.dir)
        self.housekeeper.begin()
        self.housekeeper.watch_readers()
        p.status.refresh()  # the birth status carries the readers and what _audit_start found
        p.publisher.start()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stop.set)
        tasks = [
            asyncio.create_task(self.scan_loop.pump(src), name=f"source-{src.kind}") for src in p.sources
        ]
        vital = [
            asyncio.create_task(self.scan_loop.consume(), name="consume"),
            asyncio.create_task(self.housekeeper.run(), name="maintain"),
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
            ",".join(src.kind for src in p.sources) or "none",
            s.broker.host,
            s.broker.port,
        )
        # Ready means storage and sources are up; the broker may come much later (or never, on a bus).
        p.notifier.ready(p.status.line(connected=p.publisher.connected))
        p.feedback.signal(Signal.READY)
        await self._stop.wait()
        log.info("stopping")
        p.notifier.stopping("stopping")
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._shutdown()
        return self._exit_code

    def stop(self) -> None:
        self._stop.set()

    def _restart_for_storage(self) -> None:
        self._exit_code = EXIT_STORAGE_BACK
        self._stop.set()

    def _audit_start(self) -> None:
        p = self.parts
        config_hash = p.status.config_hash
        previous = [r for r in p.audit.read() if r.get("event") == "start"]
        if previous and previous[-1].get("config_hash") != config_hash:
            p.audit.record(
                "config_changed", previous_hash=previous[-1].get("config_hash"), config_hash=config_hash
            )
        p.audit.record("start", version=__version__, config_hash=config_hash)
        if p.outbox.refusing:
            p.audit.record("storage_full_at_start")
            p.feedback.signal(Signal.FAULT)
        if p.outbox.moved_aside is not None:
            p.audit.record("store_corrupt", moved_to=p.outbox.moved_aside.name, salvaged=p.outbox.salvaged)
            p.status.storage_fault = "corrupt store moved aside"
            p.feedback.signal(Signal.FAULT)

    def _shutdown(self) -> None:
        p = self.parts
        for src in p.sources:
            with contextlib.suppress(Exception):
                src.close()
        p.checkin.flush_counters()
        p.status.refresh()
        p.publisher.stop()
        p.feedback.close()
        p.audit.record("stop", backlog=p.status.body().get("backlog", 0))
        p.outbox.close()
        hand_state_to_owner(p.settings.storage.dir)
        p.notifier.close()
        log.info("stopped")

    async def _feed_watchdog(self, vital: list[asyncio.Task[None]]) -> None:
        """Pings systemd only while the scan loop and the housekeeping run: a loop that turns while
        either is dead must still get the daemon restarted."""
        interval = self.parts.notifier.watchdog_interval()
        if interval is None:
            return
        while not any(task.done() for task in vital):
            self.parts.notifier.watchdog()
            await asyncio.sleep(interval)

    def _vital_ended(self, task: asyncio.Task[None]) -> None:
        if self._stop.is_set():
            return
        # Only a bug gets here (both loops catch per turn): say so, and let the watchdog end the daemon.
        exc = None if task.cancelled() else task.exception()
        log.critical("ALARM: %s stopped (%r): the watchdog is no longer fed", task.get_name(), exc)


def run(settings: Settings) -> int:
    directory = settings.storage.dir
    if os.geteuid() == 0 and directory.is_dir() and directory.stat().st_uid != 0:
        log.warning(
            "running as root on %s, which uid %d owns: the files this run writes are handed to it",
            directory,
            directory.stat().st_uid,
        )
    try:
        parts = build(settings)
    except CannotStart:
        return EXIT_CANNOT_START
    return asyncio.run(Daemon(parts).run())
