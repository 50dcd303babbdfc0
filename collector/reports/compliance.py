"""`100 % scanned today`: per roster person scanned, not scanned, or unknown, for one local day.

A person without a scan is `unknown` while a device that could hold their scans (the devices of their
assigned bus or gate, or every device of the site when they have none) has not confirmed the day's
end (collector/reports/completeness.py); the report is final when nobody is unknown, and names the
devices that hold it back otherwise. People scanned who match no roster row are visitors.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from collector import tables as t
from collector.reports.common import (
    Places,
    aware,
    collection_paused,
    local_day,
    locations,
    match_location,
)
from collector.reports.completeness import Verdict, verdicts
from collector.reports.roster import Person, Roster
from collector.store import Store

SCANNED, NOT_SCANNED, UNKNOWN = "scanned", "not scanned", "unknown"
STATES = (SCANNED, NOT_SCANNED, UNKNOWN)


@dataclass
class PersonDay:
    employee_no: str
    name: str | None
    team: str | None
    line: str | None
    assigned: str | None
    state: str
    first_at: dt.datetime | None = None
    first_location: str | None = None
    last_at: dt.datetime | None = None
    last_location: str | None = None
    scans: int = 0
    # Some of the scans carry a time from an unsynchronised clock (placed on the day as stamped).
    unsynced: bool = False
    held_by: list[str] = field(default_factory=list)


@dataclass
class Totals:
    total: int = 0
    scanned: int = 0
    not_scanned: int = 0
    unknown: int = 0

    def add(self, state: str) -> None:
        self.total += 1
        if state == SCANNED:
            self.scanned += 1
        elif state == NOT_SCANNED:
            self.not_scanned += 1
        else:
            self.unknown += 1


@dataclass
class Compliance:
    day: dt.date
    timezone: str
    start: dt.datetime
    end: dt.datetime
    final: bool
    people: list[PersonDay]
    totals: Totals
    by_team: dict[str, Totals]
    by_line: dict[str, Totals]
    by_location: dict[str, Totals]
    # Devices that keep someone `unknown`, with the reason.
    holding: list[Verdict]
    visitors: int
    visitors_by_location: dict[str, int]
    # Roster assignments that name no location any device has described.
    unmatched_assignments: list[str]


@dataclass
class _Seen:
    first: dt.datetime
    last: dt.datetime
    scans: int
    unsynced: int
    first_location: str | None = None
    last_location: str | None = None


@collection_paused()
def compliance(store: Store, roster: Roster, day: dt.date, tz: ZoneInfo) -> Compliance:
    start, end = local_day(day, tz)
    seen = _seen(store, start, end)
    known = locations(store)
    verdict = verdicts(store, start, end)
    site_devices = sorted(verdict)
    assigned_devices: dict[str, list[str]] = {}
    unmatched: set[str] = set()
    people: list[PersonDay] = []
    for person in sorted(roster.people.values(), key=lambda p: p.employee_no):
        mine = [seen[s] for s in person.subjects if s in seen]
        entry = _entry(person)
        if mine:
            _fill(entry, mine, known)
        else:
            devices = _devices_for(person, known, site_devices, assigned_devices, unmatched)
            entry.held_by = [d for d in devices if d in verdict and not verdict[d].confirmed]
            entry.state = UNKNOWN if entry.held_by else NOT_SCANNED
        people.append(entry)
    totals, by_team, by_line, by_location = Totals(), _group(), _group(), _group()
    for entry in people:
        totals.add(entry.state)
        by_team[entry.team or "-"].add(entry.state)
        by_line[entry.line or "-"].add(entry.state)
        loc = match_location(entry.assigned, known)
        by_location[loc.label if loc else entry.assigned or "-"].add(entry.state)
    holders = sorted({d for e in people for d in e.held_by})
    visitors = [s for s in seen if s not in roster.by_subject]
    visitors_by_location = Counter(_label(seen[s].first_location, known) for s in visitors)
    return Compliance(
        day=day,
        timezone=str(tz),
        start=start,
        end=end,
        final=not holders,
        people=people,
        totals=totals,
        by_team=dict(sorted(by_team.items())),
        by_line=dict(sorted(by_line.items())),
        by_location=dict(sorted(by_location.items())),
        holding=[verdict[d] for d in holders],
        visitors=len(visitors),
        visitors_by_location=dict(sorted(visitors_by_location.items())),
        unmatched_assignments=sorted(unmatched),
    )


def _group() -> defaultdict[str, Totals]:
    return defaultdict(Totals)


def _entry(person: Person) -> PersonDay:
    return PersonDay(person.employee_no, person.name, person.team, person.line, person.assigned, SCANNED)


def _fill(entry: PersonDay, mine: list[_Seen], known: Places) -> None:
    first = min(mine, key=lambda s: s.first)
    last = max(mine, key=lambda s: s.last)
    entry.first_at, entry.first_location = first.first, _label(first.first_location, known)
    entry.last_at, entry.last_location = last.last, _label(last.last_location, known)
    entry.scans = sum(s.scans for s in mine)
    entry.unsynced = any(s.unsynced for s in mine)


def _label(location_id: str | None, known: Places) -> str:
    if location_id is None:
        return "-"
    loc = known.get(location_id)
    return loc.label if loc else location_id


def _devices_for(
    person: Person,
    known: Places,
    site: list[str],
    cache: dict[str, list[str]],
    unmatched: set[str],
) -> list[str]:
    if not person.assigned:
        return site
    if person.assigned not in cache:
        loc = match_location(person.assigned, known)
        if loc is None:
            unmatched.add(person.assigned)
        cache[person.assigned] = site if loc is None else [d["device_id"] for d in loc.devices]
    return cache[person.assigned]


def _seen(store: Store, start: dt.datetime, end: dt.datetime) -> dict[str, _Seen]:
    """Per subject scanned in [start, end): first and last scan (and where), scans, unsynced scans.

    One scan of the day's events: the first and last location come from window functions over the
    subject's scans in time order (ties broken by device and seq), then one row per subject.
    """
    e = t.events.c
    order: dict[str, Any] = {"partition_by": e.subject_hmac, "order_by": (e.scanned_at, e.device_id, e.seq)}
    scans = (
        sa.select(
            e.subject_hmac.label("subject"),
            e.scanned_at.label("at"),
            e.clock,
            sa.func.first_value(e.location_id).over(**order).label("first_location"),
            # The frame is the whole partition: by default it would end at the current row.
            sa.func.last_value(e.location_id).over(**order, rows=(None, None)).label("last_location"),
        )
        .where(e.scanned_at >= start, e.scanned_at < end)
        .subquery()
    )
    s = scans.c
    grouped = sa.select(
        s.subject,
        sa.func.min(s.at),
        sa.func.max(s.at),
        sa.func.count(),
        sa.func.sum(sa.case((s.clock != "synced", 1), else_=0)),
        s.first_location,
        s.last_location,
    ).group_by(s.subject, s.first_location, s.last_location)
    with store.engine.connect() as conn:
        rows = conn.execute(grouped).all()
    return {
        subject: _Seen(
            aware(first), aware(last), int(count), int(unsynced or 0), first_location, last_location
        )
        for subject, first, last, count, unsynced, first_location, last_location in rows
    }
