"""From key events to the text a scanner typed: `KeystrokeDecoder` on a layout of keymaps.py, and the
heuristics that tell a code typed through the wrong layout (`layout_damage`).

`KeystrokeDecoder` keeps no I/O and no clock: gaps are measured between the events' own timestamps;
the source asks it to `flush()` when the line stays silent.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Literal, Protocol

from evdev import ecodes

from device.sources.keymaps import (
    CTRL_KEYS,
    DEAD_SPACING,
    ENTER_KEYS,
    IGNORED_KEYS,
    KEY_DOWN,
    KEY_REPEAT,
    KEYPAD_DIGITS,
    LAYOUTS,
    MAX_ALT_DIGITS,
    SHIFT_KEYS,
    LayoutName,
    Levels,
    alt_code_char,
    is_alphabetic,
)

Terminator = Literal["enter", "tab", "gap"]

# The longest code read from the keys: QR codes hold at most 7089 characters (numeric mode), and the
# recognisers refuse anything past 4096; beyond this a scanner is typing without a terminator.
MAX_CODE_CHARS = 8192
# How a damage reason begins when a code never got its terminator.
NO_TERMINATOR = "no terminator"

VIETNAMESE_VOWELS = frozenset("aeiouyAEIOUY")
# grave, acute, tilde, hook above, dot below; circumflex, breve, horn
VIETNAMESE_MARKS = frozenset("\u0300\u0301\u0303\u0309\u0323\u0302\u0306\u031b")

# Patterns of the codes we read, where a symbol typed through the wrong layout shows.
PIPED_LEAD = re.compile(r"^[A-Za-z0-9]{10,15}([^A-Za-z0-9\s])")
MIN_SEPARATORS = 6  # a CCCD code has 6 '|', a BHYT code 14 or 16
# What other codes separate fields with ("ABC1234567-01-02..."); '|' never comes out as one of these.
PLAIN_SEPARATORS = frozenset("-_.,;:/")
BHYT_DATE = re.compile(r"\d{2}([^\d\s])\d{2}\1\d{4}")
URL_SCHEME = re.compile(r"^https?[^A-Za-z0-9]", re.IGNORECASE)
URL_START = re.compile(r"^https?://", re.IGNORECASE)


def layout_hint(layout: str) -> str:
    return f"check that the scanner's keyboard layout matches scanner.hid.layout = '{layout}'"


def is_vietnamese_letter(char: str) -> bool:
    """A letter of the Vietnamese alphabet with its marks (ă â đ ê ô ơ ư and the five tones)."""
    if char in "đĐ":
        return True
    parts = unicodedata.normalize("NFD", char)
    return len(parts) > 1 and parts[0] in VIETNAMESE_VOWELS and all(m in VIETNAMESE_MARKS for m in parts[1:])


def layout_damage(text: str, keyed: str, layout: str) -> str | None:
    """Why `text` cannot be a real payload read through the right layout, or None.

    `keyed` is `text` without the characters that came as Alt+numpad codes. BHYT codes are ASCII;
    the Vietnamese of CCCD codes mostly has no key on any layout, so a scanner types it as Alt codes,
    perhaps with the few letters its layout has (é, à on French). So a non-ASCII character typed by a
    key means the scanner and the host disagree on the layout, unless it is a Vietnamese letter in a
    code that also holds Alt-coded characters. The ASCII symbols that move between layouts give
    themselves away in the structure of BHYT and CCCD codes and of web addresses.
    """
    alt_coded = len(text) > len(keyed)
    foreign = sorted({ch for ch in keyed if ord(ch) > 0x7E and not (alt_coded and is_vietnamese_letter(ch))})
    if foreign:
        shown = ", ".join(repr(ch) for ch in foreign[:3])
        return f"keys typed characters no QR payload holds ({shown}): {layout_hint(layout)}"
    moved = _moved_separator(text)
    return f"{moved}: {layout_hint(layout)}" if moved else None


def _moved_separator(text: str) -> str | None:
    if "|" not in text:
        # BHYT and CCCD codes open with the card or ID number (10-15 letters and digits), then '|'.
        lead = PIPED_LEAD.match(text)
        if lead and lead[1] not in PLAIN_SEPARATORS and text.count(lead[1]) >= MIN_SEPARATORS:
            return f"looks like a BHYT/CCCD code whose '|' separators came out as {lead[1]!r}"
    elif text.endswith("$"):
        for field in text.split("|"):
            date = BHYT_DATE.fullmatch(field.strip())
            if date and date[1] != "/":
                return f"looks like a BHYT code whose date '/' came out as {date[1]!r}"
    if URL_SCHEME.match(text) and not URL_START.match(text):
        return "looks like a web address whose ':' or '/' came out as other characters"
    return None


class KeyInput(Protocol):
    """What the decoder reads of an `evdev.InputEvent`."""

    type: int
    code: int
    value: int

    def timestamp(self) -> float: ...


@dataclass(frozen=True, slots=True)
class Typed:
    """One code read from the keys. `text` is personal data."""

    text: str
    damage: str | None = None

    def __repr__(self) -> str:
        return f"Typed(chars={len(self.text)}, damage={self.damage!r})"


class KeystrokeDecoder:
    """Turns a scanner's key events into codes: Shift, Caps Lock, AltGr, dead keys, Alt+numpad.

    Enter always ends a code (no payload holds a line break); with terminator "tab" a Tab does too,
    otherwise a Tab is a character. With terminator "gap" a silence of `gap_s` between two keys also
    ends a code, for scanners that send no suffix. Empty codes (a CR after a Tab suffix) are skipped.
    Autorepeat events are ignored: a scanner never holds a key, and a repeat means a stalled host.
    """

    def __init__(
        self, layout: LayoutName = "us", *, terminator: Terminator = "enter", gap_s: float = 0.08
    ) -> None:
        self._layout = LAYOUTS[layout]
        self._tab_ends = terminator == "tab"
        self._gap_s = gap_s if terminator == "gap" else None
        self._caps = False
        self._shift: set[int] = set()
        self._ctrl: set[int] = set()
        self._alt: set[int] = set()
        self._altgr = False
        self._alt_digits = ""
        self._dead: str | None = None
        self._last_key_at: float | None = None
        self._reset_code()

    def _reset_code(self) -> None:
        self._chars: list[str] = []
        self._keyed: list[str] = []
        self._damage: str | None = None
        self._alt_digits = ""
        self._dead = None

    @property
    def pending(self) -> bool:
        """Whether part of a code has been read and not yet ended."""
        return bool(self._chars or self._alt_digits or self._dead or self._damage)

    def flush(self) -> Typed | None:
        """Ends the current code after a silence (terminator "gap"); None when there is none."""
        return self._end() if self.pending else None

    def feed(self, event: KeyInput) -> Typed | None:
        """Reads one event; returns a code when this event ended one."""
        if event.type == ecodes.EV_SYN and event.code == ecodes.SYN_DROPPED:
            self._damaged("the kernel dropped key events (the reader fell behind)")
            return None
        if event.type != ecodes.EV_KEY or event.value == KEY_REPEAT:
            return None
        down = event.value == KEY_DOWN
        if self._modifier(event.code, down) or not down:
            return None
        ended = None
        at = event.timestamp()
        if self._gap_s is not None and self._last_key_at is not None and at - self._last_key_at > self._gap_s:
            ended = self.flush()
        self._last_key_at = at
        decoded = self._key(event.code)
        if decoded is None and len(self._chars) >= MAX_CODE_CHARS:
            # The buffer stays bounded: what came so far is one rejected scan.
            self._damaged(f"{NO_TERMINATOR} after {MAX_CODE_CHARS} characters")
            decoded = self._end()
        return decoded or ended

    def unterminated(self, reason: str) -> Typed | None:
        """Ends the pending code as damaged: its terminator never came (the line fell silent)."""
        if not self.pending:
            return None
        self._damaged(reason)
        return self._end()

    def _modifier(self, code: int, down: bool) -> bool:
        if code in SHIFT_KEYS:
            _hold(self._shift, code, down)
        elif code in CTRL_KEYS:
            _hold(self._ctrl, code, down)
        elif code == ecodes.KEY_RIGHTALT and self._layout.altgr:
            self._altgr = down
        elif code in (ecodes.KEY_LEFTALT, ecodes.KEY_RIGHTALT):
            _hold(self._alt, code, down)
            if not self._alt:
                self._end_alt_code()
        elif code == ecodes.KEY_CAPSLOCK:
            self._caps ^= down
        else:
            return code in IGNORED_KEYS
        return True

    def _key(self, code: int) -> Typed | None:
        name = ecodes.KEY.get(code, str(code))
        if isinstance(name, (list, tuple)):
            name = name[0]
        if self._alt:
            if code in KEYPAD_DIGITS:
                # Kept bounded: only whether it grew too long matters past MAX_ALT_DIGITS.
                self._alt_digits = (self._alt_digits + KEYPAD_DIGITS[code])[-(MAX_ALT_DIGITS + 2) :]
                if len(self._alt_digits.lstrip("0")) > MAX_ALT_DIGITS:
                    self._damaged("Alt+numpad code longer than any character's")
            else:
                self._damaged(f"Alt+{name} types no character: {layout_hint(self._layout.name)}")
            return None
        if self._ctrl:
            self._damaged(f"Ctrl+{name} from the scanner: set it to send plain text")
            return None
        if code in ENTER_KEYS or (code == ecodes.KEY_TAB and self._tab_ends):
            return self._end() if self.pending else None
        if code == ecodes.KEY_TAB:
            self._type("\t")
            return None
        levels = self._layout.keys.get(code)
        char = self._level(levels) if levels else ""
        if not char:
            self._damaged(f"key {name} types no character: {layout_hint(self._layout.name)}")
        elif unicodedata.combining(char):
            self._dead_key(char)
        else:
            self._type(char)
        return None

    def _level(self, levels: Levels) -> str:
        if self._altgr:
            return levels[2] if len(levels) > 2 and not self._shift else ""
        shifted = bool(self._shift) ^ (self._caps and is_alphabetic(levels))
        return levels[1] if shifted else levels[0]

    def _dead_key(self, mark: str) -> None:
        # A second dead key types the first one's accent and waits for its own letter (as Windows does).
        if self._dead is not None:
            self._type(" ")
        self._dead = mark

    def _type(self, char: str, *, keyed: bool = True) -> None:
        if self._dead is not None:
            mark, self._dead = self._dead, None
            spacing = DEAD_SPACING.get(mark, "")
            composed = spacing if char == " " else unicodedata.normalize("NFC", char + mark)
            if len(composed) != 1:
                self._damaged(f"an accent key combined with nothing: {layout_hint(self._layout.name)}")
                return
            char = composed
        self._chars.append(char)
        if keyed:
            self._keyed.append(char)

    def _end_alt_code(self) -> None:
        digits, self._alt_digits = self._alt_digits, ""
        if not digits:
            return
        char = alt_code_char(digits)
        if char is None:
            self._damaged(f"Alt+numpad code with {len(digits)} digits stands for no character")
        else:
            self._type(char, keyed=False)

    def _damaged(self, reason: str) -> None:
        if self._damage is None:
            self._damage = reason

    def _end(self) -> Typed | None:
        self._end_alt_code()
        if self._dead is not None:
            self._type(" ")
        text, keyed = "".join(self._chars), "".join(self._keyed)
        damage = self._damage or layout_damage(text, keyed, self._layout.name)
        self._reset_code()
        if not text and damage is None:
            return None
        return Typed(text, damage)


def _hold(held: set[int], code: int, down: bool) -> None:
    if down:
        held.add(code)
    else:
        held.discard(code)
