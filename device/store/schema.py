"""The store's file: its name, its tables and how an older file is brought up to them.

A table added since a file was made is created when the writer opens it (CREATE ... IF NOT EXISTS):
that is the whole migration, so every device's existing file opens unchanged. The reader never
migrates; it reads an older file as it is (see reader.py).
"""

from __future__ import annotations

import sqlite3

DB_NAME = "outbox.sqlite"
SCHEMA_VERSION = 1

TABLES = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY,
    event_id TEXT NOT NULL UNIQUE,
    body TEXT NOT NULL,
    created_wall REAL NOT NULL,
    created_mono REAL NOT NULL,
    boot_id TEXT NOT NULL,
    clock_synced INTEGER NOT NULL,
    delivered_at REAL
);
CREATE INDEX IF NOT EXISTS events_pending ON events(seq) WHERE delivered_at IS NULL;
CREATE INDEX IF NOT EXISTS events_delivered ON events(delivered_at) WHERE delivered_at IS NOT NULL;
CREATE TABLE IF NOT EXISTS dead_letters (
    seq INTEGER PRIMARY KEY,
    event_id TEXT NOT NULL,
    body TEXT NOT NULL,
    reason TEXT NOT NULL,
    at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS recent (
    key TEXT PRIMARY KEY,
    wall REAL NOT NULL,
    mono REAL NOT NULL,
    boot_id TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
-- Delivered events whose PUBACK said 0x10 "no matching subscribers": nobody got them, so they stay
-- past the delivered grace until a checkin.committed/1 from the collector covers them.
CREATE TABLE IF NOT EXISTS unheard (seq INTEGER PRIMARY KEY);
"""


def create_tables(db: sqlite3.Connection) -> None:
    """Every table and index the file lacks (outside a transaction: executescript commits)."""
    db.executescript(TABLES)


def record_version(db: sqlite3.Connection) -> None:
    """Marks a new file with the schema it was made with; a file's own mark is kept."""
    db.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
