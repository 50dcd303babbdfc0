"""A technician's one-off `sudo qr-checkin run` on a device whose service runs as its own user
(issue 12 item 18): the files that run writes must stay usable by the service.

Proven with real processes and real ownership: the daemon runs as root on a state directory owned by
`nobody` and is killed -9 (leaving its WAL behind), then a process that has become `nobody` opens the
store and appends, as the service would after its restart.
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from device.audit import AuditLog
from device.clock import Stamp
from device.daemon import AUDIT_FILE
from device.store import DB_NAME, Outbox
from tests.support.daemon import DaemonProcess, write_config
from tests.support.mosquitto import free_port
from tests.support.payloads import other_codes

NOBODY = 65534


@pytest.fixture
def service_state() -> Iterator[Path]:
    """A state directory as systemd's StateDirectory makes it, owned by the service user."""
    if os.geteuid() != 0:
        pytest.skip("changing users needs root (CI runs as root)")
    # Under /tmp itself: pytest's own temporary folders are closed to other users.
    base = Path(tempfile.mkdtemp(prefix="qr-checkin-owner-", dir="/tmp"))
    base.chmod(0o755)
    state = base / "state"
    state.mkdir(mode=0o750)
    os.chown(state, NOBODY, NOBODY)
    yield state
    shutil.rmtree(base, ignore_errors=True)


def as_service_user(state: Path) -> None:
    os.setgroups([])
    os.setgid(NOBODY)
    os.setuid(NOBODY)
    box = Outbox.open(state)
    assert box.append_unless_recent("after", Stamp(1.0, 1.0, "b", True), 0, lambda s: {"event_id": f"e{s}"})
    assert len(box.pending(100)) == 3
    box.close()
    assert AuditLog(state / AUDIT_FILE).record("service_start")


def test_a_root_run_leaves_nothing_the_service_cannot_open(tmp_path: Path, service_state: Path) -> None:
    config = write_config(tmp_path / "device.toml", port=free_port(), storage=service_state)
    daemon = DaemonProcess(config).start()
    try:
        assert [daemon.scan(c)["feedback"] for c in other_codes(2)] == ["accepted", "accepted"]
        daemon.wait_log("handed to it")
    finally:
        daemon.kill()  # Ctrl-C in a hurry, a power cut: the WAL stays behind
    assert (service_state / f"{DB_NAME}-wal").exists()
    foreign = {p.name: p.stat().st_uid for p in service_state.iterdir() if p.stat().st_uid != NOBODY}
    assert foreign == {}, foreign

    child = multiprocessing.get_context("fork").Process(target=as_service_user, args=(service_state,))
    child.start()
    child.join(30)
    assert child.exitcode == 0, "the service user could not open what the root run left"
