"""Scan sources: each yields Scans and never calls the pipeline back.

A source is anything with a `kind`, a `state` and an async iterator `scans()`. The daemon runs one
task per source and feeds what they yield into one queue.

`SOURCES` is the table of kinds: each names the module and class that reads it; the settings are
`scanner.<kind>` (device/settings.py, the ground floor, so `check-config` validates them without the
hardware libraries). A new kind is one module here, one entry below, its settings class with a field
on `ScannerSettings`, and the name in the event schema's `source` enum (tests check they agree).
"""

from __future__ import annotations

import importlib
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Literal, NamedTuple, Protocol

from device.scan import Scan, SourceKind

if TYPE_CHECKING:
    from device.settings import ScannerSettings

SourceState = Literal["connected", "disconnected", "busy", "fault"]
# A scanner types or sends a code in one burst of milliseconds; a code silent this long with no
# terminator came from a scanner that sends none at all (keyboard and serial sources alike).
NO_TERMINATOR_S = 1.0


class Source(Protocol):
    """What a source owes the daemon (tests/device/sources/test_contract.py holds every kind to it):
    - `scans()` yields one Scan per code read, with `source` = `kind`, the `direction` its settings
      give the reader, a safe `reader` name and `damage` set when the input is known to be broken;
      it survives unplugs on its own and ends only for a finite input (stdin at EOF, a replay);
    - `state` names every reader the settings ask for, found or not;
    - `close()` releases the devices and may be called twice, before or after `scans()`."""

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


class SourceEntry(NamedTuple):
    # Imported only when the kind is configured: a camera-less device never loads zxing or picamera2.
    module: str
    cls: str


SOURCES: dict[SourceKind, SourceEntry] = {
    "stdin": SourceEntry("device.sources.stdin", "StdinSource"),
    "hid": SourceEntry("device.sources.hid", "HidSource"),
    "serial": SourceEntry("device.sources.serial", "SerialSource"),
    "camera": SourceEntry("device.sources.camera", "CameraSource"),
}


def build_sources(settings: ScannerSettings) -> list[Source]:
    """One source per kind in `scanner.sources`, each made from its own `scanner.<kind>` section."""
    sources: list[Source] = []
    for kind in settings.sources:
        entry = SOURCES[kind]
        cls = getattr(importlib.import_module(entry.module), entry.cls)
        sources.append(cls(getattr(settings, kind)))
    return sources
