"""systemd/qr-collector.service and qr-collector-web.service, checked by the real systemd-analyze like the
device's unit, and the web command's side of Type=notify against a socket standing in for systemd."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from tests.support.collector import write_config
from tests.support.mosquitto import free_port
from tests.support.notify import NotifySocket
from tests.support.systemd import MAX_EXPOSURE, SYSTEMD, directives, exposure, target_root, verify

UNIT = SYSTEMD / "qr-collector.service"
WEB_UNIT = SYSTEMD / "qr-collector-web.service"
EXEC = "/opt/qr-collector/venv/bin/qr-collector"


@pytest.mark.parametrize("name", ["qr-collector.service", "qr-collector-web.service"])
def test_the_collector_units_verify_without_a_warning(tmp_path: Path, name: str) -> None:
    root = target_root(tmp_path, (SYSTEMD / name).read_text(), name, EXEC)
    result = verify(root, name)
    assert (result.returncode, result.stderr, result.stdout) == (0, "", "")


def test_notify_with_watchdog_and_hardened_at_least_like_the_device() -> None:
    level, result = exposure(UNIT)
    assert level <= MAX_EXPOSURE, result.stdout
    d = directives(UNIT.read_text())
    assert d["Type"] == ["notify"] and d["WatchdogSec"] == ["30s"] and d["NotifyAccess"] == ["main"]
    assert d["ExecStart"] == [f"{EXEC} run --config /etc/qr-collector/collector.toml"]
    assert d["User"] == ["qr-collector"] and d["CapabilityBoundingSet"] == [""]
    assert d["RestartPreventExitStatus"] == ["2"] and d["PrivateDevices"] == ["yes"]
    # The keys in /etc/qr-collector are for the collector's user alone.
    assert d["ConfigurationDirectoryMode"] == ["0700"] and d["UMask"] == ["0077"]


def test_the_web_unit_is_hardened_like_the_collector_and_serves_on_the_loopback_only() -> None:
    level, result = exposure(WEB_UNIT)
    assert level <= MAX_EXPOSURE, result.stdout
    d = directives(WEB_UNIT.read_text())
    assert d["Type"] == ["notify"] and d["User"] == ["qr-collector"] and d["UMask"] == ["0077"]
    assert d["ExecStart"] == [
        f"{EXEC} web --config /etc/qr-collector/collector.toml --host 127.0.0.1 --port 8080"
    ]
    assert d["RestartPreventExitStatus"] == ["2"] and d["CapabilityBoundingSet"] == [""]


def test_the_web_command_says_ready_once_it_listens_and_stopping_on_sigterm(
    tmp_path: Path, notify: NotifySocket
) -> None:
    config = write_config(tmp_path / "collector.toml", port=1883, url=f"sqlite:///{tmp_path / 'c.db'}")
    port = free_port()
    command = [sys.executable, "-m", "collector.cli", "web", "--config", str(config), "--port", str(port)]
    web = subprocess.Popen(
        command, env={**_env(), "NOTIFY_SOCKET": notify.address}, stderr=subprocess.PIPE, text=True
    )
    try:
        notify.wait_for(lambda: notify.lines(), 60)
        assert notify.lines()[0] == "READY=1"
        # READY means the page answers now, with no retry loop.
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/login", timeout=10) as answer:
            assert answer.status == 200
        # A second instance on the same port says why it cannot start, and exits for systemd to retry.
        taken = subprocess.run(command, env=_env(), capture_output=True, text=True, timeout=60)
        assert taken.returncode == 69, taken.stderr
        assert f"cannot listen on 127.0.0.1:{port}" in taken.stderr
        web.send_signal(signal.SIGTERM)
        assert web.wait(timeout=20) == 0
        notify.wait_for(lambda: "STOPPING=1" in notify.lines(), 10)
    finally:
        if web.poll() is None:
            web.kill()
        web.wait()


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "NOTIFY_SOCKET"}
