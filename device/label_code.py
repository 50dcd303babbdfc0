"""The label code: the QR payload printed on a device's provisioning label (the sticker that
provisioning/label.py renders): which device this is, where it stands, which configuration.

Pure: no I/O. The text is versioned and starts with a prefix no check-in code can carry, so the daemon
recognises a label code before check-in recognition and answers with the identify pattern and a provisioning
check on the status topic, never with a check-in.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from device.settings import TOPIC_SAFE

PREFIX = "QRCHECKIN-LABEL/1"
# Settings.config_hash(): the first 12 hex digits of a SHA-256.
CONFIG_HASH = re.compile(r"^[0-9a-f]{12}$")


@dataclass(frozen=True, slots=True)
class LabelCode:
    device_id: str
    location_id: str
    config_hash: str


def format_label_code(device_id: str, location_id: str, config_hash: str) -> str:
    """`QRCHECKIN-LABEL/1|<device id>|<location id>|<config hash>`; refuses what could not parse back."""
    for name, value in (("device_id", device_id), ("location_id", location_id)):
        if not TOPIC_SAFE.fullmatch(value):
            raise ValueError(f"{name} {value!r} is not topic-safe")
    if not CONFIG_HASH.fullmatch(config_hash):
        raise ValueError(f"config_hash {config_hash!r} is not 12 lowercase hex digits")
    return f"{PREFIX}|{device_id}|{location_id}|{config_hash}"


def parse_label_code(text: str) -> LabelCode | None:
    """The label a scan holds, or None when the text is anything else (a check-in code, a damaged label)."""
    # Scanners append CR/LF; the fields themselves never hold whitespace.
    parts = text.rstrip("\r\n\x00").split("|")
    if len(parts) != 4 or parts[0] != PREFIX:
        return None
    _, device_id, location_id, config_hash = parts
    ids_ok = TOPIC_SAFE.fullmatch(device_id) and TOPIC_SAFE.fullmatch(location_id)
    if not ids_ok or not CONFIG_HASH.fullmatch(config_hash):
        return None
    return LabelCode(device_id, location_id, config_hash)
