"""`qr-checkin dead-letters [--retry]`: the events the broker refused for good, and sending them again.

An event is dead-lettered only when the broker says it can never accept it as it is (a malformed
topic or payload: MQTT 5 reason codes 0x90, 0x99); other refusals are retried by the daemon itself.
Once the cause is fixed (a broker limit, a bridge rule), `--retry` puts every dead letter back among
the undelivered events: the running daemon sends them within a second, a stopped one at its next
start. The listing shows ids and reasons only, never a subject.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
from typing import Any

from device.audit import AUDIT_FILE, AuditLog
from device.commands import EXIT_CONFIG, EXIT_NO_STORE, add_config_argument, load_or_explain, open_reader
from device.contract import iso_utc
from device.errors import StorageError
from device.settings import Settings
from device.store import DB_NAME, Outbox


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_argument(parser)
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    parser.add_argument(
        "--retry", action="store_true", help="put every dead letter back in the queue, to be sent again"
    )


def render(letters: list[dict[str, Any]]) -> str:
    if not letters:
        return "no dead letters"
    lines = [f"{'seq':>8}  {'event_id':<36}  {'refused at':<24}  reason"]
    lines += [f"{d['seq']:>8}  {d['event_id']:<36}  {d['at']:<24}  {d['reason']}" for d in letters]
    return "\n".join(lines)


def retry(settings: Settings) -> list[int]:
    box = Outbox(settings.storage.dir / DB_NAME)
    try:
        back = box.retry_dead_letters()
    finally:
        box.close()
    if back:
        AuditLog(settings.storage.dir / AUDIT_FILE).record(
            "dead_letters_retried", count=len(back), first_seq=back[0], last_seq=back[-1]
        )
    return back


def main(args: argparse.Namespace) -> int:
    settings = load_or_explain(args.config)
    if settings is None:
        return EXIT_CONFIG
    outbox = open_reader(settings)
    if outbox is None:
        return EXIT_NO_STORE
    try:
        letters = [{**d, "at": iso_utc(d["at"])} for d in outbox.dead_letters()]
        back = retry(settings) if args.retry else []
    except (StorageError, sqlite3.Error) as exc:
        print(f"cannot use the store {outbox.path}: {exc}", file=sys.stderr)
        return EXIT_NO_STORE
    finally:
        outbox.close()
    if args.json:
        out: dict[str, Any] = {"dead_letters": letters}
        if args.retry:
            out["retried"] = back
        print(json.dumps(out, ensure_ascii=False, indent=2))
    else:
        print(render(letters))
        if args.retry:
            print(f"put {len(back)} dead letter(s) back in the queue: the daemon sends them again")
    return 0
