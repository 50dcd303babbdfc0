"""PostgreSQL: the events table partitioned by day, so retention drops a day instead of deleting rows.

The partition key is the event id itself. Every event id is a UUIDv7 (the event schema demands it),
whose first 48 bits are the millisecond the device created the event, written big-endian in hex: the
ids of one UTC day form one contiguous range of strings. Partitioning on the event id keeps the
primary key on the event id alone (PostgreSQL requires a partitioned table's unique keys to contain
the partition key), so the conflict target of the idempotent insert stays `event_id` on both
databases and a duplicate is a duplicate across days. Partitioning on `scanned_at` would not allow
that: a device re-stamps an event after a clock sync, so the same event can arrive with two times and
would become two rows.

Hex digits and the hyphens at fixed places compare the same in the "C" order and in the usual
glibc/ICU collations, so the ranges hold whatever the database's collation.

Partitions exist for `DAYS_BEHIND` days back and `DAYS_AHEAD` ahead; an event outside them (a clock
that says 1970, a backlog older than three weeks) lands in `events_default`, never refused. A day that
already has rows in the default partition is left there (PostgreSQL refuses a new partition that
would take rows from the default). SQLite has no partitions: every function here is a no-op there.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Iterable

import sqlalchemy as sa
from sqlalchemy.engine import Connection

log = logging.getLogger(__name__)
DAYS_AHEAD = 7
DAYS_BEHIND = 21
# The partitions live in a schema of their own: tools that compare or dump the collector's schema
# (Alembic's autogenerate, `\dt`) see the one table `events`, not a table a day.
SCHEMA = "event_days"
DEFAULT = f"{SCHEMA}.events_default"
NAME = re.compile(r"^events_(\d{8})$")
LOCK = 7203918  # pg_advisory_xact_lock key: several collectors create tomorrow's partition once


def floor_id(day: dt.date) -> str:
    """The smallest string any UUIDv7 of that UTC day is at least."""
    ms = int(dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC).timestamp() * 1000)
    h = f"{ms:012x}"
    return f"{h[:8]}-{h[8:12]}-0000-0000-000000000000"


def name(day: dt.date) -> str:
    return f"{SCHEMA}.events_{day:%Y%m%d}"


def day_of(table: str) -> dt.date | None:
    m = NAME.match(table.rsplit(".", 1)[-1])
    return dt.datetime.strptime(m.group(1), "%Y%m%d").date() if m else None


def is_partitioned(conn: Connection) -> bool:
    if conn.dialect.name != "postgresql":
        return False
    kind = conn.execute(sa.text("SELECT relkind FROM pg_class WHERE oid = to_regclass('events')")).scalar()
    return kind == "p"


def existing(conn: Connection) -> list[dt.date]:
    rows = conn.execute(
        sa.text(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
            " WHERE i.inhparent = to_regclass('events')"
        )
    )
    return sorted(d for (relname,) in rows if (d := day_of(relname)) is not None)


def ensure(conn: Connection, days: Iterable[dt.date]) -> list[str]:
    """Creates the missing day partitions among `days` (in the caller's transaction); returns their names."""
    if not is_partitioned(conn):
        return []
    conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": LOCK})
    have = set(existing(conn))
    made = []
    for day in sorted(set(days) - have):
        lo, hi = floor_id(day), floor_id(day + dt.timedelta(days=1))
        taken = conn.execute(
            sa.text(f"SELECT 1 FROM {DEFAULT} WHERE event_id >= :lo AND event_id < :hi LIMIT 1"),
            {"lo": lo, "hi": hi},
        ).first()
        if taken:
            log.warning("events of %s are in %s already: that day stays there", day, DEFAULT)
            continue
        # lo and hi are hex and hyphens only (made above): safe to write into the DDL.
        conn.execute(
            sa.text(f"CREATE TABLE {name(day)} PARTITION OF events FOR VALUES FROM ('{lo}') TO ('{hi}')")
        )
        made.append(name(day))
    if made:
        log.info("created the events partitions %s", ", ".join(made))
    return made


def window(today: dt.date) -> list[dt.date]:
    return [today + dt.timedelta(days=n) for n in range(-DAYS_BEHIND, DAYS_AHEAD + 1)]


def ensure_ahead(engine: sa.Engine, today: dt.date | None = None) -> list[str]:
    """Today's window of partitions, in a transaction of its own that waits at most a few seconds
    for the table lock (a day's partition is made days ahead: the next run tries again)."""
    if engine.dialect.name != "postgresql":
        return []
    today = today or dt.datetime.now(dt.UTC).date()
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("SET LOCAL lock_timeout = '5s'"))
            return ensure(conn, [today + dt.timedelta(days=n) for n in range(DAYS_AHEAD + 1)])
    except sa.exc.OperationalError as exc:
        log.warning("could not create the coming days' partitions (next hour): %s", str(exc).splitlines()[0])
        return []


def drop_before(conn: Connection, day: dt.date) -> list[str]:
    """Drops the day partitions wholly before `day` (for retention); returns their names."""
    if not is_partitioned(conn):
        return []
    gone = [name(d) for d in existing(conn) if d < day]
    for table in gone:
        conn.execute(sa.text(f"DROP TABLE {table}"))
    return gone
