"""Synthetic payloads from tests/data (invented people) and generated 'other' codes."""

from __future__ import annotations

import json
from functools import cache
from typing import Any

from tests.support.paths import PAYLOADS_JSON


@cache
def vectors() -> dict[str, Any]:
    return json.loads(PAYLOADS_JSON.read_text(encoding="utf-8"))


def valid_payloads() -> list[str]:
    v = vectors()
    return [s["payload"] for s in v["bhyt"] + v["cccd"]]


def other_codes(n: int, prefix: str = "VISITOR") -> list[str]:
    return [f"{prefix}-{i:06d}" for i in range(n)]
