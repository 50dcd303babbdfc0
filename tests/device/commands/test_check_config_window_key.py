"""`qr-checkin check-config` checks where mode collector's duplicate-window key would live: a directory
on a disk (the card) is refused as the daemon refuses it, a real tmpfs passes (issue 12, item 5's key
in /run so that a stolen card does not carry it)."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from nacl.public import PrivateKey

from device.privacy import filesystem_type
from tests.support.daemon import ROOT, write_config
from tests.support.mosquitto import free_port
from tests.support.mounts import mount, unmount

PUBLIC = base64.b64encode(bytes(PrivateKey.generate().public_key)).decode()


@pytest.fixture
def memory_dir(tmp_path: Path) -> Iterator[Path]:
    """A real tmpfs mount, as systemd's RuntimeDirectory is on the device."""
    where = tmp_path / "run"
    where.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root (CI runs as root)")
    try:
        mount("-t", "tmpfs", "-o", "size=1m,mode=0755", "qr-checkin-check", str(where))
    except AssertionError as exc:
        pytest.skip(f"cannot mount a tmpfs here: {exc}")
    try:
        yield where
    finally:
        unmount(where)


@pytest.fixture
def disk_dir(tmp_path: Path) -> Path:
    where = tmp_path / "state" / "run"
    if filesystem_type(tmp_path) in ("tmpfs", "ramfs"):
        pytest.skip(f"{tmp_path} is itself in memory: no directory on a disk to refuse")
    return where


def config(tmp_path: Path, *, dev: bool = False, window_key_dir: Path | None = None) -> Path:
    privacy = {"subject": "collector", "collector_public_key": PUBLIC}
    if window_key_dir is not None:
        privacy["window_key_dir"] = str(window_key_dir)
    return write_config(
        tmp_path / "device.toml",
        port=free_port(),
        storage=tmp_path / "state",
        device={"id": "bus-dev-1", "dev": dev},
        privacy=privacy,
    )


def check_config(path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in ("RUNTIME_DIRECTORY",) and "WINDOW_KEY" not in k}
    return subprocess.run(
        [sys.executable, "-m", "device.cli", "check-config", "--config", str(path)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**clean, **env},
        stdin=subprocess.DEVNULL,
        timeout=60,
    )


def test_a_window_key_dir_on_the_card_is_an_error_naming_the_key_and_the_file(
    tmp_path: Path, disk_dir: Path
) -> None:
    path = config(tmp_path, window_key_dir=disk_dir)
    done = check_config(path)
    assert done.returncode == 2, done.stderr
    assert f"privacy.window_key_dir = {disk_dir} (in {path})" in done.stderr
    assert f"is on {filesystem_type(disk_dir)}, not in memory" in done.stderr
    assert "the daemon refuses to start" in done.stderr
    assert done.stdout == "", "no effective configuration for one the daemon refuses"
    assert not disk_dir.exists(), "checking creates nothing"


def test_a_window_key_dir_on_a_tmpfs_passes(tmp_path: Path, memory_dir: Path) -> None:
    done = check_config(config(tmp_path, window_key_dir=memory_dir / "qr-checkin"))
    assert done.returncode == 0, done.stderr
    assert "window_key_dir" not in done.stderr
    assert json.loads(done.stdout)["privacy"]["window_key_dir"] == str(memory_dir / "qr-checkin")


def test_the_environment_override_is_named_as_the_origin(tmp_path: Path, disk_dir: Path) -> None:
    done = check_config(config(tmp_path), QRCHECKIN_PRIVACY__WINDOW_KEY_DIR=str(disk_dir))
    assert done.returncode == 2
    assert f"(environment QRCHECKIN_PRIVACY__WINDOW_KEY_DIR) is on {filesystem_type(disk_dir)}" in done.stderr


def test_development_mode_only_warns_as_the_daemon_does(tmp_path: Path, disk_dir: Path) -> None:
    path = config(tmp_path, dev=True, window_key_dir=disk_dir)
    done = check_config(path)
    assert done.returncode == 0, done.stderr
    assert f"{path}: warning: privacy.window_key_dir = {disk_dir}" in done.stderr
    assert "device.dev: the daemon starts anyway" in done.stderr
    json.loads(done.stdout)


def test_the_default_runtime_directory_is_checked_with_a_warning(
    tmp_path: Path, disk_dir: Path, memory_dir: Path
) -> None:
    """Unset, the key goes to systemd's RuntimeDirectory: a tmpfs on the device, whatever /run is on the
    machine that checks a provisioned card, so a disk there is a warning, not a refusal."""
    path = config(tmp_path)
    done = check_config(path, RUNTIME_DIRECTORY=str(disk_dir))
    assert done.returncode == 0, done.stderr
    assert f"privacy.window_key_dir is not set, so the key goes to {disk_dir}" in done.stderr
    assert "a daemon started on this machine refuses to start" in done.stderr
    quiet = check_config(path, RUNTIME_DIRECTORY=str(memory_dir / "qr-checkin"))
    assert quiet.returncode == 0 and "window_key_dir" not in quiet.stderr, quiet.stderr


def test_other_modes_are_not_concerned(tmp_path: Path, disk_dir: Path) -> None:
    path = write_config(
        tmp_path / "device.toml",
        port=free_port(),
        storage=tmp_path / "state",
        device={"id": "bus-dev-1", "dev": False},
        privacy={"subject": "hmac", "window_key_dir": str(disk_dir)},
    )
    done = check_config(path)
    assert done.returncode == 0 and "window_key_dir" not in done.stderr, done.stderr
