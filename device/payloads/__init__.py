"""Recognisers: pure functions from a scanned text to a verdict. No I/O, no logging.

`recognise(text)` strips a scanner's suffix, rejects what no real code can be, and classifies the rest
as `bhyt`, `cccd` or `other`. The result carries the normalised subject id (personal data: it only
ever leaves this layer through privacy.py) and a masked form that is safe to show and log.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

CodeType = Literal["bhyt", "cccd", "other"]
MAX_CHARS = 4096


@dataclass(frozen=True, slots=True)
class PersonRecord:
    """The minimal parsed record sealed for the tracing authority. Personal data."""

    id_number: str
    name: str | None
    birth_year: int | None

    def __repr__(self) -> str:
        return "PersonRecord(<personal data>)"


@dataclass(frozen=True, slots=True)
class Recognition:
    type: CodeType | None
    accepted: bool
    # Names the field and the rule; never quotes personal data.
    reason: str | None = None
    variant: str | None = None
    # Normalised id: the 10-digit BHXH number for BHYT (stable across card generations), the 12-digit
    # number for CCCD, the whole text for other codes. Personal data.
    subject_id: str | None = None
    # Safe for display and logs, e.g. "0010******01".
    masked: str | None = None
    record: PersonRecord | None = None

    def __repr__(self) -> str:
        return (
            f"Recognition(type={self.type!r}, accepted={self.accepted!r}, reason={self.reason!r}, "
            f"variant={self.variant!r}, masked={self.masked!r})"
        )


def strip_suffix(text: str) -> str:
    """Removes what scanners append (CR, LF, CRLF, NUL padding); inner spaces are data."""
    return text.rstrip("\r\n\x00")


def mask(value: str, keep_start: int = 4, keep_end: int = 2) -> str:
    if len(value) <= keep_start + keep_end:
        return "*" * len(value)
    return value[:keep_start] + "*" * (len(value) - keep_start - keep_end) + value[-keep_end:]


def _basic_rejection(text: str) -> str | None:
    if not text.strip():
        return "empty scan"
    if len(text) > MAX_CHARS:
        return f"too long: {len(text)} characters (at most {MAX_CHARS})"
    for ch in text:
        if (ord(ch) < 0x20 and ch != "\t") or 0x7F <= ord(ch) < 0xA0:
            return f"control character U+{ord(ch):04X} in scan"
    return None


def recognise(text: str, *, accept_other: bool = True) -> Recognition:
    text = strip_suffix(text)
    reason = _basic_rejection(text)
    if reason is not None:
        return Recognition(type=None, accepted=False, reason=reason)
    if text.endswith("|$"):
        fields = text.split("|")
        return Recognition(
            type="bhyt", accepted=True, variant="bhyt", subject_id=fields[0][-10:], masked=mask(fields[0])
        )
    fields = text.split("|")
    if len(fields) >= 7 and len(fields[0]) == 12 and fields[0].isdigit():
        return Recognition(
            type="cccd", accepted=True, variant="cccd", subject_id=fields[0], masked=mask(fields[0])
        )
    if not accept_other:
        return Recognition(
            type="other", accepted=False, reason="not a BHYT or CCCD code (checkin.accept_other is off)"
        )
    return Recognition(type="other", accepted=True, variant="other", subject_id=text, masked=mask(text, 2, 0))
