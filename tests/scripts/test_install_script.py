"""scripts/install.sh and uninstall.sh run for real into a temporary root (--root), pip offline."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from tests.support.paths import ROOT

INSTALL = ROOT / "scripts" / "install.sh"
UNINSTALL = ROOT / "scripts" / "uninstall.sh"

pytestmark = pytest.mark.slow

# The interpreter the Pi uses: Debian's, whose site packages the venv sees.
SYSTEM_PYTHON = "/usr/bin/python3"
# Offline: the project only (its dependencies are the device's business), built with the setuptools and
# wheel the venv sees from the system site packages. pip spells "no build isolation" as ..._ISOLATION=0.
OFFLINE_PIP = {
    "PIP_NO_INDEX": "1",
    "PIP_NO_DEPS": "1",
    "PIP_NO_BUILD_ISOLATION": "0",
    "PIP_DISABLE_PIP_VERSION_CHECK": "1",
}


def run(script: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **OFFLINE_PIP}
    return subprocess.run(
        ["bash", str(script), *args], capture_output=True, text=True, timeout=180, env=env, check=False
    )


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def venv_python(root: Path) -> Path:
    return root / "opt/qr-checkin/venv/bin/python"


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    probe = subprocess.run(
        [SYSTEM_PYTHON, "-c", "import ensurepip, setuptools, wheel"], capture_output=True, check=False
    )
    if probe.returncode != 0:
        pytest.fail(f"the offline install needs {SYSTEM_PYTHON} with apt's python3-venv, -setuptools, -wheel")
    root = tmp_path_factory.mktemp("target") / "root"
    result = run(INSTALL, "--root", str(root), "--extras", "pi", "--python", SYSTEM_PYTHON)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "installing qr-checkin [pi]" in result.stdout
    return root


def test_install_lays_out_program_config_state_unit_and_rules(installed: Path) -> None:
    root = installed
    assert mode(root / "etc/qr-checkin") == 0o750
    assert mode(root / "etc/qr-checkin/device.toml.example") == 0o640
    assert not (root / "etc/qr-checkin/device.toml").exists()
    assert mode(root / "var/lib/qr-checkin") == 0o750
    for installed_file, shipped in [
        ("etc/systemd/system/qr-checkin.service", "systemd/qr-checkin.service"),
        ("etc/udev/rules.d/99-qr-checkin.rules", "systemd/99-qr-checkin.rules"),
    ]:
        assert (root / installed_file).read_text() == (ROOT / shipped).read_text()
        assert mode(root / installed_file) == 0o644
    assert "include-system-site-packages = true" in (root / "opt/qr-checkin/venv/pyvenv.cfg").read_text()
    assert os.access(root / "opt/qr-checkin/venv/bin/qr-checkin", os.X_OK)
    # The program runs from the venv's own copy, not from this checkout.
    where = subprocess.run(
        [str(venv_python(root)), "-c", "import device; print(device.__file__)"],
        capture_output=True,
        text=True,
        cwd=root,
        check=True,
    ).stdout
    assert where.startswith(str(root / "opt/qr-checkin/venv/lib/")), where


def test_the_installed_unit_verifies_with_its_real_entry_point(installed: Path) -> None:
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.fail("systemd-analyze is missing: apt-get install systemd")
    result = subprocess.run(
        [tool, "verify", "--recursive-errors=no", f"--root={installed}", "qr-checkin.service"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (result.returncode, result.stderr) == (0, "")


def test_installing_again_keeps_config_and_state_and_repairs_modes(installed: Path) -> None:
    root = installed
    config = root / "etc/qr-checkin/device.toml"
    config.write_text('[device]\nid = "qrc-0a1b2c3d"\n')
    key = root / "etc/qr-checkin/site.key"
    key.write_bytes(b"\x01" * 32)
    for path in (config, key):
        path.chmod(0o600)  # as provisioning running as root might leave them
    outbox = root / "var/lib/qr-checkin/outbox.db"
    outbox.write_bytes(b"SQLite format 3\x00")

    result = run(INSTALL, "--root", str(root), "--python", SYSTEM_PYTHON)
    assert result.returncode == 0, result.stdout + result.stderr

    assert config.read_text() == '[device]\nid = "qrc-0a1b2c3d"\n'
    assert key.read_bytes() == b"\x01" * 32
    assert mode(config) == mode(key) == 0o640
    assert outbox.read_bytes() == b"SQLite format 3\x00"
    assert os.access(root / "opt/qr-checkin/venv/bin/qr-checkin", os.X_OK)


def copy_of(root: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "root"
    shutil.copytree(root, copy, symlinks=True)
    return copy


def test_uninstall_removes_the_program_and_keeps_config_and_state(installed: Path, tmp_path: Path) -> None:
    root = copy_of(installed, tmp_path)
    (root / "var/lib/qr-checkin/audit.jsonl").write_text("{}\n")
    result = run(UNINSTALL, "--root", str(root))
    assert result.returncode == 0, result.stderr
    assert not (root / "opt/qr-checkin").exists()
    assert not (root / "etc/systemd/system/qr-checkin.service").exists()
    assert not (root / "etc/udev/rules.d/99-qr-checkin.rules").exists()
    assert (root / "etc/qr-checkin/device.toml.example").exists()
    assert (root / "var/lib/qr-checkin/audit.jsonl").exists()
    assert "PURGE=1" in result.stdout


def test_uninstall_purge_removes_config_and_state_too(installed: Path, tmp_path: Path) -> None:
    root = copy_of(installed, tmp_path)
    result = run(UNINSTALL, "--root", str(root), "--purge")
    assert result.returncode == 0, result.stderr
    for gone in (
        "opt/qr-checkin",
        "etc/qr-checkin",
        "var/lib/qr-checkin",
        "etc/systemd/system/qr-checkin.service",
    ):
        assert not (root / gone).exists(), gone


@pytest.mark.parametrize("script", [INSTALL, UNINSTALL])
def test_an_unknown_option_is_named_and_nothing_happens(script: Path, tmp_path: Path) -> None:
    result = run(script, "--root", str(tmp_path / "root"), "--prge")
    assert result.returncode == 2
    assert "unknown option '--prge'" in result.stderr
    assert not (tmp_path / "root").exists()
