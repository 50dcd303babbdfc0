"""The personal-data probe: every form in which an invented person's data could leak (names with and
without diacritics, hex as in the BHYT payload, dates in every format, every ID number), and a search of
files, logs and messages for them. Every privacy test, device's and collector's, greps with this one."""

from __future__ import annotations

import unicodedata
from pathlib import Path
from typing import Any

from device.payloads import bhyt
from tests.support.payloads import personal_vectors, vectors

# The verifier quotes the date of birth; our reasons must not (they reach logs and displays). And it
# blames an input method on the host, which this device does not have (issue 14).
REDACTED = {
    "non-ASCII character in BHYT payload (a Vietnamese IME such as Unikey Telex/VNI probably rewrote the "
    "scanner's keystrokes)": bhyt.IME_DAMAGE,
    "date of birth [2]: impossible date '15/38/1985'": "date of birth [2]: impossible date",
    "date of birth [3]: impossible date '29021985'": "date of birth [3]: impossible date",
    "date of birth [3]: expected ddmmyyyy, got '01/01/1990'": (
        "date of birth [3]: expected ddmmyyyy, got '99/99/9999'"
    ),
}


def _ascii_fold(text: str) -> str:
    decomposed = unicodedata.normalize("NFD", text.replace("Đ", "D").replace("đ", "d"))
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def _text_forms(text: str) -> set[str]:
    raw = text.encode()
    forms = {text, unicodedata.normalize("NFD", text), _ascii_fold(text), raw.hex(), raw.hex().upper()}
    # Parts of an address are as telling as the whole.
    forms |= {part.strip() for part in text.split(",") if len(part.strip()) >= 6}
    return forms


def _date_forms(iso: str) -> set[str]:
    if len(iso) != 10:
        return set()
    y, m, d = iso.split("-")
    return {iso, f"{d}/{m}/{y}", f"{d}{m}{y}", f"{y}{m}{d}"}


# EXT sub-fields shorter than this (a sex digit) are no needle: they occur everywhere.
EXT_NEEDLE = 6


def personal_strings(fields: dict[str, Any]) -> set[str]:
    """Every string that would reveal this sample's name, address, birth date or ID numbers (for a
    personal QR also its QID, its document number as shown, and the numbers in its EXT field)."""
    out: set[str] = set()
    for key in ("name", "address", "parent_name"):
        if fields.get(key):
            out |= _text_forms(fields[key])
    out |= _date_forms(fields["dob"])
    for key in ("card_no", "id", "old_id", "manager_code", "document", "qid"):
        if fields.get(key):
            out.add(fields[key])
    if fields.get("card_no"):
        out.add(fields["card_no"][-10:])
    out |= {item for item in fields.get("ext", []) if len(item) >= EXT_NEEDLE}
    return out


def all_personal_strings() -> set[str]:
    v, p = vectors(), personal_vectors()
    people = [s["fields"] for s in v["bhyt"] + v["cccd"] + p["personal"] + p["same_person"]]
    return set().union(*(personal_strings(fields) for fields in people))


def every_payload() -> set[str]:
    """The vectors' payloads, valid and invalid: a whole payload found anywhere is a leak too."""
    v, p = vectors(), personal_vectors()
    return {s["payload"] for s in v["bhyt"] + v["cccd"] + p["personal"] + v["invalid"] + p["invalid"]}


def files_under(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def find_personal_data(haystacks: dict[str, bytes]) -> list[tuple[str, str]]:
    """(where, what) for every personal string or payload found, in UTF-8 or UTF-16 (SQLite may use it)."""
    needles = all_personal_strings() | every_payload()
    return sorted(
        (where, needle)
        for where, data in haystacks.items()
        for needle in needles
        if needle.encode() in data or needle.encode("utf-16-le") in data
    )
