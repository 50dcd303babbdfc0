"""Vietnamese plate numbers as location ids: `98C-123.45` -> `98C12345`.

Shape: two digits (the province), a series of one or two letters with an optional digit, then four to
six digits; single separators `-`, `.` or space between characters. Letters are taken in either case.
Only ASCII is accepted: a Cyrillic `С` or a full-width digit looks right on screen and would split one
bus into two locations at the broker.
"""

from __future__ import annotations

import re

from device.errors import ProvisionError

# One separator at most between two characters, none at either end.
_TYPED = re.compile(r"[0-9A-Za-z]+(?:[-. ][0-9A-Za-z]+)*", re.ASCII)
_SHAPE = re.compile(r"([0-9]{2})([A-Z]{1,2})([0-9]?)([0-9]{4,6})", re.ASCII)
EXPECTED = (
    "expected two digits, a one- or two-letter series with an optional digit, then four to six digits, "
    "separated by nothing, '-', '.' or one space (e.g. 98C-123.45, 51G1-234.56, 29LD-1234)"
)


def normalise_plate(typed: str) -> str:
    """The location id for a plate; ProvisionError quotes what was typed and says what is expected."""
    text = typed.strip()
    if _TYPED.fullmatch(text):
        compact = re.sub(r"[-. ]", "", text).upper()
        if _SHAPE.fullmatch(compact):
            return compact
    raise ProvisionError(f"plate {typed!r}{_foreign(text)} is not a Vietnamese plate number: {EXPECTED}")


def plate_name(typed: str) -> str:
    """The plate as the technician wrote it (`98C-123.45`), for labels: the compact id is ambiguous."""
    return " ".join(typed.split()).upper()


def _foreign(text: str) -> str:
    # Look-alikes (Cyrillic С, full-width ９) are invisible in a quoted string: name them.
    odd = [f"{ch!r} (U+{ord(ch):04X})" for ch in dict.fromkeys(text) if not ch.isascii()]
    return f" (holds non-ASCII {', '.join(odd)})" if odd else ""
