"""The presence debounce and the autofocus nudge, driven by scripted frame sequences at 15 fps."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from device.vision.presence import CONFIRM_S, HINT_S, Presence, Refocus
from device.vision.symbols import Found, Region

FPS = 15
HERE = Region(100, 100, 200, 200)
ELSEWHERE = Region(400, 300, 480, 380)

# One frame: codes decoded (text -> region) and regions detected but not decoded.
Step = tuple[dict[str, Region], list[Region]]


def seen(*texts: str, where: Region = HERE) -> Step:
    return {t: where for t in texts}, []


def blurred(where: Region = HERE) -> Step:
    return {}, [where]


NOTHING: Step = ({}, [])


def play(presence: Presence, steps: Sequence[Step], start: int = 0) -> list[tuple[int, str]]:
    """Feeds the frames; returns (frame number, text) for each scan that came out."""
    scans = []
    for n, (decoded, undecoded) in enumerate(steps, start):
        found = [Found(text, region) for text, region in decoded.items()]
        scans += [(n, text) for text in presence.observe(n / FPS, found, undecoded)]
    return scans


def test_a_code_held_in_view_is_one_scan_on_its_second_read() -> None:
    assert play(Presence(rearm_s=2.0), [seen("A")] * 45) == [(1, "A")]


def test_a_code_must_leave_view_for_rearm_s_before_it_scans_again() -> None:
    short_gap = [NOTHING] * int(1.5 * FPS)
    long_gap = [NOTHING] * int(2.5 * FPS)
    frames = [seen("A")] * 5 + short_gap + [seen("A")] * 5 + long_gap + [seen("A")] * 5
    scans = play(Presence(rearm_s=2.0), frames)
    second_showing = 5 + len(short_gap) + 5 + len(long_gap)
    assert scans == [(1, "A"), (second_showing + 1, "A")]


def test_a_single_frame_misread_never_becomes_a_scan() -> None:
    frames = [seen("A")] * 3 + [seen("A-misread")] + [seen("A")] * 20 + [seen("B-misread")] + [NOTHING] * 40
    assert play(Presence(rearm_s=2.0), frames) == [(1, "A")]


def test_the_confirming_read_must_come_within_the_confirmation_window() -> None:
    gap = [NOTHING] * int((CONFIRM_S + 0.2) * FPS)
    assert play(Presence(rearm_s=2.0), [seen("A"), *gap, seen("A")]) == []
    assert play(Presence(rearm_s=2.0), [seen("A"), NOTHING, NOTHING, seen("A")]) == [(3, "A")]


def test_confirmation_can_be_turned_off() -> None:
    assert play(Presence(rearm_s=2.0, confirm_reads=1), [seen("A")] * 10) == [(0, "A")]


def test_confirmation_works_even_with_no_rearm_pause() -> None:
    assert play(Presence(rearm_s=0.0), [seen("A")] * 4) == [(1, "A")]


def test_two_codes_in_view_are_two_scans() -> None:
    frames: list[Step] = [({"A": HERE, "B": ELSEWHERE}, [])] * 10
    assert sorted(play(Presence(rearm_s=2.0), frames)) == [(1, "A"), (1, "B")]


def test_the_same_code_twice_in_one_frame_is_one_read() -> None:
    presence = Presence(rearm_s=2.0)
    found = [Found("A", HERE), Found("A", ELSEWHERE)]
    assert presence.observe(0.0, found) == []
    assert presence.observe(1 / FPS, found) == ["A"]


def test_undecodable_frames_at_the_same_place_keep_the_code_in_view() -> None:
    tilted = [blurred(HERE)] * int(3 * FPS)  # longer than rearm_s, detected but unreadable
    frames = [seen("A")] * 5 + tilted + [seen("A")] * 5
    assert play(Presence(rearm_s=2.0), frames) == [(1, "A")]


def test_undecodable_frames_elsewhere_do_not_keep_it_in_view() -> None:
    someone_else = [blurred(ELSEWHERE)] * int(3 * FPS)
    frames = [seen("A")] * 5 + someone_else + [seen("A")] * 5
    assert play(Presence(rearm_s=2.0), frames) == [(1, "A"), (5 + len(someone_else) + 1, "A")]


def test_hints_point_at_a_first_read_until_it_is_confirmed_or_stale() -> None:
    presence = Presence(rearm_s=2.0)
    play(presence, [seen("A")])
    assert presence.hints(1 / FPS) == [HERE]
    assert presence.hints(HINT_S + 0.01) == []
    play(presence, [seen("A")], start=2)
    assert presence.hints(3 / FPS) == [], "a code already scanned needs no closer look"


def test_bad_parameters_are_refused() -> None:
    with pytest.raises(ValueError):
        Presence(rearm_s=-1)
    with pytest.raises(ValueError):
        Presence(rearm_s=2.0, confirm_reads=0)


def test_refocus_after_a_code_stays_undecoded_then_at_most_once_per_period() -> None:
    refocus = Refocus(after_s=1.0)
    due = [n for n in range(60) if refocus.due(n / FPS, undecoded_in_view=True)]
    assert due == [15, 30, 45]


def test_refocus_never_when_nothing_is_in_view_and_the_wait_restarts() -> None:
    refocus = Refocus(after_s=1.0)
    assert not any(refocus.due(n / FPS, undecoded_in_view=False) for n in range(60))
    pattern = [True] * 10 + [False] + [True] * 10  # a decoded frame in between restarts the wait
    assert [n for n, v in enumerate(pattern) if refocus.due(n / FPS, v)] == []
