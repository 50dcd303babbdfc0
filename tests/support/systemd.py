"""The shipped systemd units, checked by the real systemd-analyze: verify in a target root, the security
exposure, and the directives as written."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.paths import ROOT

SYSTEMD = ROOT / "systemd"
EXEC = "/opt/qr-checkin/venv/bin/qr-checkin"
MAX_EXPOSURE = 2.5


def systemd_analyze(*args: str) -> subprocess.CompletedProcess[str]:
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.fail("systemd-analyze is missing: apt-get install systemd")
    return subprocess.run(
        [tool, "--no-pager", *args], capture_output=True, text=True, timeout=60, check=False
    )


def target_root(
    tmp_path: Path, unit_text: str, name: str = "qr-checkin.service", program: str = EXEC
) -> Path:
    """A root holding the unit and an executable where ExecStart points, as after installing it."""
    root = tmp_path / "root"
    unit = root / "etc/systemd/system" / name
    unit.parent.mkdir(parents=True)
    unit.write_text(unit_text)
    executable = root / program.lstrip("/")
    executable.parent.mkdir(parents=True)
    executable.write_text("#!/bin/sh\n")
    executable.chmod(0o755)
    return root


def verify(root: Path, name: str = "qr-checkin.service") -> subprocess.CompletedProcess[str]:
    # --recursive-errors=no turns warnings about the unit itself into rc 1 (the default rc is 0).
    return systemd_analyze("verify", "--recursive-errors=no", f"--root={root}", name)


def exposure(unit: Path) -> tuple[float, subprocess.CompletedProcess[str]]:
    result = systemd_analyze("security", "--offline=true", f"--threshold={int(MAX_EXPOSURE * 10)}", str(unit))
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d)", result.stdout)
    assert match, result.stdout + result.stderr
    return float(match.group(1)), result


def directives(text: str) -> dict[str, list[str]]:
    values: dict[str, list[str]] = {}
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith(("#", ";", "[")):
            key, _, value = line.partition("=")
            values.setdefault(key, []).append(value)
    return values
