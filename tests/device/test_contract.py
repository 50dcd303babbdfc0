"""The message contract module: what consumers import, and that the code agrees with the schemas."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import typing
from typing import Any

import jsonschema
import pytest

from device import contract
from device.payloads import CodeType
from device.scan import Direction, SourceKind
from device.settings import LocationSettings, PrivacySettings, SourceName
from tests.support.daemon import ROOT
from tests.support.schema import validate_event, validate_message, validate_status


def literal_values(annotation: Any) -> set[Any]:
    """The values of a Literal, through Optional and Annotated wrappers."""
    if typing.get_origin(annotation) is typing.Literal:
        return set(typing.get_args(annotation))
    if annotation is type(None):
        return {None}
    values: set[Any] = set()
    for arg in typing.get_args(annotation):
        values |= literal_values(arg)
    return values


def event_property(*path: str) -> dict[str, Any]:
    node: dict[str, Any] = contract.load_schema(contract.EVENT_SCHEMA)
    for key in path:
        node = node["properties"][key]
    return node


def test_the_contract_module_loads_no_network_crypto_or_hardware_library() -> None:
    probe = (
        "import sys; import device.contract;"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in"
        " ('paho', 'nacl', 'evdev', 'gpiozero', 'serial', 'uuid6', 'pydantic', 'picamera2', 'cv2')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    assert json.loads(out.replace("'", '"')) == []


def test_the_codes_literals_are_the_schemas_enums() -> None:
    assert literal_values(SourceKind) == set(event_property("source")["enum"])
    assert literal_values(SourceName) == set(event_property("source")["enum"])
    assert literal_values(CodeType) == set(event_property("code", "type")["enum"])
    kind = LocationSettings.model_fields["kind"].annotation
    assert literal_values(kind) == set(event_property("location_kind")["enum"])
    assert literal_values(Direction | None) == set(event_property("direction")["enum"])
    mode = PrivacySettings.model_fields["subject"].annotation
    assert literal_values(mode) <= set(event_property("subject", "mode")["enum"])


def test_every_shipped_schema_is_a_valid_schema_named_by_its_id() -> None:
    for schema_id, file in contract.SCHEMA_FILES.items():
        if not contract.schema_path(schema_id).exists():
            continue  # a schema added by a later change of the contract
        schema = contract.load_schema(file)
        jsonschema.Draft202012Validator.check_schema(schema)
        assert schema["title"] == schema_id
        assert schema["properties"]["schema"] == {"const": schema_id}
    with pytest.raises(KeyError):
        contract.schema_path("../settings.py")


def test_topics_of_a_device_and_the_parser_agree() -> None:
    topics = contract.Topics.of("checkin", "98C12345", "bus-1")
    assert topics.events == "checkin/v1/98C12345/bus-1/events"
    assert topics.status == "checkin/v1/98C12345/bus-1/status"
    assert topics.cmd_replay == "checkin/v1/98C12345/bus-1/cmd/replay"
    assert topics.cmd_committed == "checkin/v1/98C12345/bus-1/cmd/committed"
    for topic, kind in (
        (topics.events, "events"),
        (topics.status, "status"),
        (topics.cmd_replay, "cmd/replay"),
        (topics.cmd_committed, "cmd/committed"),
    ):
        assert contract.parse_topic(topic) == (kind, "98C12345", "bus-1")
        assert contract.parse_topic(topic, prefix="checkin").kind == kind
    nested = contract.Topics.of("site/a", "GATE1", "d1").events
    assert contract.parse_topic(nested) == ("events", "GATE1", "d1")
    for bad in (
        "checkin/v1/98C12345/bus-1/other",
        "checkin/v2/98C12345/bus-1/events",
        "checkin/v1/98C12345/events",
        "v1/98C12345/bus-1/events",
        "checkin/v1/98C 12345/bus-1/events",
        "checkin/v1/98C12345/bus-1/x/events",
    ):
        with pytest.raises(ValueError):
            contract.parse_topic(bad)
    with pytest.raises(ValueError):
        contract.parse_topic(topics.events, prefix="other")


def test_consumer_filters_match_the_device_topics() -> None:
    filters = contract.ConsumerFilters.of()
    assert filters.events == "checkin/v1/+/+/events"
    assert filters.status == "checkin/v1/+/+/status"
    assert filters.shared("ingest").events == "$share/ingest/checkin/v1/+/+/events"


def test_the_time_format_round_trips_and_refuses_other_forms() -> None:
    ts = 1_700_000_000.25
    text = contract.iso_utc(ts)
    assert text == "2023-11-14T22:13:20.250Z"
    assert contract.parse_iso_utc(text) == dt.datetime.fromtimestamp(ts, dt.UTC)
    for bad in ("2023-11-14T22:13:20Z", "2023-11-14T22:13:20.250+00:00", "2023-11-14", "", "x" * 100):
        with pytest.raises(ValueError):
            contract.parse_iso_utc(bad)


def sample_event(**changes: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "event_id": "01890a5d-ac96-774b-bcce-b302099a8057",
        "seq": 7,
        "incarnation": "6f1c2b1e-3c5d-4a8e-9b0a-1d2e3f405162",
        "device_id": "bus-1",
        "location_id": "98C12345",
        "location_kind": "bus",
        "location_name": "",
        "wall": 0.0,
        "synced": False,
        "boot_id": "b1",
        "monotonic_s": 12.34567,
        "source": "serial",
        "direction": "in",
        "code_type": "cccd",
        "code_variant": "chip",
        "subject": {"mode": "hmac", "hmac": "0" * 64, "key_id": "abcd1234", "masked": "0010******01"},
        "software": "1.0",
    }
    return contract.build_event(**{**fields, **changes})


def test_a_built_event_is_valid_and_a_restamp_changes_only_the_time() -> None:
    event = sample_event()
    validate_event(event)
    assert event["monotonic_s"] == 12.346 and "location_name" not in event
    assert sample_event(location_name="Bus 7")["location_name"] == "Bus 7"
    fixed = contract.restamp(event, 1_700_000_000.0)
    validate_event(fixed)
    assert fixed["scanned_at"] == "2023-11-14T22:13:20.000Z"
    assert fixed["clock"] == "synced" and fixed["clock_corrected"] is True
    changed = {k for k in fixed if fixed[k] != event.get(k)}
    assert changed == {"scanned_at", "clock", "clock_corrected"}
    assert event["clock"] == "unsynced", "the original is left alone"


def test_status_bodies_are_valid() -> None:
    fields = contract.status_fields(
        device_id="bus-1",
        location_id="98C12345",
        location_kind="bus",
        location_name="",
        version="1.0",
        config_hash="abc",
        incarnation="6f1c2b1e-3c5d-4a8e-9b0a-1d2e3f405162",
        boot_id="b1",
        last_seq=0,
        backlog=0,
        oldest_undelivered_age_s=None,
        dead_letters=0,
        unheard=0,
        counters={"accepted": 3},
    )
    assert fields["counters"] == {name: 3 * (name == "accepted") for name in contract.STATUS_COUNTERS}
    online = contract.online_status(fields)
    validate_status(online)
    offline = contract.offline_status("connection lost", fields)
    validate_status(offline)
    assert offline == {
        "schema": contract.STATUS_SCHEMA,
        "state": "offline",
        "reason": "connection lost",
        **{k: fields[k] for k in contract.OFFLINE_FIELDS},
    }


def test_commands_round_trip_through_their_schemas() -> None:
    request = contract.ReplayRequest("gap-1", 5, 9, incarnation="6f1c2b1e-3c5d-4a8e-9b0a-1d2e3f405162")
    validate_message(request.body())
    assert contract.parse_replay(json.dumps(request.body())) == request
    bare = contract.ReplayRequest("gap-2", 1, 1)
    validate_message(bare.body())
    assert "incarnation" not in bare.body()
    assert contract.parse_replay(json.dumps(bare.body()).encode()) == bare
    committed = contract.Committed("6f1c2b1e-3c5d-4a8e-9b0a-1d2e3f405162", 0)
    validate_message(committed.body())
    assert contract.parse_committed(json.dumps(committed.body())) == committed


def replay_payload(**changes: Any) -> bytes:
    body = {"schema": contract.REPLAY_SCHEMA, "request_id": "a", "from_seq": 1, "to_seq": 2, **changes}
    return json.dumps({k: v for k, v in body.items() if v is not None}).encode()


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"\xff\xfe", "not JSON"),
        (b"[1]", "not a JSON object"),
        (replay_payload(schema="checkin.replay/2"), "schema"),
        (replay_payload(request_id=None), "request_id"),
        (replay_payload(request_id="x" * 65), "request_id"),
        (replay_payload(from_seq=0), "from_seq"),
        (replay_payload(from_seq=True), "from_seq"),
        (replay_payload(from_seq=1.5), "from_seq"),
        (replay_payload(from_seq=3), "below"),
        (replay_payload(incarnation=7), "incarnation"),
        (b" " * 5000, "larger"),
    ],
)
def test_a_malformed_replay_request_is_refused_with_a_reason(payload: bytes, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        contract.parse_replay(payload)
    # The schema refuses what the parser refuses; the size limit, non-JSON and the order of the two
    # seqs (JSON Schema cannot compare fields) are the parser's own.
    try:
        body = json.loads(payload)
    except ValueError:
        return
    if isinstance(body, dict) and len(payload) <= contract.MAX_COMMAND_BYTES and reason != "below":
        schema = jsonschema.Draft202012Validator(contract.load_schema(contract.REPLAY_SCHEMA))
        assert not schema.is_valid(body)


def test_a_malformed_confirmation_is_refused() -> None:
    for body in (
        {"schema": "checkin.committed/1", "through_seq": 3},
        {"schema": "checkin.committed/1", "incarnation": "", "through_seq": 3},
        {"schema": "checkin.committed/1", "incarnation": "x", "through_seq": -1},
        {"schema": "checkin.replay/1", "incarnation": "x", "through_seq": 3},
    ):
        with pytest.raises(ValueError):
            contract.parse_committed(json.dumps(body))


def test_a_replay_request_is_clipped_to_the_maximum_span() -> None:
    huge = contract.ReplayRequest("r", 10, 10**9)
    assert huge.clipped() == contract.ReplayRequest("r", 10, 10 + contract.MAX_REPLAY_SPAN - 1)
    small = contract.ReplayRequest("r", 10, 20)
    assert small.clipped() == small


def test_seq_ranges_and_their_complement() -> None:
    assert contract.seq_ranges([7, 1, 3, 2, 2]) == [(1, 3), (7, 7)]
    assert contract.seq_ranges([]) == []
    assert contract.missing_ranges(1, 10, [3, 4, 8, 12]) == [(1, 2), (5, 7), (9, 10)]
    assert contract.missing_ranges(1, 3, [1, 2, 3]) == []
    assert contract.missing_ranges(5, 6, []) == [(5, 6)]
    answer = contract.replay_answer("r", "inc", [(1, 2)], [(3, 3)])
    assert answer == {"request_id": "r", "incarnation": "inc", "replayed": [[1, 2]], "gone": [[3, 3]]}
