"""device.audit: the device's append-only diary on a real filesystem, including a real ENOSPC."""

from __future__ import annotations

import json
import logging
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from device.audit import AuditLog
from device.clock import FakeClock

START = 1_700_000_000.0  # 2023-11-14T22:13:20Z


def test_a_record_is_one_json_line_with_utc_time_clock_state_and_boot(tmp_path: Path) -> None:
    clock = FakeClock(START + 0.25, synced=False, boot="boot-7")
    log = AuditLog(tmp_path / "state" / "audit.jsonl", clock=clock)

    assert log.record("start", version="0.1.0", config_hash="3f2a9c0b1d4e", backlog=3, dev=False)
    clock.is_synced = True
    assert log.record("scanner_disconnected", source="hid", device_id=None)

    lines = (tmp_path / "state" / "audit.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in lines] == [
        {
            "ts": "2023-11-14T22:13:20.250Z",
            "clock": "unsynced",
            "boot_id": "boot-7",
            "event": "start",
            "version": "0.1.0",
            "config_hash": "3f2a9c0b1d4e",
            "backlog": 3,
            "dev": False,
        },
        {
            "ts": "2023-11-14T22:13:20.250Z",
            "clock": "synced",
            "boot_id": "boot-7",
            "event": "scanner_disconnected",
            "source": "hid",
            "device_id": None,
        },
    ]
    assert log.read() == [json.loads(line) for line in lines]
    assert (tmp_path / "state" / "audit.jsonl").stat().st_mode & 0o777 == 0o640


def test_read_since_filters_on_utc_time(tmp_path: Path) -> None:
    clock = FakeClock(START)
    log = AuditLog(tmp_path / "audit.jsonl", clock=clock)
    for event in ("start", "export", "stop"):
        log.record(event)
        clock.advance(3600)
    since = datetime.fromtimestamp(START, UTC) + timedelta(minutes=30)
    assert [r["event"] for r in log.read(since=since)] == ["export", "stop"]
    # A naive datetime means UTC, whatever the machine's time zone.
    assert [r["event"] for r in log.read(since=since.replace(tzinfo=None) + timedelta(hours=1))] == ["stop"]
    assert AuditLog(tmp_path / "never-written.jsonl", clock=clock).read() == []


@pytest.mark.parametrize(
    ("event", "fields", "error"),
    [
        ("Nguyễn Văn A", {}, ValueError),
        ("start", {"ts": "2020-01-01"}, ValueError),
        ("start", {"event": "stop"}, ValueError),
        ("start", {"Bad Key": 1}, ValueError),
        ("export", {"rows": [1, 2]}, TypeError),
    ],
)
def test_names_must_be_identifiers_and_values_scalars(
    tmp_path: Path, event: str, fields: dict[str, object], error: type[Exception]
) -> None:
    log = AuditLog(tmp_path / "audit.jsonl", clock=FakeClock())
    with pytest.raises(error):
        log.record(event, **fields)  # type: ignore[arg-type]
    assert not (tmp_path / "audit.jsonl").exists()


def test_a_long_text_is_cut_to_128_characters_never_refused(tmp_path: Path) -> None:
    """Issue 12 item 8: a by-id name longer than 128 characters (USB descriptors) crashed the daemon."""
    log = AuditLog(tmp_path / "audit.jsonl", clock=FakeClock())
    long_name = "/dev/serial/by-id/usb-" + "Ä" * 200 + "-if00"
    assert log.record("scanner_connected", source="serial", device=long_name, count=1)
    (record,) = log.read()
    assert len(record["device"]) == 128 and record["device"].endswith("…")
    assert long_name.startswith(record["device"][:-1])
    assert record["count"] == 1


def test_a_full_disk_costs_the_record_not_the_daemon(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="device.audit")
    path = tmp_path / "audit.jsonl"
    # /dev/full answers every write with ENOSPC, exactly what a full SD card does.
    path.symlink_to("/dev/full")
    log = AuditLog(path, clock=FakeClock())

    assert log.record("drop", count=4) is False
    assert log.record("drop", count=5) is False
    assert log.lost == 2
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "No space left on device" in warnings[0].getMessage()

    path.unlink()  # space returns
    assert log.record("drop", count=6) is True
    assert [r["count"] for r in log.read()] == [6]
    assert "writable again after 2 lost" in caplog.records[-1].getMessage()


def test_a_torn_last_line_stays_alone_and_is_skipped(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path, clock=FakeClock())
    log.record("start")
    with path.open("ab") as f:
        f.write(b'{"ts":"2023-11-14T22:1')  # power cut in the middle of a write
    log.record("stop")

    assert [r["event"] for r in log.read()] == ["start", "stop"]
    assert path.read_bytes().count(b"\n") == 3
    assert "skipped 1 damaged line" in caplog.text


def test_rotation_keeps_one_older_generation_and_reads_both(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path, clock=FakeClock(), max_bytes=400)
    for n in range(12):
        log.record("scanner_connected", n=n)

    assert log.previous.exists()
    assert path.stat().st_size <= 400 and log.previous.stat().st_size <= 400
    numbers = [r["n"] for r in log.read()]
    assert numbers == list(range(numbers[0], 12)) and numbers[0] > 0


def test_concurrent_writers_never_interleave_lines(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit.jsonl", clock=FakeClock())

    def write(source: str) -> None:
        for n in range(40):
            log.record("scanner_connected", source=source, n=n)

    threads = [threading.Thread(target=write, args=(name,)) for name in ("hid", "serial", "camera")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    records = log.read()
    assert len(records) == 120
    for source in ("hid", "serial", "camera"):
        assert [r["n"] for r in records if r["source"] == source] == list(range(40))
