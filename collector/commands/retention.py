"""`qr-collector retention`: remove raw events past `[retention] retention_days`, keeping half-hour
counts per location for `counts_days` (run it daily, from cron or a systemd timer)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
import time

from collector.reports import retention
from collector.reports.cli import add_config, command, opened


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config(parser)
    parser.add_argument("--json", action="store_true", help="print the run as one JSON object")


@command
def main(args: argparse.Namespace) -> int:
    logging.basicConfig(level="INFO", format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    with opened(args) as (settings, store):
        run = retention.run(store, settings.retention, settings.site.tz, now=time.time())
    if args.json:
        print(json.dumps(dataclasses.asdict(run), default=str))
    else:
        print(
            f"retention: {run.events_removed} events before {run.cutoff.isoformat()} removed,"
            f" {run.counts_written} half-hour counts written, {run.invalid_removed} invalid messages and"
            f" {run.counts_removed} old counts removed ({run.seconds:.1f} s)"
        )
    return 0
