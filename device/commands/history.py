"""`qr-checkin history`: the check-ins still kept on the device, as CSV or JSON, for a depot without network.

The rows are the published events as the store keeps them, so the subject is what the privacy mode lets
consumers see (CSV shows only its masked form). Delivered events stay `storage.delivered_grace_h` hours,
undelivered ones until they are delivered or `storage.max_age_days` old. Every export is recorded in the
audit log (format, row count, range), never its content.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import re
import sqlite3
import sys
import time
from typing import Any, TextIO

from device.audit import AUDIT_FILE, AuditLog
from device.cli import stdout_gone
from device.commands import EXIT_CONFIG, EXIT_NO_STORE, add_config_argument, load_or_explain, open_reader
from device.contract import iso_utc
from device.errors import StorageError

# As argparse exits for an argument it refuses.
EXIT_USAGE = 2

COLUMNS = (
    "seq",
    "event_id",
    "scanned_at",
    "clock",
    "source",
    "direction",
    "code_type",
    "subject",
    "delivered",
)
SPAN = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")
UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}
# Year 10000: past it a timestamp no longer converts back to a date.
LATEST = 253_402_300_800.0
# A spreadsheet runs a cell that starts with one of these as a formula; a scanned code may start so.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def parse_moment(text: str, now: float) -> float:
    """A point in time as a Unix timestamp: an ISO date or date-time (UTC unless it names an offset),
    or a span back from `now` such as 90m, 24h or 7d."""
    value = text.strip()
    if span := SPAN.fullmatch(value.lower()):
        stamp = now - float(span[1]) * UNIT_S[span[2]]
    else:
        try:
            moment = dt.datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(
                f"{text!r} is not a time: give an ISO date (2024-05-01), a date and time"
                " (2024-05-01T07:30, UTC unless it carries an offset such as +07:00)"
                " or a span back from now (90m, 24h, 7d)"
            ) from None
        stamp = (moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)).timestamp()
    if not 0 <= stamp < LATEST:
        raise ValueError(f"{text!r} is outside 1970-9999, where the device keeps nothing")
    return stamp


def _moment_argument(text: str) -> float:
    try:
        return parse_moment(text, time.time())
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_argument(parser)
    when = "an ISO date or date-time (UTC unless it carries an offset) or a span back from now (24h, 7d)"
    parser.add_argument("--since", type=_moment_argument, metavar="T", help=f"from this time on: {when}")
    parser.add_argument("--until", type=_moment_argument, metavar="T", help=f"before this time: {when}")
    parser.add_argument("--format", choices=("csv", "json"), default="csv", help="output format (csv)")


def row(event: dict[str, Any]) -> dict[str, Any]:
    """The CSV columns of one stored event; the subject only in its masked form."""
    return {
        "seq": event["seq"],
        "event_id": event["event_id"],
        "scanned_at": event["scanned_at"],
        "clock": event["clock"],
        "source": event["source"],
        "direction": event.get("direction") or "",
        "code_type": event["code"]["type"],
        "subject": _cell(event["subject"].get("masked") or ""),
        "delivered": "true" if event["delivered"] else "false",
    }


def _cell(text: str) -> str:
    return "'" + text if text.startswith(FORMULA_START) else text


def write_csv(events: list[dict[str, Any]], out: TextIO) -> None:
    writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(row(event) for event in events)


def write_json(events: list[dict[str, Any]], out: TextIO) -> None:
    """A JSON array of the events as published (the checkin.event/1 contract) plus `delivered`,
    one event per line so that a large export still reads line by line."""
    lines = [json.dumps(event, ensure_ascii=False, sort_keys=True) for event in events]
    out.write("[\n" + ",\n".join(lines) + ("\n" if lines else "") + "]\n")


def main(args: argparse.Namespace) -> int:
    settings = load_or_explain(args.config)
    if settings is None:
        return EXIT_CONFIG
    if args.since is not None and args.until is not None and args.until <= args.since:
        print("history: --until must be later than --since", file=sys.stderr)
        return EXIT_USAGE
    outbox = open_reader(settings)
    if outbox is None:
        return EXIT_NO_STORE
    try:
        events = outbox.history(args.since, args.until)
    except (StorageError, sqlite3.Error) as exc:
        print(f"cannot read the store {outbox.path}: {exc}", file=sys.stderr)
        return EXIT_NO_STORE
    finally:
        outbox.close()
    try:
        (write_json if args.format == "json" else write_csv)(events, sys.stdout)
        sys.stdout.flush()
    except BrokenPipeError:
        stdout_gone()  # the reader left (`| head`): stop quietly
    AuditLog(settings.storage.dir / AUDIT_FILE).record(
        "export",
        format=args.format,
        rows=len(events),
        since=None if args.since is None else iso_utc(args.since),
        until=None if args.until is None else iso_utc(args.until),
    )
    return 0
