"""GPIO feedback over gpiozero: green/red or RGB LED, active or tonal buzzer, status LED and relay.

One player thread plays one pattern at a time from device.feedback.patterns; every call here only
hands work over, so the pipeline never waits on a light or a beep.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from gpiozero import LED, RGBLED, Buzzer, DigitalOutputDevice, TonalBuzzer
from gpiozero.exc import BadPinFactory, GPIOZeroError
from gpiozero.tones import Tone

from device.decision import Decision
from device.errors import FeedbackError
from device.feedback import Signal, Status, signal_for
from device.feedback.patterns import MID_TONE, OCTAVES, PATTERNS, STATUS_BLINK, Beep, Colour, Light, Pattern
from device.settings import FeedbackSettings, GpioDeviceName, GpioFeedbackSettings

log = logging.getLogger(__name__)

# close() waits this long for the player thread; it only ever sleeps on a condition, so it is prompt.
JOIN_TIMEOUT_S = 2.0
NO_FACTORY_HINT = (
    " (on a Raspberry Pi 5 install the pi extra: pip install .[pi]; off a Pi, for development: "
    "GPIOZERO_PIN_FACTORY=mock GPIOZERO_MOCK_PIN_CLASS=mockpwmpin)"
)

D = TypeVar("D")


def _timeline(pattern: Pattern) -> list[tuple[float, Light | Beep]]:
    """The pattern's light and sound tracks merged into one timeline of (offset in seconds, step)."""
    timeline: list[tuple[float, Light | Beep]] = []
    for track in (pattern.light, pattern.sound):
        at = 0.0
        for step in track:
            timeline.append((at, step))
            at += step.seconds
    return sorted(timeline, key=lambda change: change[0])


class _Player:
    """Plays patterns on one thread; a pattern handed over while another plays replaces it at once."""

    def __init__(
        self, show: Callable[[Colour | None], None], sound: Callable[[float | None], None], time_scale: float
    ) -> None:
        self._show = show
        self._sound = sound
        self._scale = time_scale
        self._cond = threading.Condition()
        self._pending: Pattern | None = None
        self._busy = False
        self._closed = False
        self._thread = threading.Thread(target=self._loop, name="feedback-player", daemon=True)
        self._thread.start()

    def play(self, pattern: Pattern) -> None:
        with self._cond:
            if not self._closed:
                self._pending = pattern
                self._cond.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        with self._cond:
            return self._cond.wait_for(
                lambda: self._closed or (not self._busy and self._pending is None), timeout
            )

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._pending = None
            self._cond.notify_all()
        self._thread.join(JOIN_TIMEOUT_S)

    def _loop(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._pending is not None or self._closed)
                pattern, self._pending = self._pending, None
                if self._closed or pattern is None:
                    return
                self._busy = True
            try:
                self._perform(pattern)
            except Exception:
                # Whatever went wrong, the player must stay alive for the workers after this one.
                log.exception("feedback pattern failed")
            finally:
                self._show(None)
                self._sound(None)
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def _perform(self, pattern: Pattern) -> None:
        start = time.monotonic()
        for at, step in _timeline(pattern):
            if self._replaced_before(start + at * self._scale):
                return
            if isinstance(step, Light):
                self._show(step.colour)
            else:
                self._sound(step.hz)
        self._replaced_before(start + pattern.seconds * self._scale)

    def _replaced_before(self, deadline: float) -> bool:
        with self._cond:
            return self._cond.wait_for(
                lambda: self._pending is not None or self._closed, max(0.0, deadline - time.monotonic())
            )


class GpioFeedback:
    """The Feedback protocol on GPIO pins; `time_scale` < 1 plays the same patterns faster (tests)."""

    def __init__(
        self, settings: GpioFeedbackSettings, pin_factory: Any = None, *, time_scale: float = 1.0
    ) -> None:
        self._settings = settings
        self._factory = pin_factory
        self._scale = time_scale
        self._devices: list[Any] = []
        self._closed = False
        self._failed: set[str] = set()
        try:
            self._green = self._open("green", LED, settings.green, active_high=self._active_high("green"))
            self._red = self._open("red", LED, settings.red, active_high=self._active_high("red"))
            self._rgb = self._open_rgb()
            self._buzzer = self._open_buzzer()
            self._status = self._open("status", LED, settings.status, active_high=self._active_high("status"))
            self._relay = self._open(
                "relay", DigitalOutputDevice, settings.relay, active_high=self._active_high("relay")
            )
        except FeedbackError:
            self._close_devices()
            raise
        self._player = _Player(self._show, self._sound, time_scale)
        wiring = ", ".join(f"{use} GPIO{pin}" for use, pin in settings.pins()) or "nothing"
        log.info("feedback on GPIO: %s (%s buzzer)", wiring, settings.buzzer_kind)

    @classmethod
    def from_settings(cls, settings: FeedbackSettings) -> GpioFeedback:
        return cls(settings.gpio)

    # -- the Feedback protocol ------------------------------------------------------------------------

    def decision(self, decision: Decision) -> None:
        self.signal(signal_for(decision))

    def signal(self, signal: Signal) -> None:
        if self._closed:
            return
        pattern = PATTERNS[signal]
        if pattern.opens and self._relay is not None:
            # gpiozero's own thread, apart from the player: the next worker's pattern must not lock the
            # door on this one. A second acceptance restarts the pulse.
            with self._hardware_fault("relay"):
                self._relay.blink(on_time=self._settings.relay_pulse_s * self._scale, off_time=0, n=1)
        self._player.play(pattern)

    def status(self, status: Status) -> None:
        if self._closed or self._status is None:
            return
        blink = STATUS_BLINK[status]
        with self._hardware_fault("status LED"):
            if blink is None:
                self._status.on()
            else:
                self._status.blink(on_time=blink[0] * self._scale, off_time=blink[1] * self._scale)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._player.close()  # its last act switches the light and the buzzer off
        for device in (self._relay, self._status):
            if device is not None:
                # Released pins may float: a door strike must not be left open by a stopping daemon.
                with self._hardware_fault("relay" if device is self._relay else "status LED"):
                    device.off()
        self._close_devices()

    def wait_idle(self, timeout: float) -> bool:
        """Waits until no pattern plays (status LED and relay aside); False if still playing at timeout."""
        return self._player.wait_idle(timeout)

    @contextlib.contextmanager
    def _hardware_fault(self, output: str) -> Iterator[None]:
        # The pipeline calls in after an event is durable, and one dead output must not silence the
        # others: a GPIO fault is logged (with its traceback once per output), never raised.
        try:
            yield
        except GPIOZeroError:
            if output in self._failed:
                log.debug("feedback %s failed again", output)
            else:
                self._failed.add(output)
                log.exception("feedback %s failed", output)

    # -- outputs --------------------------------------------------------------------------------------

    def _show(self, colour: Colour | None) -> None:
        red, green, blue = colour.value if colour is not None else (0.0, 0.0, 0.0)
        if self._rgb is not None:
            with self._hardware_fault("rgb LED"):
                self._rgb.color = (red, green, blue)
        for output, led, level in (("green LED", self._green, green), ("red LED", self._red, red)):
            if led is not None:
                with self._hardware_fault(output):
                    led.value = level > 0

    def _sound(self, hz: float | None) -> None:
        with self._hardware_fault("buzzer"):
            if isinstance(self._buzzer, TonalBuzzer):
                if hz is None:
                    self._buzzer.stop()
                else:
                    self._buzzer.play(Tone.from_frequency(hz))
            elif self._buzzer is not None:
                self._buzzer.value = hz is not None

    # -- set-up and release ---------------------------------------------------------------------------

    def _open(self, use: str, make: Callable[..., D], *pins: int | None, **options: Any) -> D | None:
        if any(pin is None for pin in pins):
            return None
        try:
            device = make(*pins, pin_factory=self._factory, **options)
        except BadPinFactory as exc:
            raise FeedbackError(f"feedback.gpio.{use}: no GPIO pin factory: {exc}{NO_FACTORY_HINT}") from exc
        except GPIOZeroError as exc:
            where = ", ".join(f"GPIO{pin}" for pin in pins)
            raise FeedbackError(f"feedback.gpio.{use}: cannot drive {where}: {exc}") from exc
        self._devices.append(device)
        return device

    def _open_rgb(self) -> RGBLED | None:
        rgb = self._settings.rgb
        if rgb is None:
            return None
        # Common anode: the LED lights when the pin pulls its cathode low.
        return self._open("rgb", RGBLED, *rgb, active_high=not self._settings.rgb_common_anode, pwm=True)

    def _open_buzzer(self) -> Buzzer | TonalBuzzer | None:
        if self._settings.buzzer_kind == "tonal":
            return self._open(
                "buzzer", TonalBuzzer, self._settings.buzzer, mid_tone=Tone(MID_TONE), octaves=OCTAVES
            )
        return self._open("buzzer", Buzzer, self._settings.buzzer, active_high=self._active_high("buzzer"))

    def _active_high(self, use: GpioDeviceName) -> bool:
        return self._settings.active_high.get(use, True)

    def _close_devices(self) -> None:
        for device in reversed(self._devices):
            with contextlib.suppress(GPIOZeroError):
                device.close()
        self._devices.clear()
