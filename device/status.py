"""The status model: what the retained status message says, and the facts it is built from.

`store_status` is the part read from the store, the settings and the clock: the daemon's heartbeat
and `qr-checkin status` both build it here, so the two can never disagree on a key. `StatusModel`
adds what only the running daemon knows (its readers, its storage fault, its answer times) and keeps
the finished body the publisher's thread reads.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from device import __version__, contract, health
from device.alarms import Alarms
from device.audit import AuditLog
from device.clock import Clock
from device.feedback import Status
from device.settings import Settings
from device.store import Backlog, Outbox, StoreReader

# Warn about undelivered events once they are this far into their allowed age.
AGE_ALARM_FRACTION = 0.5
# The status's slowest answer is the slowest of this last span.
ANSWER_WINDOW_S = 60.0


def store_status(
    settings: Settings, outbox: StoreReader, clock: Clock, *, config_hash: str, counters: Mapping[str, int]
) -> dict[str, Any]:
    """The status keys the store, the settings and the clock answer (contract.status_fields)."""
    backlog = outbox.backlog()
    return contract.status_fields(
        device_id=settings.device.id,
        location_id=settings.location.id,
        location_kind=settings.location.kind,
        location_name=settings.location.name,
        version=__version__,
        config_hash=config_hash,
        incarnation=outbox.incarnation,
        boot_id=clock.boot_id(),
        last_seq=outbox.max_seq(),
        backlog=backlog.count,
        oldest_undelivered_age_s=undelivered_age_s(backlog, clock),
        dead_letters=backlog.dead_letters,
        unheard=backlog.unheard,
        counters=counters,
    )


def undelivered_age_s(backlog: Backlog, clock: Clock) -> float | None:
    """How long the oldest undelivered event has waited. Within this boot by the monotonic clock, as the
    purge ages it: a wall clock that steps (NTP, a GPS fix) moves no event's age, so it neither raises a
    false "old backlog" alarm nor hides a true one. An event of an earlier boot has only its wall time."""
    if backlog.oldest_wall is None:
        return None
    if backlog.oldest_mono is not None and backlog.oldest_boot_id == clock.boot_id():
        return round(max(0.0, clock.monotonic() - backlog.oldest_mono), 1)
    return round(clock.wall() - backlog.oldest_wall, 1)


class StatusModel:
    """The running daemon's status: the facts the scan loop and the housekeeping report, and the
    body built from them once a turn (read from the publisher's thread, so a finished dict)."""

    def __init__(
        self,
        settings: Settings,
        outbox: Outbox,
        clock: Clock,
        audit: AuditLog,
        unflushed: Callable[[], Mapping[str, int]],
        alarms: Alarms,
        sources: Sequence[object] = (),
    ) -> None:
        self._settings = settings
        self._outbox = outbox
        self._clock = clock
        self._audit = audit
        # The check-in counts not yet saved to the store (a getter: each flush starts a new counter).
        self._unflushed = unflushed
        self._alarms = alarms
        # A source that decodes frames reports its figures (frames/s, decode p99, share escalated).
        self._vision_stats = [
            stats for src in sources if (stats := getattr(src, "vision_stats", None)) is not None
        ]
        self.config_hash = settings.config_hash()
        self._started_mono = time.monotonic()
        # Each reader ("kind:name") and its state, as the housekeeping last saw it.
        self.readers: dict[str, str] = {}
        # Why check-ins fail for a reason of the device's own (full or corrupt storage), or None.
        self.storage_fault: str | None = None
        # (when, ms) of recent answers, for the slowest answer of the last minute.
        self._answers: collections.deque[tuple[float, float]] = collections.deque(maxlen=10_000)
        self._body: dict[str, Any] = {}

    def answered(self, at_monotonic: float) -> None:
        """A scan read at `at_monotonic` was answered just now."""
        now = time.monotonic()
        self._answers.append((now, (now - at_monotonic) * 1000))

    def refresh(self) -> None:
        s = self._settings
        stored = self._outbox.counters()
        unflushed = self._unflushed()
        totals = {name: stored.get(name, 0) + unflushed.get(name, 0) for name in contract.COUNTER_NAMES}
        totals["dropped"] = stored.get("dropped", 0)
        body = store_status(s, self._outbox, self._clock, config_hash=self.config_hash, counters=totals)
        oldest_age = body["oldest_undelivered_age_s"]
        if oldest_age is not None and oldest_age > AGE_ALARM_FRACTION * s.storage.max_age_days * 86400:
            self._alarms.once(
                "age", "ALARM: the oldest undelivered event is %.1f days old", oldest_age / 86400
            )
        self._body = {
            **body,
            # Where the location is (issue 18): the province's list of check-in locations.
            "location_address": s.location.address,
            "location_ward": s.location.ward,
            "location_district": s.location.district,
            "location_province": s.location.province,
            **health.readings(s.storage.dir),
            "uptime_s": round(time.monotonic() - self._started_mono, 1),
            "slowest_answer_ms": self._slowest_answer_ms(),
            "scanners": dict(self.readers),
            "clock": "synced" if self._clock.synced() else "unsynced",
            "storage_fault": self.storage_fault,
            "audit_lost": self._audit.lost,
        }
        for stats in self._vision_stats:
            self._body["camera"] = stats()

    def body(self) -> dict[str, Any]:
        """The status message's body as last refreshed."""
        return dict(self._body)

    def light(self, *, connected: bool, has_sources: bool) -> Status:
        if self.storage_fault or (has_sources and "connected" not in self.readers.values()):
            return Status.FAULT
        return Status.ONLINE if connected else Status.BUFFERING

    def line(self, *, connected: bool) -> str:
        """The one-line status systemd shows (`systemctl status`)."""
        body = self._body
        counters = body.get("counters", {})
        return (
            f"{'online' if connected else 'buffering'}, backlog {body.get('backlog', 0)},"
            f" accepted {counters.get('accepted', 0)}, rejected {counters.get('rejected', 0)},"
            f" clock {body.get('clock', '?')}"
        )

    def _slowest_answer_ms(self) -> float:
        while self._answers and self._answers[0][0] < time.monotonic() - ANSWER_WINDOW_S:
            self._answers.popleft()
        return round(max((ms for _, ms in self._answers), default=0.0), 1)
