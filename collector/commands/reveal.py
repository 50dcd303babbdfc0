"""`qr-collector reveal --case NO --private-key-file PATH|- --subject S ...`: the authority opens the
subjects devices sealed for it. The key is used for this run only; the act is audited."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from collector.reports import audit, output
from collector.reports.cli import add_audit, add_config, add_format, command, local, opened, roster_of
from collector.reports.common import ReportError, parse_when
from collector.reports.reveal import authority_key, reveal

COLUMNS = (
    "subject",
    "masked",
    "code_type",
    "id_number",
    "name",
    "birth_year",
    "events",
    "first_scan",
    "last_scan",
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config(parser)
    parser.add_argument(
        "--private-key-file",
        required=True,
        metavar="PATH",
        help="the authority's X25519 private key (base64); '-' reads it from standard input. Never stored.",
    )
    who = parser.add_mutually_exclusive_group(required=True)
    who.add_argument("--subject", action="append", metavar="SUBJECT", help="a pseudonym (repeatable)")
    who.add_argument(
        "--employee", action="append", metavar="NO", help="a roster employee number (repeatable)"
    )
    parser.add_argument("--from", dest="start", help="only scans from this local date or time")
    parser.add_argument("--to", dest="end", help="only scans up to this local date or time")
    add_format(parser, ("table", "json", "csv"))
    add_audit(parser, purpose="--case", role=None)


def _key_text(path: str) -> str:
    if path == "-":
        return sys.stdin.readline()
    try:
        return Path(path).read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as exc:
        raise ReportError(f"cannot read the authority's key {path}: {exc}") from None


@command
def main(args: argparse.Namespace) -> int:
    box = authority_key(_key_text(args.private_key_file))
    with opened(args) as (settings, store):
        tz = settings.site.tz
        subjects = list(args.subject or [])
        if args.employee:
            roster = roster_of(settings, store)
            for number in args.employee:
                person = roster.find(number)
                if person is None:
                    raise ReportError(f"employee {number!r} is not on the roster")
                subjects += person.subjects
        start = parse_when(args.start, tz) if args.start else None
        end = parse_when(args.end, tz, end=True) if args.end else None
        found = reveal(store, box, subjects, start=start, end=end)
        opened_count = sum(1 for r in found if r.id_number is not None)
        audit.append(
            store,
            actor=args.who,
            role="authority",
            action="reveal",
            purpose=args.purpose,
            query={"subjects": subjects, "employees": args.employee, "from": args.start, "to": args.end},
            row_count=opened_count,
            wall=time.time(),
        )
    rows = [
        (
            r.subject,
            r.masked,
            r.code_type,
            r.id_number,
            r.name,
            r.birth_year,
            r.events,
            local(r.first_at, tz),
            local(r.last_at, tz),
        )
        for r in found
    ]
    output.emit(args.format, COLUMNS, rows, output=args.output, title="reveal")
    unopened = [r.subject for r in found if r.id_number is None]
    if unopened:
        print(
            f"{len(unopened)} subject(s) hold no box this key opens (not sealed, or for another key)",
            file=sys.stderr,
        )
    return 0
