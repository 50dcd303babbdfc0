"""One suite for the `Feedback` protocol, run over every feedback device (as gpiozero runs one suite
over every pin factory): the console on a text stream, GPIO on gpiozero's MockFactory with PWM pins,
and the two behind a FanOut, which must be a Feedback like any other.

Each backend says how much it has shown so far (lines written, pin changes) and how to wait for its
patterns to finish; the behaviour asserted is the same for all of them.
"""

from __future__ import annotations

import io
import typing
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from gpiozero import LED, Device
from gpiozero.pins.mock import MockFactory, MockPWMPin

from device.decision import Decision
from device.errors import FeedbackError
from device.feedback import FEEDBACK, FanOut, Feedback, Signal, Status, build_feedback
from device.feedback.console import ConsoleFeedback
from device.feedback.gpio import GpioFeedback
from device.settings import FeedbackKind, FeedbackSettings, GpioFeedbackSettings, load_settings
from tests.support.daemon import DaemonProcess, write_config

# The real patterns at a twentieth of their length.
FAST = 0.05
IDLE_TIMEOUT_S = 10.0
ACCEPTED = Decision("accepted", event_id="e-1", code_type="cccd")
REJECTED = Decision("rejected", code_type="other", reason="empty scan")


@dataclass
class Backend:
    feedback: Feedback
    # How many things the worker could have seen or heard so far.
    shown: Callable[[], int]
    # Waits until every pattern handed over has played.
    settle: Callable[[], None]


def console_backend() -> Backend:
    out = io.StringIO()
    return Backend(ConsoleFeedback(out), lambda: len(out.getvalue().splitlines()), lambda: None)


def gpio_backend(factory: MockFactory) -> Backend:
    settings = GpioFeedbackSettings(status=24, relay=23)
    feedback = GpioFeedback(settings, factory, time_scale=FAST)
    pins = [factory.pin(pin) for _, pin in settings.pins()]

    def settle() -> None:
        assert feedback.wait_idle(IDLE_TIMEOUT_S), "a pattern still plays"

    return Backend(feedback, lambda: sum(len(pin.states) for pin in pins), settle)


def fan_out_backend(factory: MockFactory) -> Backend:
    console, gpio = console_backend(), gpio_backend(factory)
    return Backend(
        FanOut([console.feedback, gpio.feedback]), lambda: console.shown() + gpio.shown(), gpio.settle
    )


@pytest.fixture
def factory() -> Iterator[MockFactory]:
    factory = MockFactory(pin_class=MockPWMPin)
    yield factory
    factory.reset()


@pytest.fixture(params=["console", "gpio", "fan-out"])
def backend(request: pytest.FixtureRequest, factory: MockFactory) -> Iterator[Backend]:
    made = {
        "console": console_backend,
        "gpio": lambda: gpio_backend(factory),
        "fan-out": lambda: fan_out_backend(factory),
    }
    chosen: Backend = made[request.param]()
    yield chosen
    chosen.feedback.close()


def test_every_device_in_the_table_has_a_backend_here_and_is_a_kind() -> None:
    assert set(FEEDBACK) == set(typing.get_args(FeedbackKind)) == {"console", "gpio"}


def test_a_decision_is_shown(backend: Backend) -> None:
    before = backend.shown()
    backend.feedback.decision(ACCEPTED)
    backend.settle()
    assert backend.shown() > before


def test_every_signal_and_status_is_taken(backend: Backend) -> None:
    for signal in Signal:
        backend.feedback.signal(signal)
    for status in Status:
        backend.feedback.status(status)
    backend.feedback.decision(REJECTED)
    backend.settle()


def test_after_close_nothing_more_is_shown_and_close_again_is_harmless(backend: Backend) -> None:
    backend.feedback.decision(ACCEPTED)
    backend.settle()
    backend.feedback.close()
    after = backend.shown()
    backend.feedback.decision(REJECTED)
    backend.feedback.signal(Signal.FAULT)
    backend.feedback.status(Status.FAULT)
    backend.feedback.close()
    assert backend.shown() == after


def test_a_fan_out_answers_on_every_device_even_when_one_fails(factory: MockFactory) -> None:
    broken = io.StringIO()
    broken.close()  # a console whose pipe is gone
    gpio = gpio_backend(factory)
    fan = FanOut([ConsoleFeedback(broken), gpio.feedback])
    before = gpio.shown()
    with pytest.raises(ValueError, match="closed file"):
        fan.decision(ACCEPTED)
    gpio.settle()
    assert gpio.shown() > before, "the LEDs answered although the console failed first"
    fan.close()


def test_build_feedback_gives_one_device_as_itself_and_several_behind_a_fan_out(tmp_path: Path) -> None:
    assert isinstance(build_feedback(FeedbackSettings()), ConsoleFeedback)
    config = tmp_path / "device.toml"
    config.write_text(
        '[device]\nid = "d1"\n[location]\nid = "L1"\n[feedback]\nbackends = ["console", "gpio"]\n'
        "[feedback.gpio]\nstatus = 24\n"
    )
    settings = load_settings(config).feedback
    factory = MockFactory(pin_class=MockPWMPin)
    try:
        Device.pin_factory = factory
        built = build_feedback(settings)
        assert isinstance(built, FanOut)
        assert [type(d) for d in built.devices] == [ConsoleFeedback, GpioFeedback]
        built.status(Status.ONLINE)
        assert factory.pin(24).state == 1
        built.close()
    finally:
        Device.pin_factory = None
        factory.reset()


def test_a_device_that_cannot_open_fails_the_build_with_its_reason() -> None:
    factory = MockFactory(pin_class=MockPWMPin)
    Device.pin_factory = factory
    blocker = LED(17)  # another process's LED on the green pin
    try:
        with pytest.raises(FeedbackError, match="GPIO17"):
            build_feedback(FeedbackSettings(backends=["console", "gpio"]))
    finally:
        blocker.close()
        Device.pin_factory = None
        factory.reset()


def test_the_daemon_answers_on_both_devices_a_config_names(tmp_path: Path) -> None:
    config = write_config(
        tmp_path / "device.toml",
        port=1,
        storage=tmp_path / "state",
        feedback={"backends": ["console", "gpio"]},
    )
    daemon = DaemonProcess(
        config, env={"GPIOZERO_PIN_FACTORY": "mock", "GPIOZERO_MOCK_PIN_CLASS": "mockpwmpin"}
    ).start()
    try:
        daemon.wait_log("feedback on GPIO: green GPIO17, red GPIO27, buzzer GPIO22")
        assert daemon.scan("VISITOR-42")["feedback"] == "accepted", "the console still prints each answer"
        assert daemon.terminate() == 0
    finally:
        daemon.stop()
