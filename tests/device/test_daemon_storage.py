"""Storage faults on real filesystems: a full disk, a corrupt store, a read-only card.

The full and read-only disks are real mounts made by the test (root here and in CI): a small tmpfs
filled up or remounted read-only, and a loop-mounted ext4 image the kernel turns read-only under the
running daemon, as it does to an SD card after an error (`errors=remount-ro`). A tmpfs cannot serve
that case: Linux refuses to remount a filesystem read-only while a file on it is open for writing.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from device.cli import main as cli_main
from device.clock import Stamp
from device.daemon import AUDIT_FILE, EXIT_CANNOT_START, EXIT_STORAGE_BACK
from device.store import DB_NAME, SPACE_RESERVE_NAME, Outbox
from tests.support.daemon import DaemonProcess, run_cli, write_config
from tests.support.mosquitto import Mosquitto, free_port
from tests.support.mounts import mount, require_root, unmount
from tests.support.payloads import other_codes
from tests.support.schema import validate_event, validate_status
from tests.support.subscriber import Subscriber

TMPFS_SIZE = "2m"
CARD_SIZE = 16 * 1024 * 1024


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Path]:
    require_root()
    where = tmp_path / "tmpfs"
    where.mkdir()
    mount("-t", "tmpfs", "-o", f"size={TMPFS_SIZE},mode=0755", "qr-checkin-test", str(where))
    try:
        yield where
    finally:
        unmount(where)


@pytest.fixture
def card(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """An ext4 "SD card" (a loop-mounted image) and the kernel switch that makes it fail read-only."""
    require_root()
    if shutil.which("mkfs.ext4") is None:
        pytest.skip("mkfs.ext4 is not installed (e2fsprogs)")
    image = tmp_path / "card.img"
    with image.open("wb") as fh:
        fh.truncate(CARD_SIZE)
    subprocess.run(["mkfs.ext4", "-q", "-F", str(image)], check=True, capture_output=True, timeout=30)
    where = tmp_path / "card"
    where.mkdir()
    done = subprocess.run(
        ["mount", "-o", "loop,errors=remount-ro", str(image), str(where)], capture_output=True, text=True
    )
    if done.returncode != 0:
        pytest.skip(f"no loop device to mount an ext4 image: {done.stderr.strip()}")
    try:
        source = subprocess.run(
            ["findmnt", "-no", "SOURCE", str(where)], capture_output=True, text=True, check=True
        ).stdout.strip()
        trigger = Path("/sys/fs/ext4") / Path(source).name / "trigger_fs_error"
        if not trigger.exists():
            pytest.skip(f"this kernel has no {trigger} to make ext4 fail")
        yield where, trigger
    finally:
        unmount(where)


def fill(directory: Path) -> Path:
    """Writes a file until the filesystem has no room left; returns it (delete it to free the space)."""
    filler = directory / "filler"
    chunk = b"\0" * 65536
    # Unbuffered: a chunk half written at the end must not wait in a buffer for close() to fail on.
    with filler.open("wb", buffering=0) as fh:
        for _ in range(10_000):  # far more than any test filesystem holds
            try:
                fh.write(chunk)
                fh.flush()
            except OSError:
                break
        else:
            raise AssertionError(f"{directory} never filled up")
    return filler


def wait_status(sub: Subscriber, predicate: Any, timeout: float = 10.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for status in sub.statuses():
            if status["state"] == "online" and predicate(status):
                validate_status(status)
                return status
        time.sleep(0.05)
    raise AssertionError(f"no status message matched within {timeout}s: {sub.statuses()[-1:]}")


def accept_two_and_stop(config: Path) -> None:
    """A daemon that stores two check-ins and stops cleanly: a store with events, closed."""
    daemon = DaemonProcess(config).start()
    try:
        assert [daemon.scan(c)["feedback"] for c in other_codes(2)] == ["accepted", "accepted"]
        assert daemon.terminate() == 0
    finally:
        daemon.stop()


def test_a_full_disk_rejects_scans_keeps_running_and_recovers_losing_nothing(
    tmp_path: Path, tmpfs: Path, broker: Mosquitto
) -> None:
    sub = Subscriber(broker.port)
    config = write_config(
        tmp_path / "device.toml", port=broker.port, storage=tmpfs / "state", broker={"heartbeat_s": 0.5}
    )
    daemon = DaemonProcess(config).start()
    accepted: set[str] = set()
    try:
        daemon.wait_log("connected to broker")
        # A 2 MB disk is below the 50 MB warning level from the start.
        daemon.wait_log("feedback signal: storage_low")
        for code in other_codes(5, prefix="BEFORE"):
            answer = daemon.scan(code)
            assert answer["feedback"] == "accepted", answer
            accepted.add(answer["event_id"])

        filler = fill(tmpfs)
        full_mark = daemon.mark()
        answers = []
        # SQLite may still have room in pages it already holds; the first write that needs more fails.
        for code in other_codes(50, prefix="FULL"):
            answers.append(daemon.scan(code))
            if answers[-1]["feedback"] == "rejected":
                break
        answers += [daemon.scan(code) for code in other_codes(5, prefix="STILL-FULL")]
        accepted |= {a["event_id"] for a in answers if a["feedback"] == "accepted"}
        refused = [a for a in answers if a["feedback"] != "accepted"]
        assert len(refused) >= 6, "the disk never refused a write"
        assert all((a["feedback"], a["reason"]) == ("rejected", "storage full") for a in refused), refused
        assert daemon.proc is not None and daemon.proc.poll() is None, "the daemon died of a full disk"
        daemon.wait_log("ALARM: storage full", after=full_mark)
        daemon.wait_log("feedback status: fault", after=full_mark)

        filler.unlink()
        free_mark = daemon.mark()
        for code in other_codes(3, prefix="AFTER"):
            answer = daemon.scan(code)
            assert answer["feedback"] == "accepted", answer
            accepted.add(answer["event_id"])
        daemon.wait_log("feedback status: online", after=free_mark)
        recovered = wait_status(sub, lambda s: s["counters"]["accepted"] == len(accepted))
        assert recovered["storage_fault"] is None
        assert recovered["counters"]["storage_failures"] == len(refused)

        events = sub.wait_event_ids(accepted, timeout=20)
        assert daemon.terminate() == 0
    finally:
        daemon.stop()
        sub.close()
    for event in events:
        validate_event(event)
    # A refused scan used no sequence number: consumers see no gap.
    assert sorted({e["seq"] for e in events}) == list(range(1, len(accepted) + 1))


def test_a_corrupt_store_at_start_is_moved_aside_kept_and_replaced_with_an_alarm(
    tmp_path: Path, broker: Mosquitto, capsys: pytest.CaptureFixture[str]
) -> None:
    state = tmp_path / "state"
    box = Outbox.open(state)
    for i in range(50):
        box.append_unless_recent(f"k{i}", Stamp(1.0, 1.0, "b", True), 0, lambda s: {"event_id": f"e{s}"})
    box.close()
    store = state / DB_NAME
    # Damage as an SD card does: a run of pages inside the file overwritten, the header intact.
    damaged = bytearray(store.read_bytes())
    damaged[4096:12288] = os.urandom(8192)
    store.write_bytes(bytes(damaged))

    sub = Subscriber(broker.port)
    config = write_config(tmp_path / "device.toml", port=broker.port, storage=state)
    daemon = DaemonProcess(config).start()
    try:
        daemon.wait_log("is corrupt")
        assert "ALARM" in daemon.wait_log("is corrupt")
        daemon.wait_log("feedback signal: fault")
        birth = wait_status(sub, lambda s: s.get("storage_fault") is not None)
        assert birth["storage_fault"] == "corrupt store moved aside"
        answer = daemon.scan("VISITOR-AFTER-CORRUPTION")
        assert answer["feedback"] == "accepted"
        events = sub.wait_event_ids({answer["event_id"]})
        (event,) = [e for e in events if e["event_id"] == answer["event_id"]]
        assert daemon.terminate() == 0
    finally:
        daemon.stop()
        sub.close()

    (aside,) = state.glob(f"{DB_NAME}.corrupt-*[0-9]")
    assert aside.read_bytes() == bytes(damaged), "the corrupt store must be kept as it was"
    # The lost store handed out seq 1..50: the fresh one starts above every number it ever reserved.
    assert event["seq"] > 50
    audit = [json.loads(line) for line in (state / AUDIT_FILE).read_text().splitlines()]
    (record,) = [r for r in audit if r["event"] == "store_corrupt"]
    assert record["moved_to"] == aside.name
    # What the damaged store still gave was carried over and published (issue 12 item 4).
    salvaged = {e["event_id"] for e in events} - {answer["event_id"]}
    assert record["salvaged"] == len(salvaged) > 0

    assert cli_main(["status", "--json", "--config", str(config)]) == 0
    status = json.loads(capsys.readouterr().out)
    assert [f["event"] for f in status["faults"]] == ["store_corrupt"]
    assert status["counters"]["accepted"] == 1


def test_a_read_only_store_at_start_is_a_clear_fault_and_status_still_reads_it(
    tmp_path: Path, tmpfs: Path
) -> None:
    config = write_config(tmp_path / "device.toml", port=free_port(), storage=tmpfs / "state")
    accept_two_and_stop(config)
    files = sorted((tmpfs / "state").iterdir())
    mount("-o", "remount,ro", str(tmpfs))

    run = run_cli("run", "--config", str(config))
    assert run.returncode == EXIT_CANNOT_START, run.stderr
    assert "cannot start: storage is read-only" in run.stderr
    assert "Traceback" not in run.stderr

    status = run_cli("status", "--json", "--config", str(config))
    assert status.returncode == 0, status.stderr
    report = json.loads(status.stdout)
    assert report["backlog"] == 2 and report["counters"]["accepted"] == 2
    assert sorted((tmpfs / "state").iterdir()) == files


def test_a_card_turned_read_only_under_the_running_daemon_is_a_clear_fault(
    tmp_path: Path, card: tuple[Path, Path]
) -> None:
    where, trigger = card
    config = write_config(tmp_path / "device.toml", port=free_port(), storage=where / "state")
    daemon = DaemonProcess(config).start()
    try:
        kept = daemon.scan("VISITOR-BEFORE")
        assert kept["feedback"] == "accepted"
        mark = daemon.mark()
        trigger.write_text("qr-checkin storage test\n")
        answers = [daemon.scan(code) for code in other_codes(3, prefix="READ-ONLY")]
        assert [(a["feedback"], a["reason"]) for a in answers] == [("rejected", "storage is read-only")] * 3
        assert daemon.proc is not None and daemon.proc.poll() is None
        daemon.wait_log("ALARM: storage is read-only", after=mark)
        daemon.wait_log("feedback status: fault", after=mark)
        assert daemon.terminate() == 0
    finally:
        daemon.stop()
    assert "Traceback" not in daemon.stderr

    status = run_cli("status", "--json", "--config", str(config))
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["backlog"] == 1


def test_a_full_card_at_start_still_starts_answers_storage_full_and_recovers(
    tmp_path: Path, tmpfs: Path
) -> None:
    """Issue 12 item 10: on a full card the daemon could not start ("disk I/O error", a restart loop)."""
    state = tmpfs / "state"
    config = write_config(tmp_path / "device.toml", port=free_port(), storage=state)
    accept_two_and_stop(config)
    assert (state / SPACE_RESERVE_NAME).is_file(), "the space reserve is made while there is room"

    # Full, the reserve still held: it is given back so the store opens; check-ins stay refused.
    filler = fill(tmpfs)
    daemon = DaemonProcess(config).start()
    try:
        daemon.wait_log("gave back the")
        answers = [daemon.scan(c) for c in other_codes(3, prefix="FULL-A")]
        assert [(a["feedback"], a["reason"]) for a in answers] == [("rejected", "storage full")] * 3
        assert daemon.terminate() == 0
        # Each refused scan also plays the fault pattern (the device is at fault, not the card).
        deadline = time.monotonic() + 5
        while daemon.stderr.count("feedback signal: fault") < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert daemon.stderr.count("feedback signal: fault") >= 3
    finally:
        daemon.stop()
    assert not (state / SPACE_RESERVE_NAME).exists()

    # Full with no reserve left: the store cannot open at all, and the daemon starts anyway.
    filler = fill(tmpfs)
    daemon = DaemonProcess(config).start()
    try:
        daemon.wait_log("cannot open the store")
        answers = [daemon.scan(c) for c in other_codes(3, prefix="FULL-B")]
        assert [(a["feedback"], a["reason"]) for a in answers] == [("rejected", "storage full")] * 3
        daemon.wait_log("feedback status: fault")
        # Room again: the daemon says so and exits for systemd to restart it on a store it can open.
        filler.unlink()
        daemon.wait_log("storage has room again")
        assert daemon.proc is not None and daemon.proc.wait(10) == EXIT_STORAGE_BACK
    finally:
        daemon.stop()
    assert "Traceback" not in daemon.stderr

    daemon = DaemonProcess(config).start()
    try:
        assert daemon.scan("VISITOR-ROOM-AGAIN")["feedback"] == "accepted"
        assert daemon.terminate() == 0
    finally:
        daemon.stop()
    status = run_cli("status", "--json", "--config", str(config))
    assert json.loads(status.stdout)["counters"]["accepted"] == 3
