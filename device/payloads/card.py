"""What every recogniser gives the spine: a parsed card and the record sealed for the tracing
authority. A payload type is one module with `TYPE`, `ID_IN_CLEAR`,
`looks_like(text, fields)` and `parse(text, fields) -> Card`, plus its entry in `RECOGNISERS`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol


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

    def __repr__(self) -> str:
        return "PersonRecord(<personal data>)"

    def sealed(self) -> dict[str, Any]:
        """What the sealed box carries beside the type and the id."""
        out: dict[str, Any] = {}
        if self.name is not None:
            out["name"] = self.name
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
