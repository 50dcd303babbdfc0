"""`qr-checkin inspect`: judge payloads exactly as the daemon does, for technicians and tests.

Payloads come as arguments, or, with none, one JSON string per line on stdin (JSON so that CR, LF, NUL
and tabs a scanner sent survive the trip). One JSON object per payload goes to stdout. Personal data
(name, birth date, address, full numbers) is printed only with --show-personal-data.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterator
from datetime import date
from typing import Any, BinaryIO

from device.cli import stdout_gone
from device.payloads import BhytCard, Judgement, Recognition, judge
from device.sources.stdin import decode_line

EXIT_BAD_INPUT = 1


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "payloads", nargs="*", metavar="PAYLOAD", help="payload texts (default: JSON lines on stdin)"
    )
    parser.add_argument(
        "--show-personal-data",
        action="store_true",
        help="also print name, birth date, address and full numbers (keep such output off shared screens)",
    )
    parser.add_argument(
        "--reject-other",
        action="store_true",
        help=(
            "judge as with checkin.accept_other = false: codes of no known type (BHYT, CCCD, personal QR) "
            "are rejected"
        ),
    )


def verdict(judgement: Judgement, *, personal: bool, today: date) -> dict[str, Any]:
    """The JSON object printed for one payload."""
    rec = judgement.recognition
    out: dict[str, Any] = {
        "type": rec.type,
        "accepted": rec.accepted,
        "reason": rec.reason,
        "variant": rec.variant,
        "masked": rec.masked,
    }
    card = judgement.card
    if card is not None:
        out["details"] = card.summary()
        if isinstance(card, BhytCard):
            out["details"]["expired"] = card.expired(today)
        if personal:
            out["personal"] = card.personal()
    elif rec.type == "other" and rec.accepted and rec.subject_id is not None:
        out["details"] = {"length": len(rec.subject_id)}
        if personal:
            out["personal"] = {"text": rec.subject_id}
    return out


def _argv_payloads(args: list[str]) -> Iterator[tuple[int, bytes]]:
    # Python decoded argv with surrogateescape: the bytes as typed come back, to be judged as the
    # daemon judges the bytes a scanner sends.
    for number, arg in enumerate(args, start=1):
        yield number, os.fsencode(arg)


def _encoded(stream: BinaryIO, bad_lines: list[int]) -> Iterator[tuple[int, bytes]]:
    # A JSON "\ud800" is a lone surrogate: its bytes (surrogatepass) are what no UTF-8 scanner sends,
    # and the daemon would reject them as invalid UTF-8.
    for number, text in _stdin_payloads(stream, bad_lines):
        yield number, text.encode("utf-8", "surrogatepass")


def judged(raw: bytes, *, accept_other: bool) -> Judgement:
    """The daemon's judgement of these bytes: damage first (as a source finds it), then the payload."""
    text, damage = decode_line(raw)
    if damage is not None:
        return Judgement(Recognition(type=None, accepted=False, reason=damage))
    return judge(text, accept_other=accept_other)


def _stdin_payloads(stream: BinaryIO, bad_lines: list[int]) -> Iterator[tuple[int, str]]:
    """The JSON strings of stdin; a bad line is reported on stderr at once, counted, and skipped."""
    for number, raw in enumerate(stream, start=1):
        if not raw.strip():
            continue
        try:
            value = json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError as exc:
            problem = f"not valid UTF-8 (byte 0x{raw[exc.start]:02x} at {exc.start})"
        except json.JSONDecodeError as exc:
            # The decoder's message gives a position, never the text (which may be personal data).
            problem = f"not valid JSON ({exc.msg} at column {exc.colno})"
        else:
            if isinstance(value, str):
                yield number, value
                continue
            problem = f"expected a JSON string, got {type(value).__name__}"
        bad_lines.append(number)
        print(f"inspect: line {number}: {problem}", file=sys.stderr, flush=True)


def main(args: argparse.Namespace) -> int:
    today = date.today()
    if args.show_personal_data:
        print("inspect: printing personal data (--show-personal-data)", file=sys.stderr)
    bad_lines: list[int] = []
    source = _argv_payloads(args.payloads) if args.payloads else _encoded(sys.stdin.buffer, bad_lines)
    try:
        for number, raw in source:
            judgement = judged(raw, accept_other=not args.reject_other)
            out = verdict(judgement, personal=args.show_personal_data, today=today)
            if not args.payloads:
                out["line"] = number
            print(json.dumps(out, ensure_ascii=False), flush=True)
    except BrokenPipeError:
        stdout_gone()  # the reader left (`| head`): stop quietly
    return EXIT_BAD_INPUT if bad_lines else 0
