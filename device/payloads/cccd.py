"""CCCD chip ID card QR (spec: qr-payloads.md §3): 7 fields of plain UTF-8, no terminator, no checksum.

The 12-digit ID number encodes the province of birth registration, century and sex, and the last two
digits of the birth year (TT 07/2016/TT-BCA): the only offline cross-checks there are.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Any, Final

from device.errors import PayloadRejected
from device.payloads.card import PersonRecord, mask
from device.payloads.checks import QUOTABLE, Birth, birth_date, compact_date, label, shown

TYPE: Final = "cccd"
ID_IN_CLEAR: Final = True
FIELDS = 7
_ID = re.compile(r"\d{12}", re.ASCII)
# The 9-digit CMND; the 12-digit CMND issued 2012-2016 may be carried over as well.
_OLD_ID = re.compile(r"\d{9}|\d{12}", re.ASCII)
# An ID number with a digit lost or doubled must still read as an attempted CCCD; a shorter number
# (a phone number, say) in a code without a Nam/Nữ field is some other code.
_ID_LIKE = re.compile(r"\d{11,13}", re.ASCII)
_GENDERS = {"nam": "male", "nữ": "female"}
# The 63 birth-registration province codes of TT 07/2016/TT-BCA appendix 1.
PROVINCES = frozenset(
    re.findall(
        r"\d{3}",
        "001 002 004 006 008 010 011 012 014 015 017 019 020 022 024 025 026 027 030 031 033 034 035 036 037 "
        "038 040 042 044 045 046 048 049 051 052 054 056 058 060 062 064 066 067 068 070 072 074 075 077 079 "
        "080 082 083 084 086 087 089 091 092 093 094 095 096",
    )
)
_FIRST_CENTURY = 1900
# The 12-digit CCCD was first issued in 2016 (the chip card with its QR in 2021).
FIRST_ISSUE_YEAR = 2016


@dataclass(frozen=True, slots=True)
class CccdCard:
    """A parsed CCCD. Personal data throughout; field names follow the shared test vectors."""

    id: str
    old_id: str | None
    name: str
    birth: Birth
    gender: str
    address: str
    issued: str
    variant: str = "cccd"

    def __repr__(self) -> str:
        return "CccdCard(<personal data>)"

    @property
    def subject_id(self) -> str:
        return self.id

    @property
    def masked(self) -> str:
        return mask(self.id)

    def record(self) -> PersonRecord:
        return PersonRecord(id_number=self.id, name=self.name, birth_year=self.birth.year)

    def personal(self) -> dict[str, Any]:
        """Every parsed field, as the shared vectors name them. Personal data."""
        return {
            "id": self.id,
            "old_id": self.old_id,
            "name": self.name,
            "dob": self.birth.iso(),
            "gender": self.gender,
            "address": self.address,
            "issued": self.issued,
        }

    def summary(self) -> dict[str, Any]:
        """What a technician may see: no name, address, full number or exact date."""
        return {
            "birth_year": self.birth.year,
            "gender": self.gender,
            "has_old_id": self.old_id is not None,
            "issued_year": int(self.issued[:4]),
        }


def _normalised(fields: list[str]) -> list[str]:
    # Some sources deliver decomposed (NFD) Vietnamese; compare and keep the composed form.
    return [unicodedata.normalize("NFC", f) for f in fields]


def looks_like(text: str, fields: list[str]) -> bool:
    """An attempted CCCD: a number-like first field with about the field count, or a Nam/Nữ field."""
    if len(fields) < FIELDS - 2:
        return False
    if _ID_LIKE.fullmatch(fields[0]):
        return True
    return len(fields) >= FIELDS - 1 and any(f.casefold() in _GENDERS for f in _normalised(fields))


def _century_sex_digit(year: int, gender: str) -> int | None:
    century = (year - _FIRST_CENTURY) // 100
    if not 0 <= century <= 4:
        return None
    return 2 * century + (1 if gender == "female" else 0)


def parse(text: str, fields: list[str]) -> CccdCard:
    """Checks an attempted CCCD (see looks_like) field by field; the first failure is the reason."""
    fields = _normalised(fields)
    # The 2024 card reportedly keeps the layout and may append empty fields.
    if len(fields) < FIELDS or any(fields[FIELDS:]):
        raise PayloadRejected(f"CCCD payload has {len(fields)} fields: expected {FIELDS}")
    number, old_id, name, dob, gender_text, address, issue_text = fields[:FIELDS]
    if not _ID.fullmatch(number):
        raise PayloadRejected(f"{label('ID number', 0)}: expected 12 digits")
    if number[:3] not in PROVINCES:
        raise PayloadRejected(f"{label('ID number', 0)}: province code is not one of the 63 codes")
    if old_id and not _OLD_ID.fullmatch(old_id):
        raise PayloadRejected(f"{label('old ID number', 1)}: expected 9 digits or empty")
    if not name.strip():
        raise PayloadRejected(f"{label('name', 2)}: empty")
    if any(ch.isdigit() for ch in name):
        raise PayloadRejected(f"{label('name', 2)}: contains a digit")
    birth = birth_date(label("date of birth", 3), dob, compact=True)
    gender = _GENDERS.get(gender_text.casefold())
    if gender is None:
        if len(gender_text) <= QUOTABLE:
            raise PayloadRejected(f"{label('gender', 4)} {shown(gender_text)}: expected Nam/Nữ")
        raise PayloadRejected(f"{label('gender', 4)}: expected Nam/Nữ, got {shown(gender_text)}")
    issued = compact_date(label("issue date", 6), issue_text, first_year=FIRST_ISSUE_YEAR)
    if birth.year > issued.year:
        raise PayloadRejected(f"{label('date of birth', 3)} is after {label('issue date', 6)}")
    expected = _century_sex_digit(birth.year, gender)
    if expected is not None and int(number[3]) % 2 != expected % 2:
        raise PayloadRejected("ID number gender digit does not match gender field")
    if int(number[3]) != expected:
        raise PayloadRejected("ID number century digit does not match date of birth")
    if number[4:6] != f"{birth.year % 100:02d}":
        raise PayloadRejected("ID number birth-year digits do not match date of birth")
    return CccdCard(
        id=number,
        old_id=old_id or None,
        name=name.strip(),
        birth=birth,
        gender=gender,
        address=address,
        issued=issued.isoformat(),
    )
