"""Failed logins slow down per account name, so guessing a password costs hours instead of seconds.

The state lives in the web process's memory (waitress serves from threads of one process). A restart
forgets it, but nothing on the page can make the process restart. The key is the name, not the client
address, because behind the site's reverse proxy every request comes from the proxy. Names that do not
exist are counted like real ones, so the answer never tells which names exist.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from dataclasses import dataclass

FREE_FAILURES = 5
FIRST_WAIT_S = 60.0
MAX_WAIT_S = 900.0
# A name whose last failure is this old starts again with free attempts.
FORGET_S = 3600.0
# Enough for any site's staff and a spray of invented names; beyond it the quietest are forgotten.
NAMES_KEPT = 10_000


@dataclass
class _Failures:
    count: int
    last: float
    until: float


class LoginThrottle:
    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._names: dict[str, _Failures] = {}

    def wait_s(self, name: str) -> int:
        """Whole seconds before `name` may try again (0: now)."""
        with self._lock:
            record = self._names.get(name)
            left = 0.0 if record is None else record.until - self._clock()
        return max(0, math.ceil(left))

    def failed(self, name: str) -> None:
        now = self._clock()
        with self._lock:
            record = self._names.pop(name, None)
            if record is None or now - record.last > FORGET_S:
                record = _Failures(0, now, now)
            record.count += 1
            record.last = now
            if record.count >= FREE_FAILURES:
                # 1, 2, 4, 8 minutes, then 15 minutes per attempt.
                record.until = now + min(FIRST_WAIT_S * 2 ** (record.count - FREE_FAILURES), MAX_WAIT_S)
            self._names[name] = record  # re-inserted: the dict's order is the order of the latest failure
            while len(self._names) > NAMES_KEPT:
                del self._names[next(iter(self._names))]

    def succeeded(self, name: str) -> None:
        with self._lock:
            self._names.pop(name, None)
