"""PostgreSQL: events partitioned by day on the event id (collector/partitions.py); SQLite unchanged.

The table is rebuilt as a partitioned one with the same columns, primary key and indexes (whatever
earlier revisions made), and its rows are copied in: one transaction, under the migration lock.

Revision ID: 0004_partitions
Revises: 0003_web
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from alembic import op

from collector import partitions

revision = "0004_partitions"
down_revision = "0003_web"
branch_labels = None
depends_on = None
EPOCH = dt.date(1970, 1, 1)


def upgrade() -> None:
    conn = op.get_bind()
    if conn.dialect.name != "postgresql" or partitions.is_partitioned(conn):
        return
    inspector = sa.inspect(conn)
    columns = inspector.get_columns("events")
    indexes = inspector.get_indexes("events")
    pk = inspector.get_pk_constraint("events")
    for ix in indexes:
        op.drop_index(str(ix["name"]), table_name="events")
    op.execute("ALTER TABLE events RENAME TO events_unpartitioned")
    op.execute(f"ALTER TABLE events_unpartitioned RENAME CONSTRAINT {pk['name']} TO events_unpartitioned_pk")
    dialect = conn.dialect
    ddl = ", ".join(
        f"{c['name']} {c['type'].compile(dialect=dialect)}{'' if c['nullable'] else ' NOT NULL'}"
        for c in columns
    )
    keys = ", ".join(pk["constrained_columns"])
    op.execute(
        f"CREATE TABLE events ({ddl}, CONSTRAINT {pk['name']} PRIMARY KEY ({keys}))"
        " PARTITION BY RANGE (event_id)"
    )
    op.execute(f"CREATE SCHEMA IF NOT EXISTS {partitions.SCHEMA}")
    op.execute(f"CREATE TABLE {partitions.DEFAULT} PARTITION OF events DEFAULT")
    today = dt.datetime.now(dt.UTC).date()
    partitions.ensure(conn, partitions.window(today) + _days_held(conn, today))
    names = ", ".join(c["name"] for c in columns)
    op.execute(f"INSERT INTO events ({names}) SELECT {names} FROM events_unpartitioned")
    op.execute("DROP TABLE events_unpartitioned")
    _create_indexes(indexes)


def _create_indexes(indexes: list[Any]) -> None:
    # On the partitioned parent: PostgreSQL makes each partition's own copy.
    for ix in indexes:
        op.create_index(
            str(ix["name"]), "events", [str(c) for c in ix["column_names"]], unique=bool(ix["unique"])
        )


def _days_held(conn: sa.Connection, today: dt.date) -> list[dt.date]:
    """The days of the rows already held, within a year back (older ones go to the default)."""
    first = today - dt.timedelta(days=366)
    rows = conn.execute(
        sa.text(
            # The UUIDv7's first 48 bits: milliseconds since the epoch.
            "SELECT DISTINCT floor(('x' || lpad(replace(left(event_id, 13), '-', ''), 16, '0'))"
            "::bit(64)::bigint / 86400000.0) FROM events_unpartitioned"
        )
    )
    # Compared as day numbers first: an id that is not a UUIDv7 (old rows, tests) may name year 10 000.
    lo, hi = (first - EPOCH).days, (today - EPOCH).days
    return [EPOCH + dt.timedelta(days=int(d)) for (d,) in rows if d is not None and lo <= d <= hi]


def downgrade() -> None:
    conn = op.get_bind()
    if not partitions.is_partitioned(conn):
        return
    inspector = sa.inspect(conn)
    indexes = inspector.get_indexes("events")
    op.execute("CREATE TABLE events_flat (LIKE events INCLUDING DEFAULTS)")
    op.execute("INSERT INTO events_flat SELECT * FROM events")
    op.execute("DROP TABLE events CASCADE")
    op.execute("ALTER TABLE events_flat RENAME TO events")
    op.execute(f"DROP SCHEMA IF EXISTS {partitions.SCHEMA} CASCADE")
    op.execute("ALTER TABLE events ADD CONSTRAINT pk_events PRIMARY KEY (event_id)")
    _create_indexes(indexes)
