"""Hypothesis: every input gets a verdict, nothing raises, and a verdict is self-consistent."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from device.payloads import MAX_CHARS, RECOGNISERS, judge, recognise
from tests.support.payloads import personal_vectors, vectors
from tests.support.personal_data import personal_strings

SAMPLES = vectors()["bhyt"] + vectors()["cccd"] + personal_vectors()["personal"]
KNOWN = tuple(r.TYPE for r in RECOGNISERS)
# What the spec's payloads are made of, plus what damage brings: Vietnamese letters, controls, NUL.
PAYLOAD_CHARS = st.sampled_from(list("0123456789abcdefABCDEF|/-$ –\t\r\n\x00ĐđáâêôơưữạNam*<"))
FUZZ = settings(max_examples=300, deadline=None)


def check_verdict(text: str) -> None:
    judgement = judge(text)
    rec = judgement.recognition
    assert rec.type in (*KNOWN, "other", None)
    assert isinstance(rec.accepted, bool)
    if rec.accepted:
        assert rec.reason is None and rec.subject_id and rec.masked is not None and rec.variant
        assert (judgement.card is not None) == (rec.type in KNOWN)
    else:
        assert isinstance(rec.reason, str) and rec.reason
        assert rec.subject_id is None and rec.record is None and judgement.card is None


@FUZZ
@given(st.text(max_size=300))
def test_any_text_gets_a_verdict(text: str) -> None:
    check_verdict(text)


@FUZZ
@given(st.text(PAYLOAD_CHARS, max_size=200))
def test_payload_like_text_gets_a_verdict(text: str) -> None:
    check_verdict(text)


@FUZZ
@given(st.binary(max_size=200))
def test_decoded_bytes_get_a_verdict(raw: bytes) -> None:
    check_verdict(raw.decode("utf-8", "replace"))


@settings(max_examples=10, deadline=None)
@given(st.integers(MAX_CHARS - 2, MAX_CHARS + 2))
def test_length_limit(n: int) -> None:
    rec = recognise("x" * n)
    assert rec.accepted == (n <= MAX_CHARS)


@FUZZ
@given(
    st.sampled_from(SAMPLES),
    st.data(),
    st.text(st.characters(blacklist_characters="|", blacklist_categories=["Cs"]), max_size=40),
)
def test_one_field_replaced_never_quotes_the_rest(sample: dict, data: st.DataObject, value: str) -> None:
    """Any one field replaced by anything: a verdict, and no personal data of the other fields in it."""
    fields = sample["payload"].split("|")
    index = data.draw(st.integers(0, len(fields) - 1))
    original = fields[index]
    fields[index] = value
    text = "|".join(fields)
    check_verdict(text)
    rec = recognise(text)
    if rec.reason is not None:
        secrets = {s for s in personal_strings(sample["fields"]) if s not in original and s not in value}
        assert not [s for s in secrets if s in rec.reason], rec.reason


@FUZZ
@given(st.sampled_from(SAMPLES), st.text(st.sampled_from("\r\n\x00"), min_size=1, max_size=8))
def test_suffix_never_changes_the_verdict(sample: dict, suffix: str) -> None:
    assert recognise(sample["payload"] + suffix) == recognise(sample["payload"])
