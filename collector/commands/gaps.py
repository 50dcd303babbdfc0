"""`qr-collector gaps`: per device, the open gaps, the repaired ones and the known losses."""

from __future__ import annotations

import argparse
import json

from collector import report
from collector.commands import EXIT_CONFIG, add_config_argument, load_or_explain
from collector.commands.status import EXIT_NO_DATABASE, open_store


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_argument(parser)
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")


def main(args: argparse.Namespace) -> int:
    settings = load_or_explain(args.config)
    if settings is None:
        return EXIT_CONFIG
    store = open_store(settings.database_url)
    if store is None:
        return EXIT_NO_DATABASE
    try:
        streams = report.gaps(store)
    finally:
        store.close()
    if args.json:
        print(json.dumps({"streams": streams}, ensure_ascii=False))
        return 0
    if not streams:
        print("no device has sent anything yet")
    for s in streams:
        print(
            f"{s['device_id']} @ {s['location_id']} incarnation {s['incarnation'] or '-'}:"
            f" contiguous through seq {s['through_seq']}"
        )
        for g in s["open"]:
            print(
                f"  OPEN      seq {g['from_seq']}-{g['to_seq']}: {g['missing']} missing,"
                f" {g['requests']} replay requests, since {g['opened_at']}"
            )
        for g in s["repaired"]:
            print(
                f"  repaired  seq {g['from_seq']}-{g['to_seq']} (opened {g['opened_at']},"
                f" closed {g['closed_at']}, {g['requests']} requests)"
            )
        for g in s["lost"]:
            print(f"  closed    seq {g['from_seq']}-{g['to_seq']} with losses (closed {g['closed_at']})")
        for loss in s["known_losses"]:
            print(
                f"  KNOWN LOSS seq {loss['from_seq']}-{loss['to_seq']}: {loss['detail']}"
                f" (reported {loss['reported_at']})"
            )
    return 0
