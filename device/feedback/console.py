"""Console feedback: one JSON line per decision on stdout, flushed at once (a contract for tools)."""

from __future__ import annotations

import json
import logging
import sys
from typing import TYPE_CHECKING, TextIO

from device.decision import Decision
from device.feedback import Signal, Status

if TYPE_CHECKING:
    from device.settings import FeedbackSettings

log = logging.getLogger(__name__)


class ConsoleFeedback:
    def __init__(self, out: TextIO | None = None) -> None:
        self._out = out if out is not None else sys.stdout
        self._closed = False

    @classmethod
    def from_settings(cls, settings: FeedbackSettings) -> ConsoleFeedback:
        return cls()

    def decision(self, decision: Decision) -> None:
        if self._closed:
            return
        line = {
            "feedback": decision.outcome,
            "event_id": decision.event_id,
            "code_type": decision.code_type,
            "reason": decision.reason,
        }
        self._out.write(json.dumps(line, ensure_ascii=False) + "\n")
        self._out.flush()

    def signal(self, signal: Signal) -> None:
        if self._closed:
            return
        # Signals are not decisions: they go to the log so stdout stays one decision per line.
        log.info("feedback signal: %s", signal.value)

    def status(self, status: Status) -> None:
        if self._closed:
            return
        log.info("feedback status: %s", status.value)

    def close(self) -> None:
        self._closed = True
