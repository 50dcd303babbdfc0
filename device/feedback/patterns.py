"""The feedback patterns as data: what every Signal looks and sounds like, and why.

One table drives the GPIO player, the selftest's narration and the README (`python -m
device.feedback.patterns` prints the README table).

The design, for fifty workers boarding a bus in a few minutes:
- Three channels say the same thing: colour, rhythm and sound. Green/red alone fails the one worker in
  twelve who is red-green colour-blind; sound alone fails on a loud bus. The rhythm of the light and of
  the beeps match (one, two, long), so an active buzzer that has only one pitch still tells every
  state apart, and a glance at a blinking LED does too.
- Yes is short and high, no is long and low: a positive answer must not hold up the queue, a negative
  one must make the worker stop and look.
- Signals that are not answers to a scan (storage, fault, ready, identify) use amber or repetition,
  never the single green-and-beep, so nobody mistakes them for "you are in".
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass

from device.feedback import Signal, Status


class Colour(enum.Enum):
    """(red, green, blue) for an RGB LED; a green/red pair lights each LED whose channel is non-zero."""

    GREEN = (0.0, 1.0, 0.0)
    RED = (1.0, 0.0, 0.0)
    AMBER = (1.0, 0.5, 0.0)


@dataclass(frozen=True, slots=True)
class Light:
    colour: Colour | None  # None: dark
    seconds: float


# Semitones from A in the same octave; notes by name keep the table readable as music.
_SEMITONES_FROM_A = {"C": -9, "D": -7, "E": -5, "F": -4, "G": -2, "A": 0, "B": 2}


def note_hz(note: str) -> float:
    """Equal temperament from A4 = 440 Hz: "C7" -> 2093.0."""
    semitones = _SEMITONES_FROM_A[note[0]] + 12 * (int(note[1:]) - 4)
    return round(440.0 * 2 ** (semitones / 12), 2)


@dataclass(frozen=True, slots=True)
class Beep:
    # None: silent. An active buzzer sounds at its own pitch, so only the rhythm reaches it.
    note: str | None
    seconds: float

    @property
    def hz(self) -> float | None:
        return None if self.note is None else note_hz(self.note)


@dataclass(frozen=True, slots=True)
class Pattern:
    light: tuple[Light, ...]
    sound: tuple[Beep, ...]
    why: str
    # Pulses the relay (door strike, turnstile). Only a fresh acceptance opens: a duplicate does not,
    # so one check-in lets one person through.
    opens: bool = False

    @property
    def seconds(self) -> float:
        return max(sum(step.seconds for step in self.light), sum(step.seconds for step in self.sound))


# A passive buzzer is driven around this tone; the table below stays inside the range (a test checks).
MID_TONE = "A5"
OCTAVES = 2  # 220 Hz to 3520 Hz: piezo discs are loudest in the upper part of this range

GREEN, RED, AMBER = Colour.GREEN, Colour.RED, Colour.AMBER


def lit(colour: Colour, seconds: float) -> Light:
    return Light(colour, seconds)


def dark(seconds: float) -> Light:
    return Light(None, seconds)


def tone(note: str, seconds: float) -> Beep:
    return Beep(note, seconds)


def rest(seconds: float) -> Beep:
    return Beep(None, seconds)


PATTERNS: dict[Signal, Pattern] = {
    Signal.ACCEPTED: Pattern(
        light=(lit(GREEN, 1.0),),
        sound=(tone("C7", 0.12),),
        why="the common case: one steady green and one short high beep, over before the next worker steps up",
        opens=True,
    ),
    Signal.ACCEPTED_OFFLINE: Pattern(
        light=(lit(GREEN, 0.7), dark(0.1), lit(AMBER, 0.3)),
        sound=(tone("C7", 0.15), rest(0.1), tone("G6", 0.05)),
        why="still a yes (green first, the same high beep) with an amber tail and a lower tick "
        "that tell the driver the device is buffering",
        opens=True,
    ),
    Signal.DUPLICATE: Pattern(
        light=(lit(GREEN, 0.2), dark(0.15), lit(GREEN, 0.2)),
        sound=(tone("G6", 0.08), rest(0.1), tone("G6", 0.08)),
        why="'two' means you already did it: green, as the worker is on the list; calmer pitch than a yes",
    ),
    Signal.REJECTED: Pattern(
        light=(lit(RED, 1.5),),
        sound=(tone("C5", 0.6),),
        why="long, low and red: the one answer that must make a worker stop and try again",
    ),
    Signal.STORAGE_LOW: Pattern(
        light=(lit(AMBER, 0.3), dark(0.3)) * 3,
        sound=(tone("C6", 0.1), rest(0.5)) * 3,
        why="three slow amber pulses with a beep each: a warning for the driver, not an answer to anyone",
    ),
    Signal.FAULT: Pattern(
        light=(lit(RED, 0.1), dark(0.1)) * 6,
        sound=(tone("A6", 0.1), rest(0.1), tone("A5", 0.1), rest(0.1)) * 3,
        why="rapid red flashes and a two-tone alarm: the device itself needs a technician",
    ),
    Signal.READY: Pattern(
        light=(lit(RED, 0.2), dark(0.05), lit(AMBER, 0.2), dark(0.05), lit(GREEN, 0.5)),
        sound=(tone("C6", 0.1), rest(0.05), tone("E6", 0.1), rest(0.05), tone("G6", 0.25)),
        why="a rising 'ta-da' that walks through every colour, so boot also proves each LED and the buzzer",
    ),
    Signal.IDENTIFY: Pattern(
        light=(lit(GREEN, 0.25), lit(RED, 0.25)) * 8,
        sound=(tone("E7", 0.05), rest(0.45)) * 8,
        why="four seconds of alternating colours and a high chirp: easy to find one device among many",
    ),
}

# Status LED: (on seconds, off seconds) of its blink, or None for steady on.
STATUS_BLINK: dict[Status, tuple[float, float] | None] = {
    Status.ONLINE: None,
    Status.BUFFERING: (1.0, 1.0),
    Status.FAULT: (0.1, 0.1),
}


def _seconds(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:g} s"


def _compress(words: list[str]) -> str:
    """Writes a repeated phrase once with a count: (green 250 ms, red 250 ms) ×8."""
    n = len(words)
    for size in range(1, n // 2 + 1):
        if n % size == 0 and words == words[:size] * (n // size):
            phrase = ", ".join(words[:size])
            return f"({phrase}) ×{n // size}" if size > 1 else f"{phrase} ×{n}"
    return ", ".join(words)


def describe_light(pattern: Pattern) -> str:
    return _compress(
        [
            f"{step.colour.name.lower() if step.colour else 'dark'} {_seconds(step.seconds)}"
            for step in pattern.light
        ]
    )


def describe_sound(pattern: Pattern) -> str:
    return _compress(
        [
            f"{step.note} {_seconds(step.seconds)}" if step.note else f"rest {_seconds(step.seconds)}"
            for step in pattern.sound
        ]
    )


def describe(pattern: Pattern) -> str:
    return f"light {describe_light(pattern)}; sound {describe_sound(pattern)}"


def describe_status(status: Status) -> str:
    blink = STATUS_BLINK[status]
    return "steady on" if blink is None else f"blinking {_seconds(blink[0])} on, {_seconds(blink[1])} off"


def markdown_table() -> str:
    """The README's pattern table, rendered from PATTERNS and STATUS_BLINK."""
    rows = ["| signal | light | sound | relay | why |", "| --- | --- | --- | --- | --- |"]
    for signal, pattern in PATTERNS.items():
        cells = [
            signal.value,
            describe_light(pattern),
            describe_sound(pattern),
            "pulse" if pattern.opens else "",
        ]
        rows.append("| " + " | ".join([*cells, pattern.why]) + " |")
    notes = sorted({step.note for p in PATTERNS.values() for step in p.sound if step.note}, key=note_hz)
    pitches = ", ".join(f"{note} = {math.floor(note_hz(note) + 0.5)} Hz" for note in notes)
    rows += ["", f"Notes: {pitches}."]
    rows += ["", "| status LED | shows |", "| --- | --- |"]
    rows += [f"| {status.value} | {describe_status(status)} |" for status in STATUS_BLINK]
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    print(markdown_table(), end="")
