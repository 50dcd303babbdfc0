"""The device's store: one SQLite file beside two small reserve files, one transaction per accepted
scan. The code is split by what the file holds; `Outbox` (writer.py) composes the parts into that
one transaction, `StoreReader` (reader.py) only reads.

| module | holds |
| --- | --- |
| `schema.py` | the file's name, its tables, bringing an older file up to them |
| `events.py` | the event queue: append, pending, delivery and unheard, release, replay, restamp, retention |
| `dead_letters.py` | the events the broker refused for good, and their retry |
| `sequence.py` | the next seq and the incarnation it is counted in |
| `recent.py` | the duplicate window's entries (the policy is device/duplicate_window.py) |
| `counters.py` | the totals that survive restarts |
| `reserve.py` | the files beside the store: the seq reserve, the space reserve |
| `salvage.py` | a corrupt store's rows carried into a fresh one, the damaged file moved aside |
| `errors.py` | SQLite's errors told apart (full, read-only, corrupt), free space |
| `reader.py`, `writer.py` | the read-only reader; the writer |
"""

from __future__ import annotations

from device.store.errors import free_bytes, storage_error
from device.store.events import Pending
from device.store.reader import Backlog, StoreReader
from device.store.reserve import RESERVE_NAME, SPACE_RESERVE_NAME, SeqReserve, SpaceReserve
from device.store.schema import DB_NAME
from device.store.writer import Outbox

__all__ = [
    "DB_NAME",
    "RESERVE_NAME",
    "SPACE_RESERVE_NAME",
    "Backlog",
    "Outbox",
    "Pending",
    "SeqReserve",
    "SpaceReserve",
    "StoreReader",
    "free_bytes",
    "storage_error",
]
