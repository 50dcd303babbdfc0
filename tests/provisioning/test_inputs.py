"""What a technician types: plates, broker URLs, ids; and the label code the device will read back."""

from __future__ import annotations

import string
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from device.errors import ProvisionError
from device.label_code import format_label_code, parse_label_code
from device.payloads import recognise
from device.settings import TOPIC_SAFE
from provisioning.broker_url import BrokerUrl, parse_broker_url
from provisioning.cli import main as provision_main
from provisioning.plates import normalise_plate
from provisioning.prepare import check_id, location_for
from tests.support.payloads import vectors

PLATES = [
    ("98C-123.45", "98C12345"),
    ("98c-123.45", "98C12345"),
    ("  98C 123.45 ", "98C12345"),
    ("98C12345", "98C12345"),
    ("51G1-234.56", "51G123456"),
    ("29LD-123.45", "29LD12345"),
    ("30E-1234", "30E1234"),
    ("29-B1 123.45", "29B112345"),
    ("51F-123.456", "51F123456"),
]

BAD_PLATES = [
    ("", "empty"),
    ("98C", "no number"),
    ("98C-123", "three digits"),
    ("98C-1234567", "seven digits"),
    ("9C-123.45", "one province digit"),
    ("98-123.45", "no series"),
    ("98ABC-123.45", "three series letters"),
    ("98C--123.45", "doubled separator"),
    ("-98C-123.45", "leading separator"),
    ("98C_123.45", "underscore"),
    ("98C/123.45", "slash: topic level"),
    ("98C+12345", "plus: topic wildcard"),
    ("98C#12345", "hash: topic wildcard"),
    ("98C\x0012345", "NUL"),
    ("98C\t12345", "tab"),
    ("98С-123.45", "Cyrillic С"),
    ("９８C-123.45", "full-width digits"),
    ("98Đ-123.45", "Vietnamese Đ"),
    ("98C-١٢٣٤٥", "Arabic-Indic digits"),
]


@pytest.mark.parametrize(("typed", "expected"), PLATES)
def test_plates_are_normalised(typed: str, expected: str) -> None:
    assert normalise_plate(typed) == expected
    assert TOPIC_SAFE.fullmatch(expected)


@pytest.mark.parametrize(("typed", "why"), BAD_PLATES)
def test_bad_plates_are_refused_quoting_the_input_and_the_rule(typed: str, why: str) -> None:
    with pytest.raises(ProvisionError) as info:
        normalise_plate(typed)
    message = str(info.value)
    assert repr(typed) in message, why
    assert "expected two digits" in message


def test_look_alike_letters_are_named() -> None:
    with pytest.raises(ProvisionError, match=r"U\+0421"):
        normalise_plate("98С-123.45")


@given(st.text(alphabet=string.printable + "СĐ９١", max_size=20))
def test_any_accepted_plate_is_a_topic_safe_id(typed: str) -> None:
    try:
        plate = normalise_plate(typed)
    except ProvisionError:
        return
    assert TOPIC_SAFE.fullmatch(plate) and plate.isascii() and plate == plate.upper()


URLS = [
    ("mqtt://broker.example.com", BrokerUrl("broker.example.com", 1883, False)),
    ("mqtts://broker.example.com", BrokerUrl("broker.example.com", 8883, True)),
    ("MQTTS://10.0.0.5:9883", BrokerUrl("10.0.0.5", 9883, True)),
    ("mqtt://localhost:1883/", BrokerUrl("localhost", 1883, False)),
    ("mqtt://[::1]:1884", BrokerUrl("::1", 1884, False)),
]

BAD_URLS = [
    ("broker.example.com", "has no scheme"),
    ("http://broker.example.com", "has scheme 'http'"),
    ("tcp://broker:1883", "has scheme 'tcp'"),
    ("mqtt://", "has no host"),
    ("mqtt://broker:99999", "cannot be read"),
    ("mqtt://broker:0", "port 0"),
    ("mqtt://broker:port", "cannot be read"),
    ("mqtt://user:secret@broker", "carries credentials"),
    ("mqtt://broker/checkin", "path"),
    ("mqtt://broker?x=1", "query"),
    ("mqtt://bro ker", "spaces"),
    ("mqtt://brokér.vn", "non-ASCII"),
    ("mqtt://-broker", "no valid host name"),
    ("mqtt://bro_ker", "no valid host name"),
]


@pytest.mark.parametrize(("typed", "expected"), URLS)
def test_broker_urls(typed: str, expected: BrokerUrl) -> None:
    assert parse_broker_url(typed) == expected


def test_a_broker_url_prints_back_complete() -> None:
    assert str(parse_broker_url("mqtt://[::1]")) == "mqtt://[::1]:1883"


@pytest.mark.parametrize(("typed", "why"), BAD_URLS)
def test_bad_broker_urls_are_refused(typed: str, why: str) -> None:
    with pytest.raises(ProvisionError) as info:
        parse_broker_url(typed)
    assert repr(typed) in str(info.value)
    assert why in str(info.value)
    assert "expected mqtt://HOST[:PORT]" in str(info.value)


@pytest.mark.parametrize("value", ["gate 1", "gate/1", "gate+", "#", "", "..", ".", "x" * 65, "cổng-1"])
def test_location_ids_must_be_topic_safe(value: str) -> None:
    with pytest.raises(ProvisionError, match="not topic-safe"):
        check_id("location id", value)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("bus", None, "gate-1", None), "named by its plate"),
        (("bus", "98C-123.45", "gate-1", None), "named by its plate"),
        (("door", "98C-123.45", None, None), "named by --location-id"),
        (("door", None, None, None), "named by --location-id"),
        (("tram", None, "t-1", None), "kind 'tram'"),
        (("door", None, "gate-1", "Cổng\x071"), "printable"),
    ],
)
def test_locations_refuse_mixed_up_options(args: Any, message: str) -> None:
    with pytest.raises(ProvisionError, match=message):
        location_for(*args)


def test_a_bus_location_keeps_the_plate_as_written_for_people() -> None:
    loc = location_for("bus", "98c-123.45", None, None)
    assert (loc.id, loc.kind, loc.name) == ("98C12345", "bus", "98C-123.45")
    assert location_for("door", None, "gate-1", "Cổng 1").name == "Cổng 1"


def test_label_code_round_trips() -> None:
    text = format_label_code("qrc-0a1b2c3d", "98C12345", "0123456789ab")
    assert text == "QRCHECKIN-LABEL/1|qrc-0a1b2c3d|98C12345|0123456789ab"
    code = parse_label_code(text + "\r\n")
    assert code is not None
    assert (code.device_id, code.location_id, code.config_hash) == (
        "qrc-0a1b2c3d",
        "98C12345",
        "0123456789ab",
    )


@pytest.mark.parametrize(
    "text",
    [
        "QRCHECKIN-LABEL/2|qrc-0a1b2c3d|98C12345|0123456789ab",
        "QRCHECKIN-LABEL/1|qrc-0a1b2c3d|98C12345",
        "QRCHECKIN-LABEL/1|qrc-0a1b2c3d|98C/12345|0123456789ab",
        "QRCHECKIN-LABEL/1|qrc-0a1b2c3d|98C12345|0123456789AB",
        "QRCHECKIN-LABEL/1|qrc-0a1b2c3d|98C12345|0123456789ab|extra",
        "qrcheckin-label/1|qrc-0a1b2c3d|98C12345|0123456789ab",
        "",
    ],
)
def test_damaged_or_foreign_labels_are_not_labels(text: str) -> None:
    assert parse_label_code(text) is None


def test_format_label_refuses_what_could_not_parse_back() -> None:
    with pytest.raises(ValueError, match="topic-safe"):
        format_label_code("qrc 1", "98C12345", "0123456789ab")
    with pytest.raises(ValueError, match="12 lowercase hex"):
        format_label_code("qrc-1", "98C12345", "xyz")


def test_no_check_in_code_reads_as_a_label_and_a_label_is_no_card() -> None:
    samples = [
        s["payload"]
        for group in vectors().values()
        if isinstance(group, list)
        for s in group
        if "payload" in s
    ]
    assert len(samples) > 10
    assert all(parse_label_code(text) is None for text in samples)
    label = recognise(format_label_code("qrc-0a1b2c3d", "98C12345", "0123456789ab"))
    assert label.type not in ("bhyt", "cccd")


@given(
    st.from_regex(r"[A-Za-z0-9._-]{1,64}", fullmatch=True),
    st.from_regex(r"[A-Za-z0-9._-]{1,64}", fullmatch=True),
    st.from_regex(r"[0-9a-f]{12}", fullmatch=True),
)
def test_every_valid_label_round_trips(device_id: str, location_id: str, config_hash: str) -> None:
    code = parse_label_code(format_label_code(device_id, location_id, config_hash))
    assert code is not None and (code.device_id, code.location_id, code.config_hash) == (
        device_id,
        location_id,
        config_hash,
    )


def test_verify_refuses_to_send_a_password_over_plain_mqtt(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    secret = tmp_path / "pw"
    secret.write_text("consumer-password\n")
    args = [
        "verify",
        "--broker",
        "mqtt://127.0.0.1:1",
        "--username",
        "consumer",
        "--password-file",
        str(secret),
    ]
    args += ["--device", "qrc-0a1b2c3d", "--expect-hash", "0" * 12, "--timeout", "1"]
    assert provision_main(args) == 1
    assert "would cross the network in clear" in capsys.readouterr().err
    # With --insecure it goes on to the broker (none listens on port 1 here).
    assert provision_main([*args, "--insecure"]) == 1
    assert "cannot connect to mqtt://127.0.0.1:1" in capsys.readouterr().err
