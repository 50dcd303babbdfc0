"""Held-out payloads built here (not in the shared vectors): every tolerance the spec names, every rule
that must reject, and the generic rejections of the spine."""

from __future__ import annotations

import unicodedata

import pytest

from device.errors import PayloadRejected
from device.payloads import MAX_CHARS, judge, mask, recognise, trim
from device.payloads.bhyt import IME_DAMAGE
from device.payloads.cccd import check_number
from device.payloads.cccd_codes import COUNTRIES, PROVINCES
from tests.support.payloads import (
    ADDRESS,
    NAME,
    accepted,
    bhyt,
    bhyt_v1,
    cccd,
    hex_of,
    personal_qr,
    rejected,
)

# -- BHYT tolerances ------------------------------------------------------------------------------


def test_built_cards_are_accepted() -> None:
    for text, variant in ((bhyt(), "bhyt-v2"), (bhyt_v1(), "bhyt-v1"), (cccd(), "cccd")):
        rec = recognise(text)
        assert rec.accepted, rec.reason
        assert rec.variant == variant


def test_year_only_date_of_birth() -> None:
    card = judge(bhyt(dob="1996")).card
    assert card is not None and card.personal()["dob"] == "1996"
    assert recognise(bhyt(dob="1996")).record.birth_year == 1996  # type: ignore[union-attr]
    identity = judge(cccd(dob="1996")).card
    assert identity is not None and identity.personal()["dob"] == "1996"
    # HIS software also pads one-digit day and month, so cards without the zero exist.
    single = judge(bhyt(dob="7/1/1996")).card
    assert single is not None and single.personal()["dob"] == "1996-01-07"


@pytest.mark.parametrize("facility", ["48 – 012", "48 - 012", "48-012", "48012", "48 – K12"])
def test_facility_code_with_hyphen_or_en_dash(facility: str) -> None:
    card = judge(bhyt(facility=facility)).card
    assert card is not None
    assert card.personal()["kcb_code"] == facility.replace(" ", "").replace("–", "").replace("-", "")


def test_en_dash_is_the_only_non_ascii_a_card_may_carry() -> None:
    rejected(
        bhyt(valid_from="01–01–2023"),
        "non-ASCII character in BHYT payload (the host keyboard layout "
        "probably differs from the scanner's: set both to US)",
    )


def test_upper_case_hex_decodes_to_the_same_person() -> None:
    upper_hex = bhyt(name=hex_of(NAME, upper=True), address=hex_of(ADDRESS, upper=True))
    lower, upper = judge(bhyt()), judge(upper_hex)
    assert upper.recognition.accepted
    assert lower.card is not None and upper.card is not None
    assert upper.card.personal() == lower.card.personal()


def test_old_and_new_card_of_one_person_share_the_subject() -> None:
    old, new = recognise(bhyt_v1()), recognise(bhyt())
    assert (old.variant, new.variant) == ("bhyt-v1", "bhyt-v2")
    assert old.subject_id == new.subject_id == "9999000077"
    assert old.masked == new.masked == "99******77"


def test_old_number_on_the_new_layout_is_accepted() -> None:
    """Spec §8.6: cards reissued after 2021 from old numbers may use 17 fields."""
    rec = recognise(bhyt(card="DN4489999000077"))
    assert rec.accepted and rec.variant == "bhyt-v2" and rec.subject_id == "9999000077"


def test_check_field_is_never_judged_by_value() -> None:
    for check in ("ffffffffffffffff-0000", "0-9999", "ABCDEF012345678-7102"):
        accepted(bhyt(check=check))
    rejected(bhyt(check="1a2b3c4d5e6f7081"), "check string [13]: expected <1-16 hex digits>-<4 digits>")
    rejected(bhyt(check="1a2b3c4d5e6f70819-1202"), "check string [13]: expected <1-16 hex digits>-<4 digits>")


def test_parent_name_hex_or_plain_and_address_dash() -> None:
    child = judge(bhyt(parent=hex_of("Hoàng Văn Ba"), address="-")).card
    assert child is not None
    assert child.personal()["parent_name"] == "Hoàng Văn Ba" and child.personal()["address"] is None
    plain = judge(bhyt(parent="Hoang Van Ba")).card
    assert plain is not None and plain.personal()["parent_name"] == "Hoang Van Ba"
    # Hex digits only, but not valid hex: a damaged hex name, not plain text.
    rejected(bhyt(parent=hex_of("Hoàng")[:-1]), "parent name [10]: not an even-length hex string")


@pytest.mark.parametrize(
    "parent",
    ["Hoàng Văn Ba", "HOÀNG VĂN BA", "Ho?ng V?n Ba", "Đặng Thị Ơn", "BA", "ABE", "???"],
)
def test_a_childs_card_may_name_the_parent_in_plain_text(parent: str) -> None:
    """Issue 14, item 2: field 10 of a child's (TE) card may be plain text, Vietnamese letters kept or
    printed as '?'; letters that happen to be hex digits are a name too (hex of a name has digits)."""
    for card in (bhyt(parent=parent), bhyt_v1(card="TE1489999000077", parent=parent)):
        judgement = judge(card)
        assert judgement.recognition.accepted, judgement.recognition.reason
        assert judgement.card is not None and judgement.card.personal()["parent_name"] == parent
    decomposed = judge(bhyt(parent=unicodedata.normalize("NFD", parent))).card
    assert decomposed is not None and decomposed.personal()["parent_name"] == parent


def test_non_ascii_where_it_means_damage() -> None:
    # Telex rewrote the hex of the parent's name: digits among Vietnamese letters.
    damaged = hex_of("Phạm Văn Ên").replace("aa", "â")
    assert damaged != hex_of("Phạm Văn Ên")
    rejected(bhyt(parent=damaged), IME_DAMAGE)
    # Vietnamese letters anywhere else are damage, the parent's plain-text name beside them or not.
    rejected(bhyt(parent="Hoàng Văn Ba", area="â"), IME_DAMAGE)
    rejected(bhyt(parent="Hoàng 1 Ba"), IME_DAMAGE)
    rejected(bhyt(parent="Hoang-Van-Ba"), "parent name [10]: expected hex or a name (letters, spaces, '?')")
    rejected(bhyt(parent="Hoang\tBa"), "parent name [10]: expected hex or a name (letters, spaces, '?')")


def test_the_damage_reason_names_no_input_method_of_this_device() -> None:
    """The Pi reads scanners through evdev or serial bytes, never an input method: the reason must not
    send a technician looking for one to switch off, and must say what helps."""
    assert "Vietnamese IME" in IME_DAMAGE and "scan the original card" in IME_DAMAGE
    assert "this reader uses none" in IME_DAMAGE
    assert not any(word in IME_DAMAGE.lower() for word in ("switch", "turn off", "disable", "keystroke"))


def test_five_year_date_may_be_a_dash_or_start_with_a_space() -> None:
    accepted(bhyt(five_years="-"))
    accepted(bhyt(five_years=" 01/01/2028"))
    accepted(bhyt(five_years="01/01/2028"))


# -- BHYT rules that reject -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (bhyt(valid_to="31/12/2022"), "valid to [7] is before valid from [6]"),
        (bhyt(valid_from="31/02/2023"), "valid from [6]: impossible date"),
        (bhyt(issued="2023-01-20"), "issue date [8]: expected dd/mm/yyyy, got a 10-character value"),
        (bhyt(valid_from="01/01/1020"), "valid from [6]: year 1020 outside 1992-2099"),
        (bhyt(dob="07/11/1896"), "date of birth [2]: year before 1900"),
        (bhyt(dob="07/11/2024"), "date of birth [2] is after issue date [8]"),
        (bhyt(gender="0"), "gender [3] must be 1 (male) or 2 (female), got '0'"),
        (bhyt(gender=hex_of(NAME)), "gender [3] must be 1 (male) or 2 (female), got a 48-character value"),
        (bhyt(facility="48 - 01"), "facility code [5]: expected 'PP - XXX' (2 digits, dash, 3 characters)"),
        (bhyt(manager="4801999900007X"), "managing code [9]: expected digits"),
        (
            bhyt(manager="48019999000078"),
            "managing code [9] does not end with the card's 10-digit BHXH number",
        ),
        (bhyt(area="K1"), "living-area code [11]: expected one digit, got 'K1'"),
        (bhyt(benefit="6"), "benefit level [14] must be a digit 1-5, got '6'"),
        (bhyt(issuer="c3"), "issuing office [15]: hex does not decode as UTF-8"),
        (bhyt(name=hex_of("Ánh\x07")), "name [1]: decoded text contains a control character"),
        (bhyt(name="-"), "name [1]: not an even-length hex string"),
        (
            bhyt(card="99990000770"),
            "card number [0]: expected 10 digits (BHXH number) or 2 letters and 13 digits",
        ),
        (
            bhyt(card="DNG489999000077"),
            "card number [0]: expected 10 digits (BHXH number) or 2 letters and 13 digits",
        ),
        (bhyt(benefit="4|extra"), "BHYT payload has 18 fields: expected 15 (v1 card) or 17 (v2 card)"),
        ("A|B|$", "BHYT payload has 3 fields: expected 15 (v1 card) or 17 (v2 card)"),
        (bhyt()[:-2], "BHYT payload must end with the field '$'"),
        (bhyt().replace("|4|", "|4\t|", 1), "BHYT payload contains a tab character"),
    ],
)
def test_bhyt_rule_rejects_with_field_and_rule(text: str, reason: str) -> None:
    rec = recognise(text)
    assert (rec.type, rec.accepted, rec.reason) == ("bhyt", False, reason)


def test_date_of_birth_is_never_quoted() -> None:
    for dob in ("31/02/1996", "1996/11/07", "07.11.1996"):
        rec = recognise(bhyt(dob=dob))
        assert not rec.accepted and rec.reason is not None
        assert "1996" not in rec.reason and "07" not in rec.reason, rec.reason


def test_ime_damage_names_the_input_method() -> None:
    # Unikey Telex turns "dd" into "đ" and "ee" into "ê" inside the hex.
    damaged = bhyt().replace("dd", "đ", 1).replace("ee", "ê", 1)
    assert damaged != bhyt()
    rec = recognise(damaged)
    assert rec.type == "bhyt" and not rec.accepted
    assert rec.reason is not None and "Vietnamese IME" in rec.reason and "Unikey" in rec.reason


def test_wrong_keyboard_layout_is_named() -> None:
    # A US scanner typing into a German layout: '-' arrives as 'ß', '|' as an apostrophe.
    german = bhyt().replace("-", "ß")
    assert "keyboard layout" in (recognise(german).reason or "")
    separators = bhyt().replace("|", "'")
    rec = recognise(separators)
    assert rec.type == "bhyt" and not rec.accepted
    assert rec.reason == (
        "BHYT payload separators are ''' instead of '|' (the host keyboard layout probably differs from the "
        "scanner's: set both to US)"
    )


# -- CCCD -----------------------------------------------------------------------------------------


def test_nfd_input_is_the_same_person() -> None:
    composed, decomposed = judge(cccd()), judge(unicodedata.normalize("NFD", cccd()))
    assert decomposed.recognition.accepted, decomposed.recognition.reason
    assert decomposed.card is not None and composed.card is not None
    assert decomposed.card.personal() == composed.card.personal()
    assert decomposed.recognition.record is not None
    assert decomposed.recognition.record.name == NAME


def test_2024_card_with_trailing_empty_fields() -> None:
    for extra in ("|", "||", "|||"):
        rec = recognise(cccd(old_id="") + extra)
        assert rec.accepted and rec.subject_id == "048196999977", rec.reason
    rejected(cccd() + "|x", "CCCD payload has 8 fields: expected 7")


@pytest.mark.parametrize("gender", ["NAM", "nam", "NỮ", "nữ"])
def test_gender_text_in_any_case(gender: str) -> None:
    male = gender.casefold() == "nam"
    number = "048096999977" if male else "048196999977"
    accepted(cccd(id=number, gender=gender))


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (cccd(id="000196999977"), "ID number [0]: province code is not one of the 63 codes"),
        (cccd(id="04819699997"), "ID number [0]: expected 12 digits"),
        (cccd(id="048396999977"), "ID number century digit does not match date of birth"),
        (cccd(id="048096999977"), "ID number gender digit does not match gender field"),
        (cccd(id="048197999977"), "ID number birth-year digits do not match date of birth"),
        (cccd(old_id="99999997"), "old ID number [1]: expected 9 digits or empty"),
        (cccd(name=""), "name [2]: empty"),
        (cccd(name="Hoàng Thị 9"), "name [2]: contains a digit"),
        (cccd(dob="31021996"), "date of birth [3]: impossible date"),
        (cccd(dob="1996-11-07"), "date of birth [3]: expected ddmmyyyy, got '9999-99-99'"),
        (cccd(gender="Female"), "gender [4]: expected Nam/Nữ, got a 6-character value"),
        (cccd(issued="12/08/2021"), "issue date [6]: expected ddmmyyyy, got a 10-character value"),
        (cccd(issued="12082015"), "issue date [6]: year 2015 outside 2016-2099"),
        (cccd(dob="07112022"), "date of birth [3] is after issue date [6]"),
        ("|".join(cccd().split("|")[:1] + cccd().split("|")[2:]), "CCCD payload has 6 fields: expected 7"),
    ],
)
def test_cccd_rule_rejects_with_field_and_rule(text: str, reason: str) -> None:
    rec = recognise(text)
    assert (rec.type, rec.accepted, rec.reason) == ("cccd", False, reason)


def test_digits_are_ascii_digits() -> None:
    arabic = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")
    rejected(
        cccd(issued="12082021".translate(arabic)),
        "issue date [6]: expected ddmmyyyy, got a 8-character value",
    )
    rejected(cccd(dob="07111996".translate(arabic)), "date of birth [3]: expected ddmmyyyy, got '????????'")


def test_century_digits_for_later_centuries() -> None:
    accepted(cccd(id="048303999977", dob="15082003"))
    accepted(cccd(id="048203999977", dob="15082003", gender="Nam"))


@pytest.mark.parametrize("region", ["100", "368", "999"])
def test_a_birth_registered_abroad_starts_with_a_country_code(region: str) -> None:
    """TT 07/2016/TT-BCA: a first digit other than 0 makes the three digits a country code."""
    rec = recognise(cccd(id=region + "196999977"))
    assert rec.accepted, rec.reason
    assert rec.subject_id == region + "196999977"
    # The other digits are checked as for any number.
    rejected(cccd(id=region + "197999977"), "ID number birth-year digits do not match date of birth")


def test_the_code_lists_are_data_the_check_follows() -> None:
    assert len(PROVINCES) == 63 and all(code[0] == "0" for code in PROVINCES)
    assert COUNTRIES and not any(code[0] == "0" for code in COUNTRIES)
    # Whatever the lists hold, the number is judged by them.
    check_number("ID number [0]", "100196999977", countries={"100"})
    with pytest.raises(PayloadRejected, match=r"^ID number \[0\]: country code is not on the list"):
        check_number("ID number [0]", "200196999977", countries={"100"})
    with pytest.raises(PayloadRejected, match=r"^ID number \[0\]: province code is not one of the 2 codes"):
        check_number("ID number [0]", "048196999977", provinces={"001", "002"})


def test_split_id_number_still_reads_as_an_attempted_cccd() -> None:
    """A '|' typed into the ID number must not turn a CCCD into an accepted 'other' code."""
    text = cccd(id="04819|6999977")
    rec = recognise(text)
    assert rec.type == "cccd" and not rec.accepted


# -- suffixes, generic rejections, other codes ----------------------------------------------------


@pytest.mark.parametrize("suffix", ["\r", "\n", "\r\n", "\x00", "\x00" * 40, "\r\n\x00\x00", "\n\r"])
def test_scanner_suffixes_are_stripped(suffix: str) -> None:
    for text in (bhyt(), bhyt_v1(), cccd(), "VISITOR-42"):
        assert trim(text + suffix) == text
        assert recognise(text + suffix) == recognise(text)


@pytest.mark.parametrize(
    ("before", "after"),
    [
        ("", "\t"),
        ("", "\t\r\n"),
        (" ", " "),
        ("\t", ""),
        ("\r\n", "\n"),
        ("  ", "\t\x00\x00"),
        ("", " \r\n\x00"),
    ],
)
def test_whitespace_around_the_read_is_trimmed_like_its_suffix(before: str, after: str) -> None:
    """Issue 14, item 4: every public parser trims it; a TAB suffix is a common scanner setting."""
    for text in (bhyt(), bhyt_v1(), cccd(), personal_qr(ext="2"), "VISITOR-42"):
        assert trim(before + text + after) == text
        assert recognise(before + text + after) == recognise(text)


def test_inner_spaces_are_data() -> None:
    assert recognise(bhyt(five_years=" 01/01/2028")).accepted
    # Issue 14: the whitespace around a read is the scanner's, like its CR/LF; inside, it is data.
    assert recognise("  BADGE 7  ").subject_id == "BADGE 7"
    assert recognise("BADGE  7").subject_id == "BADGE  7"
    assert recognise("BADGE\t7\t").subject_id == "BADGE\t7"
    card = judge(cccd(address=" Tổ 9,  Phường Thí Điểm ")).card
    assert card is not None and card.personal()["address"] == " Tổ 9,  Phường Thí Điểm "


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "empty scan"),
        (" \t ", "empty scan"),
        ("\r\n", "empty scan"),
        ("abc\x01def", "control character U+0001 in scan"),
        ("abc\x7f", "control character U+007F in scan"),
        ("abc\x00def", "control character U+0000 in scan"),
        ("x" * (MAX_CHARS + 1), f"too long: {MAX_CHARS + 1} characters (at most {MAX_CHARS})"),
    ],
)
def test_generic_rejections(text: str, reason: str) -> None:
    rec = recognise(text)
    assert (rec.type, rec.accepted, rec.reason) == (None, False, reason)


def test_other_codes() -> None:
    assert recognise("x" * MAX_CHARS).accepted
    rec = recognise("EMP\t12345")
    assert (rec.type, rec.accepted, rec.variant, rec.subject_id) == ("other", True, "other", "EMP\t12345")
    off = recognise("EMP-12345", accept_other=False)
    assert (off.type, off.accepted) == ("other", False)
    assert off.reason is not None and "accept_other" in off.reason
    # accept_other only concerns other codes.
    assert recognise(cccd(), accept_other=False).accepted
    # Pipes and a leading number alone do not make a CCCD: a phone number is no ID number.
    assert recognise("0912345678|NGUYEN VAN A|x|y|z|w|v").type == "other"


def test_masked_other_shows_two_characters_and_hides_the_length() -> None:
    short, long = recognise("NGUYEN VAN A 0912345678"), recognise("NG" + "x" * 3000)
    assert short.masked == long.masked == "NG******"
    assert recognise("ABCD").masked == "****"


def test_mask() -> None:
    assert mask("001090999901") == "0010******01"
    assert mask("12345") == "*****"
    assert mask("9999000001", 2, 2) == "99******01"
