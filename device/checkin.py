"""The decision: recognise a scan, apply the duplicate window, build the event, make it durable.

`Checkin.decide` returns only after an accepted event is committed and synced (invariant 1), and it
never touches the network (invariant 3).
"""

from __future__ import annotations

import collections
import logging
from typing import Any

from uuid6 import uuid7

from device import __version__
from device.clock import Clock, iso_utc
from device.decision import Decision
from device.errors import StorageError
from device.outbox import Outbox, Stamp
from device.payloads import Recognition, recognise
from device.privacy import Privacy
from device.scan import Scan
from device.settings import Settings

log = logging.getLogger(__name__)

EVENT_SCHEMA = "checkin.event/1"


# What is counted per scan; the store keeps the totals across restarts (plus "dropped").
COUNTER_NAMES = ("scans", "accepted", "duplicates", "rejected", "storage_failures")


class Checkin:
    def __init__(self, settings: Settings, outbox: Outbox, privacy: Privacy, clock: Clock) -> None:
        self._settings = settings
        self._outbox = outbox
        self._privacy = privacy
        self._clock = clock
        # Counted since the last flush to the store: totals survive restarts without a write per rejection.
        self.unflushed: collections.Counter[str] = collections.Counter()

    def decide(self, scan: Scan, *, offline: bool = False) -> Decision:
        self.unflushed["scans"] += 1
        if scan.damage is not None:
            return self._reject(scan, None, scan.damage)
        rec = recognise(scan.text, accept_other=self._settings.checkin.accept_other)
        if not rec.accepted or rec.type is None or rec.subject_id is None:
            return self._reject(scan, rec.type, rec.reason or "not accepted")
        stamp = Stamp.now(self._clock)
        key = self._privacy.pseudonym(rec.type, rec.subject_id)
        try:
            stored = self._outbox.append_unless_recent(
                key,
                stamp,
                self._settings.checkin.duplicate_window_s,
                lambda seq: self._event(seq, scan, rec, stamp),
            )
        except StorageError as exc:
            self.unflushed["storage_failures"] += 1
            return self._reject(scan, rec.type, str(exc))
        if stored is None:
            self.unflushed["duplicates"] += 1
            log.info("duplicate %s %s from %s", rec.type, rec.masked, scan.source)
            return Decision("duplicate", code_type=rec.type, reason="already checked in")
        seq, event = stored
        self.unflushed["accepted"] += 1
        log.info(
            "accepted seq=%d %s %s from %s%s", seq, rec.type, rec.masked, scan.source, " (offline)" * offline
        )
        return Decision("accepted", event_id=event["event_id"], code_type=rec.type, offline=offline, seq=seq)

    def _reject(self, scan: Scan, code_type: str | None, reason: str) -> Decision:
        self.unflushed["rejected"] += 1
        log.warning("rejected scan from %s (%d chars): %s", scan.source, len(scan.text), reason)
        return Decision("rejected", code_type=code_type, reason=reason)

    def _event(self, seq: int, scan: Scan, rec: Recognition, stamp: Stamp) -> dict[str, Any]:
        s = self._settings
        event: dict[str, Any] = {
            "schema": EVENT_SCHEMA,
            "event_id": str(uuid7()),
            "device_id": s.device.id,
            "location_id": s.location.id,
            "location_kind": s.location.kind,
            "seq": seq,
            "scanned_at": iso_utc(stamp.wall),
            "clock": "synced" if stamp.synced else "unsynced",
            "boot_id": stamp.boot_id,
            "monotonic_s": round(stamp.mono, 3),
            "source": scan.source,
            "direction": scan.direction,
            "code": {"type": rec.type, "variant": rec.variant},
            "subject": self._privacy.subject(rec),
            "software": __version__,
        }
        if s.location.name:
            event["location_name"] = s.location.name
        return event

    def flush_counters(self) -> None:
        """Adds what was counted since the last flush to the persistent totals (best effort)."""
        pending, self.unflushed = self.unflushed, collections.Counter()
        try:
            self._outbox.add_counters(dict(pending))
        except StorageError as exc:
            log.warning("could not persist counters: %s", exc)
            self.unflushed += pending
