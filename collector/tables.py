"""The collector's schema (SQLAlchemy Core), one for SQLite and PostgreSQL; Alembic migrates to it.

Events keep the contract fields that queries need as columns, plus the event's body. A subject the
device sealed for the collector is stored as pseudonym and masked form only: never the number, never
the box.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)
from sqlalchemy.dialects.postgresql import JSONB

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "pk": "pk_%(table_name)s",
    }
)

Json = JSON().with_variant(JSONB(), "postgresql")
Timestamp = DateTime(timezone=True)
TOPIC_ID = 64
# seq is unique per (device_id, incarnation); events from before incarnations existed have "".
INCARNATION = 64

events = Table(
    "events",
    metadata,
    # The conflict target of the idempotent insert: a redelivered or replayed event is a duplicate.
    Column("event_id", String(36), primary_key=True),
    Column("device_id", String(TOPIC_ID), nullable=False),
    Column("incarnation", String(INCARNATION), nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("location_id", String(TOPIC_ID), nullable=False),
    Column("location_kind", String(16), nullable=False),
    Column("scanned_at", Timestamp, nullable=False),
    Column("clock", String(8), nullable=False),
    Column("code_type", String(8), nullable=False),
    Column("subject_mode", String(16), nullable=False),
    Column("subject_hmac", String(64), nullable=False),
    Column("key_id", String(16), nullable=False),
    Column("masked", String(64)),
    Column("direction", String(4)),
    Column("source", String(8), nullable=False),
    Column("received_at", Timestamp, nullable=False),
    Column("body", Json, nullable=False),
    # Not unique on purpose: a second constraint would turn a device's bug into a failed batch.
    Index(None, "device_id", "incarnation", "seq"),
    Index(None, "scanned_at"),
    Index(None, "subject_hmac"),
    # The reports' co-presence and per-location lookups (collector/reports/), covering the trace's
    # columns so that its windows are read from the index alone (migration 0005).
    Index(None, "location_id", "scanned_at", "subject_hmac", "masked"),
)

invalid_messages = Table(
    "invalid_messages",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("received_at", Timestamp, nullable=False),
    Column("topic", String(512), nullable=False),
    Column("reason", String(500), nullable=False),
    # The start of the payload with every digit run masked: enough to recognise a sender's bug.
    Column("excerpt", String(200), nullable=False),
    Column("size", Integer, nullable=False),
    Index(None, "received_at"),
)

devices = Table(
    "devices",
    metadata,
    Column("device_id", String(TOPIC_ID), primary_key=True),
    Column("location_id", String(TOPIC_ID), nullable=False),
    Column("location_kind", String(16)),
    Column("location_name", String(200)),
    Column("state", String(16), nullable=False),
    Column("reason", String(200)),
    Column("version", String(64)),
    Column("config_hash", String(64)),
    Column("backlog", BigInteger),
    Column("incarnation", String(INCARNATION)),
    Column("last_seq", BigInteger),
    Column("boot_id", String(64)),
    # The last status this collector received live (a retained copy from the broker is not news).
    Column("last_heartbeat_at", Timestamp),
    # The last news of any kind (a live status or an event).
    Column("last_seen_at", Timestamp),
    Column("status", Json),
    # The location as the province lists it (issue 18), from the device's birth status.
    Column("location_address", String(300)),
    Column("location_ward", String(100)),
    Column("location_district", String(100)),
    Column("location_province", String(100)),
)

# Per (device, incarnation): the contiguous prefix of seqs committed here or known lost.
streams = Table(
    "streams",
    metadata,
    Column("device_id", String(TOPIC_ID), primary_key=True),
    Column("incarnation", String(INCARNATION), primary_key=True),
    Column("location_id", String(TOPIC_ID), nullable=False),
    Column("through_seq", BigInteger, nullable=False),
    Column("max_seq", BigInteger, nullable=False),
    Column("updated_at", Timestamp, nullable=False),
)

# A range of seqs found missing, from detection until it is repaired (replayed) or known lost.
gaps = Table(
    "gaps",
    metadata,
    Column("device_id", String(TOPIC_ID), primary_key=True),
    Column("incarnation", String(INCARNATION), primary_key=True),
    Column("from_seq", BigInteger, primary_key=True),
    Column("to_seq", BigInteger, nullable=False),
    Column("location_id", String(TOPIC_ID), nullable=False),
    # open | repaired | lost (lost: some of it is a known loss)
    Column("state", String(16), nullable=False),
    Column("missing", BigInteger, nullable=False),
    Column("opened_at", Timestamp, nullable=False),
    Column("requests", Integer, nullable=False),
    Column("last_request_at", Timestamp),
    Column("closed_at", Timestamp),
    Index(None, "state"),
)

# Seqs the device said it no longer holds (purged past its grace, dead-lettered, another incarnation).
known_losses = Table(
    "known_losses",
    metadata,
    Column("device_id", String(TOPIC_ID), primary_key=True),
    Column("incarnation", String(INCARNATION), primary_key=True),
    Column("from_seq", BigInteger, primary_key=True),
    Column("to_seq", BigInteger, nullable=False),
    Column("location_id", String(TOPIC_ID), nullable=False),
    Column("request_id", String(64)),
    Column("reported_at", Timestamp, nullable=False),
    Column("detail", Text),
)

# Totals per collector instance, written in the batch's own transaction: they agree with the rows.
counters = Table(
    "counters",
    metadata,
    Column("instance", String(64), primary_key=True),
    Column("name", String(32), primary_key=True),
    Column("value", BigInteger, nullable=False),
)

# The reports' tables live on this metadata too (one schema, one migration history).
from collector.reports import tables as _reports  # noqa: E402, F401
from collector.web import tables as _web  # noqa: E402, F401
