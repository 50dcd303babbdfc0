"""`qr-collector roster import FILE`: replaces the roster; ID numbers become pseudonyms, never stored."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from collector.reports.cli import EXIT_USAGE, add_config, command, opened, site_key
from collector.reports.roster import RosterError, import_roster


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    imp = sub.add_parser(
        "import",
        help="replace the roster with FILE.csv or FILE.xlsx",
        description="Columns (headings in English or Vietnamese): employee_no, name, team, line, assigned"
        " (bus plate or gate), and any of cccd, bhxh, qid. A bad row is named and skipped.",
    )
    add_config(imp)
    imp.add_argument("file", type=Path, metavar="FILE")


@command
def main(args: argparse.Namespace) -> int:
    with opened(args) as (settings, store):
        key = site_key(settings, required=True)
        assert key is not None
        try:
            result = import_roster(store, args.file, key, wall=time.time())
        except RosterError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_USAGE
    for bad in result.bad:
        print(
            f"{args.file}: row {bad.line} ({bad.employee_no or 'no employee number'}) skipped: {bad.reason}"
        )
    print(
        f"roster: {result.imported} people with {result.subjects} subjects imported"
        f" (site key {result.key_id}), {len(result.bad)} rows skipped; the ID numbers were not stored"
    )
    return 0
