"""`qr-checkin status` and `qr-checkin history` on a store a real daemon filled, beside it and after it.

One daemon run (module fixture) scans synthetic people: three delivered to a real broker, three held
while the broker is down, a duplicate and a rejection. The commands run as subprocesses like a
technician's; the many small range and error cases call the same `main` in-process.
"""

from __future__ import annotations

import csv
import io
import json
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from device.audit import AuditLog
from device.cli import main as cli_main
from device.commands.history import COLUMNS, parse_moment, row
from device.contract import iso_utc
from device.daemon import AUDIT_FILE
from device.settings import load_settings
from device.store import DB_NAME
from tests.support.daemon import DaemonProcess, run_cli, write_config
from tests.support.mosquitto import Mosquitto, free_port
from tests.support.payloads import vectors
from tests.support.personal_data import all_personal_strings
from tests.support.schema import validate_event
from tests.support.subscriber import Subscriber

VALID = [s["payload"] for s in vectors()["bhyt"] + vectors()["cccd"]]
INVALID = vectors()["invalid"][0]["payload"]
LOCATION_NAME = "Tuyến 5 – Bến Thành"


@dataclass(frozen=True)
class Device:
    config: Path
    state: Path
    delivered: list[str]
    held: list[str]
    # A moment between the delivered scans and the held ones.
    between: float
    published: dict[str, dict[str, Any]]
    status_while_running: subprocess.CompletedProcess[str]


@pytest.fixture(scope="module")
def device(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Device]:
    root = tmp_path_factory.mktemp("device")
    broker = Mosquitto(root / "broker").start()
    sub = Subscriber(broker.port)
    config = write_config(
        root / "device.toml", port=broker.port, storage=root / "state", location={"name": LOCATION_NAME}
    )
    daemon = DaemonProcess(config).start()
    try:
        daemon.wait_log("connected to broker")
        delivered = [daemon.scan(text)["event_id"] for text in VALID[:3]]
        sub.wait_event_ids(set(delivered))
        time.sleep(0.05)
        between = time.time()
        time.sleep(0.05)
        broker.kill()
        daemon.wait_log("disconnected from broker")
        held = [daemon.scan(text)["event_id"] for text in VALID[3:]]
        assert daemon.scan(VALID[0])["feedback"] == "duplicate"
        assert daemon.scan(INVALID)["feedback"] == "rejected"
        wait_audit(root / "state" / AUDIT_FILE, "scanner_connected")
        running = run_cli("status", "--json", "--config", str(config))
        assert daemon.terminate() == 0
        yield Device(
            config=config,
            state=root / "state",
            delivered=delivered,
            held=held,
            between=between,
            published={e["event_id"]: e for e in sub.events()},
            status_while_running=running,
        )
    finally:
        daemon.stop()
        sub.close()
        broker.kill()


def wait_audit(path: Path, event: str, timeout: float = 5.0) -> None:
    """Until the daemon's maintenance round (once a second) has recorded `event`."""
    deadline = time.monotonic() + timeout
    while not any(r["event"] == event for r in AuditLog(path).read()):
        if time.monotonic() > deadline:
            raise AssertionError(f"no {event} record in {path} within {timeout}s")
        time.sleep(0.05)


def in_process(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = cli_main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def history_rows(capsys: pytest.CaptureFixture[str], device: Device, *args: str) -> list[dict[str, str]]:
    code, out, err = in_process(capsys, "history", "--config", str(device.config), *args)
    assert code == 0, err
    return list(csv.DictReader(io.StringIO(out)))


def test_status_reads_the_store_beside_the_running_daemon(device: Device) -> None:
    done = device.status_while_running
    assert done.returncode == 0, done.stderr
    status = json.loads(done.stdout)
    assert status["backlog"] == 3
    assert status["daemon"] == "running, or ended without a clean stop"
    assert status["scanners"]["stdin:stdin"]["state"] == "connected"
    assert status["location_name"] == LOCATION_NAME


def test_status_after_a_stop_says_what_the_retained_status_said(device: Device) -> None:
    settings = load_settings(device.config)
    done = run_cli("status", "--json", "--config", str(device.config))
    assert done.returncode == 0, done.stderr
    status = json.loads(done.stdout)
    assert status["counters"] == {
        "scans": 8,
        "accepted": 6,
        "duplicates": 1,
        "rejected": 1,
        "storage_failures": 0,
        "dropped": 0,
    }
    assert status["backlog"] == 3 and status["dead_letters"] == 0
    assert status["oldest_undelivered_age_s"] > 0
    assert status["config_hash"] == settings.config_hash() == status["last_start"]["config_hash"]
    assert status["config_matches_last_start"] is True
    assert status["daemon"] == "stopped" and status["last_stop"]["backlog"] == 3
    assert status["clock"] in ("synced", "unsynced")
    assert status["disk_free_mb"] > 0
    assert status["device_id"] == settings.device.id and status["faults"] == []

    text = run_cli("status", "--config", str(device.config))
    assert text.returncode == 0, text.stderr
    lines = {line.split(maxsplit=1)[0]: line.split(maxsplit=1)[1] for line in text.stdout.splitlines()}
    assert lines["device"] == f'{settings.device.id} at bus {settings.location.id} "{LOCATION_NAME}"'
    assert lines["backlog"].startswith("3 undelivered, the oldest ")
    assert lines["backlog"].endswith("; 0 dead letters")
    assert lines["counters"].startswith("scans 8, accepted 6, duplicates 1, rejected 1, storage failures 0")
    assert lines["daemon"].startswith("stopped; last start ")
    assert lines["store"] == str(device.state / DB_NAME)


def test_history_csv_lists_the_kept_checkins_masked(device: Device) -> None:
    done = run_cli("history", "--config", str(device.config))
    assert done.returncode == 0, done.stderr
    reader = csv.DictReader(io.StringIO(done.stdout))
    assert tuple(reader.fieldnames or ()) == COLUMNS
    rows = list(reader)
    assert [r["event_id"] for r in rows] == device.delivered + device.held
    assert [r["seq"] for r in rows] == ["1", "2", "3", "4", "5", "6"]
    assert [r["delivered"] for r in rows] == ["true"] * 3 + ["false"] * 3
    for r in rows[:3]:
        published = device.published[r["event_id"]]
        assert r["scanned_at"] == published["scanned_at"] and r["clock"] == published["clock"]
        assert r["subject"] == published["subject"]["masked"] and "*" in r["subject"]
        assert r["code_type"] == published["code"]["type"] and r["source"] == "stdin"
    assert {r["code_type"] for r in rows} == {"bhyt", "cccd"}
    leaks = sorted(s for s in all_personal_strings() if s in done.stdout)
    assert leaks == []


def test_history_json_holds_the_events_as_published(device: Device) -> None:
    done = run_cli("history", "--format", "json", "--config", str(device.config))
    assert done.returncode == 0, done.stderr
    events = json.loads(done.stdout)
    assert [e["event_id"] for e in events] == device.delivered + device.held
    for event in events:
        validate_event(event)
        delivered = event.pop("delivered")
        assert delivered is (event["event_id"] in device.delivered)
        if delivered:
            assert event == device.published[event["event_id"]]
        assert event["subject"]["mode"] == "hmac" and "id" not in event["subject"]
    leaks = sorted(s for s in all_personal_strings() if s in done.stdout)
    assert leaks == []


def test_history_ranges_and_each_export_in_the_audit_log(
    device: Device, capsys: pytest.CaptureFixture[str]
) -> None:
    audit = AuditLog(device.state / AUDIT_FILE)
    exports_before = [r for r in audit.read() if r["event"] == "export"]
    until = iso_utc(device.between)
    early = history_rows(capsys, device, "--until", until)
    assert [r["event_id"] for r in early] == device.delivered
    late = history_rows(capsys, device, "--since", until)
    assert [r["event_id"] for r in late] == device.held
    assert len(history_rows(capsys, device, "--since", "1h")) == 6
    assert history_rows(capsys, device, "--since", "2999-01-01") == []
    code, out, _ = in_process(
        capsys, "history", "--format", "json", "--until", "1970-01-02", "--config", str(device.config)
    )
    assert code == 0 and json.loads(out) == []

    exports = [r for r in audit.read() if r["event"] == "export"][len(exports_before) :]
    assert [(r["format"], r["rows"]) for r in exports] == [
        ("csv", 3),
        ("csv", 3),
        ("csv", 6),
        ("csv", 0),
        ("json", 0),
    ]
    assert exports[0]["until"] == until and exports[0]["since"] is None
    assert exports[1]["since"] == until


def test_nothing_is_created_where_no_store_is(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    state = tmp_path / "never-run"
    config = write_config(tmp_path / "device.toml", port=free_port(), storage=state)
    for command in ("status", "history"):
        code, out, err = in_process(capsys, command, "--config", str(config))
        assert code == 1 and out == ""
        assert f"no store at {state / DB_NAME}" in err and "nothing was created" in err
    assert not state.exists()


def test_an_unreadable_store_is_reported_not_moved(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state = tmp_path / "state"
    state.mkdir()
    (state / DB_NAME).write_bytes(b"not a database at all" * 200)
    config = write_config(tmp_path / "device.toml", port=free_port(), storage=state)
    code, _, err = in_process(capsys, "status", "--config", str(config))
    assert code == 1 and "cannot read the store" in err and "unreadable" in err
    assert sorted(p.name for p in state.iterdir()) == [DB_NAME]


@pytest.mark.parametrize(
    ("argument", "problem"),
    [
        (["--since", "yesterday"], "'yesterday' is not a time"),
        (["--until", "24x"], "'24x' is not a time"),
        (["--since", "1969-12-31"], "outside 1970-9999"),
        (["--format", "xml"], "invalid choice: 'xml'"),
    ],
)
def test_bad_arguments_are_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argument: list[str], problem: str
) -> None:
    config = write_config(tmp_path / "device.toml", port=free_port(), storage=tmp_path / "state")
    with pytest.raises(SystemExit) as stop:
        cli_main(["history", "--config", str(config), *argument])
    assert stop.value.code == 2
    assert problem in capsys.readouterr().err


def test_until_before_since_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write_config(tmp_path / "device.toml", port=free_port(), storage=tmp_path / "state")
    code, _, err = in_process(capsys, "history", "--since", "1h", "--until", "2h", "--config", str(config))
    assert code == 2 and "--until must be later than --since" in err


NOW = 1_750_000_000.0  # 2025-06-15T15:06:40Z


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("24h", NOW - 86400),
        ("7d", NOW - 7 * 86400),
        ("90m", NOW - 5400),
        ("30s", NOW - 30),
        ("1.5H", NOW - 5400),
        ("2025-06-15", 1_749_945_600.0),
        ("2025-06-15T15:06:40", NOW),
        ("2025-06-15 15:06:40Z", NOW),
        ("2025-06-15T22:06:40+07:00", NOW),
        (" 2025-06-15T15:06:40.5 ", NOW + 0.5),
    ],
)
def test_times_are_iso_utc_unless_they_say_otherwise_or_spans_back_from_now(
    text: str, expected: float
) -> None:
    assert parse_moment(text, NOW) == expected


@pytest.mark.parametrize("text", ["", "yesterday", "7 d", "-1h", "1w", "2025-13-01", "nan", "10000-01-01"])
def test_what_is_not_a_time(text: str) -> None:
    with pytest.raises(ValueError, match=r"is not a time|outside 1970-9999"):
        parse_moment(text, NOW)


def test_a_csv_cell_never_starts_a_spreadsheet_formula() -> None:
    event = {
        "seq": 1,
        "event_id": "e",
        "scanned_at": "t",
        "clock": "synced",
        "source": "camera",
        "direction": None,
        "code": {"type": "other"},
        "subject": {"masked": "=H**********1"},
        "delivered": False,
    }
    assert row(event)["subject"] == "'=H**********1"
    assert row(event)["direction"] == "" and row(event)["delivered"] == "false"
    event["subject"] = {"masked": "00*******01"}
    assert row(event)["subject"] == "00*******01"
