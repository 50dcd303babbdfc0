"""`qr-checkin selftest` as a technician runs it: a subprocess, a real mosquitto, real or mock pins."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from device.commands.selftest import probe_broker
from device.feedback import Signal
from device.settings import BrokerSettings
from tests.support.mosquitto import Mosquitto, free_port
from tests.support.paths import ROOT


def write_config(tmp_path: Path, port: int, feedback: str = 'backend = "console"') -> Path:
    config = tmp_path / "device.toml"
    config.write_text(
        f'[device]\nid = "bus-7"\n[location]\nid = "98C12345"\nkind = "bus"\n'
        f'[broker]\nhost = "127.0.0.1"\nport = {port}\n'
        f"[storage]\ndir = {str(tmp_path / 'state')!r}\n"
        f"[feedback]\n{feedback}\n",
        encoding="utf-8",
    )
    return config


def selftest(
    config: Path, *extra: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "device.cli", "selftest", "--config", str(config), *extra],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=90,
    )


def summary_row(stdout: str, check: str) -> str:
    rows = [line for line in stdout.splitlines() if line.split()[:1] == [check]]
    assert len(rows) == 1, stdout
    return rows[0]


def test_console_backend_names_every_pattern_and_reaches_the_broker(
    tmp_path: Path, broker: Mosquitto
) -> None:
    out = selftest(write_config(tmp_path, broker.port))
    assert out.returncode == 0, out.stdout + out.stderr
    played = [line.split()[1].rstrip(":") for line in out.stdout.splitlines() if line.startswith("playing ")]
    assert played == [signal.value for signal in Signal]
    assert "light green 1 s; sound C7 120 ms" in out.stdout
    assert summary_row(out.stdout, "feedback").split()[1] == "ok"
    broker_row = summary_row(out.stdout, "broker")
    assert broker_row.split()[1] == "ok"
    assert f"127.0.0.1:{broker.port} reachable" in broker_row
    # Its own client id: the selftest must not take over the daemon's session at the broker.
    assert "bus-7-selftest" in broker.log.read_text(errors="replace")


def test_an_unreachable_broker_fails_the_selftest_with_the_reason(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    out = selftest(write_config(tmp_path, port), "--pattern", "rejected")
    assert out.returncode == 1
    assert [line for line in out.stdout.splitlines() if line.startswith("playing ")] == [
        "playing rejected: light red 1.5 s; sound C5 600 ms"
    ]
    assert summary_row(out.stdout, "feedback").split()[1] == "ok"
    row = summary_row(out.stdout, "broker")
    assert row.split()[1] == "FAIL"
    assert f"127.0.0.1:{port} unreachable: connection refused" in row


def test_gpio_backend_on_mock_pins_plays_a_pattern(tmp_path: Path, broker: Mosquitto) -> None:
    gpio = 'backend = "gpio"\n[feedback.gpio]\nbuzzer_kind = "tonal"\nstatus = 24\nrelay = 23'
    mock = {"GPIOZERO_PIN_FACTORY": "mock", "GPIOZERO_MOCK_PIN_CLASS": "mockpwmpin"}
    out = selftest(write_config(tmp_path, broker.port, gpio), "--pattern", "duplicate", env=mock)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "playing duplicate: light green 200 ms, dark 150 ms, green 200 ms" in out.stdout
    assert "1 pattern(s) played (gpio)" in summary_row(out.stdout, "feedback")


def test_gpio_without_a_pin_factory_fails_the_feedback_check(tmp_path: Path, broker: Mosquitto) -> None:
    config = write_config(tmp_path, broker.port, 'backend = "gpio"')
    out = selftest(config, "--pattern", "ready", env={"GPIOZERO_PIN_FACTORY": "no-such-factory"})
    assert out.returncode == 1
    row = summary_row(out.stdout, "feedback")
    assert row.split()[1] == "FAIL"
    assert "feedback.gpio.green: no GPIO pin factory" in row and "pip install .[pi]" in row
    assert summary_row(out.stdout, "broker").split()[1] == "ok"


def test_an_invalid_configuration_exits_2_naming_the_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from device.cli import main

    config = write_config(tmp_path, 1883, 'backend = "gpio"\n[feedback.gpio]\nstatus = 17')
    assert main(["selftest", "--config", str(config)]) == 2
    assert "GPIO17 is wired to both green and status" in capsys.readouterr().err


def test_a_broker_that_refuses_the_client_says_so(tmp_path: Path) -> None:
    broker = Mosquitto(tmp_path / "broker", extra="allow_anonymous false").start()
    try:
        result = probe_broker(BrokerSettings(host="127.0.0.1", port=broker.port), "bus-7-selftest")
    finally:
        broker.kill()
    assert not result.ok
    assert "refused the client: Not authorized" in result.detail


def test_a_silent_listener_times_out_within_the_bound() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        result = probe_broker(BrokerSettings(host="127.0.0.1", port=port), "bus-7-selftest", timeout_s=0.5)
    assert not result.ok
    assert "sent no MQTT answer within 0.5 s" in result.detail
