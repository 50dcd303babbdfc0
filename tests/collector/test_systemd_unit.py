"""systemd/qr-collector.service, checked by the real systemd-analyze like the device's unit."""

from __future__ import annotations

from pathlib import Path

from tests.test_systemd_unit import MAX_EXPOSURE, directives, exposure, systemd_analyze

REPO = Path(__file__).resolve().parents[2]
UNIT = REPO / "systemd" / "qr-collector.service"
EXEC = "/opt/qr-collector/venv/bin/qr-collector"


def test_the_collector_unit_verifies_without_a_warning(tmp_path: Path) -> None:
    root = tmp_path / "root"
    unit = root / "etc/systemd/system/qr-collector.service"
    unit.parent.mkdir(parents=True)
    unit.write_text(UNIT.read_text())
    program = root / EXEC.lstrip("/")
    program.parent.mkdir(parents=True)
    program.write_text("#!/bin/sh\n")
    program.chmod(0o755)
    result = systemd_analyze("verify", "--recursive-errors=no", f"--root={root}", "qr-collector.service")
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
