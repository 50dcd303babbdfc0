"""The table of recognisers is the one list of payload types: the event schema, the code types and the
verdicts all follow it."""

from __future__ import annotations

import json
from importlib import resources
from typing import get_args

from device.payloads import RECOGNISERS, CodeType, judge
from tests.support.payloads import valid_payloads


def test_the_schema_lists_every_registered_type_and_other() -> None:
    schema = json.loads(resources.files("device").joinpath("schema", "checkin.event.v1.json").read_text())
    enum = schema["properties"]["code"]["properties"]["type"]["enum"]
    registered = [r.TYPE for r in RECOGNISERS]
    assert len(set(registered)) == len(registered)
    assert set(enum) == {*registered, "other"} == set(get_args(CodeType))


def test_each_verdict_comes_from_the_recogniser_that_claimed_the_text() -> None:
    for text in valid_payloads():
        fields = text.split("|")
        claims = [r for r in RECOGNISERS if r.looks_like(text, fields)]
        judgement = judge(text)
        assert claims and judgement.recognition.type == claims[0].TYPE
        assert judgement.card is not None
        assert judgement.recognition.id_in_clear == claims[0].ID_IN_CLEAR
        assert judgement.recognition.subject_id == judgement.card.subject_id
        assert judgement.recognition.masked == judgement.card.masked


def test_a_text_no_recogniser_claims_is_other() -> None:
    text = "VISITOR-42"
    assert not any(r.looks_like(text, text.split("|")) for r in RECOGNISERS)
    rec = judge(text).recognition
    assert (rec.type, rec.accepted, rec.id_in_clear) == ("other", True, False)
