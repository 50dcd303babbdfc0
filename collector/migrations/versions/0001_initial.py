"""The first schema: events, invalid messages, devices, streams, gaps, known losses, counters.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

Json = sa.JSON().with_variant(JSONB(), "postgresql")
Timestamp = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "events",
        sa.Column("event_id", sa.String(36), nullable=False),
        sa.Column("device_id", sa.String(64), nullable=False),
        sa.Column("incarnation", sa.String(64), nullable=False),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("location_id", sa.String(64), nullable=False),
        sa.Column("location_kind", sa.String(16), nullable=False),
        sa.Column("scanned_at", Timestamp, nullable=False),
        sa.Column("clock", sa.String(8), nullable=False),
        sa.Column("code_type", sa.String(8), nullable=False),
        sa.Column("subject_mode", sa.String(16), nullable=False),
        sa.Column("subject_hmac", sa.String(64), nullable=False),
        sa.Column("key_id", sa.String(16), nullable=False),
        sa.Column("masked", sa.String(64)),
        sa.Column("direction", sa.String(4)),
        sa.Column("source", sa.String(8), nullable=False),
        sa.Column("received_at", Timestamp, nullable=False),
        sa.Column("body", Json, nullable=False),
        sa.PrimaryKeyConstraint("event_id", name="pk_events"),
    )
    op.create_index("ix_events_device_id_incarnation_seq", "events", ["device_id", "incarnation", "seq"])
    op.create_index("ix_events_scanned_at", "events", ["scanned_at"])
    op.create_index("ix_events_subject_hmac", "events", ["subject_hmac"])

    op.create_table(
        "invalid_messages",
        sa.Column("id", sa.Integer, autoincrement=True, nullable=False),
        sa.Column("received_at", Timestamp, nullable=False),
        sa.Column("topic", sa.String(512), nullable=False),
        sa.Column("reason", sa.String(500), nullable=False),
        sa.Column("excerpt", sa.String(200), nullable=False),
        sa.Column("size", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_invalid_messages"),
    )
    op.create_index("ix_invalid_messages_received_at", "invalid_messages", ["received_at"])

    op.create_table(
        "devices",
        sa.Column("device_id", sa.String(64), nullable=False),
        sa.Column("location_id", sa.String(64), nullable=False),
        sa.Column("location_kind", sa.String(16)),
        sa.Column("location_name", sa.String(200)),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("reason", sa.String(200)),
        sa.Column("version", sa.String(64)),
        sa.Column("config_hash", sa.String(64)),
        sa.Column("backlog", sa.BigInteger),
        sa.Column("incarnation", sa.String(64)),
        sa.Column("last_seq", sa.BigInteger),
        sa.Column("boot_id", sa.String(64)),
        sa.Column("last_heartbeat_at", Timestamp),
        sa.Column("last_seen_at", Timestamp),
        sa.Column("status", Json),
        sa.PrimaryKeyConstraint("device_id", name="pk_devices"),
    )

    op.create_table(
        "streams",
        sa.Column("device_id", sa.String(64), nullable=False),
        sa.Column("incarnation", sa.String(64), nullable=False),
        sa.Column("location_id", sa.String(64), nullable=False),
        sa.Column("through_seq", sa.BigInteger, nullable=False),
        sa.Column("max_seq", sa.BigInteger, nullable=False),
        sa.Column("updated_at", Timestamp, nullable=False),
        sa.PrimaryKeyConstraint("device_id", "incarnation", name="pk_streams"),
    )

    op.create_table(
        "gaps",
        sa.Column("device_id", sa.String(64), nullable=False),
        sa.Column("incarnation", sa.String(64), nullable=False),
        sa.Column("from_seq", sa.BigInteger, nullable=False),
        sa.Column("to_seq", sa.BigInteger, nullable=False),
        sa.Column("location_id", sa.String(64), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("missing", sa.BigInteger, nullable=False),
        sa.Column("opened_at", Timestamp, nullable=False),
        sa.Column("requests", sa.Integer, nullable=False),
        sa.Column("last_request_at", Timestamp),
        sa.Column("closed_at", Timestamp),
        sa.PrimaryKeyConstraint("device_id", "incarnation", "from_seq", name="pk_gaps"),
    )
    op.create_index("ix_gaps_state", "gaps", ["state"])

    op.create_table(
        "known_losses",
        sa.Column("device_id", sa.String(64), nullable=False),
        sa.Column("incarnation", sa.String(64), nullable=False),
        sa.Column("from_seq", sa.BigInteger, nullable=False),
        sa.Column("to_seq", sa.BigInteger, nullable=False),
        sa.Column("location_id", sa.String(64), nullable=False),
        sa.Column("request_id", sa.String(64)),
        sa.Column("reported_at", Timestamp, nullable=False),
        sa.Column("detail", sa.Text),
        sa.PrimaryKeyConstraint("device_id", "incarnation", "from_seq", name="pk_known_losses"),
    )

    op.create_table(
        "counters",
        sa.Column("instance", sa.String(64), nullable=False),
        sa.Column("name", sa.String(32), nullable=False),
        sa.Column("value", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("instance", "name", name="pk_counters"),
    )


def downgrade() -> None:
    for table in ("counters", "known_losses", "gaps", "streams", "devices", "invalid_messages", "events"):
        op.drop_table(table)
