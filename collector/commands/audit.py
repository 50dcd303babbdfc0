"""`qr-collector audit verify|list`: check the audit log's hash chain, or show its last rows."""

from __future__ import annotations

import argparse

from collector.reports import audit
from collector.reports.cli import add_config, command, opened

EXIT_BROKEN = 1


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    verify = sub.add_parser("verify", help="check every row's hash and link; exit 1 at the first broken one")
    add_config(verify)
    show = sub.add_parser("list", help="the last rows of the audit log")
    add_config(show)
    show.add_argument("--limit", type=int, default=50)


@command
def main(args: argparse.Namespace) -> int:
    with opened(args) as (_settings, store):
        if args.action == "verify":
            result = audit.verify(store)
            if result.ok:
                print(f"audit log: {result.rows} rows, chain intact")
                return 0
            print(f"audit log BROKEN at row {result.broken_at}: {result.problem}")
            return EXIT_BROKEN
        for e in audit.entries(store, args.limit):
            print(
                f"{e.id:>6} {e.at.isoformat(timespec='seconds')} {e.actor} ({e.role}) {e.action}"
                f" [{e.purpose}] {e.row_count} rows {e.query}"
            )
    return 0
