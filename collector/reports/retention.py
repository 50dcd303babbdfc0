"""Retention: raw events for `retention_days` local days, half-hour counts per location for a year.

Before events leave, their scans and distinct people per location per half hour (UTC slots) are added
to `location_counts` in the same transaction as the deletion, so no count is lost or doubled by a
crash. PostgreSQL's partitions follow the day the event id was made, not the local day of the scan
(a backlog drained days later, an unsynchronised clock), so the events leave by DELETE, one half-hour
slot per transaction, on SQLite and PostgreSQL alike (PostgreSQL's autovacuum reclaims the space);
every run is logged and written to `retention_runs`.

A scan stamped by an unsynchronised clock (which may say 1970) is kept by the time it was received.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from collector import tables as t
from collector.reports import tables as rt
from collector.reports.common import aware, local_day
from collector.reports.config import RetentionSettings
from collector.store import Store

log = logging.getLogger(__name__)
SLOT_S = 1800


@dataclass(frozen=True)
class RetentionRun:
    cutoff: dt.datetime
    events_removed: int
    invalid_removed: int
    counts_written: int
    counts_removed: int
    seconds: float


def cutoff(today: dt.date, tz: ZoneInfo, days: int) -> dt.datetime:
    """Events of local days before `today - days` go: with 21 days, day 22 back is the first removed."""
    return local_day(today - dt.timedelta(days=days), tz)[0]


def _slot(store: Store) -> sa.ColumnElement[int]:
    e = t.events.c
    epoch: sa.ColumnElement[Any]
    if store.dialect == "postgresql":
        epoch = sa.extract("epoch", e.scanned_at)
    else:
        epoch = sa.cast(sa.func.strftime("%s", e.scanned_at), sa.Integer)
    return sa.cast(sa.func.floor(epoch / SLOT_S), sa.BigInteger) * SLOT_S


def run(store: Store, settings: RetentionSettings, tz: ZoneInfo, *, now: float) -> RetentionRun:
    started = time.monotonic()
    today = dt.datetime.fromtimestamp(now, tz).date()
    limit = cutoff(today, tz, settings.retention_days)
    e = t.events.c
    old = sa.and_(e.scanned_at < limit, sa.or_(e.clock == "synced", e.received_at < limit))
    removed = written = batches = 0
    while True:
        # One half-hour slot per transaction: its counts are exact, a crash loses or doubles none.
        with store.engine.begin() as conn:
            first = conn.execute(sa.select(sa.func.min(e.scanned_at)).where(old)).scalar()
            if first is None:
                break
            start = dt.datetime.fromtimestamp(int(aware(first).timestamp()) // SLOT_S * SLOT_S, dt.UTC)
            in_slot = sa.and_(old, e.scanned_at >= start, e.scanned_at < start + dt.timedelta(seconds=SLOT_S))
            written += _count(conn, store, in_slot)
            removed += conn.execute(sa.delete(t.events).where(in_slot)).rowcount
        batches += 1
    i = t.invalid_messages.c
    counts_limit = cutoff(today, tz, settings.counts_days)
    with store.engine.begin() as conn:
        invalid = conn.execute(sa.delete(t.invalid_messages).where(i.received_at < limit)).rowcount
        counts_removed = conn.execute(
            sa.delete(rt.location_counts).where(rt.location_counts.c.slot_start < counts_limit)
        ).rowcount
        result = RetentionRun(
            limit, removed, int(invalid), written, int(counts_removed), time.monotonic() - started
        )
        conn.execute(
            sa.insert(rt.retention_runs),
            {
                "run_at": dt.datetime.fromtimestamp(now, dt.UTC),
                "cutoff": limit,
                "events_removed": removed,
                "invalid_removed": result.invalid_removed,
                "counts_written": written,
                "counts_removed": result.counts_removed,
                "seconds": round(result.seconds, 3),
            },
        )
    log.info(
        "retention: removed %d events before %s in %d batches (%d half-hour counts written), %d invalid"
        " messages, %d counts older than %d days",
        removed,
        limit.isoformat(),
        batches,
        written,
        result.invalid_removed,
        result.counts_removed,
        settings.counts_days,
    )
    return result


def _count(conn: Connection, store: Store, where: sa.ColumnElement[bool]) -> int:
    """Adds the half-hour counts of these events; returns how many (location, slot) rows it touched."""
    e = t.events.c
    slot = _slot(store).label("slot")
    rows = conn.execute(
        sa.select(e.location_id, slot, sa.func.count(), sa.func.count(sa.distinct(e.subject_hmac)))
        .where(where)
        .group_by(e.location_id, slot)
    ).all()
    if not rows:
        return 0
    values = [
        {
            "location_id": location_id,
            "slot_start": dt.datetime.fromtimestamp(int(start), dt.UTC),
            "scans": int(scans),
            "people": int(people),
        }
        for location_id, start, scans, people in rows
    ]
    c = rt.location_counts.c
    stmt = (postgresql.insert if store.dialect == "postgresql" else sqlite.insert)(rt.location_counts)
    # A slot seen again (events replayed after their slot was counted) adds up; its people are then
    # an upper bound.
    conn.execute(
        stmt.on_conflict_do_update(
            index_elements=[c.location_id, c.slot_start],
            set_={"scans": c.scans + stmt.excluded.scans, "people": c.people + stmt.excluded.people},
        ),
        values,
    )
    return len(values)
