"""Roster import and the compliance report on the synthetic site, over SQLite and PostgreSQL."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from collector import tables as t
from collector.reports import roster as r
from collector.reports.compliance import NOT_SCANNED, SCANNED, UNKNOWN, compliance
from collector.reports.tables import roster, roster_subjects
from device.privacy import Privacy, load_key
from tests.support.collector import cli_text
from tests.support.reports_site import (
    BACK_PEOPLE,
    BUS2_ABSENT,
    BUS2_EVENING,
    BUS2_MORNING,
    GATE_ABSENT,
    TRIP1,
    TWO_CODES,
    TWO_CODES_BHXH,
    TWO_CODES_QID,
    TZ,
    UNASSIGNED_ABSENT,
    VISITOR_CCCD,
    Site,
    cccd_of,
    employee,
    write_roster_csv,
)


def import_roster(s: Site) -> r.ImportResult:
    return r.import_roster(s.store(), s.roster_file(), load_key(s.key_file, create=False), wall=time.time())


def states(s: Site) -> dict[str, str]:
    store = s.store()
    report = compliance(store, r.load_roster(store, load_key(s.key_file, create=False)), s.day, TZ)
    return {p.employee_no: p.state for p in report.people}


def test_the_roster_keeps_pseudonyms_and_sealed_names_never_an_id_number(site: Site) -> None:
    result = import_roster(site)
    assert (result.imported, result.subjects, result.bad) == (300, 302, [])
    store = site.store()
    with store.engine.connect() as conn:
        dump = json.dumps(
            [list(row) for table in (roster, roster_subjects) for row in conn.execute(sa.select(table))],
            default=str,
            ensure_ascii=False,
        )
    for n in (1, 150, 300):
        assert cccd_of(n) not in dump
    assert TWO_CODES_BHXH not in dump and TWO_CODES_QID not in dump
    assert "Nguyễn" not in dump, "the display name is stored sealed"
    # The pseudonyms are the ones the devices computed: the roster meets the events.
    subjects = {row["subject_hmac"] for row in store.rows(roster_subjects)}
    assert site.pseudonym("cccd", cccd_of(1)) in subjects
    assert site.pseudonym("bhyt", TWO_CODES_BHXH) in subjects
    assert site.pseudonym("personal", TWO_CODES_QID) in subjects
    people = r.load_roster(store, load_key(site.key_file, create=False))
    assert people.people["E007"].name == "Nguyễn Văn 007"
    assert len(people.people[employee(TWO_CODES)].subjects) == 3


def test_a_bad_row_is_named_and_skipped_and_a_reimport_replaces(fresh_site: Site, tmp_path: Path) -> None:
    s = fresh_site
    import_roster(s)
    bad = [
        ["X1", "Trần Thị B", "Tổ 1", "", "", "12345", "", ""],  # a CCCD number of 5 digits
        ["X2", "Lê Văn C", "Tổ 1", "", "", "", "", ""],  # no ID at all
        ["E001", "Again", "", "", "", "001099077777", "", ""],  # a second row for E001
        ["X3", "Phạm D", "", "", "", cccd_of(2), "", ""],  # E002's number
        ["X4", "Vũ E", "", "", "", "", "DN4797912345678", ""],  # a BHYT card number: its BHXH digits
    ]
    path = write_roster_csv(tmp_path / "second.csv", s.people[:10], extra=bad)
    result = r.import_roster(s.store(), path, load_key(s.key_file, create=False), wall=time.time())
    assert result.imported == 11
    assert [(b.line, b.employee_no) for b in result.bad] == [(12, "X1"), (13, "X2"), (14, "E001"), (15, "X3")]
    assert "12345" not in " ".join(b.reason for b in result.bad), "a reason never quotes the number"
    store = s.store()
    assert store.count(roster) == 11, "re-import replaced the 300 rows"
    x4 = [row for row in store.rows(roster_subjects) if row["employee_no"] == "X4"]
    assert [row["subject_hmac"] for row in x4] == [s.pseudonym("bhyt", "7912345678")]


def test_an_unreadable_roster_is_refused_and_the_old_one_stays(fresh_site: Site, tmp_path: Path) -> None:
    s = fresh_site
    import_roster(s)
    wrong = tmp_path / "wrong.csv"
    wrong.write_text("name,team\nA,B\n", encoding="utf-8")
    with pytest.raises(r.RosterError, match="employee number"):
        r.import_roster(s.store(), wrong, load_key(s.key_file, create=False), wall=time.time())
    assert s.store().count(roster) == 300


def test_the_offline_bus_riders_are_unknown_until_it_syncs_then_scanned_or_not(fresh_site: Site) -> None:
    s = fresh_site
    import_roster(s)
    before = states(s)
    assert {before[employee(n)] for n in BUS2_MORNING} == {SCANNED}
    assert {before[employee(n)] for n in [*BUS2_EVENING, BUS2_ABSENT]} == {UNKNOWN}
    # Unassigned people could have scanned anywhere, the offline bus included.
    assert {before[employee(n)] for n in UNASSIGNED_ABSENT} == {UNKNOWN}
    # The gate's readers confirmed the day: its absentees are absent.
    assert {before[employee(n)] for n in GATE_ABSENT} == {NOT_SCANNED}

    s.sync_offline_bus()
    after = states(s)
    assert {after[employee(n)] for n in BUS2_EVENING} == {SCANNED}
    assert after[employee(BUS2_ABSENT)] == NOT_SCANNED
    assert {after[employee(n)] for n in UNASSIGNED_ABSENT} == {NOT_SCANNED}
    assert UNKNOWN not in after.values()


def test_the_report_says_provisional_names_the_bus_and_counts_everyone_once(site: Site) -> None:
    import_roster(site)
    store = site.store()
    report = compliance(store, r.load_roster(store, load_key(site.key_file, create=False)), site.day, TZ)
    assert not report.final
    assert [(v.device_id, v.confirmed) for v in report.holding] == [("bus-2", False)]
    assert report.totals.total == 300
    assert report.totals.scanned + report.totals.not_scanned + report.totals.unknown == 300
    assert report.totals.unknown == len(BUS2_EVENING) + 1 + len(UNASSIGNED_ABSENT)
    assert sum(g.total for g in report.by_team.values()) == 300
    assert sum(g.total for g in report.by_line.values()) == 300
    assert report.by_location["Xe đưa đón công nhân BKS: 98C-678.90"].unknown == len(BUS2_EVENING) + 1
    assert report.unmatched_assignments == []
    # The visitor matches no roster row; the duplicate delivery was stored once.
    assert report.visitors == 1
    assert store.count(t.events, t.events.c.subject_hmac == site.pseudonym("cccd", VISITOR_CCCD)) == 2
    two = next(p for p in report.people if p.employee_no == employee(TWO_CODES))
    assert (two.state, two.scans) == (SCANNED, 2)
    assert two.first_location == "Xe đưa đón công nhân BKS: 98C-123.45"
    assert two.last_location == "Cổng chính"
    back = [p for p in report.people if p.employee_no in {employee(n) for n in BACK_PEOPLE}]
    assert {(p.state, p.unsynced) for p in back} == {(SCANNED, True)}
    first = next(p for p in report.people if p.employee_no == employee(TRIP1[0]))
    assert first.first_at is not None and first.first_at.astimezone(TZ).strftime("%H:%M") == "06:00"


def test_the_compliance_command_prints_json_csv_and_a_table(site: Site, tmp_path: Path) -> None:
    import_roster(site)
    config = str(site.settings_file())
    doc = json.loads(cli_text("compliance", "--config", config, "--date", str(site.day), "--format", "json"))
    assert doc["final"] is False and doc["totals"]["total"] == 300
    assert [h["device_id"] for h in doc["holding"]] == ["bus-2"]
    assert {p["state"] for p in doc["people"]} == {SCANNED, NOT_SCANNED, UNKNOWN}
    table = cli_text("compliance", "--config", config, "--date", str(site.day))
    assert "PROVISIONAL" in table and "held back by bus-2" in table
    out = tmp_path / "c.csv"
    cli_text("compliance", "--config", config, "--date", str(site.day), "--format", "csv", "-o", str(out))
    raw = out.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    assert raw.decode("utf-8-sig").splitlines()[0].startswith("employee_no,name,team,line,assigned,state")
    assert cccd_of(1).encode() not in raw
    from openpyxl import load_workbook

    book_path = tmp_path / "c.xlsx"
    cli_text(
        "compliance", "--config", config, "--date", str(site.day), "--format", "xlsx", "-o", str(book_path)
    )
    book = load_workbook(book_path, read_only=True)
    cells = [row for row in book.worksheets[0].iter_rows(values_only=True)]
    book.close()
    assert cells[0][:6] == ("employee_no", "name", "team", "line", "assigned", "state") and len(cells) == 301


def test_an_xlsx_roster_with_english_headings_and_numbers_typed_as_numbers(
    database: str, tmp_path: Path
) -> None:
    from openpyxl import Workbook

    from collector.store import Store
    from tests.support.collector import write_config
    from tests.support.reports_site import SITE_KEY

    key = tmp_path / "site.key"
    key.write_bytes(SITE_KEY)
    key.chmod(0o600)
    config = write_config(tmp_path / "c.toml", port=1883, url=database, privacy={"site_key_file": str(key)})
    Store(Site(database, tmp_path / "s").settings().database_url).migrate()
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["Employee number", "Display name", "Team", "Line", "Assigned", "CCCD", "BHXH", "QID"])
    # Excel keeps a long digit string typed into a cell as a number.
    sheet.append(["A1", "Đỗ Thị F", "QC", "L2", "98C-123.45", 1099012345, None, None])
    sheet.append(["A2", "Hồ Văn G", "QC", "L2", None, None, None, 123456789012345678])  # a QID as a number
    path = tmp_path / "staff.xlsx"
    book.save(path)
    out = cli_text("roster", "import", "--config", str(config), str(path))
    assert "row 3 (A2) skipped: QID typed as a number" in out
    assert "1 people with 1 subjects imported" in out
    store = Store(Site(database, tmp_path / "s").settings().database_url)
    # The CCCD typed as a number lost its leading zeros; the import puts them back.
    assert [row["subject_hmac"] for row in store.rows(roster_subjects)] == [
        Privacy("hmac", SITE_KEY).pseudonym("cccd", "001099012345")
    ]
