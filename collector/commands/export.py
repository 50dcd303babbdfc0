"""`qr-collector export --from --to [--location ID ...] --format csv|xlsx`: the scan history as a file,
streamed, masked. Audited."""

from __future__ import annotations

import argparse
import time

from collector.reports import audit, output
from collector.reports.cli import add_audit, add_config, command, opened, roster_of
from collector.reports.common import period
from collector.reports.export import COLUMNS, export_rows


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config(parser)
    parser.add_argument("--from", dest="start", required=True, help="local YYYY-MM-DD or YYYY-MM-DDTHH:MM")
    parser.add_argument("--to", dest="end", required=True, help="local; a date means the end of that day")
    parser.add_argument(
        "--location", action="append", default=[], metavar="ID", help="only this location (repeatable)"
    )
    parser.add_argument(
        "--format", choices=("csv", "xlsx"), default="csv", help="csv (UTF-8 with BOM) or xlsx"
    )
    parser.add_argument("--output", "-o", metavar="FILE", help="the file (needed for xlsx; csv: stdout)")
    add_audit(parser)


@command
def main(args: argparse.Namespace) -> int:
    with opened(args) as (settings, store):
        tz = settings.site.tz
        start, end = period(args.start, args.end, tz)
        if args.format == "xlsx" and not args.output:
            raise ValueError("--format xlsx needs --output FILE.xlsx")
        rows = export_rows(
            store, roster_of(settings, store), tz, start=start, end=end, location_ids=args.location
        )
        written = 0
        complete = False

        def counted() -> object:
            nonlocal written
            for row in rows:
                written += 1
                yield row

        try:
            output.emit(args.format, COLUMNS, counted(), output=args.output, title="scans")  # type: ignore[arg-type]
            complete = True
        finally:
            # An export that failed half-way still took rows out: it is audited with what it wrote.
            audit.append(
                store,
                actor=args.who,
                role=args.role,
                action="export",
                purpose=args.purpose,
                query={
                    "from": args.start,
                    "to": args.end,
                    "locations": args.location,
                    "format": args.format,
                    "complete": complete,
                },
                row_count=written,
                wall=time.time(),
            )
    return 0
