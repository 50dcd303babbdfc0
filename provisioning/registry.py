"""This laptop's record of what it provisioned, so `verify` knows the configuration hash to expect.

JSON lines under $XDG_STATE_HOME/qr-provision/ (or the file named by $QR_PROVISION_REGISTRY); the last
line for a device wins. A record that cannot be written is a warning, never a failed provisioning.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path
from typing import Any

from device.settings import Settings


def registry_path() -> Path:
    explicit = os.environ.get("QR_PROVISION_REGISTRY")
    if explicit:
        return Path(explicit)
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "qr-provision" / "devices.jsonl"


def record(entry: dict[str, Any]) -> str | None:
    """Appends an entry; returns a warning instead of raising when the record cannot be kept."""
    path = registry_path()
    line = json.dumps({**entry, "provisioned_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")})
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8") as fh:
            fh.write(line + "\n")
    except OSError as exc:
        return f"could not record the device in {path} ({exc.strerror}): pass --expect-hash to verify"
    return None


def lookup(device_id: str) -> dict[str, Any] | None:
    try:
        lines = registry_path().read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return None
    found = None
    for line in lines:
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(entry, dict) and entry.get("device_id") == device_id:
            found = entry
    return found


def checks(settings: Settings) -> dict[str, Any]:
    """What `verify` judges beyond the hash, kept because the SD card is gone by then."""
    return {"dev": settings.device.dev, "feedback": settings.feedback.backend}
