"""What the pipeline decided about one scan: the fact that feedback shows and the console prints."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Outcome = Literal["accepted", "duplicate", "rejected"]


@dataclass(frozen=True, slots=True)
class Decision:
    outcome: Outcome
    event_id: str | None = None
    code_type: str | None = None
    # Safe to log and show: never carries personal data.
    reason: str | None = None
    # Accepted while the broker is unreachable: still a clear yes, but the device is buffering.
    offline: bool = False
    seq: int | None = None
