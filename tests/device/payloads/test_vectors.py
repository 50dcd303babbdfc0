"""The shared vectors: every valid sample accepted with its parsed fields, every invalid one rejected
with the verifier's reason (personal values the verifier quotes are left out or reduced to a shape).

The personal-data probe they use is tests/support/personal_data.py."""

from __future__ import annotations

from typing import Any

import pytest

from device.payloads import judge, recognise
from tests.support.payloads import personal_vectors, vectors
from tests.support.personal_data import REDACTED, all_personal_strings, personal_strings

V = vectors()
P = personal_vectors()
SAMPLES = [("bhyt", s) for s in V["bhyt"]] + [("cccd", s) for s in V["cccd"]]
SAMPLE_IDS = [f"{kind}-{s['fields'].get('card_no') or s['fields']['id']}" for kind, s in SAMPLES]


def test_personal_strings_cover_the_payloads() -> None:
    """The search list must find the people in their own payloads, or a leak test proves nothing."""
    for _, sample in SAMPLES:
        found = [s for s in personal_strings(sample["fields"]) if s in sample["payload"]]
        assert len(found) >= 4, found


@pytest.mark.parametrize(("kind", "sample"), SAMPLES, ids=SAMPLE_IDS)
def test_valid_sample_is_accepted_with_its_fields(kind: str, sample: dict[str, Any]) -> None:
    expected = sample["fields"]
    judgement = judge(sample["payload"])
    rec = judgement.recognition
    assert rec.accepted and rec.reason is None
    assert rec.type == kind
    assert rec.variant == expected["variant"].split()[0]
    number = expected["card_no"][-10:] if kind == "bhyt" else expected["id"]
    assert rec.subject_id == number
    assert rec.masked is not None and number not in rec.masked and "*" in rec.masked
    assert rec.masked[:2] == number[:2] and rec.masked[-2:] == number[-2:]
    assert rec.record is not None
    assert rec.record.id_number == number
    assert rec.record.name == expected["name"]
    assert rec.record.birth_year == int(expected["dob"][:4])
    assert judgement.card is not None
    parsed = judgement.card.personal()
    assert {k: parsed[k] for k in expected if k != "variant"} == {
        k: v for k, v in expected.items() if k != "variant"
    }
    # Fields the sample lacks (v2-only fields on a v1 card) are absent, not invented.
    assert all(parsed[k] is None for k in parsed.keys() - expected.keys())


@pytest.mark.parametrize("bad", V["invalid"], ids=[b["why"][:40] for b in V["invalid"]])
def test_invalid_vector_is_rejected_with_the_verifiers_reason(bad: dict[str, Any]) -> None:
    rec = recognise(bad["payload"])
    assert not rec.accepted
    assert rec.type == ("bhyt" if "$" in bad["payload"][-2:] or bad["payload"].count("|") > 10 else "cccd")
    assert rec.reason == REDACTED.get(bad["verifier_says"], bad["verifier_says"])
    assert rec.subject_id is None and rec.record is None
    leaked = [s for s in all_personal_strings() if s in (rec.reason or "")]
    assert not leaked


@pytest.mark.parametrize(("kind", "sample"), SAMPLES, ids=SAMPLE_IDS)
def test_repr_never_shows_personal_data(kind: str, sample: dict[str, Any]) -> None:
    judgement = judge(sample["payload"])
    assert judgement.recognition.record is not None and judgement.card is not None
    shown = " ".join(
        [
            repr(judgement),
            repr(judgement.recognition),
            repr(judgement.recognition.record),
            repr(judgement.card),
        ]
    )
    assert repr(judgement.card).count("<personal data>") == 1
    assert f"type={kind!r}" in repr(judgement.recognition)
    leaked = [s for s in personal_strings(sample["fields"]) if s in shown]
    assert not leaked
