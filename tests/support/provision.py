"""Helpers for the qr-provision tests: an isolated provisioning record and directory snapshots."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from provisioning import acl
from provisioning.cli import main
from tests.support.mosquitto import Mosquitto
from tests.support.tls import Pki


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


def site_broker(out: Path, workdir: Path, port: int, pki: Pki | None = None) -> Mosquitto:
    """A mosquitto with the configuration `batch` wrote in out/broker, its paths moved to this machine.

    The test broker keeps its own listener line (loopback) and persistence setting; every other line,
    the security ones above all, is the generated file's.
    """
    text = (out / "broker" / "mosquitto.conf").read_text()
    moves = {acl.ACL_PATH: out / "broker" / "acl", acl.PASSWD_PATH: out / "broker" / "passwd"}
    if pki is not None:
        moves |= {
            acl.CA_PATH: pki.ca_cert,
            acl.SERVER_CERT_PATH: pki.server_cert,
            acl.SERVER_KEY_PATH: pki.server_key,
        }
    for production, here in moves.items():
        text = text.replace(production, str(here))
    owned = ("listener", "persistence", "autosave_interval")
    lines = [line for line in text.splitlines() if not line.startswith(owned)]
    return Mosquitto(workdir, port=port, extra="\n".join(lines)).start()
