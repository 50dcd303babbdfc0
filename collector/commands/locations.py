"""`qr-collector locations`: every check-in location with its address, devices and state."""

from __future__ import annotations

import argparse
import time

from collector.reports import output
from collector.reports.cli import add_config, add_format, command, opened
from collector.reports.locations import COLUMNS, location_rows


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config(parser)
    add_format(parser, output.FORMATS_TABLE)


@command
def main(args: argparse.Namespace) -> int:
    with opened(args) as (settings, store):
        rows = location_rows(store, now=time.time(), heartbeat_s=settings.presence.heartbeat_s)
        tz = settings.site.tz
        output.emit(args.format, COLUMNS, [r.cells(tz) for r in rows], output=args.output, title="locations")
    return 0
