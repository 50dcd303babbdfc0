"""Contact tracing: everyone co-present with a person, by location, with the overlap in minutes.

Presence follows the location kind's rule ([trace.rules], collector/reports/config.py): on a bus, a
trip is the plate's scans split by a quiet gap (30 minutes by default) and a rider is aboard from their
first scan of the trip to its last scan plus a tail; at a door each scan opens a dwell window (120
minutes); in a workshop a scan puts the person there for the whole shift holding it. Contacts are
employees by number and name (from the roster) and visitors by masked form and pseudonym.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from collector import tables as t
from collector.reports.common import Location, ReportError, aware, collection_paused, locations
from collector.reports.config import Rule, TraceSettings
from collector.reports.roster import Person, Roster
from collector.store import Store

Interval = tuple[dt.datetime, dt.datetime]
# (location_id, from, to): where the scans of a visit are looked for.
Window = tuple[str, dt.datetime, dt.datetime]
# A trip is looked for this far around a scan at first, then further while scans continue.
TRIP_REACH = dt.timedelta(hours=3)
_INSTANT = dt.timedelta(microseconds=1)
# Windows per query: SQLite allows 500 terms in a compound SELECT.
WINDOWS_PER_QUERY = 200


@dataclass
class Visit:
    """The traced person's presence at one location: a trip, a dwell window or a shift."""

    location_id: str
    location: str
    kind: str
    plate: str | None
    method: str
    start: dt.datetime
    end: dt.datetime
    # The traced person's own presence inside it (from their scans, by the rule).
    presence: list[Interval] = field(default_factory=list)


@dataclass
class Contact:
    visit: Visit
    subject: str
    employee_no: str | None
    name: str | None
    team: str | None
    line: str | None
    masked: str | None
    first_scan: dt.datetime
    overlap_min: float


@dataclass
class PersonTotal:
    employee_no: str | None
    name: str | None
    team: str | None
    line: str | None
    masked: str | None
    subject: str
    visits: int
    overlap_min: float
    locations: list[str]


@dataclass
class Trace:
    subjects: list[str]
    employee_no: str | None
    start: dt.datetime
    end: dt.datetime
    visits: list[Visit]
    contacts: list[Contact]
    people: list[PersonTotal]


class _Scan(NamedTuple):
    subject: str
    at: dt.datetime
    ts: float
    masked: str | None


def subjects_for(
    roster: Roster, *, subject: str | None, employee_no: str | None
) -> tuple[list[str], Person | None]:
    """The pseudonyms of the traced person: all of a roster person's, or the one given."""
    if employee_no is not None:
        person = roster.find(employee_no)
        if person is None:
            raise ReportError(f"employee {employee_no!r} is not on the roster (qr-collector roster import)")
        return list(person.subjects), person
    if not subject:
        raise ReportError("give --subject or --employee")
    person = roster.person_of(subject)
    if person is None:
        return [subject], None
    return list(person.subjects), person


@collection_paused()
def trace(
    store: Store,
    roster: Roster,
    settings: TraceSettings,
    tz: ZoneInfo,
    *,
    start: dt.datetime,
    end: dt.datetime,
    subject: str | None = None,
    employee_no: str | None = None,
) -> Trace:
    subjects, person = subjects_for(roster, subject=subject, employee_no=employee_no)
    own = set(subjects)
    known = locations(store)
    e = t.events.c
    visits: list[Visit] = []
    contacts: list[Contact] = []
    with store.engine.connect() as conn:
        mine = conn.execute(
            sa.select(e.location_id, e.location_kind, e.scanned_at)
            .where(e.subject_hmac.in_(subjects), e.scanned_at >= start, e.scanned_at < end)
            .order_by(e.location_id, e.scanned_at)
        ).all()
        by_location: dict[tuple[str, str], list[dt.datetime]] = defaultdict(list)
        for location_id, kind, at in mine:
            by_location[location_id, kind].append(aware(at))
        places = [
            (known.get(location_id, Location(location_id, kind=kind)), kind, settings.rule(kind), times)
            for (location_id, kind), times in by_location.items()
        ]
        # Every window the visits start from, fetched in one query (a round trip and a plan each
        # were most of a trace's time).
        fetched = _Fetched(
            conn, [w for loc, _, rule, times in places for w in _windows(rule, tz, loc, times)]
        )
        for loc, kind, rule, times in places:
            for visit, scans in _visits(fetched, rule, tz, loc, kind, times):
                visits.append(visit)
                contacts.extend(_contacts(visit, rule, tz, scans, own, roster))
    visits.sort(key=lambda v: (v.start, v.location_id))
    contacts.sort(key=lambda c: (c.visit.start, c.visit.location_id, c.employee_no or "~", c.subject))
    return Trace(
        subjects=subjects,
        employee_no=person.employee_no if person else None,
        start=start,
        end=end,
        visits=visits,
        contacts=contacts,
        people=_people(contacts),
    )


def _windows(rule: Rule, tz: ZoneInfo, loc: Location, times: list[dt.datetime]) -> list[Window]:
    """Where the visits at one location look first: around each scan for a trip, the person's own
    presence (reaching back a dwell window) otherwise."""
    if rule.method == "trip":
        return [(loc.location_id, at - TRIP_REACH, at + TRIP_REACH + _INSTANT) for at in times]
    reach = dt.timedelta(minutes=rule.dwell_min) if rule.method == "dwell" else dt.timedelta(0)
    return [(loc.location_id, a - reach, b) for a, b in _merge(_presence(rule, tz, at) for at in times)]


def _visits(
    fetched: _Fetched, rule: Rule, tz: ZoneInfo, loc: Location, kind: str, times: list[dt.datetime]
) -> Iterable[tuple[Visit, list[_Scan]]]:
    """The traced person's visits at one location, each with everyone's scans that count for it."""
    if rule.method == "trip":
        done: list[Interval] = []
        for at in times:
            if any(a <= at <= b for a, b in done):
                continue
            scans = _trip(fetched, loc.location_id, at, dt.timedelta(minutes=rule.gap_min))
            a, b = scans[0].at, scans[-1].at
            done.append((a, b))
            tail = b + dt.timedelta(minutes=rule.tail_min)
            mine = min(s for s in times if a <= s <= b)
            yield _visit(loc, kind, rule, a, tail, [(mine, tail)]), scans
        return
    own = _merge(_presence(rule, tz, at) for at in times)
    reach = dt.timedelta(minutes=rule.dwell_min) if rule.method == "dwell" else dt.timedelta(0)
    for a, b in own:
        # A dwell window opened before the visit may reach into it; a shift's scans lie inside it.
        scans = fetched.get(loc.location_id, a - reach, b)
        yield _visit(loc, kind, rule, a, b, [(a, b)]), scans


def _visit(
    loc: Location, kind: str, rule: Rule, a: dt.datetime, b: dt.datetime, mine: list[Interval]
) -> Visit:
    return Visit(loc.location_id, loc.label, loc.kind or kind, loc.plate, rule.method, a, b, mine)


def _contacts(
    visit: Visit, rule: Rule, tz: ZoneInfo, scans: list[_Scan], own: set[str], roster: Roster
) -> list[Contact]:
    # One person may appear under two subjects (a BHYT card and a personal QR): one contact.
    person_of = roster.by_subject
    by_person: dict[str, list[_Scan]] = {}
    for s in scans:
        if s.subject in own:
            continue
        key = person_of.get(s.subject, s.subject)
        theirs = by_person.get(key)
        if theirs is None:
            by_person[key] = [s]
        else:
            theirs.append(s)
    # The traced person's presence in this visit, in epoch seconds (a hot loop: no datetimes).
    va, vb = (x.timestamp() for x in visit.presence[0])
    dwell = rule.dwell_min * 60
    minimum = rule.min_overlap_min * 60
    out = []
    for key, theirs in by_person.items():
        if len(theirs) > 1 and key in roster.people:
            theirs.sort(key=lambda s: s.ts)  # two subjects' scans, each in time order
        if rule.method == "trip":
            seconds = vb - max(theirs[0].ts, va)
        elif rule.method == "dwell":
            seconds, reached = 0.0, va
            for s in theirs:  # the union of their windows, clipped to the visit
                a, b = max(s.ts, reached), min(s.ts + dwell, vb)
                if b > a:
                    seconds += b - a
                    reached = b
        else:
            presence = _merge(_presence(rule, tz, s.at) for s in theirs)
            seconds = _overlap(presence, visit.presence)
        if seconds <= 0 or seconds < minimum:
            continue
        person = roster.people.get(key)
        out.append(
            Contact(
                visit=visit,
                subject=theirs[0].subject,
                employee_no=person.employee_no if person else None,
                name=person.name if person else None,
                team=person.team if person else None,
                line=person.line if person else None,
                masked=theirs[-1].masked,
                first_scan=theirs[0].at,
                overlap_min=round(seconds / 60, 1),
            )
        )
    return out


def _presence(rule: Rule, tz: ZoneInfo, at: dt.datetime) -> Interval:
    if rule.method == "dwell":
        return at, at + dt.timedelta(minutes=rule.dwell_min)
    return _shift_of(rule, tz, at)


def _shift_of(rule: Rule, tz: ZoneInfo, at: dt.datetime) -> Interval:
    local = at.astimezone(tz)
    for begin, finish in rule.shift_bounds():
        for day in (local.date() - dt.timedelta(days=1), local.date()):
            a = dt.datetime.combine(day, begin, tz)
            b = dt.datetime.combine(day if finish > begin else day + dt.timedelta(days=1), finish, tz)
            if a <= local < b:
                return a.astimezone(dt.UTC), b.astimezone(dt.UTC)
    # Outside every shift: the scan stands for a dwell window of the rule's length.
    return at, at + dt.timedelta(minutes=rule.dwell_min)


def _trip(fetched: _Fetched, location_id: str, at: dt.datetime, gap: dt.timedelta) -> list[_Scan]:
    """The scans of the trip holding `at`: neighbours closer than `gap`, however long the chain."""
    reach = TRIP_REACH
    while True:
        scans = fetched.get(location_id, at - reach, at + reach + _INSTANT)
        i = next(i for i, s in enumerate(scans) if s.at == at)
        lo = i
        while lo > 0 and scans[lo].at - scans[lo - 1].at < gap:
            lo -= 1
        hi = i
        while hi + 1 < len(scans) and scans[hi + 1].at - scans[hi].at < gap:
            hi += 1
        # The chain reaches the edge of what was fetched: it may go on beyond it.
        if scans[lo].at - (at - reach) < gap or (at + reach) - scans[hi].at < gap:
            reach *= 2
            continue
        return scans[lo : hi + 1]


class _Fetched:
    """Everyone's scans in the given windows, read in one query; a window not among them (a trip
    that goes on past its first window) is read when asked for."""

    def __init__(self, conn: Connection, windows: Sequence[Window]) -> None:
        self._conn = conn
        if conn.dialect.name == "postgresql":
            # A nested loop of small index-only scans: PostgreSQL would plan it with two parallel
            # workers, whose start and merge cost more than they share (EXPLAIN ANALYZE, 84 windows
            # over 21 day partitions: 90-160 ms with them, 55-75 ms without). For this transaction only.
            conn.exec_driver_sql("SET LOCAL max_parallel_workers_per_gather = 0")
        self._scans: dict[Window, list[_Scan]] = {}
        unique = list(dict.fromkeys(windows))
        for first in range(0, len(unique), WINDOWS_PER_QUERY):
            self._scans.update(_scans(conn, unique[first : first + WINDOWS_PER_QUERY]))

    def get(self, location_id: str, a: dt.datetime, b: dt.datetime) -> list[_Scan]:
        window = (location_id, a, b)
        if window not in self._scans:
            self._scans.update(_scans(self._conn, [window]))
        return self._scans[window]


def _scans(conn: Connection, windows: Sequence[Window]) -> dict[Window, list[_Scan]]:
    """Each window's scans in time order, from the covering index (migration 0005)."""
    e = t.events.c
    listed = sa.union_all(
        *(
            sa.select(
                sa.literal(i, sa.Integer).label("i"),
                sa.literal(location_id, sa.String).label("location_id"),
                sa.literal(a, t.Timestamp).label("a"),
                sa.literal(b, t.Timestamp).label("b"),
            )
            for i, (location_id, a, b) in enumerate(windows)
        )
    ).cte("windows")
    w = listed.c
    rows = conn.execute(
        sa.select(w.i, e.subject_hmac, e.scanned_at, e.masked)
        .join_from(
            listed, t.events, sa.and_(e.location_id == w.location_id, e.scanned_at >= w.a, e.scanned_at < w.b)
        )
        .order_by(w.i, e.scanned_at)
    ).all()
    out: dict[Window, list[_Scan]] = {window: [] for window in windows}
    for i, subject, at, masked in rows:
        at = aware(at)
        out[windows[i]].append(_Scan(subject, at, at.timestamp(), masked))
    return out


def _merge(intervals: Iterable[Interval]) -> list[Interval]:
    out: list[Interval] = []
    for a, b in sorted(intervals):
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


def _overlap(xs: Sequence[Interval], ys: Sequence[Interval]) -> float:
    """Seconds both lists cover (each already merged)."""
    total = 0.0
    for a, b in xs:
        for c, d in ys:
            total += max((min(b, d) - max(a, c)).total_seconds(), 0.0)
    return total


def _people(contacts: list[Contact]) -> list[PersonTotal]:
    out: dict[str, PersonTotal] = {}
    for c in contacts:
        key = c.employee_no or c.subject
        p = out.get(key)
        if p is None:
            p = out[key] = PersonTotal(c.employee_no, c.name, c.team, c.line, c.masked, c.subject, 0, 0.0, [])
        p.visits += 1
        p.overlap_min = round(p.overlap_min + c.overlap_min, 1)
        if c.visit.location not in p.locations:
            p.locations.append(c.visit.location)
    return sorted(out.values(), key=lambda p: (-p.overlap_min, p.employee_no or "~", p.subject))
