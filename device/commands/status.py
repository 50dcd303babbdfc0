"""`qr-checkin status`: what the retained status message says, read locally from the store and the audit log.

For a technician at the device, with or without the daemon running (SQLite's WAL lets a reader work
beside it), on a full or read-only disk too. It never creates, changes or moves a store: a missing one is
reported as missing. Counters are the totals the daemon last saved (once a minute and at stop).
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
from typing import Any

from device import health
from device.audit import AUDIT_FILE, AuditLog
from device.clock import Clock, SystemClock
from device.commands import EXIT_CONFIG, EXIT_NO_STORE, add_config_argument, load_or_explain, open_reader
from device.errors import StorageError
from device.settings import Settings
from device.status import store_status
from device.store import StoreReader

# Audit events a technician should see in the status, newest last.
FAULTS = frozenset({"start_failed", "store_corrupt", "drop"})
SHOWN_FAULTS = 5


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_argument(parser)
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")


def collect(settings: Settings, outbox: StoreReader, clock: Clock) -> dict[str, Any]:
    """The status as a dict: the retained status message's keys, plus what the audit log adds."""
    audit = AuditLog(settings.storage.dir / AUDIT_FILE, clock=clock).read()
    last_start = _last(audit, "start")
    readings = health.readings(settings.storage.dir)
    free = readings["disk_free_mb"]
    config_hash = settings.config_hash()
    config_matches = None if last_start is None else last_start.get("config_hash") == config_hash
    return {
        **store_status(settings, outbox, clock, config_hash=config_hash, counters=outbox.counters()),
        "disk_free_mb": free,
        "disk_low": free is not None and free < settings.storage.low_space_mb,
        "cpu_temp_c": readings["cpu_temp_c"],
        "system_uptime_s": readings["system_uptime_s"],
        "clock": "synced" if clock.synced() else "unsynced",
        "daemon": _daemon_state(audit),
        "last_start": last_start,
        "last_stop": _last(audit, "stop"),
        "config_matches_last_start": config_matches,
        "scanners": _scanners(audit),
        "faults": [r for r in audit if r.get("event") in FAULTS][-SHOWN_FAULTS:],
        "store": str(outbox.path),
    }


def _last(records: list[dict[str, Any]], event: str) -> dict[str, Any] | None:
    return next((r for r in reversed(records) if r.get("event") == event), None)


def _daemon_state(records: list[dict[str, Any]]) -> str:
    lifecycle = [r["event"] for r in records if r.get("event") in ("start", "stop")]
    if not lifecycle:
        return "never started"
    # The log cannot tell a running daemon from one that died: a crash records no stop.
    return "stopped" if lifecycle[-1] == "stop" else "running, or ended without a clean stop"


def _scanners(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Each reader's latest state from the scanner_<state> records, with when it changed."""
    latest: dict[str, dict[str, Any]] = {}
    for record in records:
        event = str(record.get("event", ""))
        if event.startswith("scanner_"):
            key = f"{record.get('source')}:{record.get('device')}"
            latest[key] = {"state": event.removeprefix("scanner_"), "since": record.get("ts")}
    return latest


def render(status: dict[str, Any]) -> str:
    """The status for a terminal: one line per subject, a label column, no colour."""
    name = f' "{status["location_name"]}"' if status["location_name"] else ""
    counters = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in status["counters"].items())
    age = status["oldest_undelivered_age_s"]
    lines = [
        ("device", f"{status['device_id']} at {status['location_kind']} {status['location_id']}{name}"),
        ("software", f"{status['version']}, configuration {status['config_hash']}"),
        ("daemon", _describe_daemon(status)),
        (
            "backlog",
            f"{status['backlog']} undelivered"
            + ("" if age is None else f", the oldest {_span(age)} old")
            + f"; {status['dead_letters']} dead letters"
            + (
                f"; {status['unheard']} unheard, kept until the collector confirms"
                if status["unheard"]
                else ""
            ),
        ),
        ("sequence", f"last seq {status['last_seq']} of incarnation {status['incarnation'] or 'unknown'}"),
        ("counters", f"{counters} (as last saved by the daemon)"),
        ("scanners", _describe_scanners(status["scanners"])),
    ]
    lines += [("fault", _describe_record(record)) for record in status["faults"]]
    free, temp = status["disk_free_mb"], status["cpu_temp_c"]
    lines += [
        ("disk", "unknown" if free is None else f"{free:.1f} MB free" + (" (LOW)" * status["disk_low"])),
        ("cpu", "no temperature sensor" if temp is None else f"{temp:.1f} °C"),
        ("clock", status["clock"]),
        ("store", status["store"]),
    ]
    return "\n".join(f"{label:<10}{text}" for label, text in lines)


def _describe_daemon(status: dict[str, Any]) -> str:
    start, stop = status["last_start"], status["last_stop"]
    if start is None:
        return status["daemon"]
    text = f"{status['daemon']}; last start {_stamp(start)}"
    text += f" with software {start.get('version')}, configuration {start.get('config_hash')}"
    if stop is not None:
        text += f", last stop {_stamp(stop)}"
    if status["config_matches_last_start"] is False:
        text += "; the configuration changed since that start (restart to apply)"
    return text


def _describe_scanners(scanners: dict[str, dict[str, Any]]) -> str:
    if not scanners:
        return "none recorded"
    return "; ".join(f"{key} {s['state']} since {s['since']}" for key, s in scanners.items())


def _describe_record(record: dict[str, Any]) -> str:
    details = " ".join(f"{k}={v}" for k, v in record.items() if k not in ("ts", "clock", "boot_id", "event"))
    return f"{_stamp(record)} {record['event']} {details}".rstrip()


def _stamp(record: dict[str, Any]) -> str:
    return str(record.get("ts")) + (" (clock unsynced)" if record.get("clock") == "unsynced" else "")


def _span(seconds: float) -> str:
    for unit, size in (("days", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds:.0f} s"


def main(args: argparse.Namespace) -> int:
    settings = load_or_explain(args.config)
    if settings is None:
        return EXIT_CONFIG
    outbox = open_reader(settings)
    if outbox is None:
        return EXIT_NO_STORE
    try:
        status = collect(settings, outbox, SystemClock())
    except (StorageError, sqlite3.Error) as exc:
        print(f"cannot read the store {outbox.path}: {exc}", file=sys.stderr)
        return EXIT_NO_STORE
    finally:
        outbox.close()
    print(json.dumps(status, ensure_ascii=False, indent=2) if args.json else render(status))
    return 0
