"""BHYT health-insurance card QR (spec: qr-payloads.md §2): 15 fields (v1) or 17 fields (v2), last `$`.

Offline only structure and consistency can be checked. Field 13 is an opaque issuer MAC: its format is
checked, never its value, so no genuine card is ever rejected for it.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import date
from typing import Any, Final

from device.errors import PayloadRejected
from device.payloads.card import Fields, PersonRecord, mask, short_read
from device.payloads.checks import (
    Birth,
    birth_date,
    field_ref,
    hex_text,
    shown,
    slashed_date,
)

TYPE: Final = "bhyt"
ID_IN_CLEAR: Final = True
FIELDS_V1 = 15
FIELDS_V2 = 17
EN_DASH = "\u2013"
# The health-insurance law dates from 1992: no card date can be earlier.
FIRST_CARD_YEAR = 1992

# v1: group (2 letters) + benefit level + province + the 10-digit BHXH number; v2: the BHXH number only.
# Either number may sit in either layout: cards reissued after 2021 from old numbers are reported.
_CARD_V1 = re.compile(r"[A-Za-z]{2}\d{13}", re.ASCII)
_CARD_V2 = re.compile(r"\d{10}", re.ASCII)
# Loose enough to recognise a damaged card number as an attempted BHYT rather than some other code.
_CARD_LIKE = re.compile(r"[A-Za-z0-9]{8,16}")
_FACILITY = re.compile(r"\d{2}[A-Za-z0-9]{3}", re.ASCII)
_CHECK = re.compile(r"[0-9A-Fa-f]{1,16}-\d{4}", re.ASCII)
_DIGITS = re.compile(r"\d+", re.ASCII)
_NOT_PRINTABLE_ASCII = re.compile(r"[^ -~]")
_HEX_DIGITS = re.compile(r"[0-9A-Fa-f]+")
BHXH_DIGITS = 10
# The parent's name on a child's card: the one field that may be plain text.
PARENT = 10
_MANAGING_WITH_NUMBER = 14
# This device reads scanners without an input method (evdev or serial bytes), so the letters came with
# the code: it was made from text once typed through one. Nothing here can be switched off.
IME_DAMAGE = (
    "non-ASCII character in BHYT payload (Vietnamese letters where a card has only hex and digits: text "
    "once typed through a Vietnamese IME such as Unikey Telex/VNI; this reader uses none, so the code "
    "itself is damaged: scan the original card)"
)
LAYOUT_DAMAGE = (
    "non-ASCII character in BHYT payload (the host keyboard layout probably differs from the scanner's: "
    "set both to US)"
)
MISSING_END = "BHYT payload must end with the field '$'"
# Marks an IME composes onto Latin letters: grave, acute, circumflex, tilde, breve, hook, horn, dot below.
_VIETNAMESE_MARKS = frozenset("\u0300\u0301\u0302\u0303\u0306\u0309\u031b\u0323")


@dataclass(frozen=True, slots=True)
class BhytCard:
    """A parsed BHYT card. Personal data throughout; field names follow the shared test vectors."""

    variant: str
    card_no: str
    bhxh_number: str
    name: str
    birth: Birth
    gender: str
    address: str | None
    kcb_code: str
    valid_from: str
    valid_to: str | None
    issued: str
    manager_code: str
    parent_name: str | None
    area_code: str
    five_years_from: str | None
    check_field: str
    benefit_level: str | None
    issuer: str | None

    def __repr__(self) -> str:
        return f"BhytCard(variant={self.variant!r}, <personal data>)"

    @property
    def subject_id(self) -> str:
        return self.bhxh_number

    @property
    def masked(self) -> str:
        # Six digits hidden, as of a CCCD number, so the masked forms are equally hard to guess.
        return mask(self.bhxh_number, 2, 2)

    def record(self) -> PersonRecord:
        return PersonRecord(id_number=self.bhxh_number, name=self.name, birth_year=self.birth.year)

    def personal(self) -> dict[str, Any]:
        """Every parsed field, as the shared vectors name them. Personal data."""
        return {
            "card_no": self.card_no,
            "name": self.name,
            "dob": self.birth.iso(),
            "gender": self.gender,
            "address": self.address,
            "kcb_code": self.kcb_code,
            "valid_from": self.valid_from,
            "valid_to": self.valid_to,
            "issued": self.issued,
            "manager_code": self.manager_code,
            "parent_name": self.parent_name,
            "area_code": self.area_code,
            "five_years_from": self.five_years_from,
            "check_field": self.check_field,
            "benefit_level": self.benefit_level,
            "issuer": self.issuer,
        }

    def summary(self) -> dict[str, Any]:
        """What a technician may see: no name, address, full number or exact date. Card dates are
        years only, since a child's card runs from the birth date to the day before the 6th birthday."""
        return {
            "birth_year": self.birth.year,
            "gender": self.gender,
            "kcb_code": self.kcb_code,
            "valid_from_year": int(self.valid_from[:4]),
            "valid_to_year": None if self.valid_to is None else int(self.valid_to[:4]),
            "issued_year": int(self.issued[:4]),
            "benefit_level": self.benefit_level,
        }

    def expired(self, today: date) -> bool:
        return self.valid_to is not None and date.fromisoformat(self.valid_to) < today


def looks_like(text: str, fields: list[str]) -> bool:
    """An attempted BHYT: ends with `|$`, or has about the field count with a card-number-like start,
    or starts with a card number and a hex name however short the rest, or ends with `$` after some
    other separator (a keyboard layout that moved `|`)."""
    if len(fields) > 1 and fields[-1] == "$":
        return True
    if 12 <= len(fields) <= 18 and _CARD_LIKE.fullmatch(fields[0]):
        return True
    if len(fields) > 1 and _starts_like_a_card(fields[0], fields[1]):
        return True
    return _misplaced_separator(text) is not None


def _starts_like_a_card(card_no: str, name: str) -> bool:
    # Two letters and 13 digits are no other code's shape; ten digits might be a phone number, so a
    # v2 number needs the start of a hex name after it.
    if _CARD_V1.fullmatch(card_no):
        return True
    return bool(_CARD_V2.fullmatch(card_no)) and len(name) >= 2 and bool(_HEX_DIGITS.fullmatch(name))


def _misplaced_separator(text: str) -> str | None:
    if len(text) < 2 or text[-1] != "$":
        return None
    sep = text[-2]
    if sep.isalnum() or sep == "|":
        return None
    return sep if text.count(sep) + 1 in (FIELDS_V1, FIELDS_V2) else None


def _is_vietnamese_letter(ch: str) -> bool:
    if ch in "đĐ":
        return True
    decomposed = unicodedata.normalize("NFD", ch)
    base, marks = decomposed[0], decomposed[1:]
    return base.isascii() and base.isalpha() and bool(marks) and set(marks) <= _VIETNAMESE_MARKS


def _typing_damage(text: str, fields: list[str]) -> str | None:
    """Why the text cannot be what the card printed: a card is printable ASCII, apart from the parent's
    name (field 10), which a child's card may carry as plain Vietnamese text."""
    sep = _misplaced_separator(text)
    if sep is not None and "|" not in text:
        return (
            f"BHYT payload separators are '{sep}' instead of '|' (the host keyboard layout probably differs "
            "from the scanner's: set both to US)"
        )
    # The facility code may legitimately carry an en dash ("01 – 001").
    rest = [f.replace(EN_DASH, "-") if i == 5 else f for i, f in enumerate(fields) if i != PARENT]
    strange = set(_NOT_PRINTABLE_ASCII.findall("|".join(rest)))
    if not strange:
        return None
    return _non_ascii_damage(strange) or "BHYT payload contains a tab character"


def _non_ascii_damage(strange: set[str]) -> str | None:
    if strange and all(_is_vietnamese_letter(ch) for ch in strange):
        return IME_DAMAGE
    if any(not ch.isascii() for ch in strange):
        return LAYOUT_DAMAGE
    return None


def _optional_hex(field: str, value: str) -> str | None:
    return None if value in ("", "-") else hex_text(field, value)


def _optional_date(field: str, value: str) -> str | None:
    value = value.strip()
    return None if value == "-" else slashed_date(field, value, first_year=FIRST_CARD_YEAR).isoformat()


def parse(text: str, fields: list[str]) -> BhytCard:
    """Checks an attempted BHYT (see looks_like) field by field; the first failure is the reason."""
    damage = _typing_damage(text, fields)
    if damage is not None:
        raise PayloadRejected(damage)
    if fields[-1] != "$":
        # A read that ends in `$` stopped where a card does: a separator was lost, not the tail.
        if len(fields) < FIELDS_V1 and not text.endswith("$"):
            raise short_read(fields, _check, MISSING_END)
        raise PayloadRejected(MISSING_END)
    if len(fields) not in (FIELDS_V1, FIELDS_V2):
        raise PayloadRejected(
            f"BHYT payload has {len(fields)} fields: expected {FIELDS_V1} (v1 card) or {FIELDS_V2} (v2 card)"
        )
    return _check(Fields(fields))


def _check(f: Fields) -> BhytCard:
    card_no = f[0]
    if not (_CARD_V1.fullmatch(card_no) or _CARD_V2.fullmatch(card_no)):
        raise PayloadRejected(
            f"{field_ref('card number', 0)}: expected 10 digits (BHXH number) or 2 letters and 13 digits"
        )
    bhxh = card_no[-BHXH_DIGITS:]
    name = hex_text(field_ref("name", 1), f[1])
    birth = birth_date(field_ref("date of birth", 2), f[2], compact=False)
    gender = {"1": "male", "2": "female"}.get(f[3])
    if gender is None:
        raise PayloadRejected(f"{field_ref('gender', 3)} must be 1 (male) or 2 (female), got {shown(f[3])}")
    address = _optional_hex(field_ref("address", 4), f[4])
    kcb_code = re.sub(rf"[\s\-{EN_DASH}]", "", f[5])
    if not _FACILITY.fullmatch(kcb_code):
        raise PayloadRejected(
            f"{field_ref('facility code', 5)}: expected 'PP - XXX' (2 digits, dash, 3 characters)"
        )
    valid_from = slashed_date(field_ref("valid from", 6), f[6], first_year=FIRST_CARD_YEAR)
    valid_to = (
        None if f[7] == "-" else slashed_date(field_ref("valid to", 7), f[7], first_year=FIRST_CARD_YEAR)
    )
    if valid_to is not None and valid_to < valid_from:
        raise PayloadRejected(f"{field_ref('valid to', 7)} is before {field_ref('valid from', 6)}")
    issued = slashed_date(field_ref("issue date", 8), f[8], first_year=FIRST_CARD_YEAR)
    if birth.year > issued.year:
        raise PayloadRejected(f"{field_ref('date of birth', 2)} is after {field_ref('issue date', 8)}")
    manager = f[9]
    if not _DIGITS.fullmatch(manager):
        raise PayloadRejected(f"{field_ref('managing code', 9)}: expected digits")
    if len(manager) >= _MANAGING_WITH_NUMBER and not manager.endswith(bhxh):
        raise PayloadRejected(
            f"{field_ref('managing code', 9)} does not end with the card's 10-digit BHXH number"
        )
    parent = _parent_name(f[PARENT])
    area = f[11]
    if not (len(area) == 1 and area.isdigit()):
        raise PayloadRejected(f"{field_ref('living-area code', 11)}: expected one digit, got {shown(area)}")
    five_years = _optional_date(field_ref("five-year date", 12), f[12])
    if not _CHECK.fullmatch(f[13]):
        raise PayloadRejected(f"{field_ref('check string', 13)}: expected <1-16 hex digits>-<4 digits>")
    benefit = issuer = None
    if len(f) == FIELDS_V2:
        benefit = f[14]
        if benefit not in ("1", "2", "3", "4", "5"):
            raise PayloadRejected(
                f"{field_ref('benefit level', 14)} must be a digit 1-5, got {shown(benefit)}"
            )
        issuer = _optional_hex(field_ref("issuing office", 15), f[15])
    return BhytCard(
        variant="bhyt-v2" if len(f) == FIELDS_V2 else "bhyt-v1",
        card_no=card_no.upper(),
        bhxh_number=bhxh,
        name=name,
        birth=birth,
        gender=gender,
        address=address,
        kcb_code=kcb_code.upper(),
        valid_from=valid_from.isoformat(),
        valid_to=None if valid_to is None else valid_to.isoformat(),
        issued=issued.isoformat(),
        manager_code=manager,
        parent_name=parent,
        area_code=area,
        five_years_from=five_years,
        check_field=f[13],
        benefit_level=benefit,
        issuer=issuer,
    )


def _parent_name(value: str) -> str | None:
    """A child's card names a parent here: as hex in one parser, as plain text in others, with the
    Vietnamese letters kept or printed as `?`. Hex of a UTF-8 name always holds a digit, so text of hex
    digits with a digit among them is hex and must decode (a damaged hex name is not passed off as
    text); letters alone are a name."""
    if value in ("", "-"):
        return None
    if _HEX_DIGITS.fullmatch(value) and any(ch.isdigit() for ch in value):
        return hex_text(field_ref("parent name", PARENT), value)
    text = unicodedata.normalize("NFC", value)
    if all(ch in " ?" or (ch.isascii() and ch.isalpha()) or _is_vietnamese_letter(ch) for ch in text):
        return text
    # Digits among Vietnamese letters: hex that an input method rewrote, as in the other fields.
    damage = _non_ascii_damage({ch for ch in text if not ch.isascii()}) if _DIGITS.search(text) else None
    raise PayloadRejected(
        damage or f"{field_ref('parent name', PARENT)}: expected hex or a name (letters, spaces, '?')"
    )
