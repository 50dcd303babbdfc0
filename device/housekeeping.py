"""The housekeeping, once a second beside the scan loop: one method per duty.

Clock-sync correction of undelivered events, retention, the space reserve, file ownership, the
readers' states, the status body, the disk alarm, the status light and systemd's status line.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import Callable, Sequence

from device.alarms import Alarms
from device.audit import AuditLog
from device.checkin import Checkin
from device.clock import Clock, Stamp
from device.durable import hand_state_to_owner
from device.errors import StorageError
from device.feedback import Feedback, Signal, Status
from device.notify import Notifier
from device.publisher import Publisher
from device.settings import Settings
from device.sources import Source
from device.status import StatusModel
from device.store import Outbox, free_bytes

log = logging.getLogger(__name__)

MAINTENANCE_S = 1.0
PURGE_EVERY_S = 60.0
STATUS_LINE_EVERY_S = 5.0


class Housekeeper:
    def __init__(
        self,
        settings: Settings,
        *,
        clock: Clock,
        outbox: Outbox,
        checkin: Checkin,
        publisher: Publisher,
        feedback: Feedback,
        sources: Sequence[Source],
        notifier: Notifier,
        audit: AuditLog,
        status: StatusModel,
        alarms: Alarms,
        restart: Callable[[], None],
    ) -> None:
        self._settings = settings
        self._clock = clock
        self._outbox = outbox
        self._checkin = checkin
        self._publisher = publisher
        self._feedback = feedback
        self._sources = sources
        self._notifier = notifier
        self._audit = audit
        self._status = status
        self._alarms = alarms
        # Asks the daemon to stop so that systemd starts it again (the store can be opened properly).
        self._restart = restart
        self._was_synced = False
        self._last_purge = 0.0
        self._last_status_line = 0.0
        self._light: Status | None = None

    def begin(self) -> None:
        """At start: events stamped before a sync that happened before this moment stay as they are."""
        self._was_synced = self._clock.synced()

    async def run(self) -> None:
        while True:
            await asyncio.sleep(MAINTENANCE_S)
            try:
                self.tick()
            except StorageError as exc:
                self._alarms.once("maintenance", "maintenance: %s", exc)
            except sqlite3.Error as exc:  # a read of the backlog or the counters on a failing store
                self._alarms.once("maintenance", "maintenance: storage error: %s", exc)
            except Exception:
                if self._alarms.once(
                    "maintenance", "ALARM: maintenance failed; retrying every %.0f s", MAINTENANCE_S
                ):
                    log.exception("maintenance failure")

    def tick(self) -> None:
        self._correct_after_sync()
        if time.monotonic() - self._last_purge >= PURGE_EVERY_S:
            self._last_purge = time.monotonic()
            if not self._outbox.refusing:
                self.purge()
        self._watch_space()
        hand_state_to_owner(self._settings.storage.dir)
        readers_changed = self.watch_readers()
        self._status.refresh()
        if readers_changed:
            # A scanner plugged in or lost is news now (for `qr-provision verify`), not at the heartbeat.
            self._publisher.announce()
        self._watch_disk()
        self._show_status()

    def _correct_after_sync(self) -> None:
        synced = self._clock.synced()
        if synced and not self._was_synced:
            fixed = self._outbox.correct_unsynced(
                self._clock.boot_id(), self._clock.wall(), self._clock.monotonic()
            )
            log.info("clock synchronised; corrected the time of %d undelivered events", fixed)
            self._audit.record("clock_synchronised", corrected=fixed)
            self._publisher.wake()
        self._was_synced = synced

    def purge(self) -> None:
        st = self._settings.storage
        dropped = self._outbox.purge(
            Stamp.now(self._clock),
            delivered_grace_s=st.delivered_grace_h * 3600,
            max_age_s=st.max_age_days * 86400,
            window_s=self._settings.checkin.duplicate_window_s,
        )
        if dropped:
            log.error("ALARM: dropped %d undelivered events older than %s days", dropped, st.max_age_days)
            self._audit.record("drop", count=dropped, reason="max_age_days")
        self._checkin.flush_counters()

    def _watch_space(self) -> None:
        """Keeps the space reserve made; a store opened refusing is reopened (by a restart, which
        systemd does) once the disk has room again."""
        if not self._outbox.refusing:
            self._outbox.space.ensure()
            return
        free = free_bytes(self._settings.storage.dir)
        if free is not None and free >= 2 * self._outbox.space.size:
            log.warning("storage has room again (%.1f MB): restarting to open the store", free / 2**20)
            self._audit.record("restart", reason="storage_room_again")
            self._restart()

    def watch_readers(self) -> bool:
        """Records each reader's new state in the audit log and the status; True when one changed."""
        changed = False
        readers = self._status.readers
        for src in self._sources:
            for name, state in src.state.items():
                key = f"{src.kind}:{name}"
                before = readers.get(key)
                if state != before:
                    changed = True
                    readers[key] = state
                    if before is not None or state != "connected":
                        log.info("scanner %s is %s", key, state)
                    self._audit.record(f"scanner_{state}", source=src.kind, device=name)
        return changed

    def _watch_disk(self) -> None:
        free = self._status.body().get("disk_free_mb")
        low = free is not None and free < self._settings.storage.low_space_mb
        if low and self._alarms.once("disk", "ALARM: only %.1f MB free for the store", free):
            self._feedback.signal(Signal.STORAGE_LOW)

    def _show_status(self) -> None:
        connected = self._publisher.connected
        light = self._status.light(connected=connected, has_sources=bool(self._sources))
        if light is not self._light:
            self._light = light
            self._feedback.status(light)
        if time.monotonic() - self._last_status_line >= STATUS_LINE_EVERY_S:
            self._last_status_line = time.monotonic()
            self._notifier.status(self._status.line(connected=connected))
