"""CCCD chip ID card QR (spec: qr-payloads.md §3): 7 fields of plain UTF-8, no terminator, no checksum.

The 12-digit ID number encodes where the birth was registered (a province, or a country for births
abroad), century and sex, and the last two digits of the birth year (TT 07/2016/TT-BCA): the only
offline cross-checks there are.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any, Final

from device.errors import PayloadRejected
from device.payloads.card import Fields, PersonRecord, mask, short_read
from device.payloads.cccd_codes import COUNTRIES, PROVINCES
from device.payloads.checks import QUOTABLE, Birth, birth_date, compact_date, field_ref, shown

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
    """An attempted CCCD: 12 digits and a `|` (however short the rest), a number-like first field with
    about the field count, or a Nam/Nữ field."""
    if len(fields) > 1 and _ID.fullmatch(fields[0]):
        return True
    if len(fields) < FIELDS - 2:
        return False
    if _ID_LIKE.fullmatch(fields[0]):
        return True
    return len(fields) >= FIELDS - 1 and any(f.casefold() in _GENDERS for f in _normalised(fields))


def check_number(
    field: str,
    number: str,
    *,
    provinces: Collection[str] = PROVINCES,
    countries: Collection[str] = COUNTRIES,
) -> None:
    """A 12-digit CCCD number whose first three digits are on the code lists."""
    if not _ID.fullmatch(number):
        raise PayloadRejected(f"{field}: expected 12 digits")
    region = number[:3]
    if region[0] == "0":
        if region not in provinces:
            raise PayloadRejected(f"{field}: province code is not one of the {len(provinces)} codes")
    elif region not in countries:
        raise PayloadRejected(f"{field}: country code is not on the list of TT 07/2016/TT-BCA")


def check_birth_digits(number: str, year: int, what: str) -> None:
    """Digit 4 (century and sex: 0/1 for 1900-1999, 2/3 for 2000-2099, ...) and digits 5-6 (the year)
    of a CCCD number against a birth year."""
    if int(number[3]) // 2 != (year - _FIRST_CENTURY) // 100:
        raise PayloadRejected(f"{what} century digit does not match date of birth")
    if number[4:6] != f"{year % 100:02d}":
        raise PayloadRejected(f"{what} birth-year digits do not match date of birth")


def parse(text: str, fields: list[str]) -> CccdCard:
    """Checks an attempted CCCD (see looks_like) field by field; the first failure is the reason."""
    fields = _normalised(fields)
    if len(fields) < FIELDS:
        raise short_read(fields, _check, f"CCCD payload has {len(fields)} fields: expected {FIELDS}")
    # The 2024 card reportedly keeps the layout and may append empty fields.
    if any(fields[FIELDS:]):
        raise PayloadRejected(f"CCCD payload has {len(fields)} fields: expected {FIELDS}")
    return _check(Fields(fields))


def _check(f: Fields) -> CccdCard:
    number = f[0]
    check_number(field_ref("ID number", 0), number)
    old_id = f[1]
    if old_id and not _OLD_ID.fullmatch(old_id):
        raise PayloadRejected(f"{field_ref('old ID number', 1)}: expected 9 digits or empty")
    name = f[2]
    if not name.strip():
        raise PayloadRejected(f"{field_ref('name', 2)}: empty")
    if any(ch.isdigit() for ch in name):
        raise PayloadRejected(f"{field_ref('name', 2)}: contains a digit")
    birth = birth_date(field_ref("date of birth", 3), f[3], compact=True)
    gender_text = f[4]
    gender = _GENDERS.get(gender_text.casefold())
    if gender is None:
        if len(gender_text) <= QUOTABLE:
            raise PayloadRejected(f"{field_ref('gender', 4)} {shown(gender_text)}: expected Nam/Nữ")
        raise PayloadRejected(f"{field_ref('gender', 4)}: expected Nam/Nữ, got {shown(gender_text)}")
    address = f[5]
    issued = compact_date(field_ref("issue date", 6), f[6], first_year=FIRST_ISSUE_YEAR)
    if birth.year > issued.year:
        raise PayloadRejected(f"{field_ref('date of birth', 3)} is after {field_ref('issue date', 6)}")
    if int(number[3]) % 2 != (1 if gender == "female" else 0):
        raise PayloadRejected("ID number gender digit does not match gender field")
    check_birth_digits(number, birth.year, "ID number")
    return CccdCard(
        id=number,
        old_id=old_id or None,
        name=name.strip(),
        birth=birth,
        gender=gender,
        address=address,
        issued=issued.isoformat(),
    )
