"""The web page's tables, on the collector's metadata (one schema, one migration history)."""

from __future__ import annotations

from sqlalchemy import Column, String, Table, Text

from collector.tables import Timestamp, metadata

web_users = Table(
    "web_users",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("role", String(16), nullable=False),
    # argon2id (argon2-cffi's RFC 9106 low-memory profile: 64 MiB, 3 passes), parameters in the string.
    Column("password_hash", Text, nullable=False),
    Column("created_at", Timestamp, nullable=False),
)

# The session cookie's signing key, made at the first start: every instance on one database shares it
# and a restart logs nobody out.
web_secrets = Table(
    "web_secrets",
    metadata,
    Column("name", String(32), primary_key=True),
    Column("value", Text, nullable=False),
)

__all__ = ["web_secrets", "web_users"]
