"""How much slower this CPU runs Python than the machine the waits were sized on.

scripts/test_arm.sh measures it (a small CPU-bound Python loop, natively and in the emulated root) and
exports it as QR_CHECKIN_SLOWDOWN; everywhere else it is 1, so natively every wait is as written. The
tests' wait and timeout helpers, and the chaos harness's latency bound, multiply by it: a wait sized
for native speed is not a failure of the code under emulation, while a wait that never ends still is.
"""

from __future__ import annotations

import os

ENV = "QR_CHECKIN_SLOWDOWN"


def _factor() -> float:
    raw = os.environ.get(ENV, "").strip()
    if not raw:
        return 1.0
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{ENV} must be a number (the measured CPU slowdown), not {raw!r}") from None
    # Never shrink a wait: a CPU measured faster than the baseline keeps the waits as written.
    return max(1.0, value)


SLOWDOWN = _factor()


def scaled(seconds: float) -> float:
    """`seconds` of waiting sized for native speed, on this CPU."""
    return seconds * SLOWDOWN
