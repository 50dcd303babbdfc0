"""Configuration: the TOML file, environment overrides, and errors that name the key and the file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from device.errors import ConfigError
from device.settings import load_settings
from tests.support.daemon import run_cli

GOOD = """
[device]
id = "qrc-0001"
[location]
id = "98C12345"
kind = "bus"
[broker]
host = "broker.local"
password = "s3cret-pass"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "device.toml"
    path.write_text(text)
    return path


def test_defaults_and_values(tmp_path: Path) -> None:
    s = load_settings(write(tmp_path, GOOD))
    assert s.device.id == "qrc-0001" and s.location.kind == "bus"
    assert s.broker.port == 1883 and s.broker.protocol == "5"
    assert s.scanner.sources == ["stdin"] and s.feedback.backend == "console"
    assert s.privacy.subject == "hmac"


def test_unknown_key_names_the_key_and_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD + "\n[storage]\ndirr = '/tmp'\n")
    with pytest.raises(ConfigError) as err:
        load_settings(path)
    assert "storage.dirr" in str(err.value) and str(path) in str(err.value)


def test_unknown_section_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown key 'brokr'"):
        load_settings(write(tmp_path, GOOD + "\n[brokr]\nhost = 'x'\n"))


@pytest.mark.parametrize("bad", ["98C/123", "a+b", "#", "", "with space", "x" * 65, "nul\\u0000"])
def test_ids_must_be_topic_safe(tmp_path: Path, bad: str) -> None:
    text = GOOD.replace('id = "98C12345"', f'id = "{bad}"')
    with pytest.raises(ConfigError, match=r"location\.id"):
        load_settings(write(tmp_path, text))


def test_environment_overrides_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QRCHECKIN_BROKER__PORT", "8883")
    monkeypatch.setenv("QRCHECKIN_CHECKIN__DUPLICATE_WINDOW_S", "30")
    s = load_settings(write(tmp_path, GOOD))
    assert s.broker.port == 8883 and s.checkin.duplicate_window_s == 30


def test_bad_environment_value_names_the_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QRCHECKIN_BROKER__PORT", "not-a-port")
    with pytest.raises(ConfigError, match="QRCHECKIN_BROKER__PORT"):
        load_settings(write(tmp_path, GOOD))


def test_relative_storage_dir_is_relative_to_the_file(tmp_path: Path) -> None:
    s = load_settings(write(tmp_path, GOOD + "\n[storage]\ndir = 'state'\n"))
    assert s.storage.dir == tmp_path / "state"


def test_sealed_mode_needs_the_authority_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="authority_public_key"):
        load_settings(write(tmp_path, GOOD + "\n[privacy]\nsubject = 'sealed'\n"))


def test_invalid_toml_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(write(tmp_path, "[device\n"))
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "nope.toml")


def test_check_config_prints_the_effective_settings_without_secrets(tmp_path: Path) -> None:
    result = run_cli("check-config", "--config", str(write(tmp_path, GOOD)))
    assert result.returncode == 0, result.stderr
    effective = json.loads(result.stdout)
    assert effective["broker"]["host"] == "broker.local"
    assert "s3cret-pass" not in result.stdout
    assert len(effective["config_hash"]) == 12


def test_check_config_fails_with_the_reason(tmp_path: Path) -> None:
    result = run_cli("check-config", "--config", str(write(tmp_path, GOOD + "\n[checkin]\nwindow = 3\n")))
    assert result.returncode != 0
    assert "unknown key 'checkin.window'" in result.stderr


def test_keys_added_later_leave_the_hash_of_a_configuration_without_them(tmp_path: Path) -> None:
    plain = load_settings(write(tmp_path, GOOD))
    dump = plain.model_dump(mode="json")
    assert "backends" not in dump["feedback"]
    assert {"ports", "terminator", "gap_ms"}.isdisjoint(dump["scanner"]["serial"])
    assert plain.feedback.devices == ["console"]
    both = load_settings(write(tmp_path, GOOD + '[feedback]\nbackends = ["console", "gpio"]\n'))
    assert both.feedback.devices == ["console", "gpio"]
    agreeing = '[feedback]\nbackend = "gpio"\nbackends = ["gpio", "console"]\n'
    assert load_settings(write(tmp_path, GOOD + agreeing)).feedback.devices == ["gpio", "console"]
    assert both.config_hash() != plain.config_hash()
    gap = load_settings(write(tmp_path, GOOD + '[scanner.serial]\nterminator = "gap"\n'))
    assert gap.config_hash() != plain.config_hash()


@pytest.mark.parametrize(
    ("feedback", "message"),
    [
        ('backend = "gpio"\nbackends = ["console"]', "is not among feedback.backends"),
        ('backends = ["gpio", "gpio"]', "names a device twice"),
        ("backends = []", "feedback.backends"),
    ],
)
def test_feedback_devices_are_named_one_way(tmp_path: Path, feedback: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(write(tmp_path, GOOD + "[feedback]\n" + feedback + "\n"))


def test_a_scanner_line_with_its_own_direction(tmp_path: Path) -> None:
    text = GOOD + (
        '[scanner]\nsources = ["hid"]\n[scanner.hid]\ndirection = "in"\n'
        'devices = ["0c2e:0b61", { device = "*Exit*", direction = "out" }]\n'
    )
    s = load_settings(write(tmp_path, text))
    assert s.scanner.hid.readers() == {"0c2e:0b61": "in", "*Exit*": "out"}
    bad = text.replace('"*Exit*"', '"0c2e:xyz"')
    with pytest.raises(ConfigError, match=r"scanner\.hid\.devices"):
        load_settings(write(tmp_path, bad))


def test_a_bad_scanner_line_gets_one_clear_error_under_its_key(tmp_path: Path) -> None:
    text = GOOD + '[scanner.hid]\ndevices = ["0c2e:zz", { device = "*Exit*", direction = "up" }]\n'
    with pytest.raises(ConfigError) as caught:
        load_settings(write(tmp_path, text))
    lines = str(caught.value).splitlines()[1:]
    assert len(lines) == 1 and lines[0].startswith("  scanner.hid.devices: ")
    assert "'0c2e:zz' looks like vendor:product" in lines[0] and str(tmp_path) in lines[0]
