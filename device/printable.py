"""Text from the outside world (scanned codes, USB descriptor names) made safe for one log line.

A scanned value may carry a right-to-left override (U+202E) that makes the journal show a line backwards,
or a line or paragraph separator (U+2028, U+2029) that a viewer breaks the line at, forging a second
entry. Only printable characters are kept as they are; every other one is written as its Python escape.
"""

from __future__ import annotations

import logging


def printable(text: str) -> str:
    """`text` with every character that is not printable (nor a plain space) escaped: `\\u202e`."""
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() or ch == " " else _escape(ch) for ch in text)


def _escape(ch: str) -> str:
    code = ord(ch)
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


class PrintableFormatter(logging.Formatter):
    """Escapes what is not printable in each message; a traceback below it keeps its line breaks."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = printable(record.message)
        return super().formatMessage(record)
