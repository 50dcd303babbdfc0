"""The keystroke decoder and the layout-damage check: pure functions, fed with recorded key streams."""

from __future__ import annotations

import json

import pytest
from evdev import InputEvent, ecodes
from hypothesis import given, settings
from hypothesis import strategies as st

from device.sources.keymaps import LAYOUTS, LayoutName, alt_code_char
from device.sources.keystrokes import MAX_CODE_CHARS, KeystrokeDecoder, Typed, layout_damage, layout_hint
from tests.support.evdev_pipe import Stroke, alt_code, chord, input_events, keystrokes, tap
from tests.support.paths import PAYLOADS_JSON

K = ecodes.ecodes
SHIFT, ALTGR, ENTER = ecodes.KEY_LEFTSHIFT, ecodes.KEY_RIGHTALT, ecodes.KEY_ENTER
LAYOUT_NAMES: list[LayoutName] = ["us", "uk", "de", "fr"]


def decode(strokes: list[Stroke], layout: LayoutName = "us", **options: object) -> list[Typed]:
    decoder = KeystrokeDecoder(layout, **options)  # type: ignore[arg-type]
    found = [decoded for event in input_events(strokes) if (decoded := decoder.feed(event)) is not None]
    return found


def one(strokes: list[Stroke], layout: LayoutName = "us", **options: object) -> Typed:
    found = decode(strokes + tap(ENTER), layout, **options)
    assert len(found) == 1, found
    return found[0]


@pytest.fixture(scope="module")
def samples() -> dict[str, list[dict[str, object]]]:
    data: dict[str, list[dict[str, object]]] = json.loads((PAYLOADS_JSON).read_text())
    return data


def test_recorded_shifted_symbols_on_us() -> None:
    # As a US-layout scanner sends "A|$/": Shift+A, Shift+\, Shift+4, then / unshifted.
    stream = [
        *chord(SHIFT, K["KEY_A"]),
        *chord(SHIFT, K["KEY_BACKSLASH"]),
        *chord(SHIFT, K["KEY_4"]),
        *tap(K["KEY_SLASH"]),
    ]
    assert one(stream) == Typed("A|$/")


def test_recorded_shifted_symbols_on_de() -> None:
    # German: | is AltGr+<, $ is Shift+4, / is Shift+7, and Y/Z swap places.
    stream = [
        *chord(ALTGR, K["KEY_102ND"]),
        *chord(SHIFT, K["KEY_4"]),
        *chord(SHIFT, K["KEY_7"]),
        *tap(K["KEY_Y"]),
    ]
    assert one(stream, "de") == Typed("|$/z")


def test_right_shift_and_left_shift_both_count() -> None:
    stream = [(ecodes.KEY_RIGHTSHIFT, 1), *tap(K["KEY_1"]), (ecodes.KEY_RIGHTSHIFT, 0), *tap(K["KEY_1"])]
    assert one(stream).text == "!1"


@pytest.mark.parametrize("layout", ["us", "de"])
def test_full_bhyt_sample_typed_key_by_key(
    samples: dict[str, list[dict[str, str]]], layout: LayoutName
) -> None:
    payload = samples["bhyt"][0]["payload"]
    strokes = keystrokes(payload, layout)
    if layout == "de":  # really German keys: | as AltGr+<
        assert (ALTGR, 1) in strokes and (K["KEY_102ND"], 1) in strokes
    assert one(strokes, layout) == Typed(payload)


def test_alt_numpad_codes_spell_nguyen() -> None:
    # N g u y typed by keys, ễ (U+1EC5 = 7877) as Alt+7877 on the keypad, then n.
    stream = [
        *chord(SHIFT, K["KEY_N"]),
        *tap(K["KEY_G"]),
        *tap(K["KEY_U"]),
        *tap(K["KEY_Y"]),
        *alt_code("7877"),
        *tap(K["KEY_N"]),
    ]
    assert one(stream) == Typed("Nguyễn")


def test_alt_numpad_codes_only_with_numlock_first() -> None:
    # A Datalogic on a Pi: NumLock, then every character as Alt + decimal (leading 0: Windows-1252).
    stream = tap(ecodes.KEY_NUMLOCK)
    for char in "Nguyễn":
        stream += alt_code(str(ord(char)) if ord(char) > 255 else f"0{ord(char)}")
    assert one(stream) == Typed("Nguyễn")


@pytest.mark.parametrize(
    ("digits", "char"),
    [("0233", "é"), ("130", "é"), ("65", "A"), ("052", "4"), ("7877", "ễ"), ("0128", "€")],
)
def test_alt_code_code_pages(digits: str, char: str) -> None:
    assert alt_code_char(digits) == char


@pytest.mark.parametrize("digits", ["0", "0129", "55296", "1114112"])
def test_alt_codes_that_stand_for_nothing(digits: str) -> None:
    assert alt_code_char(digits) is None
    assert "Alt+numpad" in (one(alt_code(digits)).damage or "")


def test_an_alt_code_of_5000_keypad_digits_is_damage_not_a_crash() -> None:
    """Issue 12 item 9: int() of 5000 digits raised ValueError out of the reader."""
    assert alt_code_char("7" * 5000) is None
    assert alt_code_char("0" * 5000 + "65") == "A"
    damaged = one(keystrokes("AB") + alt_code("7" * 5000) + keystrokes("C"))
    assert damaged.damage is not None and "Alt+numpad" in damaged.damage


def test_a_code_without_terminator_never_grows_past_the_bound() -> None:
    """Issue 12 item 9: a scanner sending no Enter grew the buffer without bound."""
    found = decode(keystrokes("0123456789" * 2000))
    assert [len(d.text) for d in found] == [MAX_CODE_CHARS, MAX_CODE_CHARS]
    assert all((d.damage or "").startswith("no terminator after") for d in found)
    decoder = KeystrokeDecoder()
    for event in input_events(keystrokes("SILENT-CODE")):
        decoder.feed(event)
    ended = decoder.unterminated("no terminator after the code")
    assert (
        ended is not None and ended.text == "SILENT-CODE" and ended.damage == "no terminator after the code"
    )
    assert not decoder.pending and decoder.unterminated("again") is None


def test_caps_lock_inverts_shift_on_letters_only() -> None:
    caps = tap(ecodes.KEY_CAPSLOCK)
    stream = [
        *caps,
        *tap(K["KEY_A"]),
        *chord(SHIFT, K["KEY_B"]),
        *tap(K["KEY_1"]),
        *chord(SHIFT, K["KEY_1"]),
        *caps,
    ]
    stream += tap(K["KEY_C"])
    assert one(stream).text == "Ab1!c"


def test_caps_lock_on_german_umlaut_key() -> None:
    assert one([*tap(ecodes.KEY_CAPSLOCK), *tap(K["KEY_LEFTBRACE"])], "de").text == "Ü"


def test_caps_lock_survives_between_codes() -> None:
    found = decode([*tap(ecodes.KEY_CAPSLOCK), *tap(K["KEY_A"]), *tap(ENTER), *tap(K["KEY_A"]), *tap(ENTER)])
    assert [d.text for d in found] == ["A", "A"]


def test_tab_terminator() -> None:
    stream = [*tap(K["KEY_A"]), *tap(ecodes.KEY_TAB), *tap(K["KEY_B"]), *tap(ecodes.KEY_TAB), *tap(ENTER)]
    assert [d.text for d in decode(stream, terminator="tab")] == ["a", "b"]
    # With Enter as terminator a Tab is part of the code.
    assert [d.text for d in decode(stream, terminator="enter")] == ["a\tb\t"]


def test_keypad_enter_ends_a_code() -> None:
    assert decode([*tap(K["KEY_KP4"]), *tap(K["KEY_KP2"]), *tap(ecodes.KEY_KPENTER)]) == [Typed("42")]


def test_gap_framing() -> None:
    decoder = KeystrokeDecoder(terminator="gap", gap_s=0.05)
    first = input_events(keystrokes("AB1"), start=100.0)
    second = input_events(keystrokes("CD2"), start=101.0)  # a second later
    got = [d for event in first + second if (d := decoder.feed(event)) is not None]
    assert got == [Typed("AB1")]
    assert decoder.pending
    assert decoder.flush() == Typed("CD2")
    assert not decoder.pending and decoder.flush() is None


def test_gap_framing_keeps_a_code_typed_without_pauses_whole() -> None:
    decoder = KeystrokeDecoder(terminator="gap", gap_s=0.05)
    got = [d for event in input_events(keystrokes("A" * 300), step_s=0.004) if (d := decoder.feed(event))]
    assert got == [] and decoder.flush() == Typed("A" * 300)


def test_autorepeat_is_ignored() -> None:
    stream = [(K["KEY_A"], 1), (K["KEY_A"], 2), (K["KEY_A"], 2), (K["KEY_A"], 0)]
    assert one(stream).text == "a"


def test_empty_codes_are_skipped() -> None:
    assert decode([*tap(ENTER), *tap(ENTER), *tap(K["KEY_X"]), *tap(ENTER), *tap(ENTER)]) == [Typed("x")]


def test_unknown_key_is_layout_damage() -> None:
    damaged = one([*tap(K["KEY_A"]), *tap(K["KEY_102ND"]), *tap(K["KEY_B"])], "us")
    assert damaged.text == "ab"
    assert (
        damaged.damage is not None and "KEY_102ND" in damaged.damage and layout_hint("us") in damaged.damage
    )


def test_ctrl_combination_is_damage() -> None:
    damaged = one([*tap(K["KEY_A"]), *chord(ecodes.KEY_LEFTCTRL, K["KEY_J"])])
    assert damaged.damage is not None and "Ctrl+KEY_J" in damaged.damage


def test_damage_is_per_code() -> None:
    found = decode([*tap(K["KEY_F1"]), *tap(K["KEY_A"]), *tap(ENTER), *tap(K["KEY_B"]), *tap(ENTER)])
    assert [d.damage is None for d in found] == [False, True]


def test_dead_keys_on_german() -> None:
    circumflex, acute = K["KEY_GRAVE"], K["KEY_EQUAL"]
    stream = [*tap(circumflex), *tap(K["KEY_SPACE"]), *tap(circumflex), *tap(K["KEY_A"])]
    stream += [
        *chord(SHIFT, acute),
        *tap(K["KEY_SPACE"]),
        *tap(circumflex),
        *tap(circumflex),
        *tap(K["KEY_E"]),
    ]
    decoded = one(stream, "de")
    assert decoded.text == "^â`^ê"


def test_dead_key_on_a_digit_is_damage() -> None:
    decoded = one([*tap(K["KEY_GRAVE"]), *tap(K["KEY_1"])], "de")
    assert decoded.damage is not None and layout_hint("de") in decoded.damage


def test_dropped_events_damage_the_code() -> None:
    decoder = KeystrokeDecoder()
    for event in input_events(tap(K["KEY_A"])):
        decoder.feed(event)
    decoder.feed(InputEvent(1, 0, ecodes.EV_SYN, ecodes.SYN_DROPPED, 0))
    ended = [d for event in input_events(tap(ENTER)) if (d := decoder.feed(event))]
    assert ended[0].damage is not None and "dropped" in ended[0].damage


@pytest.mark.parametrize(
    ("typed_on", "read_as"),
    [("us", "de"), ("us", "fr"), ("us", "uk"), ("de", "us"), ("fr", "us"), ("uk", "de")],
)
def test_layout_mismatch_on_real_samples_is_rejected(
    samples: dict[str, list[dict[str, str]]], typed_on: LayoutName, read_as: LayoutName
) -> None:
    for kind in ("bhyt", "cccd"):
        for sample in samples[kind]:
            decoded = one(keystrokes(sample["payload"], typed_on), read_as)
            assert decoded.damage is not None, (kind, typed_on, read_as)
            assert "keyboard layout" in decoded.damage
            assert sample["payload"][:10] not in decoded.damage


def test_cccd_through_the_right_layout_passes_even_with_keyed_vietnamese_letters(
    samples: dict[str, list[dict[str, str]]],
) -> None:
    # On French, à and é have keys; the rest of the Vietnamese comes as Alt codes.
    for layout in LAYOUT_NAMES:
        for sample in samples["cccd"]:
            assert one(keystrokes(sample["payload"], layout), layout) == Typed(sample["payload"])


@pytest.mark.parametrize(
    ("text", "keyed", "needle"),
    [
        ("9999000001'4e67'01-01-1990'1'-'01 - 001'x'y'z'w'$", None, 'separators came out as "\'"'),
        (
            "001090999901~~Nguyễn Văn A~01011990~Nam~Hà Nội~01072021",
            "001090999901~~Nguy Vn A~01011990~Nam~H Ni~01072021",
            "came out as '~'",
        ),
        ("9999000001|4e67|01&01&1990|1|-|$", None, "date '/' came out as '&'"),
        ("https>&&example.com&c", None, "web address"),
        ("Müller", None, "'ü'"),
        ("§1", None, "'§'"),
        ("VISITOR)éàéè", None, "'à', 'è', 'é'"),
    ],
)
def test_layout_damage_finds(text: str, keyed: str | None, needle: str) -> None:
    reason = layout_damage(text, text if keyed is None else keyed, "us")
    assert reason is not None and needle in reason and layout_hint("us") in reason


@pytest.mark.parametrize(
    ("text", "keyed"),
    [
        ("9999000001|4e677579|01/01/1990|1|-|01 - 001|$", None),
        (
            "001090999901||Nguyễn Văn A|01011990|Nam|Hà Nội|01072021",
            "001090999901||Nguy Vn A|01011990|Nam|Hà Ni|01072021",
        ),
        ("https://example.com/c?id=42", None),
        ("VISITOR-42", None),
        ("A" * 20 + "-", None),
        ("SN12345678-01-02-03-04-05-06", None),
    ],
)
def test_layout_damage_passes(text: str, keyed: str | None) -> None:
    assert layout_damage(text, text if keyed is None else keyed, "us") is None


def test_layouts_type_all_of_ascii() -> None:
    for name, layout in LAYOUTS.items():
        typed = {ch for levels in layout.keys.values() for ch in levels}
        missing = {chr(c) for c in range(0x20, 0x7F)} - typed - {"^", "`"}
        assert not missing, (name, sorted(missing))


ASCII = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=1, max_size=80)


@settings(max_examples=150, deadline=None)
@given(text=ASCII, layout=st.sampled_from(LAYOUT_NAMES), caps=st.booleans())
def test_any_ascii_text_typed_in_any_layout_decodes_back(text: str, layout: LayoutName, caps: bool) -> None:
    found = decode(keystrokes(text, layout, caps=caps) + tap(ENTER), layout)
    assert [d.text for d in found] == [text]
    # The decoder adds no damage of its own; only the structural check may object to the text.
    assert found[0].damage == layout_damage(text, text, layout)


@settings(max_examples=100, deadline=None)
@given(
    text=st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=40),
    layout=st.sampled_from(LAYOUT_NAMES),
)
def test_any_text_with_alt_codes_decodes_back(text: str, layout: LayoutName) -> None:
    found = decode(keystrokes(text, layout) + tap(ENTER), layout)
    assert [d.text for d in found] == [text]
    assert found[0].damage is None or layout_hint(layout) in found[0].damage
