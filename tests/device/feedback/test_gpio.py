"""GpioFeedback on gpiozero's MockFactory with PWM-capable mock pins: every pattern, pin by pin."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from gpiozero import LED
from gpiozero.exc import PinError
from gpiozero.pins.mock import MockFactory, MockPWMPin

from device.decision import Decision
from device.errors import FeedbackError
from device.feedback import Signal, Status
from device.feedback.gpio import GpioFeedback
from device.settings import GpioFeedbackSettings
from tests.support.wait import wait_until

# The real patterns at a twentieth of their length: the same steps, a lean test run.
FAST = 0.05
IDLE_TIMEOUT_S = 10.0


class TonePin(MockPWMPin):
    """A mock PWM pin that keeps every frequency it was given (gpiozero keeps only the last) and can
    be broken, as a shorted or disconnected output would make a real pin factory fail."""

    def __init__(self, factory: Any, info: Any) -> None:
        super().__init__(factory, info)
        self.frequencies: list[float] = []
        self.broken = False

    def _set_state(self, value: float) -> None:
        if self.broken:
            raise PinError(f"{self!r} is broken")
        super()._set_state(value)

    def _set_frequency(self, value: float | None) -> None:
        super()._set_frequency(value)
        if value is not None:
            self.frequencies.append(value)


@pytest.fixture
def factory() -> Iterator[MockFactory]:
    factory = MockFactory(pin_class=TonePin)
    yield factory
    factory.reset()


@pytest.fixture
def make(factory: MockFactory) -> Iterator[Callable[..., GpioFeedback]]:
    made: list[GpioFeedback] = []

    def build(time_scale: float = FAST, **settings: Any) -> GpioFeedback:
        feedback = GpioFeedback(GpioFeedbackSettings(**settings), factory, time_scale=time_scale)
        made.append(feedback)
        return feedback

    yield build
    for feedback in made:
        feedback.close()


def on_off(factory: MockFactory, pin: int) -> list[bool]:
    return [bool(state.state) for state in factory.pin(pin).states]


def blinks(n: int) -> list[bool]:
    """A pin's history from its creation (off) through n on-off pulses."""
    return [False] + [True, False] * n


# (green LED pulses, red LED pulses, active buzzer beeps): amber lights both LEDs.
PULSES = {
    Signal.ACCEPTED: (1, 0, 1),
    Signal.ACCEPTED_OFFLINE: (2, 1, 2),
    Signal.DUPLICATE: (2, 0, 2),
    Signal.REJECTED: (0, 1, 1),
    Signal.STORAGE_LOW: (3, 3, 3),
    Signal.FAULT: (0, 6, 6),
    Signal.READY: (2, 2, 3),
    Signal.IDENTIFY: (8, 8, 8),
}

C5, A5, C6, E6, G6, A6, C7, E7 = 523.25, 880.0, 1046.5, 1318.51, 1567.98, 1760.0, 2093.0, 2637.02
TONES = {
    Signal.ACCEPTED: [C7],
    Signal.ACCEPTED_OFFLINE: [C7, G6],
    Signal.DUPLICATE: [G6, G6],
    Signal.REJECTED: [C5],
    Signal.STORAGE_LOW: [C6] * 3,
    Signal.FAULT: [A6, A5] * 3,
    Signal.READY: [C6, E6, G6],
    Signal.IDENTIFY: [E7] * 8,
}


@pytest.mark.parametrize("signal", list(Signal), ids=lambda s: s.value)
def test_every_pattern_plays_its_exact_state_sequence(
    signal: Signal, factory: MockFactory, make: Callable[..., GpioFeedback]
) -> None:
    feedback = make(green=17, red=27, buzzer=22)
    feedback.signal(signal)
    assert feedback.wait_idle(IDLE_TIMEOUT_S)
    green, red, beeps = PULSES[signal]
    assert on_off(factory, 17) == blinks(green)
    assert on_off(factory, 27) == blinks(red)
    assert on_off(factory, 22) == blinks(beeps)


@pytest.mark.parametrize("signal", list(Signal), ids=lambda s: s.value)
def test_tonal_buzzer_plays_the_pattern_frequencies(
    signal: Signal, factory: MockFactory, make: Callable[..., GpioFeedback]
) -> None:
    feedback = make(buzzer=18, buzzer_kind="tonal")
    pin = factory.pin(18)
    pin.frequencies.clear()  # gpiozero sets 100 Hz while it claims a PWM pin
    feedback.signal(signal)
    assert feedback.wait_idle(IDLE_TIMEOUT_S)
    assert pin.frequencies == pytest.approx(TONES[signal], rel=1e-3)
    # Half duty while a tone sounds, silent in between and at the end.
    expected = [0.0] + [0.5, 0.0] * len(TONES[signal])
    assert [float(state.state) for state in pin.states] == expected
    assert pin.frequency is None


def test_decisions_map_to_their_patterns(factory: MockFactory, make: Callable[..., GpioFeedback]) -> None:
    feedback = make(green=17, red=27, buzzer=22)
    feedback.decision(Decision("accepted", offline=True))
    assert feedback.wait_idle(IDLE_TIMEOUT_S)
    assert on_off(factory, 17) == blinks(2)
    assert on_off(factory, 27) == blinks(1)
    feedback.decision(Decision("duplicate"))
    assert feedback.wait_idle(IDLE_TIMEOUT_S)
    assert on_off(factory, 17) == blinks(4)
    assert on_off(factory, 27) == blinks(1)


def test_rgb_common_anode_mixes_amber_with_inverted_pins(
    factory: MockFactory, make: Callable[..., GpioFeedback]
) -> None:
    feedback = make(rgb=[5, 6, 13], rgb_common_anode=True)
    feedback.signal(Signal.ACCEPTED_OFFLINE)  # green, dark, amber
    assert feedback.wait_idle(IDLE_TIMEOUT_S)

    def levels(pin: int) -> list[float]:
        return [float(state.state) for state in factory.pin(pin).states]

    # Common anode: 1.0 on the pin is dark, 0.0 is full brightness. The first entry is the mock's
    # pin before the device claimed it.
    assert levels(5) == [0.0, 1.0, 0.0, 1.0]
    assert levels(6) == [0.0, 1.0, 0.0, 1.0, 0.5, 1.0]
    assert levels(13) == [0.0, 1.0]


def test_a_newer_signal_replaces_the_running_pattern(
    factory: MockFactory, make: Callable[..., GpioFeedback]
) -> None:
    feedback = make(time_scale=0.2, green=17, red=27, buzzer=22)
    feedback.signal(Signal.IDENTIFY)  # 16 colour changes over 0.8 s at this scale
    wait_until(lambda: factory.pin(17).state)
    feedback.signal(Signal.REJECTED)
    assert feedback.wait_idle(IDLE_TIMEOUT_S)
    green = on_off(factory, 17)
    assert len(green) < len(blinks(8)), "identify kept playing after rejected"
    assert green[-1] is False
    red = on_off(factory, 27)
    assert red[-2:] == [True, False]
    # The rejected buzz is the last thing the buzzer did, and nothing plays after it.
    assert on_off(factory, 22)[-2:] == [True, False]
    settled = (len(green), len(red))
    time.sleep(0.3)
    assert (len(on_off(factory, 17)), len(on_off(factory, 27))) == settled


def test_relay_pulses_on_acceptance_only_and_outlives_the_next_pattern(
    factory: MockFactory, make: Callable[..., GpioFeedback]
) -> None:
    # relay_pulse_s 30 at FAST is a 1.5 s pulse, far longer than a rejected pattern (75 ms).
    feedback = make(relay=23, relay_pulse_s=30, active_high={"relay": False})
    assert on_off(factory, 23) == [False, True]  # active low: idle means the pin is high
    feedback.signal(Signal.DUPLICATE)
    assert feedback.wait_idle(IDLE_TIMEOUT_S)
    assert on_off(factory, 23) == [False, True]
    feedback.signal(Signal.ACCEPTED)
    feedback.signal(Signal.REJECTED)
    assert feedback.wait_idle(IDLE_TIMEOUT_S)
    assert on_off(factory, 23) == [False, True, False], "the door closed on the accepted worker"
    wait_until(lambda: on_off(factory, 23) == [False, True, False, True], timeout=10)


def test_status_led_steady_slow_and_fast(factory: MockFactory, make: Callable[..., GpioFeedback]) -> None:
    feedback = make(time_scale=0.3, status=24)
    pin = factory.pin(24)

    def first_on_phase(status: Status) -> float:
        feedback.status(Status.ONLINE)  # lit, so the blink's first off marks the end of its first on
        pin.clear_states()
        feedback.status(status)
        wait_until(lambda: len(pin.states) >= 2)
        assert [bool(s.state) for s in pin.states[:2]] == [True, False]
        return float(pin.states[1].timestamp)

    slow = first_on_phase(Status.BUFFERING)
    fast = first_on_phase(Status.FAULT)
    # Nominally 0.3 s against 0.03 s; the margin absorbs two busy cores.
    assert slow > 3 * fast

    feedback.status(Status.ONLINE)
    pin.clear_states()
    time.sleep(0.2)
    assert pin.state and len(pin.states) == 1, "online must be steady"


def test_close_stops_patterns_and_releases_every_pin(
    factory: MockFactory, make: Callable[..., GpioFeedback]
) -> None:
    feedback = make(time_scale=1.0, green=17, red=27, buzzer=22, status=24, relay=23)
    feedback.status(Status.FAULT)
    feedback.signal(Signal.ACCEPTED)  # a 1 s pattern and a 1 s relay pulse, both cut short
    wait_until(lambda: factory.pin(17).state)
    feedback.close()
    feedback.close()
    feedback.signal(Signal.REJECTED)  # after close: ignored, not an error
    feedback.status(Status.ONLINE)
    for pin in (17, 27, 22, 24, 23):
        led = LED(pin, pin_factory=factory)
        led.on()
        assert factory.pin(pin).state
        led.close()


def test_a_pin_taken_elsewhere_fails_clearly_and_releases_the_rest(
    factory: MockFactory, make: Callable[..., GpioFeedback]
) -> None:
    squatter = LED(22, pin_factory=factory)
    with pytest.raises(FeedbackError, match=r"feedback\.gpio\.buzzer: cannot drive GPIO22"):
        make(green=17, red=27, buzzer=22)
    squatter.close()
    for pin in (17, 27):
        LED(pin, pin_factory=factory).close()


def test_tonal_buzzer_needs_pwm_pins() -> None:
    factory = MockFactory()  # plain MockPin: no PWM, as on a pin factory without it
    try:
        with pytest.raises(FeedbackError, match=r"feedback\.gpio\.buzzer: cannot drive GPIO18"):
            GpioFeedback(GpioFeedbackSettings(buzzer=18, buzzer_kind="tonal"), factory)
    finally:
        factory.reset()


def test_a_broken_output_never_raises_into_the_pipeline_nor_silences_the_others(
    factory: MockFactory, make: Callable[..., GpioFeedback], caplog: pytest.LogCaptureFixture
) -> None:
    feedback = make(green=17, red=27, buzzer=22, status=24)
    for pin in (17, 24):
        factory.pin(pin).broken = True
    feedback.status(Status.ONLINE)
    feedback.decision(Decision("accepted"))
    assert feedback.wait_idle(IDLE_TIMEOUT_S)
    feedback.decision(Decision("rejected"))
    assert feedback.wait_idle(IDLE_TIMEOUT_S)
    assert on_off(factory, 27) == blinks(1)
    assert on_off(factory, 22) == blinks(2)
    failures = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    # Once per output, however often it fails: a dead LED must not flood the journal.
    assert sorted(failures) == ["feedback green LED failed", "feedback status LED failed"]
    for pin in (17, 24):
        factory.pin(pin).broken = False
