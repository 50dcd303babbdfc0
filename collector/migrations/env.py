"""Alembic environment: the collector hands over its own connection (collector/store.py migrate())."""

from __future__ import annotations

from alembic import context

from collector.tables import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
