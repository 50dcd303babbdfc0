"""The trace's lookups answered from the index alone: (location_id, scanned_at) gains the subject and
its masked form, on SQLite and PostgreSQL (on the partitioned parent: each day's partition gets its
own copy).

A trace reads everyone's scans in a window at a location, a few hundred rows a window and dozens of
windows a trace; with the narrow index each row cost a heap page of its own (the events are stored
in arrival order, a location's rows scattered among every other's). The wider index replaces the
narrow one, which it serves as well (same leading columns), so the ingest maintains no extra index.

Revision ID: 0005_trace_index
Revises: 0004_partitions
"""

from __future__ import annotations

from alembic import op

revision = "0005_trace_index"
down_revision = "0004_partitions"
branch_labels = None
depends_on = None

NARROW = ("ix_events_location_id_scanned_at", ["location_id", "scanned_at"])
COVERING = (
    "ix_events_location_id_scanned_at_subject_hmac_masked",
    ["location_id", "scanned_at", "subject_hmac", "masked"],
)


def upgrade() -> None:
    op.create_index(COVERING[0], "events", COVERING[1])
    op.drop_index(NARROW[0], table_name="events")


def downgrade() -> None:
    op.create_index(NARROW[0], "events", NARROW[1])
    op.drop_index(COVERING[0], table_name="events")
