"""Contact tracing on the synthetic site: a bus trip's co-riders and not the next trip's, dwell windows,
the rules' configuration, and the audit row every trace leaves; over SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import gc
import json
import time

import pytest
from pydantic import ValidationError

from collector.reports import audit
from collector.reports import roster as r
from collector.reports.common import collection_paused, local_day
from collector.reports.config import Rule, TraceSettings
from collector.reports.trace import trace
from device.privacy import load_key
from tests.support.collector import cli_text, run_cli
from tests.support.reports_site import (
    CANTEEN,
    TRACED,
    TRIP1,
    TRIP2,
    TWO_CODES,
    TZ,
    VISITOR_CCCD,
    Site,
    employee,
)


def loaded(s: Site) -> r.Roster:
    store = s.store()
    key = load_key(s.key_file, create=False)
    r.import_roster(store, s.roster_file(), key, wall=time.time())
    return r.load_roster(store, key)


def test_a_trace_finds_exactly_the_co_riders_of_one_trip(site: Site) -> None:
    roster = loaded(site)
    start, end = local_day(site.day, TZ)
    result = trace(
        site.store(), roster, TraceSettings(), TZ, start=start, end=end, employee_no=employee(TRACED)
    )
    assert [(v.location_id, v.method) for v in result.visits] == [("98C12345", "trip")]
    visit = result.visits[0]
    assert visit.start.astimezone(TZ).strftime("%H:%M") == "06:00"
    # The trip's last scan (06:19) plus the 20-minute tail.
    assert visit.end.astimezone(TZ).strftime("%H:%M") == "06:39"
    riders = {c.employee_no for c in result.contacts if c.employee_no}
    assert riders == {employee(n) for n in TRIP1} - {employee(TRACED)}
    assert not riders & {employee(n) for n in TRIP2}
    # The worker who showed the personal QR is on the roster through it; the visitor by masked form.
    assert employee(TWO_CODES) in riders
    visitors = [c for c in result.contacts if c.employee_no is None]
    assert [(v.masked, v.subject) for v in visitors] == [
        ("0010******99", site.pseudonym("cccd", VISITOR_CCCD))
    ]
    named = next(c for c in result.contacts if c.employee_no == "E001")
    assert named.name == "Nguyễn Văn 001"
    # E001 boarded at 06:00, the traced worker at 06:04: together from 06:04 to the trip's end.
    assert named.overlap_min == 35.0
    late = next(c for c in result.contacts if c.employee_no == "E020")
    assert late.overlap_min == 20.0


def test_a_trip_that_outlasts_the_first_window_is_read_further(site: Site) -> None:
    """A pause of four hours still continues the trip: the chain reaches past the first window read
    around the scan (three hours each way), so the trace reads a wider one: both morning trips are one."""
    roster = loaded(site)
    start, end = local_day(site.day, TZ)
    slow = TraceSettings(rules={"bus": Rule(method="trip", gap_min=240), "default": Rule(method="dwell")})
    result = trace(site.store(), roster, slow, TZ, start=start, end=end, employee_no=employee(TRACED))
    bus = [v for v in result.visits if v.location_id == "98C12345"]
    assert len(bus) == 1
    # Trip 2's last scan (06:55 + 19 x 40 s = 07:07:40) plus the 20-minute tail.
    assert bus[0].end.astimezone(TZ).strftime("%H:%M:%S") == "07:27:40"
    riders = {c.employee_no for c in result.contacts if c.visit is bus[0] and c.employee_no}
    assert riders == {employee(n) for n in [*TRIP1, *TRIP2]} - {employee(TRACED)}


def test_the_visitor_is_traced_by_pseudonym_across_bus_and_gate(site: Site) -> None:
    roster = loaded(site)
    start, end = local_day(site.day, TZ)
    result = trace(
        site.store(),
        roster,
        TraceSettings(),
        TZ,
        start=start,
        end=end,
        subject=site.pseudonym("cccd", VISITOR_CCCD),
    )
    assert sorted(v.location_id for v in result.visits) == ["98C12345", "gate-main"]
    gate = next(v for v in result.visits if v.location_id == "gate-main")
    # A gate is a dwell window of 120 minutes by the default rule.
    assert (gate.method, gate.end - gate.start) == ("dwell", dt.timedelta(minutes=120))
    assert employee(TRACED) in {c.employee_no for c in result.contacts}


def test_a_worker_with_two_codes_is_one_person_and_not_their_own_contact(site: Site) -> None:
    roster = loaded(site)
    start, end = local_day(site.day, TZ)
    result = trace(
        site.store(), roster, TraceSettings(), TZ, start=start, end=end, employee_no=employee(TWO_CODES)
    )
    assert len(result.subjects) == 3
    assert {v.location_id for v in result.visits} == {"98C12345", "gate-main"}
    assert employee(TWO_CODES) not in {c.employee_no for c in result.contacts}
    assert len({p.employee_no or p.subject for p in result.people}) == len(result.people)


def test_door_dwell_and_a_narrower_rule_from_the_config(site: Site) -> None:
    roster = loaded(site)
    start, end = local_day(site.day, TZ)
    first = employee(CANTEEN[0])
    wide = trace(site.store(), roster, TraceSettings(), TZ, start=start, end=end, employee_no=first)
    canteen = {c.employee_no for c in wide.contacts if c.visit.location_id == "door-canteen"}
    assert canteen == {employee(n) for n in CANTEEN} - {first}
    narrow = TraceSettings(
        rules={"door": Rule(method="dwell", dwell_min=3), "default": Rule(method="dwell", dwell_min=3)}
    )
    close = trace(site.store(), roster, narrow, TZ, start=start, end=end, employee_no=first)
    # Scans a minute apart: with 3-minute windows only the next two people overlap.
    assert {c.employee_no for c in close.contacts if c.visit.location_id == "door-canteen"} == {
        employee(CANTEEN[1]),
        employee(CANTEEN[2]),
    }


def test_a_trace_rule_set_without_a_default_is_refused() -> None:
    with pytest.raises(ValidationError, match="default"):
        TraceSettings(rules={"bus": Rule(method="trip")})
    with pytest.raises(ValidationError, match="shifts"):
        Rule(method="shift")


def test_the_trace_command_is_audited_and_needs_a_purpose(site: Site) -> None:
    loaded(site)
    config = str(site.settings_file())
    day = str(site.day)
    refused = run_cli("trace", "--config", config, "--employee", employee(TRACED), "--from", day, "--to", day)
    assert refused.returncode == 2 and "--purpose" in refused.stderr
    before = audit.verify(site.store()).rows
    doc = json.loads(
        cli_text(
            "trace",
            "--config",
            config,
            "--employee",
            employee(TRACED),
            "--from",
            day,
            "--to",
            day,
            "--purpose",
            "F0-2021-0042",
            "--who",
            "tracer1",
            "--role",
            "authority",
            "--format",
            "json",
        )
    )
    assert {c["employee_no"] for c in doc["contacts"] if c["employee_no"]} == {employee(n) for n in TRIP1} - {
        employee(TRACED)
    }
    entry = audit.entries(site.store(), 1)[0]
    assert (entry.id, entry.actor, entry.role, entry.action, entry.purpose) == (
        before + 1,
        "tracer1",
        "authority",
        "trace",
        "F0-2021-0042",
    )
    assert entry.row_count == len(doc["contacts"])
    assert json.loads(entry.query)["employee"] == employee(TRACED)
    assert audit.verify(site.store()).ok


def test_a_shift_rule_puts_everyone_of_the_shift_together(site: Site) -> None:
    from tests.support.reports_site import GATE_PEOPLE, UNASSIGNED_SCANNED

    roster = loaded(site)
    start, end = local_day(site.day, TZ)
    shifts = Rule(method="shift", shifts=("06:00-14:00", "14:00-22:00", "22:00-06:00"))
    rules = TraceSettings(rules={"gate": shifts, "default": Rule(method="dwell")})
    first = employee(GATE_PEOPLE[0])
    result = trace(site.store(), roster, rules, TZ, start=start, end=end, employee_no=first)
    gate = [c for c in result.contacts if c.visit.location_id == "gate-main"]
    expected = {employee(n) for n in [*GATE_PEOPLE, *UNASSIGNED_SCANNED, TWO_CODES]} - {first}
    assert {c.employee_no for c in gate if c.employee_no} == expected
    assert {c.overlap_min for c in gate} == {480.0}
    visit = next(v for v in result.visits if v.location_id == "gate-main")
    assert (visit.start.astimezone(TZ).hour, visit.end.astimezone(TZ).hour) == (6, 14)


def test_the_paused_collector_is_given_back_as_it_was_found() -> None:
    """Reports pause the cyclic collector while they build their rows: afterwards it runs again,
    unless the caller had it off."""
    assert gc.isenabled()
    with collection_paused():
        assert not gc.isenabled()
    assert gc.isenabled()
    gc.disable()
    try:
        with collection_paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()
