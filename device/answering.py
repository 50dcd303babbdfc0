"""The scan loop: every source's scans into one queue, each answered in turn.

    sources --(Scan)--> queue --> provisioning label? identify : Checkin.decide --> feedback

Scans are answered in the event loop's thread; the publisher is only woken, so an answer never
waits for the network.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from device.alarms import Alarms
from device.audit import AuditLog
from device.checkin import Checkin
from device.decision import Decision
from device.feedback import Feedback, Signal
from device.label_code import LabelCode, parse_label_code
from device.publisher import Publisher
from device.scan import Scan
from device.settings import Settings
from device.sources import Source
from device.status import StatusModel

log = logging.getLogger(__name__)

# A source that failed with an unexpected error is started again, backing off up to a minute.
SOURCE_RESTART_MIN_S = 1.0
SOURCE_RESTART_MAX_S = 60.0


class ScanLoop:
    def __init__(
        self,
        settings: Settings,
        checkin: Checkin,
        feedback: Feedback,
        publisher: Publisher,
        status: StatusModel,
        audit: AuditLog,
        alarms: Alarms,
    ) -> None:
        self._settings = settings
        self._checkin = checkin
        self._feedback = feedback
        self._publisher = publisher
        self._status = status
        self._audit = audit
        self._alarms = alarms
        self._scans: asyncio.Queue[Scan] = asyncio.Queue()

    async def pump(self, source: Source) -> None:
        """Feeds one source's scans into the queue, restarting the source after an unexpected error."""
        pause = SOURCE_RESTART_MIN_S
        while True:
            try:
                async for scan in source.scans():
                    pause = SOURCE_RESTART_MIN_S
                    await self._scans.put(scan)
                return  # the source ended on its own (stdin at EOF, a replay finished)
            except asyncio.CancelledError:
                raise
            except Exception:
                # A camera or driver error of a class the source did not expect: the reader comes back.
                log.exception("source %s failed; restarting it in %.0f s", source.kind, pause)
                quietly(self._feedback.signal, Signal.FAULT)
            await asyncio.sleep(pause)
            pause = min(pause * 2, SOURCE_RESTART_MAX_S)

    async def consume(self) -> None:
        while True:
            scan = await self._scans.get()
            try:
                self._handle(scan)
            except Exception:
                # One scan's failure (a closed console pipe, a GPIO error, a bug) must not end the loop
                # that answers every later one; the traceback names no scanned text.
                log.exception("scan from %s could not be answered", scan.source)
                quietly(self._feedback.signal, Signal.FAULT)
            # A queue of thousands of scans must not starve the watchdog and the housekeeping.
            await asyncio.sleep(0)

    def _handle(self, scan: Scan) -> None:
        label = parse_label_code(scan.text) if scan.damage is None else None
        if label is not None:
            self._identify(label)
            return
        self._answer(self._checkin.decide(scan, offline=not self._publisher.connected))
        # From the scanner's terminator (or the decoded frame) to the answer: what the worker waits.
        self._status.answered(scan.at_monotonic)

    def _answer(self, decision: Decision) -> None:
        self._feedback.decision(decision)
        if decision.outcome == "accepted":
            self._status.storage_fault = None
            self._publisher.wake()
        elif decision.reason and decision.reason.startswith("storage"):
            self._status.storage_fault = decision.reason
            # The worker sees the fault pattern, not a plain "rejected": it is the device, not the card.
            self._feedback.signal(Signal.FAULT)
            self._alarms.once(
                "storage", "ALARM: %s: scans are answered 'rejected' until it recovers", decision.reason
            )

    def _identify(self, label: LabelCode) -> None:
        """A technician showed this device's label: prove which device it is, publish no check-in."""
        s = self._settings
        matches = label.device_id == s.device.id and label.location_id == s.location.id
        same_config = label.config_hash == self._status.config_hash
        log.info(
            "provisioning label scanned: device matches=%s, configuration matches=%s", matches, same_config
        )
        self._feedback.signal(Signal.IDENTIFY)
        self._audit.record("label_scanned", matches=matches, config_matches=same_config)
        self._publisher.announce(
            provisioning_check={
                "label_device_id": label.device_id,
                "label_location_id": label.location_id,
                "label_config_hash": label.config_hash,
                "matches": matches,
                "config_matches": same_config,
            }
        )


def quietly(call: Callable[[Signal], None], signal_: Signal) -> None:
    """A fault pattern is worth trying, but the hardware that failed may fail again."""
    try:
        call(signal_)
    except Exception as exc:
        log.error("feedback failed too: %s: %s", type(exc).__name__, exc)
