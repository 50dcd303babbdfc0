"""The reports (issue 18): roster, hash-chained audit log, half-hour counts, retention runs, the
location's address columns, and the per-location time index of the events.

Revision ID: 0002_reports
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_reports"
down_revision = "0001"
branch_labels = None
depends_on = None

Timestamp = sa.DateTime(timezone=True)
# As the status carries them (device [location], issue 18); "" when the device has none.
LOCATION_COLUMNS = (
    ("location_address", 300),
    ("location_ward", 100),
    ("location_district", 100),
    ("location_province", 100),
)

# Append-only: the chain detects a changed row, the triggers refuse the change in the first place.
SQLITE_TRIGGERS = [
    f"CREATE TRIGGER audit_log_no_{verb.lower()} BEFORE {verb} ON audit_log"
    " BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END"
    for verb in ("UPDATE", "DELETE")
]
POSTGRES_TRIGGERS = [
    "CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS"
    " $$ BEGIN RAISE EXCEPTION 'audit_log is append-only'; END $$",
    "CREATE TRIGGER audit_log_no_change BEFORE UPDATE OR DELETE ON audit_log"
    " FOR EACH ROW EXECUTE FUNCTION audit_log_append_only()",
    "CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log"
    " FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only()",
]


def upgrade() -> None:
    for name, length in LOCATION_COLUMNS:
        op.add_column("devices", sa.Column(name, sa.String(length)))
    op.create_index("ix_events_location_id_scanned_at", "events", ["location_id", "scanned_at"])

    op.create_table(
        "roster",
        sa.Column("employee_no", sa.String(32), nullable=False),
        sa.Column("name_box", sa.Text),
        sa.Column("team", sa.String(100)),
        sa.Column("line", sa.String(100)),
        sa.Column("assigned", sa.String(64)),
        sa.Column("key_id", sa.String(16), nullable=False),
        sa.Column("imported_at", Timestamp, nullable=False),
        sa.PrimaryKeyConstraint("employee_no", name="pk_roster"),
    )
    op.create_table(
        "roster_subjects",
        sa.Column("subject_hmac", sa.String(64), nullable=False),
        sa.Column("employee_no", sa.String(32), nullable=False),
        sa.Column("code_type", sa.String(8), nullable=False),
        sa.PrimaryKeyConstraint("subject_hmac", name="pk_roster_subjects"),
    )
    op.create_index("ix_roster_subjects_employee_no", "roster_subjects", ["employee_no"])

    op.create_table(
        "audit_log",
        sa.Column("id", sa.BigInteger, autoincrement=False, nullable=False),
        sa.Column("at", Timestamp, nullable=False),
        sa.Column("actor", sa.String(100), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("purpose", sa.String(200), nullable=False),
        sa.Column("query", sa.Text, nullable=False),
        sa.Column("row_count", sa.BigInteger, nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_audit_log"),
    )
    triggers = POSTGRES_TRIGGERS if op.get_bind().dialect.name == "postgresql" else SQLITE_TRIGGERS
    for statement in triggers:
        op.execute(statement)

    op.create_table(
        "location_counts",
        sa.Column("location_id", sa.String(64), nullable=False),
        sa.Column("slot_start", Timestamp, nullable=False),
        sa.Column("scans", sa.BigInteger, nullable=False),
        sa.Column("people", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("location_id", "slot_start", name="pk_location_counts"),
    )
    op.create_index("ix_location_counts_slot_start", "location_counts", ["slot_start"])

    op.create_table(
        "retention_runs",
        sa.Column("id", sa.Integer, autoincrement=True, nullable=False),
        sa.Column("run_at", Timestamp, nullable=False),
        sa.Column("cutoff", Timestamp, nullable=False),
        sa.Column("events_removed", sa.BigInteger, nullable=False),
        sa.Column("invalid_removed", sa.BigInteger, nullable=False),
        sa.Column("counts_written", sa.BigInteger, nullable=False),
        sa.Column("counts_removed", sa.BigInteger, nullable=False),
        sa.Column("seconds", sa.Float, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_retention_runs"),
    )


def downgrade() -> None:
    for table in ("retention_runs", "location_counts", "audit_log", "roster_subjects", "roster"):
        op.drop_table(table)
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS audit_log_append_only()")
    op.drop_index("ix_events_location_id_scanned_at", "events")
    with op.batch_alter_table("devices") as batch:
        for name, _ in LOCATION_COLUMNS:
            batch.drop_column(name)
