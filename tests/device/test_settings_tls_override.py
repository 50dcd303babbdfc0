"""An environment override may not switch off the TLS a device's file turns on (issue 12 item 16):
the password and every check-in would then cross the network in clear."""

from __future__ import annotations

from pathlib import Path

import pytest

from device.cli import main as checkin_cli
from device.errors import ConfigError
from device.settings import load_settings

CONFIG = """
[device]
id = "qrc-0a1b2c3d"

[location]
id = "gate-1"

[broker]
host = "broker.example.com"
port = 8883
tls = {tls}
username = "qrc-0a1b2c3d"
password = "s3cr3t"
"""


def write(tmp_path: Path, tls: str) -> Path:
    path = tmp_path / "device.toml"
    path.write_text(CONFIG.format(tls=tls))
    return path


@pytest.mark.parametrize("override", ["false", "0", "off"])
def test_an_override_switching_tls_off_is_refused_naming_the_risk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], override: str
) -> None:
    config = write(tmp_path, "true")
    monkeypatch.setenv("QRCHECKIN_BROKER__TLS", override)
    with pytest.raises(ConfigError, match="QRCHECKIN_BROKER__TLS switches off the TLS") as refused:
        load_settings(config)
    assert "password and every check-in would cross the network in clear" in str(refused.value)
    # The daemon's `run` and the technician's `check-config` load the same way.
    assert checkin_cli(["check-config", "--config", str(config)]) == 2
    assert "switches off the TLS" in capsys.readouterr().err


def test_overrides_that_keep_tls_or_a_file_without_it_still_load(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("QRCHECKIN_BROKER__TLS", "true")
    monkeypatch.setenv("QRCHECKIN_BROKER__PORT", "8884")
    settings = load_settings(write(tmp_path, "true"))
    assert settings.broker.tls and settings.broker.port == 8884
    monkeypatch.setenv("QRCHECKIN_BROKER__TLS", "false")
    assert not load_settings(write(tmp_path, "false")).broker.tls
