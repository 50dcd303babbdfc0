"""The reports' tables, on the collector's metadata (collector/tables.py imports this module).

The roster keeps no ID number: only the site pseudonyms computed at import, and the display name
sealed with a key derived from the site key (a database dump shows no name).
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Float, Index, Integer, String, Table, Text

from collector.tables import INCARNATION, TOPIC_ID, Timestamp, metadata

EMPLOYEE_NO = 32

roster = Table(
    "roster",
    metadata,
    Column("employee_no", String(EMPLOYEE_NO), primary_key=True),
    # SecretBox (base64) under a key derived from the site key: see collector/reports/roster.py.
    Column("name_box", Text),
    Column("team", String(100)),
    Column("line", String(100)),
    # The bus plate or gate as HR wrote it; matched to locations when a report runs.
    Column("assigned", String(TOPIC_ID)),
    Column("key_id", String(16), nullable=False),
    Column("imported_at", Timestamp, nullable=False),
)

# One person may show a CCCD, a BHYT card and a personal QR: each is a subject of the same row.
roster_subjects = Table(
    "roster_subjects",
    metadata,
    Column("subject_hmac", String(64), primary_key=True),
    Column("employee_no", String(EMPLOYEE_NO), nullable=False),
    Column("code_type", String(8), nullable=False),
    Index(None, "employee_no"),
)

# Append-only (triggers refuse UPDATE and DELETE) and hash-chained: see collector/reports/audit.py.
audit_log = Table(
    "audit_log",
    metadata,
    # The chain position, not an autoincrement: two writers racing for the same position conflict.
    Column("id", BigInteger, primary_key=True, autoincrement=False),
    Column("at", Timestamp, nullable=False),
    Column("actor", String(100), nullable=False),
    Column("role", String(16), nullable=False),
    Column("action", String(16), nullable=False),
    Column("purpose", String(200), nullable=False),
    Column("query", Text, nullable=False),
    Column("row_count", BigInteger, nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
)

# What outlives the raw events: scans and distinct people per location per half hour (UTC slots).
location_counts = Table(
    "location_counts",
    metadata,
    Column("location_id", String(TOPIC_ID), primary_key=True),
    Column("slot_start", Timestamp, primary_key=True),
    Column("scans", BigInteger, nullable=False),
    Column("people", BigInteger, nullable=False),
    Index(None, "slot_start"),
)

retention_runs = Table(
    "retention_runs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_at", Timestamp, nullable=False),
    Column("cutoff", Timestamp, nullable=False),
    Column("events_removed", BigInteger, nullable=False),
    Column("invalid_removed", BigInteger, nullable=False),
    Column("counts_written", BigInteger, nullable=False),
    Column("counts_removed", BigInteger, nullable=False),
    Column("seconds", Float, nullable=False),
)

__all__ = ["INCARNATION", "audit_log", "location_counts", "retention_runs", "roster", "roster_subjects"]
