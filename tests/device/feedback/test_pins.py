"""GPIO pin settings: names normalised, bad pins and conflicts refused at start, naming both uses."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from device.errors import ConfigError
from device.settings import GpioFeedbackSettings, load_settings


def refused(**settings: Any) -> str:
    with pytest.raises(ValidationError) as info:
        GpioFeedbackSettings(**settings)
    return str(info.value)


def test_pin_spellings_become_bcm_numbers_and_false_leaves_a_device_out() -> None:
    gpio = GpioFeedbackSettings(green="GPIO5", red="bcm6", buzzer=" 13 ", status=False, relay="false")
    assert (gpio.green, gpio.red, gpio.buzzer, gpio.status, gpio.relay) == (5, 6, 13, None, None)
    assert gpio.pins() == [("green", 5), ("red", 6), ("buzzer", 13)]


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"relay": 17}, "GPIO17 is wired to both green and relay"),
        ({"status": 22}, "GPIO22 is wired to both buzzer and status"),
        ({"rgb": [5, 6, 5]}, "GPIO5 is wired to both rgb red and rgb blue"),
        ({"rgb": [5, 6, 22]}, "GPIO22 is wired to both rgb blue and buzzer"),
        ({"rgb": [5, 6, 13], "green": 4}, "give either rgb or green/red, not both"),
        ({"red": False}, "green and red come as a pair"),
        ({"buzzer": 40}, "GPIO40 does not exist"),
        ({"buzzer": "BOARD11"}, "not the header position"),
        ({"status": True}, "true is not a pin"),
        ({"rgb": [5, 6]}, "at least 3 items"),
        ({"active_high": {"gren": False}}, "Input should be 'green', 'red', 'buzzer', 'status' or 'relay'"),
        ({"buzzer_kind": "tonal", "active_high": {"buzzer": False}}, "does not apply to a tonal buzzer"),
    ],
)
def test_bad_pins_are_refused_with_a_clear_message(settings: dict[str, Any], message: str) -> None:
    assert message in refused(**settings)


def test_an_rgb_led_replaces_the_default_pair() -> None:
    gpio = GpioFeedbackSettings(rgb=[5, 6, 13], rgb_common_anode=True)
    assert (gpio.green, gpio.red) == (None, None)
    assert [use for use, _ in gpio.pins()] == ["rgb red", "rgb green", "rgb blue", "buzzer"]


def test_a_conflict_in_the_file_names_the_file_the_section_and_both_uses(tmp_path: Path) -> None:
    config = tmp_path / "device.toml"
    config.write_text(
        '[device]\nid = "d1"\n[location]\nid = "gate-1"\n'
        '[feedback]\nbackend = "gpio"\n[feedback.gpio]\nrelay = "GPIO27"\n',
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as info:
        load_settings(config)
    message = str(info.value)
    assert str(config) in message
    assert "feedback.gpio" in message
    assert "GPIO27 is wired to both red and relay" in message


def test_environment_can_leave_a_device_out(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    config = tmp_path / "device.toml"
    config.write_text('[device]\nid = "d1"\n[location]\nid = "gate-1"\n', encoding="utf-8")
    monkeypatch.setenv("QRCHECKIN_FEEDBACK__GPIO__BUZZER", "none")
    monkeypatch.setenv("QRCHECKIN_FEEDBACK__GPIO__STATUS", "GPIO24")
    gpio = load_settings(config).feedback.gpio
    assert (gpio.buzzer, gpio.status) == (None, 24)
