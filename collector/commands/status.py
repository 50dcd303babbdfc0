"""`qr-collector status`: counters, lag, devices and open gaps, read from the database."""

from __future__ import annotations

import argparse
import json
import sys
import time

import sqlalchemy as sa

from collector import report
from collector.commands import EXIT_CONFIG, add_config_argument, load_or_explain
from collector.store import Store

EXIT_NO_DATABASE = 1


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_argument(parser)
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")


def open_store(url: str) -> Store | None:
    """The database, if the collector has created its schema there; None after saying why not."""
    store = Store(url)
    try:
        if sa.inspect(store.engine).has_table("events"):
            return store
        print(f"{store.safe_url}: no collector schema yet (`qr-collector run` creates it)", file=sys.stderr)
    except sa.exc.SQLAlchemyError as exc:
        print(f"{store.safe_url}: cannot open: {str(exc).splitlines()[0]}", file=sys.stderr)
    store.close()
    return None


def main(args: argparse.Namespace) -> int:
    settings = load_or_explain(args.config)
    if settings is None:
        return EXIT_CONFIG
    store = open_store(settings.database_url)
    if store is None:
        return EXIT_NO_DATABASE
    try:
        state = report.status(store, time.time(), settings.presence.heartbeat_s)
    finally:
        store.close()
    if args.json:
        print(json.dumps(state, ensure_ascii=False))
        return 0
    c = state["counters"]
    print(f"database   {state['database']}")
    print(
        f"messages   received {c['received']} = stored {c['stored']} + duplicate {c['duplicate']}"
        f" + invalid {c['invalid']}{'' if state['balanced'] else '  (DOES NOT ADD UP)'}"
    )
    print(f"statuses   {c['statuses']} (invalid {c['statuses_invalid']})")
    print(f"rows       events {state['events']}, invalid_messages {state['invalid_messages']}")
    lag = "never" if state["lag_s"] is None else f"{state['lag_s']} s ago ({state['last_commit_at']})"
    print(f"last event {lag}")
    print(
        f"gaps       open {state['open_gaps']}, known losses {state['known_losses']}"
        f" ({state['known_lost_seqs']} seqs)"
    )
    for d in state["devices"]:
        print(
            f"device     {d['device_id']} @ {d['location_id']} ({d['location_kind'] or '?'}):"
            f" {d['presence']},"
            f" backlog {d['backlog']}, seq {d['through_seq']}/{d['last_seq']}, version {d['version']},"
            f" seen {d['last_seen_at'] or 'never'}"
        )
    return 0
