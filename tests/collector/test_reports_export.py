"""Exports and the locations list: files that open in openpyxl with the documented columns and no ID
number; every export audited; over SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io
import time
from pathlib import Path

from openpyxl import load_workbook

from collector import tables as t
from collector.reports import audit
from collector.reports import roster as r
from collector.reports.export import COLUMNS
from collector.reports.locations import COLUMNS as LOCATION_COLUMNS
from device.privacy import load_key
from tests.support.collector import cli_text
from tests.support.reports_site import TWO_CODES_BHXH, TWO_CODES_QID, VISITOR_CCCD, Site, cccd_of


def id_numbers() -> list[str]:
    return [cccd_of(n) for n in range(1, 301)] + [VISITOR_CCCD, TWO_CODES_BHXH, TWO_CODES_QID]


def export(s: Site, path: Path, fmt: str, *extra: str) -> None:
    day = str(s.day)
    cli_text(
        "export",
        "--config",
        str(s.settings_file()),
        "--from",
        day,
        "--to",
        day,
        "--format",
        fmt,
        "-o",
        str(path),
        "--purpose",
        "monthly report to the province",
        *extra,
    )


def day_events(s: Site) -> int:
    from collector.reports.common import local_day
    from tests.support.reports_site import TZ

    start, end = local_day(s.day, TZ)
    e = t.events.c
    return s.store().count(t.events, e.scanned_at >= start, e.scanned_at < end)


def test_an_xlsx_export_opens_with_the_documented_columns_and_no_id_number(
    site: Site, tmp_path: Path
) -> None:
    r.import_roster(site.store(), site.roster_file(), load_key(site.key_file, create=False), wall=time.time())
    path = tmp_path / "scans.xlsx"
    export(site, path, "xlsx")
    book = load_workbook(path, read_only=True)
    rows = [list(row) for row in book.worksheets[0].iter_rows(values_only=True)]
    book.close()
    assert tuple(rows[0]) == COLUMNS
    body = rows[1:]
    assert len(body) == day_events(site)
    numbers = set(id_numbers())
    assert not {str(v) for row in rows for v in row if v is not None} & numbers
    text = " ".join(str(v) for row in rows for v in row if v is not None)
    assert not any(n in text for n in numbers)
    first = dict(zip(COLUMNS, body[0], strict=True))
    assert first["scanned_at_local"] == f"{site.day} 06:00:00"
    assert (first["location_name"], first["location_kind"], first["plate"]) == (
        "Xe đưa đón công nhân BKS: 98C-123.45",
        "bus",
        "98C12345",
    )
    assert (first["employee_no"], first["masked_id"], first["code_type"]) == ("E001", "0010******01", "cccd")
    assert (first["device_id"], first["clock"], first["direction"]) == ("bus-1", "synced", "in")
    visitor = [row for row in body if row[COLUMNS.index("employee_no")] is None]
    assert [row[COLUMNS.index("masked_id")] for row in visitor] == ["0010******99", "0010******99"]
    back = [row for row in body if row[COLUMNS.index("device_id")] == "gate-2"]
    assert {row[COLUMNS.index("clock")] for row in back} == {"unsynced"}


def test_a_csv_export_has_a_bom_the_columns_and_a_location_filter(site: Site, tmp_path: Path) -> None:
    r.import_roster(site.store(), site.roster_file(), load_key(site.key_file, create=False), wall=time.time())
    path = tmp_path / "bus.csv"
    export(site, path, "csv", "--location", "98C12345")
    raw = path.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"))))
    assert tuple(rows[0]) == COLUMNS
    assert {row[COLUMNS.index("location_name")] for row in rows[1:]} == {
        "Xe đưa đón công nhân BKS: 98C-123.45"
    }
    # Both trips, the visitor, and seq in order per reader.
    assert len(rows) - 1 == 40 + 1
    assert [int(row[COLUMNS.index("seq")]) for row in rows[1:]] == sorted(
        int(row[COLUMNS.index("seq")]) for row in rows[1:]
    )
    assert not any(n.encode() in raw for n in id_numbers())
    # The personal QR's scan carries the worker's number too: the roster links every code of a person.
    assert {row[COLUMNS.index("employee_no")] for row in rows[1:]} == {f"E{n:03d}" for n in range(1, 41)} | {
        ""
    }


def test_every_export_is_in_the_audit_log_with_its_row_count(site: Site, tmp_path: Path) -> None:
    before = audit.verify(site.store()).rows
    export(site, tmp_path / "all.csv", "csv")
    entry = audit.entries(site.store(), 1)[0]
    assert (entry.id, entry.action, entry.purpose, entry.role) == (
        before + 1,
        "export",
        "monthly report to the province",
        "hr",
    )
    assert entry.row_count == day_events(site)
    assert audit.verify(site.store()).ok


def test_the_locations_list_has_the_address_devices_and_state(site: Site, tmp_path: Path) -> None:
    path = tmp_path / "locations.xlsx"
    cli_text("locations", "--config", str(site.settings_file()), "--format", "xlsx", "-o", str(path))
    book = load_workbook(path, read_only=True)
    rows = [list(row) for row in book.worksheets[0].iter_rows(values_only=True)]
    book.close()
    assert tuple(rows[0]) == LOCATION_COLUMNS
    by_id = {row[0]: dict(zip(LOCATION_COLUMNS, row, strict=True)) for row in rows[1:]}
    assert set(by_id) == {"98C12345", "98C67890", "gate-main", "door-canteen", "gate-back"}
    bus = by_id["98C12345"]
    assert (bus["plate"], bus["address"], bus["ward"], bus["district"], bus["province"]) == (
        "98C12345",
        "Thôn A",
        "Xã Hương Gián",
        "Huyện Yên Dũng",
        "Bắc Giang",
    )
    assert bus["state"] == "online" and bus["devices"] == "bus-1"
    assert by_id["gate-main"]["devices"] == "gate-1a, gate-1b"
    assert by_id["98C67890"]["state"] == "bus-2 offline"
    assert str(bus["first_checkin"]).startswith(f"{site.day} 06:00")
    table = cli_text("locations", "--config", str(site.settings_file()))
    assert "Xã Hương Gián" in table and "Cổng chính" in table
