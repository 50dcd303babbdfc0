"""The shipped unit and udev rules, checked by the real systemd-analyze (systemd 252) offline."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.support.systemd import (
    EXEC,
    MAX_EXPOSURE,
    SYSTEMD,
    directives,
    exposure,
    systemd_analyze,
    target_root,
    verify,
)

UNIT = SYSTEMD / "qr-checkin.service"
RULES = SYSTEMD / "99-qr-checkin.rules"


def test_the_shipped_unit_verifies_without_a_single_warning(tmp_path: Path) -> None:
    result = verify(target_root(tmp_path, UNIT.read_text()))
    assert (result.returncode, result.stderr, result.stdout) == (0, "", "")


@pytest.mark.parametrize(
    ("mutation", "complaint"),
    [
        (("ProtectHome=yes", "ProtectHme=yes"), "Unknown key"),
        (("Restart=always", "Restart=allways"), "Failed to parse"),
        ((EXEC, "/opt/qr-checkin/venv/bin/missing"), "is not executable"),
    ],
)
def test_verify_would_catch_a_typo_or_a_missing_program(
    tmp_path: Path, mutation: tuple[str, str], complaint: str
) -> None:
    text = UNIT.read_text()
    assert mutation[0] in text
    result = verify(target_root(tmp_path, text.replace(mutation[0], mutation[1])))
    assert result.returncode != 0 and complaint in result.stderr


def test_exposure_is_at_most_2_5() -> None:
    score, result = exposure(UNIT)
    assert score <= MAX_EXPOSURE, result.stdout
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_exposure_gate_fails_a_bare_unit(tmp_path: Path) -> None:
    bare = tmp_path / "bare.service"
    bare.write_text(f"[Service]\nExecStart={EXEC}\n")
    score, result = exposure(bare)
    assert score > MAX_EXPOSURE and result.returncode != 0


def test_clock_sync_state_stays_readable_while_setting_the_clock_does_not() -> None:
    # clock.py asks adjtimex() whether the clock is synchronised: ProtectClock= would deny it.
    result = systemd_analyze("security", "--offline=true", "--json=short", str(UNIT))
    checks = {item["json_field"]: item for item in json.loads(result.stdout)}
    assert "adjtimex is allowed" in checks["SystemCallFilter_clock"]["description"]
    assert checks["CapabilityBoundingSet_CAP_SYS_TIME"]["set"] is True
    assert checks["PrivateTmp"]["set"] is True and checks["NoNewPrivileges"]["set"] is True


def test_the_unit_is_a_notify_service_with_watchdog_least_privilege_and_exact_devices() -> None:
    unit = directives(UNIT.read_text())
    assert unit["ExecStart"] == [f"{EXEC} run --config /etc/qr-checkin/device.toml"]
    assert unit["Type"] == ["notify"] and unit["Restart"] == ["always"]
    assert unit["WatchdogSec"] == ["30s"]
    assert unit["User"] == ["qr-checkin"] and unit["Group"] == ["qr-checkin"]
    assert set(unit["SupplementaryGroups"][0].split()) == {"gpio", "input", "video", "dialout"}
    assert unit["StateDirectory"] == ["qr-checkin"] and unit["ConfigurationDirectory"] == ["qr-checkin"]
    assert unit["ProtectSystem"] == ["strict"] and unit["DevicePolicy"] == ["closed"]
    assert set(unit["DeviceAllow"]) == {
        f"char-{kind} rw"
        for kind in ("gpiochip", "input", "video4linux", "media", "dma_heap", "ttyACM", "ttyUSB")
    }
    # A device without network at the depot must start anyway.
    assert "network-online.target" not in UNIT.read_text()


UDEV_TOKEN = re.compile(r'(?P<key>[A-Z_]+)(?:\{(?P<attr>[A-Za-z_]+)\})?(?P<op>==|!=|\+=|=)"(?P<value>[^"]*)"')
UDEV_MATCH = {"ACTION", "SUBSYSTEM", "SUBSYSTEMS", "KERNEL", "ATTRS", "ENV"}
UDEV_ASSIGN = {"ENV", "GROUP", "MODE", "SYMLINK", "GOTO", "LABEL"}


def udev_rules() -> list[list[re.Match[str]]]:
    rules = []
    for number, line in enumerate(RULES.read_text().splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        parts = line.split(", ")
        tokens = [UDEV_TOKEN.fullmatch(part) for part in parts]
        assert all(tokens), f'{RULES.name}:{number}: not KEY=="value" pairs: {line}'
        rules.append([t for t in tokens if t is not None])
    return rules


def test_udev_rules_parse_and_only_name_scanners_and_grant_the_services_groups() -> None:
    rules = udev_rules()
    labels = {t["value"] for rule in rules for t in rule if t["key"] == "LABEL"}
    groups = set(directives(UNIT.read_text())["SupplementaryGroups"][0].split())
    links = []
    for rule in rules:
        for t in rule:
            matching = t["op"] in ("==", "!=")
            assert t["key"] in (UDEV_MATCH if matching else UDEV_ASSIGN), t.group(0)
            if t["key"] == "GOTO":
                assert t["value"] in labels
            if t["key"] == "GROUP":
                assert t["value"] in groups
            if t["key"] == "MODE":
                assert t["value"] == "0660"
            if t["key"] == "SYMLINK":
                links.append(t["value"])
    assert links and all(link.startswith(("qr-scanner-hid", "qr-scanner-serial")) for link in links)
    assert {"qr-scanner-hid", "qr-scanner-serial"} <= set(links)
