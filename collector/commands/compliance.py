"""`qr-collector compliance --date YYYY-MM-DD`: who scanned, who did not, who is not known yet."""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import time
from collections.abc import Sequence

from collector.reports import output
from collector.reports.cli import add_config, add_format, command, local, opened, roster_of
from collector.reports.common import parse_day
from collector.reports.compliance import Compliance, compliance

COLUMNS = (
    "employee_no",
    "name",
    "team",
    "line",
    "assigned",
    "state",
    "first_scan",
    "first_location",
    "last_scan",
    "last_location",
    "scans",
    "clock_unsynced",
    "held_by",
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config(parser)
    parser.add_argument("--date", help="the local day, YYYY-MM-DD (default: today)")
    add_format(parser, output.FORMATS_ALL)


@command
def main(args: argparse.Namespace) -> int:
    with opened(args) as (settings, store):
        tz = settings.site.tz
        day = parse_day(args.date) if args.date else dt.datetime.fromtimestamp(time.time(), tz).date()
        report = compliance(store, roster_of(settings, store), day, tz)
    rows = [
        (
            p.employee_no,
            p.name,
            p.team,
            p.line,
            p.assigned,
            p.state,
            local(p.first_at, tz),
            p.first_location,
            local(p.last_at, tz),
            p.last_location,
            p.scans,
            "yes" if p.unsynced else "",
            ", ".join(p.held_by),
        )
        for p in report.people
    ]
    if args.format == "table":
        for line in summary(report):
            print(line)
        print()
    output.emit(
        args.format,
        COLUMNS,
        rows,
        output=args.output,
        title=f"compliance {day}",
        document=document(report, rows),
    )
    return 0


def summary(report: Compliance) -> list[str]:
    t = report.totals
    verdict = "FINAL" if report.final else "PROVISIONAL"
    lines = [
        f"compliance {report.day} ({report.timezone}): {verdict}",
        f"  {t.total} on the roster: {t.scanned} scanned, {t.not_scanned} not scanned, {t.unknown} unknown;"
        f" {report.visitors} visitors",
    ]
    for v in report.holding:
        lines.append(f"  held back by {v.device_id} @ {v.location_id}: {v.reason}")
    for title, groups in (
        ("team", report.by_team),
        ("line", report.by_line),
        ("location", report.by_location),
    ):
        for name, g in groups.items():
            lines.append(
                f"  {title:<8} {name}: {g.scanned}/{g.total} scanned, {g.not_scanned} not scanned,"
                f" {g.unknown} unknown"
            )
    for where, n in report.visitors_by_location.items():
        lines.append(f"  visitors at {where}: {n}")
    for name in report.unmatched_assignments:
        lines.append(f"  assignment {name!r} matches no location: its people count against every device")
    return lines


def document(report: Compliance, rows: Sequence[Sequence[object]]) -> dict[str, object]:
    return {
        "day": report.day.isoformat(),
        "timezone": report.timezone,
        "final": report.final,
        "totals": dataclasses.asdict(report.totals),
        "by_team": {k: dataclasses.asdict(v) for k, v in report.by_team.items()},
        "by_line": {k: dataclasses.asdict(v) for k, v in report.by_line.items()},
        "by_location": {k: dataclasses.asdict(v) for k, v in report.by_location.items()},
        "holding": [dataclasses.asdict(v) for v in report.holding],
        "visitors": report.visitors,
        "visitors_by_location": report.visitors_by_location,
        "unmatched_assignments": report.unmatched_assignments,
        "people": [dict(zip(COLUMNS, r, strict=True)) for r in rows],
    }
