"""Recognisers: pure functions from a scanned text to a verdict. No I/O, no logging.

`recognise(text)` trims what a scanner adds around a code, rejects what no real code can be, and asks
each recogniser of `RECOGNISERS` in turn whether the text is an attempt at its type (`looks_like`);
the first that says yes judges it (`parse`), and a text none claims is `other`. A text shaped like a
known type that fails one of its checks (shared/specs/) is rejected with the reason, never passed on as
`other`. The result carries the normalised subject id (personal data: it only ever leaves this layer
through privacy.py) and a masked form that is safe to show and log.

A new payload type is one module beside these (see card.py) and one entry in `RECOGNISERS`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal, Protocol

from device.errors import PayloadRejected
from device.payloads import bhyt, cccd, personal
from device.payloads.bhyt import BhytCard
from device.payloads.card import Card, PersonRecord, mask
from device.payloads.cccd import CccdCard
from device.payloads.personal import PersonalQr

__all__ = [
    "MAX_CHARS",
    "RECOGNISERS",
    "BhytCard",
    "Card",
    "CccdCard",
    "CodeType",
    "Judgement",
    "PersonRecord",
    "PersonalQr",
    "Recogniser",
    "Recognition",
    "judge",
    "mask",
    "recognise",
    "trim",
]

CodeType = Literal["bhyt", "cccd", "personal", "other"]
MAX_CHARS = 4096
# C0 controls except tab (a scanner's field separator), DEL and C1 controls.
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f]")
# What scanners put around a code: a suffix (CR, LF, TAB), stray spaces, NUL padding at the end.
_WHITESPACE = " \t\r\n\x0b\x0c"
OTHER_SHOWN = 2
OTHER_HIDDEN = 6


class Recogniser(Protocol):
    """One payload type: a module such as bhyt.py."""

    @property
    def TYPE(self) -> CodeType: ...

    # Whether privacy mode `id` may publish the subject id in clear (never for a raw text).
    @property
    def ID_IN_CLEAR(self) -> bool: ...

    def looks_like(self, text: str, fields: list[str]) -> bool: ...

    def parse(self, text: str, fields: list[str]) -> Card: ...


# Asked in this order. The personal QR comes first: with its number shown in full it starts like a CCCD.
RECOGNISERS: tuple[Recogniser, ...] = (personal, bhyt, cccd)
_NOT_KNOWN = f"not a {' / '.join(r.TYPE for r in RECOGNISERS)} code (checkin.accept_other is off)"


@dataclass(frozen=True, slots=True)
class Recognition:
    type: CodeType | None
    accepted: bool
    # Names the field and the rule; never quotes personal data.
    reason: str | None = None
    variant: str | None = None
    # Normalised id: the 10-digit BHXH number for BHYT (stable across card generations), the 12-digit
    # number for CCCD, the QID for a personal QR, the whole text for other codes. Personal data.
    subject_id: str | None = None
    # Safe for display and logs, e.g. "0010******01".
    masked: str | None = None
    record: PersonRecord | None = None
    # Whether privacy mode `id` may send subject_id in clear.
    id_in_clear: bool = False

    def __repr__(self) -> str:
        return (
            f"Recognition(type={self.type!r}, accepted={self.accepted!r}, reason={self.reason!r}, "
            f"variant={self.variant!r}, masked={self.masked!r})"
        )


def trim(text: str) -> str:
    """Removes what scanners add around a code: leading and trailing whitespace (a CR, LF or TAB
    suffix, stray spaces) and NUL padding at the end. Spaces and tabs inside are data."""
    return text.rstrip(_WHITESPACE + "\x00").lstrip(_WHITESPACE)


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
    card: Card | None = None

    def __repr__(self) -> str:
        return f"Judgement({self.recognition!r})"


def judge(text: str, *, accept_other: bool = True) -> Judgement:
    """Trims the read, rejects what no real code can be, and checks the known types fully."""
    text = trim(text)
    reason = _basic_rejection(text)
    if reason is not None:
        return Judgement(Recognition(type=None, accepted=False, reason=reason))
    fields = text.split("|")
    for recogniser in RECOGNISERS:
        if not recogniser.looks_like(text, fields):
            continue
        try:
            card = recogniser.parse(text, fields)
        except PayloadRejected as exc:
            return Judgement(Recognition(type=recogniser.TYPE, accepted=False, reason=str(exc)))
        accepted = Recognition(
            type=recogniser.TYPE,
            accepted=True,
            variant=card.variant,
            subject_id=card.subject_id,
            masked=card.masked,
            record=card.record(),
            id_in_clear=recogniser.ID_IN_CLEAR,
        )
        return Judgement(accepted, card)
    if not accept_other:
        return Judgement(Recognition(type="other", accepted=False, reason=_NOT_KNOWN))
    return Judgement(
        Recognition(type="other", accepted=True, variant="other", subject_id=text, masked=_masked_other(text))
    )


def recognise(text: str, *, accept_other: bool = True) -> Recognition:
    """The verdict on one scanned text; never raises."""
    return judge(text, accept_other=accept_other).recognition
