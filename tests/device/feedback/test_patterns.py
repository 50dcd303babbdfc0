"""The pattern table as a product promise: every state distinct, tones playable, README in step."""

from __future__ import annotations

import itertools
import subprocess
import sys

import pytest

from device.feedback import Signal, Status
from device.feedback.patterns import (
    MID_TONE,
    OCTAVES,
    PATTERNS,
    STATUS_BLINK,
    Colour,
    Pattern,
    describe,
    markdown_table,
    note_hz,
)
from tests.support.paths import ROOT

ANSWERS = (Signal.ACCEPTED, Signal.ACCEPTED_OFFLINE, Signal.DUPLICATE, Signal.REJECTED)


def rhythm(pattern: Pattern) -> tuple[tuple[bool, float], ...]:
    """What an active buzzer makes of the sound track: on/off runs, consecutive equal states merged."""
    runs: list[tuple[bool, float]] = []
    for step in pattern.sound:
        on = step.note is not None
        if runs and runs[-1][0] == on:
            runs[-1] = (on, round(runs[-1][1] + step.seconds, 6))
        else:
            runs.append((on, step.seconds))
    return tuple(runs)


def test_every_signal_has_a_pattern_and_every_status_a_mode() -> None:
    assert set(PATTERNS) == set(Signal)
    assert set(STATUS_BLINK) == set(Status)
    assert STATUS_BLINK[Status.ONLINE] is None
    slow, fast = STATUS_BLINK[Status.BUFFERING], STATUS_BLINK[Status.FAULT]
    assert slow is not None and fast is not None and slow[0] > fast[0]


@pytest.mark.parametrize(("a", "b"), list(itertools.combinations(Signal, 2)), ids=lambda s: s.value)
def test_every_pair_differs_by_light_and_by_a_one_pitch_buzzer(a: Signal, b: Signal) -> None:
    assert PATTERNS[a].light != PATTERNS[b].light
    assert rhythm(PATTERNS[a]) != rhythm(PATTERNS[b])


def test_answers_keep_their_colours_and_yes_is_shorter_than_no() -> None:
    def colours(signal: Signal) -> set[Colour]:
        return {step.colour for step in PATTERNS[signal].light if step.colour is not None}

    for positive in (Signal.ACCEPTED, Signal.ACCEPTED_OFFLINE, Signal.DUPLICATE):
        assert Colour.RED not in colours(positive)
        assert PATTERNS[positive].light[0].colour is Colour.GREEN
    assert colours(Signal.REJECTED) == {Colour.RED}
    sound_on = {s: sum(t for on, t in rhythm(PATTERNS[s]) if on) for s in ANSWERS}
    assert max(sound_on[Signal.ACCEPTED], sound_on[Signal.DUPLICATE]) < sound_on[Signal.REJECTED]
    assert [s for s in Signal if PATTERNS[s].opens] == [Signal.ACCEPTED, Signal.ACCEPTED_OFFLINE]


def test_every_tone_lies_in_the_tonal_buzzer_range() -> None:
    low, high = note_hz(MID_TONE) / 2**OCTAVES, note_hz(MID_TONE) * 2**OCTAVES
    for signal, pattern in PATTERNS.items():
        for step in pattern.sound:
            assert step.hz is None or low <= step.hz <= high, (signal, step)
    assert note_hz("A4") == 440.0
    assert note_hz("C7") == pytest.approx(2093.0, abs=0.01)


def test_descriptions_name_every_step_and_compress_repeats() -> None:
    assert describe(PATTERNS[Signal.ACCEPTED]) == "light green 1 s; sound C7 120 ms"
    assert "(green 250 ms, red 250 ms) ×8" in describe(PATTERNS[Signal.IDENTIFY])


def test_readme_shows_the_table_rendered_from_the_patterns() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "## Feedback patterns" in readme
    assert markdown_table() in readme, "README is out of date: paste `python -m device.feedback.patterns`"


def test_console_backend_never_imports_gpiozero() -> None:
    code = (
        "import sys\n"
        "from device.feedback import build_feedback\n"
        "from device.feedback.console import ConsoleFeedback\n"
        "from device.settings import FeedbackSettings\n"
        "feedback = build_feedback(FeedbackSettings())\n"
        "assert isinstance(feedback, ConsoleFeedback), feedback\n"
        "print(sorted(m for m in sys.modules if m.startswith('gpiozero')))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.strip() == "[]"
