"""Who looked: every trace, export and reveal is a row of an append-only, hash-chained audit log.

Each row's hash is SHA-256 over the previous row's hash and the row's own fields (canonical JSON), so
changing, removing or inserting a row breaks the chain from there on (`qr-collector audit verify`);
triggers refuse UPDATE and DELETE in the first place. The query is recorded as given (pseudonyms,
employee numbers, dates), never an ID number or a revealed identity.
"""

from __future__ import annotations

import datetime as dt
import getpass
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from collector.reports import tables as rt
from collector.reports.common import aware
from collector.store import Store

ROLES = ("hr", "board", "authority", "auditor")
ACTIONS = ("trace", "export", "reveal")
GENESIS = "0" * 64
APPEND_TRIES = 20


@dataclass(frozen=True)
class Entry:
    id: int
    at: dt.datetime
    actor: str
    role: str
    action: str
    purpose: str
    query: str
    row_count: int
    prev_hash: str
    hash: str


def default_actor() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def _digest(prev: str, fields: Mapping[str, Any]) -> str:
    body = json.dumps(
        {**fields, "at": aware(fields["at"]).astimezone(dt.UTC).isoformat(timespec="microseconds")},
        sort_keys=True,
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return hashlib.sha256((prev + body).encode()).hexdigest()


def append(
    store: Store,
    *,
    actor: str,
    role: str,
    action: str,
    purpose: str,
    query: Mapping[str, Any],
    row_count: int,
    wall: float,
) -> Entry:
    """Appends one row after the chain's last; a writer racing for the same position retries."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    if action not in ACTIONS:
        raise ValueError(f"action must be one of {', '.join(ACTIONS)}")
    if not purpose.strip():
        raise ValueError("a purpose (or case number) is required")
    a = rt.audit_log.c
    fields: dict[str, Any] = {
        "at": dt.datetime.fromtimestamp(wall, dt.UTC),
        "actor": actor[:100],
        "role": role,
        "action": action,
        "purpose": purpose.strip()[:200],
        "query": json.dumps(query, sort_keys=True, ensure_ascii=False, default=str),
        "row_count": int(row_count),
    }
    for attempt in range(APPEND_TRIES):
        try:
            with store.engine.begin() as conn:
                last = conn.execute(sa.select(a.id, a.hash).order_by(a.id.desc()).limit(1)).first()
                number, prev = (int(last.id) + 1, last.hash) if last else (1, GENESIS)
                row = {
                    "id": number,
                    **fields,
                    "prev_hash": prev,
                    "hash": _digest(prev, {"id": number, **fields}),
                }
                conn.execute(sa.insert(rt.audit_log), row)
            return Entry(**row)
        except (sa.exc.IntegrityError, sa.exc.OperationalError):
            if attempt == APPEND_TRIES - 1:
                raise
    raise AssertionError("unreachable")


@dataclass(frozen=True)
class Verification:
    rows: int
    ok: bool
    # The first row whose hash or link does not hold, and why.
    broken_at: int | None = None
    problem: str | None = None


def verify(store: Store) -> Verification:
    a = rt.audit_log.c
    prev, expected_id, rows = GENESIS, 1, 0
    with store.engine.connect() as conn:
        result = conn.execution_options(stream_results=True, yield_per=1000).execute(
            sa.select(rt.audit_log).order_by(a.id)
        )
        for row in result.mappings():
            rows += 1
            number = int(row["id"])
            if number != expected_id:
                return Verification(rows, False, number, f"row {expected_id} is missing")
            if row["prev_hash"] != prev:
                return Verification(rows, False, number, "its prev_hash is not the previous row's hash")
            fields = {
                k: row[k] for k in ("id", "at", "actor", "role", "action", "purpose", "query", "row_count")
            }
            fields["row_count"] = int(fields["row_count"])
            fields["id"] = number
            if _digest(prev, fields) != row["hash"]:
                return Verification(rows, False, number, "its contents do not match its hash")
            prev, expected_id = row["hash"], number + 1
    return Verification(rows, True)


def entries(store: Store, limit: int = 50) -> list[Entry]:
    a = rt.audit_log.c
    with store.engine.connect() as conn:
        rows = conn.execute(sa.select(rt.audit_log).order_by(a.id.desc()).limit(limit)).mappings().all()
    return [
        Entry(**{**dict(r), "at": aware(r["at"]), "id": int(r["id"]), "row_count": int(r["row_count"])})
        for r in reversed(rows)
    ]
