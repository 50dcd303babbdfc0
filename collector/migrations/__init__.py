"""Alembic migrations of the collector's schema (collector/tables.py is the head)."""
