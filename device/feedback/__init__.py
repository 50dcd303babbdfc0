"""Feedback: what the worker sees and hears. Backends: console (development) and gpio (gpiozero).

Every call returns at once: patterns play in the background, a newer signal replaces an older one,
and the pipeline never waits on them.
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING, Protocol

from device.decision import Decision

if TYPE_CHECKING:
    from device.settings import FeedbackSettings


class Signal(enum.Enum):
    ACCEPTED = "accepted"
    ACCEPTED_OFFLINE = "accepted_offline"
    DUPLICATE = "duplicate"
    REJECTED = "rejected"
    STORAGE_LOW = "storage_low"
    FAULT = "fault"
    READY = "ready"
    IDENTIFY = "identify"


class Status(enum.Enum):
    """What the status LED shows continuously."""

    ONLINE = "online"
    BUFFERING = "buffering"
    FAULT = "fault"


def signal_for(decision: Decision) -> Signal:
    if decision.outcome == "accepted":
        return Signal.ACCEPTED_OFFLINE if decision.offline else Signal.ACCEPTED
    if decision.outcome == "duplicate":
        return Signal.DUPLICATE
    return Signal.REJECTED


class Feedback(Protocol):
    def decision(self, decision: Decision) -> None:
        """Answers one scan (accepted, duplicate, rejected)."""
        ...

    def signal(self, signal: Signal) -> None:
        """Plays a pattern that is not an answer to a scan (ready, fault, identify, storage low)."""
        ...

    def status(self, status: Status) -> None:
        """Sets the continuous status indication."""
        ...

    def close(self) -> None:
        """Stops patterns and releases pins. Idempotent."""
        ...


def build_feedback(settings: FeedbackSettings) -> Feedback:
    """The configured backend. gpiozero is imported only for "gpio", so the console path never loads it."""
    if settings.backend == "gpio":
        from device.feedback.gpio import GpioFeedback

        return GpioFeedback(settings.gpio)
    from device.feedback.console import ConsoleFeedback

    return ConsoleFeedback()
