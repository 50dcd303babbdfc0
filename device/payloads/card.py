"""What every recogniser gives the spine: a parsed card, the record sealed for the tracing authority,
and the rule for reads that stop early. A payload type is one module with `TYPE`, `ID_IN_CLEAR`,
`looks_like(text, fields)` and `parse(text, fields) -> Card`, plus its entry in `RECOGNISERS`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from device.errors import PayloadRejected

CUT_OFF = "the code looks cut off after field {}: hold the card still, or check the scanner's maximum length"


def mask(value: str, keep_start: int = 4, keep_end: int = 2) -> str:
    if len(value) <= keep_start + keep_end:
        return "*" * len(value)
    return value[:keep_start] + "*" * (len(value) - keep_start - keep_end) + value[-keep_end:]


@dataclass(frozen=True, slots=True)
class PersonRecord:
    """The minimal parsed record sealed for the tracing authority. Personal data."""

    id_number: str
    name: str | None
    birth_year: int | None
    # The document number as the code shows it, where that is not the subject (a personal QR's, which
    # the app may show masked).
    document: str | None = None

    def __repr__(self) -> str:
        return "PersonRecord(<personal data>)"

    def sealed(self) -> dict[str, Any]:
        """What the sealed box carries beside the type and the id."""
        out: dict[str, Any] = {}
        if self.name is not None:
            out["name"] = self.name
        if self.document is not None:
            out["document"] = self.document
        out["birth_year"] = self.birth_year
        return out


class Card(Protocol):
    """A code that passed every check of its type. Personal data throughout."""

    @property
    def variant(self) -> str: ...

    @property
    def subject_id(self) -> str:
        """The normalised id the HMAC is taken of: stable for one person whatever the card generation
        or the app's settings."""
        ...

    @property
    def masked(self) -> str:
        """Safe for display and logs."""
        ...

    def record(self) -> PersonRecord: ...

    def personal(self) -> dict[str, Any]:
        """Every parsed field. Personal data."""
        ...

    def summary(self) -> dict[str, Any]:
        """What a technician may see: no name, address, full number or exact date."""
        ...


class CutOff(PayloadRejected):
    """A parser asked for a field the read does not hold whole."""

    def __init__(self, after: int) -> None:
        super().__init__(CUT_OFF.format(after))


class Fields:
    """A read's fields as a parser consumes them, in order. In a read shorter than its layout the last
    field may be partial: asking for it, or for any later one, raises CutOff."""

    def __init__(self, fields: list[str], *, partial_last: bool = False) -> None:
        self._fields = fields
        self._whole = len(fields) - 1 if partial_last else len(fields)

    def __len__(self) -> int:
        return len(self._fields)

    def __getitem__(self, index: int) -> str:
        if index >= self._whole:
            raise CutOff(len(self._fields) - 1)
        return self._fields[index]


def short_read(fields: list[str], check: Callable[[Fields], object], reason: str) -> PayloadRejected:
    """The verdict on a read with fewer fields than its layout. When every field before the last passes
    the layout's checks, the read stopped early (a scanner's buffer, a card moved away): it says so.
    Otherwise a field was lost or merged inside, and `reason` (the field count) says that."""
    try:
        check(Fields(fields, partial_last=True))
    except CutOff as cut:
        return cut
    except PayloadRejected:
        pass
    return PayloadRejected(reason)
