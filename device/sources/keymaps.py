"""Keyboard layouts as data: which character each key types on each layout (keystrokes.py reads them).

A scanner in keyboard ("wedge") mode sends key codes, not characters: it presses the keys that type
its text on the layout it was set to. Reading them right needs the same layout here, so each layout
is a table `key -> (plain, shifted, AltGr)`, written after the X keyboard database (xkb `symbols/`).
Dead keys appear as the combining mark they add (U+0302 for a dead circumflex).

Characters beyond the layout come as Alt+numpad decimal codes (hold Alt, type the number on the
keypad): with a leading 0 a Windows-1252 byte, without one below 256 a CP437 byte (what Windows does),
from 256 on a Unicode code point (what scanners use for Vietnamese).
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from evdev import ecodes

LayoutName = Literal["us", "uk", "de", "fr"]

Levels = tuple[str, ...]  # (plain, shifted[, AltGr]); "" where the layout types nothing

_LETTERS: dict[str, Levels] = {f"KEY_{c.upper()}": (c, c.upper()) for c in string.ascii_lowercase}
_KEYPAD: dict[str, Levels] = {
    **{f"KEY_KP{d}": (d, d) for d in string.digits},
    "KEY_KPDOT": (".", "."),
    "KEY_KPSLASH": ("/", "/"),
    "KEY_KPASTERISK": ("*", "*"),
    "KEY_KPMINUS": ("-", "-"),
    "KEY_KPPLUS": ("+", "+"),
    "KEY_SPACE": (" ", " "),
}
_US: dict[str, Levels] = {
    **_LETTERS,
    **_KEYPAD,
    **{f"KEY_{d}": (d, s) for d, s in zip("1234567890", "!@#$%^&*()", strict=True)},
    "KEY_GRAVE": ("`", "~"),
    "KEY_MINUS": ("-", "_"),
    "KEY_EQUAL": ("=", "+"),
    "KEY_LEFTBRACE": ("[", "{"),
    "KEY_RIGHTBRACE": ("]", "}"),
    "KEY_BACKSLASH": ("\\", "|"),
    "KEY_SEMICOLON": (";", ":"),
    "KEY_APOSTROPHE": ("'", '"'),
    "KEY_COMMA": (",", "<"),
    "KEY_DOT": (".", ">"),
    "KEY_SLASH": ("/", "?"),
}
_UK: dict[str, Levels] = {
    **_US,
    "KEY_2": ("2", '"', "²"),
    "KEY_3": ("3", "£", "³"),
    "KEY_4": ("4", "$", "€"),
    "KEY_GRAVE": ("`", "¬", "|"),
    "KEY_APOSTROPHE": ("'", "@"),
    "KEY_BACKSLASH": ("#", "~"),
    "KEY_102ND": ("\\", "|", "|"),
}
_DE: dict[str, Levels] = {
    **_LETTERS,
    **_KEYPAD,
    "KEY_GRAVE": ("\u0302", "°"),
    "KEY_1": ("1", "!"),
    "KEY_2": ("2", '"', "²"),
    "KEY_3": ("3", "§", "³"),
    "KEY_4": ("4", "$"),
    "KEY_5": ("5", "%"),
    "KEY_6": ("6", "&"),
    "KEY_7": ("7", "/", "{"),
    "KEY_8": ("8", "(", "["),
    "KEY_9": ("9", ")", "]"),
    "KEY_0": ("0", "=", "}"),
    "KEY_MINUS": ("ß", "?", "\\"),
    "KEY_EQUAL": ("\u0301", "\u0300"),
    "KEY_Q": ("q", "Q", "@"),
    "KEY_E": ("e", "E", "€"),
    "KEY_Y": ("z", "Z"),
    "KEY_Z": ("y", "Y"),
    "KEY_M": ("m", "M", "µ"),
    "KEY_LEFTBRACE": ("ü", "Ü"),
    "KEY_RIGHTBRACE": ("+", "*", "~"),
    "KEY_SEMICOLON": ("ö", "Ö"),
    "KEY_APOSTROPHE": ("ä", "Ä"),
    "KEY_BACKSLASH": ("#", "'"),
    "KEY_102ND": ("<", ">", "|"),
    "KEY_COMMA": (",", ";"),
    "KEY_DOT": (".", ":"),
    "KEY_SLASH": ("-", "_"),
    "KEY_KPDOT": (",", ","),
}
_FR: dict[str, Levels] = {
    **_LETTERS,
    **_KEYPAD,
    "KEY_GRAVE": ("²", "~"),
    "KEY_1": ("&", "1"),
    "KEY_2": ("é", "2", "~"),
    "KEY_3": ('"', "3", "#"),
    "KEY_4": ("'", "4", "{"),
    "KEY_5": ("(", "5", "["),
    "KEY_6": ("-", "6", "|"),
    "KEY_7": ("è", "7", "`"),
    "KEY_8": ("_", "8", "\\"),
    "KEY_9": ("ç", "9", "^"),
    "KEY_0": ("à", "0", "@"),
    "KEY_MINUS": (")", "°", "]"),
    "KEY_EQUAL": ("=", "+", "}"),
    "KEY_Q": ("a", "A"),
    "KEY_W": ("z", "Z"),
    "KEY_E": ("e", "E", "€"),
    "KEY_A": ("q", "Q"),
    "KEY_SEMICOLON": ("m", "M"),
    "KEY_Z": ("w", "W"),
    "KEY_M": (",", "?"),
    "KEY_LEFTBRACE": ("\u0302", "\u0308"),
    "KEY_RIGHTBRACE": ("$", "£", "¤"),
    "KEY_APOSTROPHE": ("ù", "%"),
    "KEY_BACKSLASH": ("*", "µ"),
    "KEY_102ND": ("<", ">"),
    "KEY_COMMA": (";", "."),
    "KEY_DOT": (":", "/"),
    "KEY_SLASH": ("!", "§"),
}


@dataclass(frozen=True)
class Layout:
    name: LayoutName
    keys: Mapping[int, Levels]
    # Right Alt is AltGr (a third level) on European layouts, a plain Alt on the US one.
    altgr: bool


def _layout(name: LayoutName, table: dict[str, Levels], *, altgr: bool) -> Layout:
    return Layout(name, {ecodes.ecodes[key]: levels for key, levels in table.items()}, altgr)


LAYOUTS: dict[LayoutName, Layout] = {
    "us": _layout("us", _US, altgr=False),
    "uk": _layout("uk", _UK, altgr=True),
    "de": _layout("de", _DE, altgr=True),
    "fr": _layout("fr", _FR, altgr=True),
}

# A dead key followed by space types the accent itself.
DEAD_SPACING: dict[str, str] = {"\u0300": "`", "\u0301": "´", "\u0302": "^", "\u0303": "~", "\u0308": "¨"}

SHIFT_KEYS = frozenset({ecodes.KEY_LEFTSHIFT, ecodes.KEY_RIGHTSHIFT})
CTRL_KEYS = frozenset({ecodes.KEY_LEFTCTRL, ecodes.KEY_RIGHTCTRL})
ENTER_KEYS = frozenset({ecodes.KEY_ENTER, ecodes.KEY_KPENTER})
# Keys that change no text; scanners send NumLock before Alt codes.
IGNORED_KEYS = frozenset(
    {ecodes.KEY_NUMLOCK, ecodes.KEY_SCROLLLOCK, ecodes.KEY_LEFTMETA, ecodes.KEY_RIGHTMETA}
)
KEYPAD_DIGITS: dict[int, str] = {ecodes.ecodes[f"KEY_KP{d}"]: d for d in string.digits}

KEY_UP, KEY_DOWN, KEY_REPEAT = 0, 1, 2

MAX_ALT_DIGITS = 7


def is_alphabetic(levels: Levels) -> bool:
    """Caps Lock inverts Shift only on keys whose shifted character is the plain one in upper case."""
    return len(levels) >= 2 and levels[0] != levels[1] and levels[0].upper() == levels[1]


def alt_code_char(digits: str) -> str | None:
    """The character an Alt+numpad decimal code stands for, or None if it stands for none."""
    # U+10FFFF has 7 digits; a longer run (zeros aside) stands for nothing, and int() of thousands
    # of digits would raise (Python caps int-from-text at 4300 digits).
    significant = digits.lstrip("0")
    if len(significant) > MAX_ALT_DIGITS:
        return None
    value = int(significant or "0")
    if value >= 256:
        return chr(value) if value <= 0x10FFFF and not 0xD800 <= value <= 0xDFFF else None
    if value == 0:
        return None
    try:
        return bytes([value]).decode("cp1252" if digits.startswith("0") else "cp437")
    except UnicodeDecodeError:
        return None
