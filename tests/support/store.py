"""Stamps and event bodies for the store's tests (device/store/)."""

from __future__ import annotations

from typing import Any

from device.clock import Stamp


def stamp(wall: float = 1_700_000_000.0, mono: float = 100.0, boot: str = "b1", synced: bool = True) -> Stamp:
    return Stamp(wall=wall, mono=mono, boot_id=boot, synced=synced)


def event(seq: int) -> dict[str, Any]:
    return {"event_id": f"id-{seq}", "seq": seq, "scanned_at": "x", "clock": "synced"}
