"""Feedback: what the worker sees and hears, on every device `feedback.backends` names.

Every call returns at once: patterns play in the background, a newer signal replaces an older one,
and the pipeline never waits on them.

`FEEDBACK` is the table of devices: console (development) and gpio (gpiozero LEDs, buzzer, relay).
A new device (a small display) is one module here with a class that follows `Feedback` and has a
`from_settings(FeedbackSettings)` constructor, one entry below, its name in `FeedbackKind` and its
section on `FeedbackSettings` (device/settings.py). Several devices are driven through `FanOut`,
itself a Feedback, as gpiozero's CompositeDevice is itself a device.
"""

from __future__ import annotations

import contextlib
import enum
import importlib
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, NamedTuple, Protocol

from device.decision import Decision

if TYPE_CHECKING:
    from device.settings import FeedbackKind, FeedbackSettings


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
    """What a feedback device owes the pipeline (tests/device/feedback/test_contract.py holds every device to
    it): each call only hands work over and returns at once; a newer pattern replaces the one playing;
    after `close()` every call does nothing, and `close()` may be called twice. A device that can go on
    without a failed output (one dead GPIO pin) logs the fault instead of raising it."""

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


class FeedbackEntry(NamedTuple):
    # Imported only when configured: the console path never loads gpiozero.
    module: str
    cls: str


FEEDBACK: dict[FeedbackKind, FeedbackEntry] = {
    "console": FeedbackEntry("device.feedback.console", "ConsoleFeedback"),
    "gpio": FeedbackEntry("device.feedback.gpio", "GpioFeedback"),
}


class FanOut:
    """Several devices as one: every call goes to each in turn. One device's failure does not keep
    the others from answering; the first error is raised once all were called, so the scan loop
    still sees it (and logs it) as it would for a single device."""

    def __init__(self, devices: Sequence[Feedback]) -> None:
        self.devices = tuple(devices)

    def _each(self, call: Callable[[Feedback], None]) -> None:
        failure: Exception | None = None
        for device in self.devices:
            try:
                call(device)
            except Exception as exc:
                failure = failure or exc
        if failure is not None:
            raise failure

    def decision(self, decision: Decision) -> None:
        self._each(lambda device: device.decision(decision))

    def signal(self, signal: Signal) -> None:
        self._each(lambda device: device.signal(signal))

    def status(self, status: Status) -> None:
        self._each(lambda device: device.status(status))

    def close(self) -> None:
        self._each(lambda device: device.close())


def build_feedback(settings: FeedbackSettings) -> Feedback:
    """The configured devices: one as itself, several behind a FanOut. A device that cannot open
    (FeedbackError: pins held, no pin factory) closes the ones opened before it."""
    opened: list[Feedback] = []
    try:
        for kind in settings.devices:
            entry = FEEDBACK[kind]
            cls = getattr(importlib.import_module(entry.module), entry.cls)
            opened.append(cls.from_settings(settings))
    except Exception:
        for device in opened:
            with contextlib.suppress(Exception):
                device.close()
        raise
    return opened[0] if len(opened) == 1 else FanOut(opened)
