"""A scan: the raw text a source read, before anything judges it."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Literal

SourceKind = Literal["camera", "hid", "serial", "stdin"]
Direction = Literal["in", "out"]


@dataclass(frozen=True, slots=True)
class Scan:
    """One code as read. `text` is personal data: never log or store it in clear."""

    text: str
    source: SourceKind
    direction: Direction | None = None
    # Which physical reader (a by-id path, a port, "camera0"); safe to log.
    reader: str = ""
    # Monotonic time of the terminator / the decoded frame, for latency figures.
    at_monotonic: float = field(default_factory=time.monotonic)
    # Set when the source already knows the input is damaged (half a code at an unplug, bad UTF-8,
    # a layout mismatch); the pipeline rejects it with this reason instead of recognising it.
    damage: str | None = None

    def __repr__(self) -> str:  # keeps personal data out of tracebacks and debug logs
        return (
            f"Scan(source={self.source!r}, reader={self.reader!r}, direction={self.direction!r}, "
            f"chars={len(self.text)}, damage={self.damage!r})"
        )
