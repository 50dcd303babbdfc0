"""Synthetic payloads (invented people): the vectors in tests/data, cards built field by field, and
generated 'other' codes."""

from __future__ import annotations

import json
from functools import cache
from typing import Any

from device.payloads import recognise
from tests.support.paths import DATA, PAYLOADS_JSON

# Unified personal QRs of invented people (issue 14), with the parsed fields and the rejections.
PERSONAL_JSON = DATA / "personal-qr.json"


@cache
def vectors() -> dict[str, Any]:
    return json.loads(PAYLOADS_JSON.read_text(encoding="utf-8"))


@cache
def personal_vectors() -> dict[str, Any]:
    return json.loads(PERSONAL_JSON.read_text(encoding="utf-8"))


def valid_payloads() -> list[str]:
    v = vectors()
    return [s["payload"] for s in v["bhyt"] + v["cccd"]]


def other_codes(n: int, prefix: str = "VISITOR") -> list[str]:
    return [f"{prefix}-{i:06d}" for i in range(n)]


NAME = "Hoàng Thị Ngọc Ánh"
ADDRESS = "Tổ 9, Phường Thí Điểm, Quận Mô Phỏng, Đà Nẵng"


def hex_of(text: str, upper: bool = False) -> str:
    raw = text.encode().hex()
    return raw.upper() if upper else raw


def bhyt(**over: str) -> str:
    """A v2 card (17 fields) of an invented person; keyword arguments replace fields by name."""
    fields = {
        "card": "9999000077",
        "name": hex_of(NAME),
        "dob": "07/11/1996",
        "gender": "2",
        "address": hex_of(ADDRESS),
        "facility": "48 - 012",
        "valid_from": "01/01/2023",
        "valid_to": "-",
        "issued": "20/01/2023",
        "manager": "48019999000077",
        "parent": "-",
        "area": "4",
        "five_years": " 01/01/2028",
        "check": "1a2b3c4d5e6f7081-1202",
        "benefit": "4",
        "issuer": hex_of("Quận Mô Phỏng, Thành phố Đà Nẵng"),
    }
    fields.update(over)
    return "|".join(fields.values()) + "|$"


def bhyt_v1(**over: str) -> str:
    """The same person on a 15-character v1 card (14 fields + $)."""
    fields = {"card": "DN4489999000077", "valid_to": "31/12/2023", "five_years": "-", **over}
    return "|".join(bhyt(**fields).split("|")[:14]) + "|$"


def cccd(**over: str) -> str:
    fields = {
        "id": "048196999977",
        "old_id": "999999977",
        "name": NAME,
        "dob": "07111996",
        "gender": "Nữ",
        "address": ADDRESS,
        "issued": "12082021",
    }
    fields.update(over)
    return "|".join(fields.values())


def accepted(text: str) -> None:
    rec = recognise(text)
    assert rec.accepted, rec.reason


def rejected(text: str, reason: str) -> None:
    rec = recognise(text)
    assert not rec.accepted
    assert rec.reason == reason


def personal_qr(**over: str) -> str:
    """A unified personal QR (6 fields) of an invented person, number masked as the apps show it by
    default; keyword arguments replace fields by name."""
    fields = {
        "document": "******999977",
        "name": "HOANG THI NGOC ANH",
        "dob": "1996-**-**",
        "declared": "0",
        "qid": "100000999900000077",
        "ext": "",
    }
    fields.update(over)
    return "|".join(fields.values())
