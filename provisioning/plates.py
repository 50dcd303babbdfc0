"""Vietnamese plate numbers as location ids: `98C-123.45` -> `98C12345`.

Shape: two digits (the province), a series of one or two letters with an optional digit, then four to
six digits; single separators `-`, `.` or space between characters. Letters are taken in either case.
Only ASCII is accepted: a Cyrillic `С` or a full-width digit looks right on screen and would split one
bus into two locations at the broker.
"""

from __future__ import annotations

import re

from device.errors import ProvisionError

_SEP = "[-. ]"
# A separator ends the series, so `98C-1234567` is refused rather than read as series C1.
_TYPED = re.compile(
    rf"(?P<province>[0-9]{{2}}){_SEP}?(?P<series>[A-Z]{{1,2}}[0-9]?)"
    rf"(?:{_SEP}(?P<spaced>[0-9]+(?:{_SEP}[0-9]+)?)|(?P<joined>[0-9]{{4,6}}))",
    re.ASCII,
)
EXPECTED = (
    "expected two digits, a one- or two-letter series with an optional digit, then four to six digits, "
    "separated by nothing, '-', '.' or one space (e.g. 98C-123.45, 51G1-234.56, 29LD-1234)"
)


def normalise_plate(typed: str) -> str:
    """The location id for a plate; ProvisionError quotes what was typed and says what is expected."""
    text = typed.strip()
    # isascii first: str.upper() turns 'ß' into 'SS' and 'ı' into 'I'.
    match = _TYPED.fullmatch(text.upper()) if text.isascii() else None
    if match is not None:
        number = re.sub(_SEP, "", match["spaced"] or match["joined"])
        if 4 <= len(number) <= 6:
            return f"{match['province']}{match['series']}{number}"
    raise ProvisionError(f"plate {typed!r}{_foreign(text)} is not a Vietnamese plate number: {EXPECTED}")


def plate_name(typed: str) -> str:
    """The plate as the technician wrote it (`98C-123.45`), for labels: the compact id is ambiguous."""
    return " ".join(typed.split()).upper()


def _foreign(text: str) -> str:
    # Look-alikes (Cyrillic С, full-width ９) are invisible in a quoted string: name them.
    odd = [f"{ch!r} (U+{ord(ch):04X})" for ch in dict.fromkeys(text) if not ch.isascii()]
    return f" (holds non-ASCII {', '.join(odd)})" if odd else ""
