"""Reads that stop early (a scanner's buffer, a lost keystroke, a card moved away): a text that starts
like a BHYT card or a CCCD but has too few fields is a damaged read with a reason that says so, never an
accepted `other` code (issue 14, item 3)."""

from __future__ import annotations

import pytest

from device.payloads import recognise
from device.payloads.bhyt import MISSING_END
from device.payloads.card import CUT_OFF
from tests.support.payloads import bhyt, bhyt_v1, cccd, vectors

V = vectors()


def cut_off(after: int) -> str:
    return CUT_OFF.format(after)


def test_the_issues_example_is_a_cut_off_cccd() -> None:
    rec = recognise("024192998811|ababab")
    assert (rec.type, rec.accepted, rec.reason) == ("cccd", False, cut_off(1))


def prefixes(text: str, start: int) -> list[str]:
    return [text[:end] for end in range(start, len(text))]


@pytest.mark.parametrize("card", [cccd(), cccd(old_id=""), *(s["payload"] for s in V["cccd"])])
def test_every_early_stop_of_a_cccd_is_named(card: str) -> None:
    for text in prefixes(card, len("001090999901|")):
        rec = recognise(text)
        assert (rec.type, rec.accepted) == ("cccd", False), text
        fields = text.strip().split("|")
        expected = cut_off(len(fields) - 1) if len(fields) < 7 else None
        if expected is not None:
            assert rec.reason == expected, text


@pytest.mark.parametrize("card", [bhyt(), bhyt_v1(), *(s["payload"] for s in V["bhyt"])])
def test_every_early_stop_of_a_bhyt_card_is_named(card: str) -> None:
    # A v2 number needs the start of its hex name after it to be told from a phone number.
    start = card.index("|") + (1 if card[0].isalpha() else 3)
    for text in prefixes(card, start):
        rec = recognise(text)
        assert (rec.type, rec.accepted) == ("bhyt", False), text
        fields = text.strip().split("|")
        assert rec.reason == (cut_off(len(fields) - 1) if len(fields) < 15 else MISSING_END), text


def test_a_field_lost_inside_is_not_a_cut_off() -> None:
    """The read has about the right length, but its fields are out of place: the count is the reason."""
    fields = cccd().split("|")
    rec = recognise("|".join(fields[:1] + fields[2:]))
    assert (rec.type, rec.reason) == ("cccd", "CCCD payload has 6 fields: expected 7")
    rec = recognise("024192998811|NGUYEN VAN A|x")
    assert (rec.type, rec.reason) == ("cccd", "CCCD payload has 3 fields: expected 7")
    # A BHYT field that fails its own check before the read stops: that check is not the reason.
    short = "|".join(bhyt(gender="7").split("|")[:6])
    assert recognise(short).reason == MISSING_END


def test_a_terminator_after_a_lost_separator_is_no_cut_off() -> None:
    card = bhyt_v1()
    rec = recognise(card[:-2] + "$")  # "...|check$": the read ended where a card ends
    assert (rec.type, rec.reason) == ("bhyt", MISSING_END)


@pytest.mark.parametrize(
    "text",
    [
        "0912345678|NGUYEN VAN A",  # a phone number and a name
        "0912345678|1",  # a phone number and one hex digit
        "001090999901",  # twelve digits alone: a badge number, say
        "EMP-12345|ab",
    ],
)
def test_what_merely_resembles_a_start_stays_other(text: str) -> None:
    assert recognise(text).type == "other"
