"""Alarms that would flood the journal: each kind is logged at most once per repeat interval."""

from __future__ import annotations

import logging
import time

log = logging.getLogger(__name__)

ALARM_REPEAT_S = 60.0


class Alarms:
    def __init__(self, repeat_s: float = ALARM_REPEAT_S) -> None:
        self._repeat_s = repeat_s
        self._last: dict[str, float] = {}

    def once(self, kind: str, message: str, *args: object) -> bool:
        """Logs the alarm unless this kind was logged within the interval; True when it was logged."""
        if time.monotonic() - self._last.get(kind, -self._repeat_s) < self._repeat_s:
            return False
        self._last[kind] = time.monotonic()
        log.error(message, *args)
        return True
