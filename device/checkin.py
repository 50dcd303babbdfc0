"""The decision: recognise a scan, apply the duplicate window, build the event, make it durable.

`Checkin.decide` returns only after an accepted event is committed and synced (invariant 1), and it
never touches the network (invariant 3).
"""

from __future__ import annotations

import collections
import logging
from typing import Any

from uuid6 import uuid7

from device import __version__, contract
from device.clock import Clock, Stamp
from device.decision import Decision
from device.errors import StorageError
from device.payloads import Recognition, recognise
from device.privacy import Privacy
from device.scan import Scan
from device.settings import Settings
from device.store import Outbox

log = logging.getLogger(__name__)


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
        code_type = rec.type
        key = self._privacy.window_key(code_type, rec.subject_id)
        try:
            stored = self._outbox.append_unless_recent(
                key,
                stamp,
                self._settings.checkin.duplicate_window_s,
                lambda seq: self._event(seq, scan, rec, code_type, stamp),
            )
        except StorageError as exc:
            self.unflushed["storage_failures"] += 1
            return self._reject(scan, rec.type, str(exc))
        if stored is None:
            self.unflushed["duplicates"] += 1
            log.info("duplicate %s %s from %s", rec.type, self._privacy.masked(rec), scan.source)
            return Decision("duplicate", code_type=rec.type, reason="already checked in")
        seq, event = stored
        self.unflushed["accepted"] += 1
        log.info(
            "accepted seq=%d %s %s from %s%s",
            seq,
            rec.type,
            self._privacy.masked(rec),
            scan.source,
            " (offline)" * offline,
        )
        return Decision("accepted", event_id=event["event_id"], code_type=rec.type, offline=offline, seq=seq)

    def _reject(self, scan: Scan, code_type: str | None, reason: str) -> Decision:
        self.unflushed["rejected"] += 1
        log.warning("rejected scan from %s (%d chars): %s", scan.source, len(scan.text), reason)
        return Decision("rejected", code_type=code_type, reason=reason)

    def _event(self, seq: int, scan: Scan, rec: Recognition, code_type: str, stamp: Stamp) -> dict[str, Any]:
        s = self._settings
        return contract.build_event(
            event_id=str(uuid7()),
            seq=seq,
            incarnation=self._outbox.incarnation,
            device_id=s.device.id,
            location_id=s.location.id,
            location_kind=s.location.kind,
            location_name=s.location.name,
            wall=stamp.wall,
            synced=stamp.synced,
            boot_id=stamp.boot_id,
            monotonic_s=stamp.mono,
            source=scan.source,
            direction=scan.direction,
            code_type=code_type,
            code_variant=rec.variant,
            subject=self._privacy.subject(rec),
            software=__version__,
        )

    def flush_counters(self) -> None:
        """Adds what was counted since the last flush to the persistent totals (best effort)."""
        pending, self.unflushed = self.unflushed, collections.Counter()
        try:
            self._outbox.add_counters(dict(pending))
        except StorageError as exc:
            log.warning("could not persist counters: %s", exc)
            self.unflushed += pending
