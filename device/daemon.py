"""The daemon: builds the pipeline from settings and runs it until SIGTERM.

    sources --(Scan)--> queue --> Checkin.decide (durable) --> feedback
                                        outbox --> Publisher --> broker

Scans are answered in the event loop's thread; the publisher drains the outbox in its own thread,
so feedback never waits for the network.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import signal
import time
from pathlib import Path
from typing import Any

from device import __version__
from device.checkin import Checkin, iso_utc
from device.clock import Clock, SystemClock
from device.decision import Decision
from device.errors import CheckinError, StorageError
from device.feedback import Feedback, Signal, Status
from device.outbox import Outbox
from device.privacy import Privacy, load_key
from device.publisher import Publisher, Topics
from device.scan import Scan
from device.settings import Settings
from device.sources import Source

log = logging.getLogger(__name__)

MAINTENANCE_S = 1.0
PURGE_EVERY_S = 60.0
# Warn about undelivered events once they are this far into their allowed age.
AGE_ALARM_FRACTION = 0.5

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


def build_feedback(settings: Settings) -> Feedback:
    if settings.feedback.backend == "gpio":
        from device.feedback.gpio import GpioFeedback

        return GpioFeedback(settings.feedback.gpio)
    from device.feedback.console import ConsoleFeedback

    return ConsoleFeedback()


class Daemon:
    def __init__(
        self,
        settings: Settings,
        *,
        clock: Clock | None = None,
        feedback: Feedback | None = None,
        sources: list[Source] | None = None,
    ) -> None:
        self.settings = settings
        self.clock = clock or SystemClock()
        self.feedback = feedback or build_feedback(settings)
        self.sources = sources if sources is not None else build_sources(settings)
        self.started_mono = time.monotonic()
        self.config_hash = settings.config_hash()
        self._snapshot: dict[str, Any] = {}
        self._stop = asyncio.Event()
        self._was_synced = False
        self._last_purge = 0.0
        self._last_age_alarm = 0.0
        self._storage_fault: str | None = None
        self._light: Status | None = None

    # -- lifecycle ---------------------------------------------------------------------------------

    async def run(self) -> int:
        s = self.settings
        try:
            self.outbox = Outbox.open(s.storage.dir)
            privacy = Privacy(
                s.privacy.subject,
                load_key(s.key_path, create=s.device.dev),
                s.privacy.authority_public_key,
            )
        except CheckinError as exc:
            log.critical("cannot start: %s", exc)
            self.feedback.signal(Signal.FAULT)
            self.feedback.close()
            return 3
        self.checkin = Checkin(s, self.outbox, privacy, self.clock)
        self._was_synced = self.clock.synced()
        self._refresh_snapshot()
        self.publisher = Publisher(
            s.broker,
            Topics.of(s.broker.topic_prefix, s.location.id, s.device.id),
            s.device.id,
            Outbox(self.outbox.path),
            self.status_snapshot,
        )
        self.publisher.start()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stop.set)
        scans: asyncio.Queue[Scan] = asyncio.Queue()
        tasks = [
            asyncio.create_task(self._pump(src, scans), name=f"source-{src.kind}") for src in self.sources
        ]
        tasks.append(asyncio.create_task(self._consume(scans), name="consume"))
        tasks.append(asyncio.create_task(self._maintain(), name="maintain"))
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
        self.feedback.signal(Signal.READY)
        await self._stop.wait()
        log.info("stopping")
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._shutdown()
        return 0

    def _shutdown(self) -> None:
        for src in self.sources:
            with contextlib.suppress(Exception):
                src.close()
        self.checkin.flush_counters()
        self._refresh_snapshot()
        self.publisher.stop()
        self.feedback.close()
        self.outbox.close()
        log.info("stopped")

    def stop(self) -> None:
        self._stop.set()

    # -- the pipeline --------------------------------------------------------------------------------

    async def _pump(self, source: Source, scans: asyncio.Queue[Scan]) -> None:
        try:
            async for scan in source.scans():
                await scans.put(scan)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("source %s failed", source.kind)
            self.feedback.signal(Signal.FAULT)

    async def _consume(self, scans: asyncio.Queue[Scan]) -> None:
        while True:
            scan = await scans.get()
            decision = self.checkin.decide(scan, offline=not self.publisher.connected)
            self._answer(decision)

    def _answer(self, decision: Decision) -> None:
        self.feedback.decision(decision)
        if decision.outcome == "accepted":
            self.publisher.wake()
        elif decision.reason and decision.reason.startswith("storage"):
            self._storage_fault = decision.reason

    # -- housekeeping ----------------------------------------------------------------------------------

    async def _maintain(self) -> None:
        while True:
            await asyncio.sleep(MAINTENANCE_S)
            try:
                self._maintain_once()
            except StorageError as exc:
                log.warning("maintenance: %s", exc)

    def _maintain_once(self) -> None:
        now = self.clock.wall()
        synced = self.clock.synced()
        if synced and not self._was_synced:
            fixed = self.outbox.correct_unsynced(self.clock.boot_id(), now, self.clock.monotonic(), iso_utc)
            log.info("clock synchronised; corrected the time of %d undelivered events", fixed)
            self.publisher.wake()
        self._was_synced = synced
        if time.monotonic() - self._last_purge >= PURGE_EVERY_S:
            self._last_purge = time.monotonic()
            self._purge(now)
        self._refresh_snapshot()
        light = self._status_light()
        if light is not self._light:
            self._light = light
            self.feedback.status(light)

    def _purge(self, now: float) -> None:
        st = self.settings.storage
        dropped = self.outbox.purge(
            now,
            delivered_grace_s=st.delivered_grace_h * 3600,
            max_age_s=st.max_age_days * 86400,
            window_s=self.settings.checkin.duplicate_window_s,
        )
        if dropped:
            log.error("ALARM: dropped %d undelivered events older than %s days", dropped, st.max_age_days)
        self.checkin.flush_counters()
        self._storage_fault = None

    def _status_light(self) -> Status:
        if self._storage_fault or not self._any_source_connected():
            return Status.FAULT
        return Status.ONLINE if self.publisher.connected else Status.BUFFERING

    def _any_source_connected(self) -> bool:
        return not self.sources or any(
            state == "connected" for src in self.sources for state in src.state.values()
        )

    def _refresh_snapshot(self) -> None:
        backlog = self.outbox.backlog()
        now = self.clock.wall()
        oldest_age = None if backlog.oldest_wall is None else round(now - backlog.oldest_wall, 1)
        max_age_s = self.settings.storage.max_age_days * 86400
        old = oldest_age is not None and oldest_age > AGE_ALARM_FRACTION * max_age_s
        if old and time.monotonic() - self._last_age_alarm > 3600:
            self._last_age_alarm = time.monotonic()
            log.error("ALARM: the oldest undelivered event is %.1f days old", (oldest_age or 0) / 86400)
        stored = self.outbox.counters()
        live = self.checkin.counters
        totals = {
            name: stored.get(name, 0) + live.unflushed.get(name, 0)
            for name in ("scans", "accepted", "duplicates", "rejected", "storage_failures")
        }
        totals["dropped"] = stored.get("dropped", 0)
        s = self.settings
        self._snapshot = {
            "device_id": s.device.id,
            "location_id": s.location.id,
            "location_kind": s.location.kind,
            "location_name": s.location.name,
            "version": __version__,
            "config_hash": self.config_hash,
            "uptime_s": round(time.monotonic() - self.started_mono, 1),
            "backlog": backlog.count,
            "oldest_undelivered_age_s": oldest_age,
            "dead_letters": backlog.dead_letters,
            "counters": totals,
            "scanners": {f"{src.kind}:{name}": st for src in self.sources for name, st in src.state.items()},
            "clock": "synced" if self.clock.synced() else "unsynced",
            "storage_fault": self._storage_fault,
        }

    def status_snapshot(self) -> dict[str, Any]:
        """The status message's body; read from the publisher's thread, so it is a finished dict."""
        return dict(self._snapshot)


def run(settings: Settings) -> int:
    Path(settings.storage.dir).mkdir(parents=True, exist_ok=True)
    return asyncio.run(Daemon(settings).run())
