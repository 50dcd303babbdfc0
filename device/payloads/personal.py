"""The unified personal QR of the Covid apps (Decision 1405/QĐ-BTTTT, from September 2021; spec:
personal-qr.md): six `|` fields, the document number masked by default.

| # | field        | content                                                                |
| - | ------------ | ---------------------------------------------------------------------- |
| 0 | SoGiayTo     | CCCD (12 digits), CMND (9) or passport number; masked: `******123456`   |
| 1 | HoTen        | full name, upper case, usually without diacritics                      |
| 2 | NgaySinh     | `yyyy-mm-dd`, day and month may be masked (`1990-**-**`)               |
| 3 | LoaiDinhDanh | `0` declared by the person, `1` on their behalf                        |
| 4 | QID          | the person's id on the national QR platform: the subject               |
| 5 | EXT          | `<`-separated extras (a helper's QID, sex, BHYT and phone numbers ...) |

The QID is the subject because it stays when the app toggles masking; the document number, as shown,
goes only into the sealed record. Name, birth date, document number and EXT are personal data.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Any, Final

from device.errors import PayloadRejected
from device.payloads import cccd
from device.payloads.card import Fields, PersonRecord, short_read
from device.payloads.checks import (
    FIRST_BIRTH_YEAR,
    LAST_CARD_YEAR,
    Birth,
    calendar_date,
    field_ref,
    shape,
    shown,
)

TYPE: Final = "personal"
# The QID identifies the person only on the QR platform; an employer that declared its workers there
# holds them in its roster, as it holds their card numbers.
ID_IN_CLEAR: Final = True
FIELDS = 6
_MASKED = re.compile(r"\*+[0-9A-Za-z]+", re.ASCII)
_CCCD = re.compile(r"\d{12}", re.ASCII)
_CMND = re.compile(r"\d{9}", re.ASCII)
# A CMND (9 digits) or a passport number: Vietnamese ones are a letter and 7 digits, foreign ones vary.
_OTHER_DOCUMENT = re.compile(r"[0-9A-Za-z]+", re.ASCII)
_DOCUMENT_CHARS = range(6, 13)
_BIRTH = re.compile(r"(\d{4})-(\d{2}|\*\*)-(\d{2}|\*\*)", re.ASCII)
# No card carries a date like this in field 2 (BHYT has dd/mm/yyyy there, CCCD the name).
_BIRTH_START = re.compile(r"\d{4}-", re.ASCII)
# The platform does not publish the QID's format; its published example has 18 digits. A range, so no
# genuine code is turned away, starting above a phone number's length.
QID_DIGITS = (12, 24)
_QID = re.compile(rf"\d{{{QID_DIGITS[0]},{QID_DIGITS[1]}}}", re.ASCII)
_DECLARED = {"0": "self", "1": "on behalf"}
# What the masked display shows of the QID.
QID_SHOWN = 2
QID_HIDDEN = 6


@dataclass(frozen=True, slots=True)
class PersonalQr:
    """A parsed personal QR. Personal data throughout."""

    document: str
    name: str
    birth: Birth
    declared: str
    qid: str
    ext: tuple[str, ...]
    variant: str = "personal"

    def __repr__(self) -> str:
        return "PersonalQr(<personal data>)"

    @property
    def subject_id(self) -> str:
        return self.qid

    @property
    def masked(self) -> str:
        # The length stays hidden, as for other codes: two digits tell people apart at a glance.
        return "*" * QID_HIDDEN + self.qid[-QID_SHOWN:]

    @property
    def document_kind(self) -> str:
        if self.document.startswith("*"):
            return "masked"
        if _CCCD.fullmatch(self.document):
            return "cccd"
        if _CMND.fullmatch(self.document):
            return "cmnd"
        return "passport"

    def record(self) -> PersonRecord:
        return PersonRecord(id_number=self.qid, name=None, birth_year=self.birth.year, document=self.document)

    def personal(self) -> dict[str, Any]:
        """Every parsed field. Personal data."""
        return {
            "document": self.document,
            "name": self.name,
            "dob": self.birth.iso(),
            "declared": self.declared,
            "qid": self.qid,
            "ext": list(self.ext),
        }

    def summary(self) -> dict[str, Any]:
        """What a technician may see: the birth year and the kinds of things, no value."""
        return {
            "birth_year": self.birth.year,
            "document": self.document_kind,
            "declared": self.declared,
            "ext_fields": len(self.ext),
        }


def looks_like(text: str, fields: list[str]) -> bool:
    """An attempted personal QR: a masked document number (which no card starts with), or a `yyyy-`
    birth date in field 2 (a card has a name there), or the declaration digit before a long QID.
    Checked before the cards: a fully shown 12-digit number would otherwise make it a broken CCCD."""
    if 1 < len(fields) <= FIELDS and _MASKED.fullmatch(fields[0]):
        return True
    # One field more is a personal QR with a stray separator; a card's layout is longer.
    if 2 < len(fields) <= FIELDS + 1 and _BIRTH_START.match(fields[2]):
        return True
    return len(fields) == FIELDS and fields[3] in _DECLARED and bool(_QID.fullmatch(fields[4]))


def parse(text: str, fields: list[str]) -> PersonalQr:
    """Checks an attempted personal QR (see looks_like) field by field; the first failure is the reason."""
    # Some sources deliver decomposed (NFD) letters; the name is kept composed.
    fields = [unicodedata.normalize("NFC", f) for f in fields]
    reason = f"personal QR has {len(fields)} fields: expected {FIELDS}"
    if len(fields) < FIELDS:
        raise short_read(fields, _check, reason)
    if len(fields) > FIELDS:
        raise PayloadRejected(reason)
    return _check(Fields(fields))


def _check(f: Fields) -> PersonalQr:
    document = f[0]
    _check_document(document)
    name = f[1].strip()
    if not name:
        raise PayloadRejected(f"{field_ref('name', 1)}: empty")
    if any(ch.isdigit() for ch in name):
        raise PayloadRejected(f"{field_ref('name', 1)}: contains a digit")
    if not all(ch.isalpha() or ch in " .'-" for ch in name):
        raise PayloadRejected(f"{field_ref('name', 1)}: expected letters and spaces")
    birth = _birth(field_ref("date of birth", 2), f[2])
    if _CCCD.fullmatch(document):
        cccd.check_birth_digits(document, birth.year, "document number [0]")
    declared = _DECLARED.get(f[3])
    if declared is None:
        raise PayloadRejected(
            f"{field_ref('declaration', 3)} must be 0 (by the person) or 1 (on their behalf), "
            f"got {shown(f[3])}"
        )
    qid = f[4]
    if not _QID.fullmatch(qid):
        raise PayloadRejected(f"{field_ref('QID', 4)}: expected {QID_DIGITS[0]}-{QID_DIGITS[1]} digits")
    ext = f[5]
    return PersonalQr(
        document=document,
        name=name,
        birth=birth,
        declared=declared,
        qid=qid,
        ext=tuple(ext.split("<")) if ext else (),
    )


def _check_document(document: str) -> None:
    field = field_ref("document number", 0)
    if _CCCD.fullmatch(document):
        cccd.check_number(field, document)
        return
    if _MASKED.fullmatch(document) or _OTHER_DOCUMENT.fullmatch(document):
        if len(document) not in _DOCUMENT_CHARS:
            raise PayloadRejected(f"{field}: expected 6-12 characters, got {len(document)}")
        return
    raise PayloadRejected(f"{field}: expected a CCCD, CMND or passport number (masked or not)")


def _birth(field: str, value: str) -> Birth:
    """`yyyy-mm-dd` with the day, or day and month, masked as `**`."""
    m = _BIRTH.fullmatch(value)
    if m is None or (m[2] == "**" and m[3] != "**"):
        raise PayloadRejected(f"{field}: expected yyyy-mm-dd (day and month may be **), got '{shape(value)}'")
    year = int(m[1])
    if not FIRST_BIRTH_YEAR <= year <= LAST_CARD_YEAR:
        raise PayloadRejected(f"{field}: year outside {FIRST_BIRTH_YEAR}-{LAST_CARD_YEAR}")
    month = None if m[2] == "**" else int(m[2])
    day = None if m[3] == "**" else int(m[3])
    if month is None:
        return Birth(year)
    calendar_date(field, year, month, day or 1)
    return Birth(year, month, day)
