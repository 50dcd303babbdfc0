"""`qr-collector trace --employee NO|--subject SUBJECT --from --to`: who was with this person, where,
and for how many minutes. Audited."""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence

from collector.reports import audit, output
from collector.reports.cli import add_audit, add_config, add_format, command, local, opened, roster_of
from collector.reports.common import period
from collector.reports.trace import Trace, trace

COLUMNS = (
    "location",
    "kind",
    "plate",
    "visit_start",
    "visit_end",
    "presence",
    "employee_no",
    "name",
    "team",
    "line",
    "visitor_masked",
    "subject",
    "first_scan",
    "overlap_min",
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config(parser)
    who = parser.add_mutually_exclusive_group(required=True)
    who.add_argument("--employee", metavar="NO", help="the roster's employee number")
    who.add_argument("--subject", metavar="SUBJECT", help="a pseudonym (a visitor's, from another report)")
    parser.add_argument("--from", dest="start", required=True, help="local YYYY-MM-DD or YYYY-MM-DDTHH:MM")
    parser.add_argument("--to", dest="end", required=True, help="local; a date means the end of that day")
    add_format(parser, output.FORMATS_ALL)
    add_audit(parser)


@command
def main(args: argparse.Namespace) -> int:
    with opened(args) as (settings, store):
        tz = settings.site.tz
        start, end = period(args.start, args.end, tz)
        result = trace(
            store,
            roster_of(settings, store),
            settings.trace,
            tz,
            start=start,
            end=end,
            subject=args.subject,
            employee_no=args.employee,
        )
        audit.append(
            store,
            actor=args.who,
            role=args.role,
            action="trace",
            purpose=args.purpose,
            query={"employee": args.employee, "subject": args.subject, "from": args.start, "to": args.end},
            row_count=len(result.contacts),
            wall=time.time(),
        )
    rows = [
        (
            c.visit.location,
            c.visit.kind,
            c.visit.plate,
            local(c.visit.start, tz),
            local(c.visit.end, tz),
            c.visit.method,
            c.employee_no,
            c.name,
            c.team,
            c.line,
            None if c.employee_no else c.masked,
            c.subject,
            local(c.first_scan, tz),
            c.overlap_min,
        )
        for c in result.contacts
    ]
    if args.format == "table":
        for line in summary(result, tz):
            print(line)
        print()
    output.emit(
        args.format, COLUMNS, rows, output=args.output, title="trace", document=document(result, rows, tz)
    )
    return 0


def summary(result: Trace, tz: object) -> list[str]:
    who = f"employee {result.employee_no}" if result.employee_no else f"subject {result.subjects[0][:16]}…"
    lines = [
        f"trace of {who} from {local(result.start, tz)} to {local(result.end, tz)}:"  # type: ignore[arg-type]
        f" {len(result.visits)} visits, {len(result.people)} people co-present"
    ]
    for v in result.visits:
        lines.append(
            f"  visit {v.location} ({v.kind}{', ' + v.plate if v.plate else ''}, {v.method})"
            f" {local(v.start, tz)} - {local(v.end, tz)}"  # type: ignore[arg-type]
        )
    for p in result.people:
        name = f"{p.employee_no} {p.name or ''}".strip() if p.employee_no else f"visitor {p.masked}"
        lines.append(
            f"  contact {name}: {p.overlap_min} min over {p.visits} visits at {', '.join(p.locations)}"
        )
    return lines


def document(result: Trace, rows: Sequence[Sequence[object]], tz: object) -> dict[str, object]:
    return {
        "employee_no": result.employee_no,
        "subjects": result.subjects,
        "from": local(result.start, tz),  # type: ignore[arg-type]
        "to": local(result.end, tz),  # type: ignore[arg-type]
        "visits": [
            {
                "location": v.location,
                "location_id": v.location_id,
                "kind": v.kind,
                "plate": v.plate,
                "presence": v.method,
                "start": local(v.start, tz),  # type: ignore[arg-type]
                "end": local(v.end, tz),  # type: ignore[arg-type]
            }
            for v in result.visits
        ],
        "people": [
            {
                "employee_no": p.employee_no,
                "name": p.name,
                "team": p.team,
                "line": p.line,
                "visitor_masked": None if p.employee_no else p.masked,
                "subject": p.subject,
                "visits": p.visits,
                "overlap_min": p.overlap_min,
                "locations": p.locations,
            }
            for p in result.people
        ],
        "contacts": [dict(zip(COLUMNS, r, strict=True)) for r in rows],
    }
