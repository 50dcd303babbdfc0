"""The unified personal QR of the Covid apps (issue 14, item 1; spec: personal-qr.md): its own type,
recognised masked or not before the CCCD shape check, checked field by field, its subject the QID."""

from __future__ import annotations

import unicodedata
from typing import Any

import pytest

from device.payloads import PersonalQr, judge, recognise
from device.payloads.card import CUT_OFF
from tests.support.payloads import bhyt, cccd, personal_qr, personal_vectors
from tests.support.personal_data import personal_strings

P = personal_vectors()
PEOPLE = P["personal"] + P["same_person"]


@pytest.mark.parametrize("sample", PEOPLE, ids=[s["why"][:40] for s in PEOPLE])
def test_each_person_is_accepted_with_the_qid_as_subject(sample: dict[str, Any]) -> None:
    expected = sample["fields"]
    judgement = judge(sample["payload"])
    rec = judgement.recognition
    assert (rec.type, rec.accepted, rec.reason, rec.variant) == ("personal", True, None, "personal")
    assert rec.subject_id == expected["qid"]
    assert rec.masked == "******" + expected["qid"][-2:]
    assert rec.record is not None
    assert rec.record.id_number == expected["qid"]
    assert rec.record.name is None  # the sealed record carries the document number instead
    assert rec.record.document == expected["document"]
    assert rec.record.birth_year == int(expected["dob"][:4])
    assert isinstance(judgement.card, PersonalQr)
    assert judgement.card.personal() == expected


def test_personal_strings_cover_the_payloads() -> None:
    for sample in PEOPLE:
        found = [s for s in personal_strings(sample["fields"]) if s in sample["payload"]]
        assert len(found) >= 3, found


def test_masking_in_the_app_changes_nothing() -> None:
    masked, full = P["personal"][0], P["same_person"][0]
    assert masked["fields"]["qid"] == full["fields"]["qid"]
    a, b = recognise(masked["payload"]), recognise(full["payload"])
    assert (a.type, a.subject_id, a.masked) == (b.type, b.subject_id, b.masked)


def test_a_fully_shown_number_is_no_broken_cccd() -> None:
    """Before issue 14 every such copy was rejected as 'CCCD payload has 6 fields'."""
    full = P["same_person"][0]["payload"]
    assert full.split("|")[0].isdigit() and len(full.split("|")[0]) == 12
    rec = recognise(full)
    assert (rec.type, rec.accepted) == ("personal", True)
    # A CCCD with a field lost, or a BHYT card with an ISO birth date, keeps its own verdict.
    fields = cccd().split("|")
    assert recognise("|".join(fields[:1] + fields[2:])).type == "cccd"
    iso_birth = recognise(bhyt(dob="1996-11-07"))
    assert iso_birth.type == "bhyt"
    assert iso_birth.reason == "date of birth [2]: expected dd/mm/yyyy, got '9999-99-99'"


@pytest.mark.parametrize("bad", P["invalid"], ids=[b["why"] for b in P["invalid"]])
def test_invalid_vector_is_rejected_with_its_reason(bad: dict[str, str]) -> None:
    rec = recognise(bad["payload"])
    assert (rec.type, rec.accepted, rec.reason) == ("personal", False, bad["reason"])
    assert rec.subject_id is None and rec.record is None


@pytest.mark.parametrize(
    ("document", "kind"),
    [
        ("******999977", "masked"),
        ("******977", "masked"),
        ("048196999977", "cccd"),
        ("999999977", "cmnd"),
        ("C9999077", "passport"),
        ("*****9077", "masked"),
    ],
)
def test_document_number_masked_or_not(document: str, kind: str) -> None:
    judgement = judge(personal_qr(document=document))
    assert judgement.recognition.accepted, judgement.recognition.reason
    assert judgement.card is not None and judgement.card.summary()["document"] == kind


@pytest.mark.parametrize(
    ("dob", "shown"),
    [("1996-**-**", "1996"), ("1996-11-**", "1996-11"), ("1996-11-07", "1996-11-07")],
)
def test_birth_date_masked_or_not(dob: str, shown: str) -> None:
    card = judge(personal_qr(dob=dob)).card
    assert card is not None and card.personal()["dob"] == shown


def test_declared_on_behalf_and_ext_fields() -> None:
    card = judge(personal_qr(declared="1", ext="100000999900000099<2<9999000077<0912999077")).card
    assert card is not None
    summary = {"birth_year": 1996, "document": "masked", "declared": "on behalf", "ext_fields": 4}
    assert card.summary() == summary
    assert card.personal()["ext"] == ["100000999900000099", "2", "9999000077", "0912999077"]


def test_a_decomposed_name_is_the_same_person() -> None:
    text = personal_qr(name="HOÀNG THỊ NGỌC ÁNH")
    composed, decomposed = judge(text), judge(unicodedata.normalize("NFD", text))
    assert decomposed.recognition.accepted, decomposed.recognition.reason
    assert decomposed.card is not None and composed.card is not None
    assert decomposed.card.personal() == composed.card.personal()


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (personal_qr(document="**12"), "document number [0]: expected 6-12 characters, got 4"),
        (personal_qr(document="C9999"), "document number [0]: expected 6-12 characters, got 5"),
        (personal_qr(document="C99990779999077"), "document number [0]: expected 6-12 characters, got 15"),
        (
            personal_qr(document="0481-96999977"),
            "document number [0]: expected a CCCD, CMND or passport number (masked or not)",
        ),
        (
            personal_qr(document="000196999977"),
            "document number [0]: province code is not one of the 63 codes",
        ),
        (
            personal_qr(document="048296999977", dob="1996-11-07"),
            "document number [0] century digit does not match date of birth",
        ),
        (personal_qr(name=""), "name [1]: empty"),
        (personal_qr(name="HOANG THI 9"), "name [1]: contains a digit"),
        (personal_qr(name="HOANG_THI"), "name [1]: expected letters and spaces"),
        (
            personal_qr(dob="1996-**-07"),
            "date of birth [2]: expected yyyy-mm-dd (day and month may be **), got '9999-**-99'",
        ),
        (personal_qr(dob="1996-02-30"), "date of birth [2]: impossible date"),
        (personal_qr(dob="1996-13-**"), "date of birth [2]: impossible date"),
        (personal_qr(dob="1896-**-**"), "date of birth [2]: year outside 1900-2099"),
        (
            personal_qr(declared="2"),
            "declaration [3] must be 0 (by the person) or 1 (on their behalf), got '2'",
        ),
        (personal_qr(qid="10000099990000007x"), "QID [4]: expected 12-24 digits"),
        (personal_qr(qid="1" * 25), "QID [4]: expected 12-24 digits"),
        (personal_qr(ext="a|b"), "personal QR has 7 fields: expected 6"),
        ("******999977|HOANG THI NGOC ANH", CUT_OFF.format(1)),
        ("|".join(personal_qr().split("|")[:5]), CUT_OFF.format(4)),
        # A field lost inside, not at the end: the count is the reason.
        ("******999977|1996-**-**|0|100000999900000077|", "personal QR has 5 fields: expected 6"),
    ],
)
def test_rule_rejects_with_field_and_rule(text: str, reason: str) -> None:
    rec = recognise(text)
    assert (rec.type, rec.accepted, rec.reason) == ("personal", False, reason)


def test_reasons_never_quote_the_person() -> None:
    sample = P["personal"][2]
    secrets = personal_strings(sample["fields"])
    fields = sample["payload"].split("|")
    for index in range(len(fields)):
        for damage in ("x", "", "*", "12/03/1991", "|"):
            damaged = "|".join([*fields[:index], damage, *fields[index + 1 :]])
            rec = recognise(damaged)
            if not rec.accepted:
                assert rec.reason and not [s for s in secrets if s in rec.reason], rec.reason


def test_repr_never_shows_personal_data() -> None:
    sample = P["personal"][2]
    judgement = judge(sample["payload"])
    shown = " ".join(
        repr(x) for x in (judgement, judgement.recognition, judgement.recognition.record, judgement.card)
    )
    assert "personal" in shown and not [s for s in personal_strings(sample["fields"]) if s in shown]
