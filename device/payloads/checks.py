"""Field readers shared by the BHYT and CCCD recognisers.

Each reader returns the parsed value or raises PayloadRejected with a reason of the form
"<field> [<index>]: <rule>". Reasons go to logs and to the worker's display, so a value is quoted only
when it cannot be personal data: dates never (a child's card runs from the birth date), other values
only when at most three characters long (a gender code, a digit); a malformed date of birth is
described by its shape.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import date

from device.errors import PayloadRejected

# re.ASCII throughout: \d would otherwise take Arabic-Indic and other Unicode digits.
_SLASHED = re.compile(r"(\d{1,2})/(\d{1,2})/(\d{4})", re.ASCII)
_YEAR = re.compile(r"\d{4}", re.ASCII)
_COMPACT = re.compile(r"\d{8}", re.ASCII)
_MONTH_YEAR = re.compile(r"\d{6}", re.ASCII)
# Unicode category Cc: C0 controls, DEL and C1 controls.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_HEX = re.compile(r"(?:[0-9A-Fa-f]{2})+")
# Longer values could be personal data (a name, a date): reasons give only their length.
QUOTABLE = 3
# Nobody alive was born earlier; the CCCD number scheme starts there too.
FIRST_BIRTH_YEAR = 1900
# Card dates (validity, issue) beyond this are a damaged read, not a card this device will meet.
LAST_CARD_YEAR = 2099


@dataclass(frozen=True, slots=True)
class Birth:
    """A date of birth as precise as the card gives it (cards may carry the year only)."""

    year: int
    month: int | None = None
    day: int | None = None

    def iso(self) -> str:
        if self.month is None:
            return f"{self.year:04d}"
        if self.day is None:
            return f"{self.year:04d}-{self.month:02d}"
        return f"{self.year:04d}-{self.month:02d}-{self.day:02d}"


def field_ref(name: str, index: int) -> str:
    """How a reason names a field: "name [2]", its name and its place among the code's fields."""
    return f"{name} [{index}]"


def shown(value: str) -> str:
    """A bad value as a reason may show it: quoted when short, otherwise only its length."""
    if len(value) <= QUOTABLE:
        return f"'{value}'"
    return f"a {len(value)}-character value"


def shape(value: str) -> str:
    """The form of a value without its content: digits become 9, letters a ('01/01/1990' -> '99/99/9999'),
    anything else outside ASCII ? (other scripts' digits included: they are not digits on a card)."""
    out = "".join(
        "9" if "0" <= ch <= "9" else "a" if ch.isalpha() else ch if ch.isascii() else "?" for ch in value[:16]
    )
    return out + ("…" if len(value) > 16 else "")


def calendar_date(field: str, year: int, month: int, day: int) -> date:
    try:
        return date(year, month, day)
    except ValueError:
        raise PayloadRejected(f"{field}: impossible date") from None


def _card_date(field: str, year: int, month: int, day: int, first_year: int) -> date:
    if not first_year <= year <= LAST_CARD_YEAR:
        raise PayloadRejected(f"{field}: year {year} outside {first_year}-{LAST_CARD_YEAR}")
    return calendar_date(field, year, month, day)


def slashed_date(field: str, value: str, *, first_year: int) -> date:
    """A card date `dd/mm/yyyy` (some issuers drop the leading zero of day or month). Not personal."""
    m = _SLASHED.fullmatch(value)
    if m is None:
        raise PayloadRejected(f"{field}: expected dd/mm/yyyy, got {shown(value)}")
    return _card_date(field, int(m[3]), int(m[2]), int(m[1]), first_year)


def compact_date(field: str, value: str, *, first_year: int) -> date:
    """A card date `ddmmyyyy` (CCCD). Not personal."""
    if _COMPACT.fullmatch(value) is None:
        raise PayloadRejected(f"{field}: expected ddmmyyyy, got {shown(value)}")
    return _card_date(field, int(value[4:]), int(value[2:4]), int(value[:2]), first_year)


def birth_date(field: str, value: str, *, compact: bool) -> Birth:
    """A date of birth: `dd/mm/yyyy` (BHYT) or `ddmmyyyy`/`mmyyyy` (CCCD), or the year alone."""
    if _YEAR.fullmatch(value):
        birth = Birth(int(value))
    elif compact and _COMPACT.fullmatch(value):
        day = calendar_date(field, int(value[4:]), int(value[2:4]), int(value[:2]))
        birth = Birth(day.year, day.month, day.day)
    elif compact and _MONTH_YEAR.fullmatch(value):
        month = calendar_date(field, int(value[2:]), int(value[:2]), 1)
        birth = Birth(month.year, month.month)
    elif not compact and (m := _SLASHED.fullmatch(value)):
        day = calendar_date(field, int(m[3]), int(m[2]), int(m[1]))
        birth = Birth(day.year, day.month, day.day)
    else:
        expected = "ddmmyyyy" if compact else "dd/mm/yyyy"
        raise PayloadRejected(f"{field}: expected {expected}, got '{shape(value)}'")
    if birth.year < FIRST_BIRTH_YEAR:
        raise PayloadRejected(f"{field}: year before {FIRST_BIRTH_YEAR}")
    return birth


def has_control(text: str) -> bool:
    return _CONTROL.search(text) is not None


def hex_text(field: str, value: str) -> str:
    """A field holding UTF-8 text as hex (either case), decoded and NFC-normalised."""
    if _HEX.fullmatch(value) is None:
        raise PayloadRejected(f"{field}: not an even-length hex string")
    try:
        text = bytes.fromhex(value).decode("utf-8")
    except UnicodeDecodeError:
        raise PayloadRejected(f"{field}: hex does not decode as UTF-8") from None
    if has_control(text):
        raise PayloadRejected(f"{field}: decoded text contains a control character")
    return unicodedata.normalize("NFC", text)
