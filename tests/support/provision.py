"""Helpers for the qr-provision tests: an isolated provisioning record and directory snapshots."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from provisioning.cli import main


@pytest.fixture(autouse=True)
def provision_registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test keeps its own record of provisioned devices (not the developer's)."""
    path = tmp_path / "registry" / "devices.jsonl"
    monkeypatch.setenv("QR_PROVISION_REGISTRY", str(path))
    for name in [n for n in os.environ if n.startswith("QRCHECKIN_")]:
        # A developer's overrides would change the configuration hash under test.
        monkeypatch.delenv(name)
    return path


def provision(capsys: pytest.CaptureFixture[str], *argv: str | Path) -> tuple[int, str, str]:
    """Runs `qr-provision ARGV` in-process: (exit code, stdout, stderr)."""
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def snapshot(root: Path) -> dict[str, tuple[int, bytes]]:
    """Every path under root with its mode and content: equal snapshots mean nothing was written."""
    return {
        str(path.relative_to(root)): (path.stat().st_mode, path.read_bytes() if path.is_file() else b"")
        for path in sorted(root.rglob("*"))
    }
