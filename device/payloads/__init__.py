"""Recognisers: pure functions from a scanned text to a verdict. No I/O, no logging.

`recognise(text)` strips a scanner's suffix, rejects what no real code can be, and classifies the rest
as `bhyt`, `cccd` or `other`. A text shaped like a BHYT or CCCD that fails a check of the spec
(shared/specs/qr-payloads.md) is rejected with the reason, never passed on as `other`. The result
carries the normalised subject id (personal data: it only ever leaves this layer through privacy.py)
and a masked form that is safe to show and log.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from device.errors import PayloadRejected
from device.payloads import bhyt, cccd
from device.payloads.bhyt import BhytCard
from device.payloads.cccd import CccdCard

__all__ = [
    "MAX_CHARS",
    "BhytCard",
    "CccdCard",
    "CodeType",
    "Judgement",
    "PersonRecord",
    "Recognition",
    "judge",
    "mask",
    "recognise",
    "strip_suffix",
]

CodeType = Literal["bhyt", "cccd", "other"]
MAX_CHARS = 4096
# C0 controls except tab (a scanner's field separator), DEL and C1 controls.
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f]")
OTHER_SHOWN = 2
OTHER_HIDDEN = 6


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
    control = _CONTROL.search(text)
    if control is not None:
        return f"control character U+{ord(control[0]):04X} in scan"
    return None


def _masked_other(text: str) -> str:
    # The first characters tell a technician which kind of code it was; the length stays hidden.
    # A short code is hidden whole: its first characters would be most of it.
    if len(text) < 2 * OTHER_SHOWN + 1:
        return "*" * len(text)
    return text[:OTHER_SHOWN] + "*" * OTHER_HIDDEN


@dataclass(frozen=True, slots=True)
class Judgement:
    """A verdict with the parsed card behind it, for `qr-checkin inspect`. Personal data."""

    recognition: Recognition
    card: BhytCard | CccdCard | None = None

    def __repr__(self) -> str:
        return f"Judgement({self.recognition!r})"


def judge(text: str, *, accept_other: bool = True) -> Judgement:
    """Strips the scanner's suffix, rejects what no real code can be, and checks BHYT and CCCD fully."""
    text = strip_suffix(text)
    reason = _basic_rejection(text)
    if reason is not None:
        return Judgement(Recognition(type=None, accepted=False, reason=reason))
    fields = text.split("|")
    if bhyt.looks_like(text, fields):
        try:
            health = bhyt.parse(text, fields)
        except PayloadRejected as exc:
            return Judgement(Recognition(type="bhyt", accepted=False, reason=str(exc)))
        # Masked like a CCCD number: six digits hidden, so the masked forms are equally hard to guess.
        masked = mask(health.bhxh_number, 2, 2)
        return Judgement(_accepted("bhyt", health, health.bhxh_number, masked), health)
    if cccd.looks_like(fields):
        try:
            identity = cccd.parse(fields)
        except PayloadRejected as exc:
            return Judgement(Recognition(type="cccd", accepted=False, reason=str(exc)))
        return Judgement(_accepted("cccd", identity, identity.id, mask(identity.id)), identity)
    if not accept_other:
        return Judgement(
            Recognition(
                type="other", accepted=False, reason="not a BHYT or CCCD code (checkin.accept_other is off)"
            )
        )
    return Judgement(
        Recognition(type="other", accepted=True, variant="other", subject_id=text, masked=_masked_other(text))
    )


def _accepted(code_type: CodeType, card: BhytCard | CccdCard, subject_id: str, masked: str) -> Recognition:
    return Recognition(
        type=code_type,
        accepted=True,
        variant=card.variant,
        subject_id=subject_id,
        masked=masked,
        record=PersonRecord(id_number=subject_id, name=card.name, birth_year=card.birth.year),
    )


def recognise(text: str, *, accept_other: bool = True) -> Recognition:
    """The verdict on one scanned text; never raises."""
    return judge(text, accept_other=accept_other).recognition
