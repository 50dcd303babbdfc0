"""A serial scanner set to UTF-16 (issue 14, item 6): every code gets one rejection whose reason names
the scanner setting, in either byte order and with any terminator, and nothing else is thrown out of
step: no answer for the NUL half of a terminator, the first code after the scanner is fixed is clean."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from device.sources.serial import UTF16_DAMAGE, UTF16_MIN_CHARS, LineFramer, Received, sent_as_utf16
from tests.support.daemon import serial_daemon
from tests.support.mosquitto import Mosquitto
from tests.support.payloads import bhyt, cccd, personal_qr, vectors
from tests.support.pty_scanner import PtyScanner

CODES = [cccd(), bhyt(), personal_qr(), "VISITOR-42"]
ENCODINGS = ["utf-16-le", "utf-16-be", "utf-16"]  # "utf-16": with a byte-order mark, as some send it
TERMINATORS = ["\r", "\n", "\r\n"]


@pytest.mark.parametrize("encoding", ENCODINGS)
@pytest.mark.parametrize("terminator", TERMINATORS, ids=["cr", "lf", "crlf"])
def test_each_utf16_code_is_one_frame_naming_the_setting(encoding: str, terminator: str) -> None:
    stream = b"".join((code + terminator).encode(encoding) for code in CODES)
    framer = LineFramer()
    # Reads that fall inside characters and terminators: framing must not depend on them.
    frames = [f for i in range(0, len(stream), 7) for f in framer.feed(stream[i : i + 7])]
    assert [f.damage for f in frames] == [UTF16_DAMAGE] * len(CODES)
    # The scanner is set to UTF-8 now: the NUL left over from the last terminator is no part of it.
    assert framer.feed(b"VISITOR-43\r\n") == [Received("VISITOR-43")]
    assert not framer.pending


def test_utf8_with_nuls_is_not_taken_for_utf16() -> None:
    assert not sent_as_utf16(b"VISITOR-42\x00\x00\x00\x00")  # NUL padding
    assert not sent_as_utf16(b"VISI\x00TOR-42")  # a NUL inside: rejected later for it, as before
    assert not sent_as_utf16("Nguyễn Văn A".encode())
    # Too short to tell from UTF-8 with NULs in it.
    assert not sent_as_utf16("ab".encode("utf-16-le"))
    assert sent_as_utf16(("x" * UTF16_MIN_CHARS).encode("utf-16-le"))
    # Vietnamese letters are two bytes without a NUL; the ASCII around them still has one.
    assert sent_as_utf16(vectors()["cccd"][0]["payload"].encode("utf-16-be"))


@settings(max_examples=200, deadline=None)
@given(st.text(st.characters(codec="utf-8", blacklist_characters="\r\n\x00"), min_size=1, max_size=80))
def test_no_utf8_text_without_nuls_is_taken_for_utf16(text: str) -> None:
    assert not sent_as_utf16(text.encode())


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.sampled_from(CODES), min_size=1, max_size=4),
    st.sampled_from(ENCODINGS[:2]),
    st.sampled_from(TERMINATORS),
    st.lists(st.integers(min_value=0, max_value=4000), max_size=6),
)
def test_any_split_of_a_utf16_stream(codes: list[str], encoding: str, end: str, cuts: list[int]) -> None:
    stream = b"".join((code + end).encode(encoding) for code in codes)
    bounds = sorted({0, len(stream), *(c % (len(stream) + 1) for c in cuts)})
    framer = LineFramer()
    frames = [f for lo, hi in itertools.pairwise(bounds) for f in framer.feed(stream[lo:hi])]
    assert [f.damage for f in frames] == [UTF16_DAMAGE] * len(codes)


def test_the_daemon_rejects_utf16_with_the_setting_to_change(
    tmp_path: Path, broker: Mosquitto, scanner: PtyScanner
) -> None:
    daemon = serial_daemon(tmp_path, broker.port, str(scanner.link))
    try:
        for code, encoding in zip(CODES[:3], ENCODINGS, strict=True):
            scanner.write((code + "\r\n").encode(encoding))
            decision = daemon.next_decision()
            assert (decision["feedback"], decision["reason"]) == ("rejected", UTF16_DAMAGE)
        scanner.write((cccd() + "\r\n").encode())
        fixed = daemon.next_decision()
        assert (fixed["feedback"], fixed["code_type"]) == ("accepted", "cccd"), fixed
        assert daemon.decisions.empty(), "a terminator's NUL half was answered as a scan"
        assert daemon.terminate(timeout=10) == 0
    finally:
        daemon.stop()
    assert "set its serial output (character encoding) to UTF-8" in daemon.stderr
    for code in CODES[:3]:
        as_read = code[:12].encode("utf-16-le").decode()  # the NULs interleaved, as the frame holds it
        assert code[:12] not in daemon.stderr and as_read not in daemon.stderr
