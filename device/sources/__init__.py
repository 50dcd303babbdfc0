"""Scan sources: each yields Scans and never calls the pipeline back.

A source is anything with a `kind`, a `state` and an async iterator `scans()`. The daemon runs one
task per source and feeds what they yield into one queue.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Literal, Protocol

from device.scan import Scan, SourceKind

SourceState = Literal["connected", "disconnected", "busy", "fault"]


class Source(Protocol):
    kind: SourceKind

    @property
    def state(self) -> dict[str, SourceState]:
        """Per physical reader (by its safe name): its current state, for status and logs."""
        ...

    def scans(self) -> AsyncIterator[Scan]:
        """Yields scans until cancelled. Survives unplugs on its own (reconnects)."""
        ...

    def close(self) -> None:
        """Releases devices (ungrab, close ports). Idempotent."""
        ...
