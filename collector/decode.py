"""From a received MQTT message to what the database keeps: an events row, a devices row, or an
invalid_messages row with the reason. Every message is validated against the shipped JSON Schema."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import Any

import jsonschema_rs
import orjson

from collector.store import JsonBody, utc
from collector.subjects import SubjectError, Subjects
from device import contract

EXCERPT_CHARS = 120
# The databases' BIGINT: a larger number would fail the whole batch.
MAX_INT = 2**63 - 1
# paho hands payloads over as bytes, typed as either.
Payload = bytes | bytearray
_DIGIT_RUN = re.compile(r"\d{3,}")


class Invalid(ValueError):
    """The message is kept in invalid_messages with this reason, then acknowledged."""


@dataclass(frozen=True, slots=True)
class Event:
    row: dict[str, Any]
    device_id: str
    incarnation: str
    location_id: str
    seq: int


@dataclass(frozen=True, slots=True)
class Status:
    row: dict[str, Any]
    device_id: str
    location_id: str
    incarnation: str | None
    last_seq: int | None
    replay: dict[str, Any] | None


def mask_digits(text: str) -> str:
    """Every run of three or more digits becomes '#'s: no ID number survives into a log or a table."""
    return _DIGIT_RUN.sub(lambda m: "#" * len(m[0]), text)


def invalid_row(topic: str, payload: Payload, reason: str, wall: float) -> dict[str, Any]:
    excerpt = payload[: EXCERPT_CHARS * 4].decode("utf-8", "replace")[:EXCERPT_CHARS]
    return {
        "received_at": _utc(wall),
        # Unmasked: only device and location ids can be in a topic we subscribe to.
        "topic": topic[:512],
        "reason": mask_digits(reason)[:500],
        "excerpt": mask_digits(excerpt),
        "size": len(payload),
    }


@lru_cache(maxsize=4)
def _utc(wall: float) -> dt.datetime:
    # One datetime per batch: every row of a batch is received at the same wall time.
    return utc(wall)


@cache
def _validator(schema_id: str) -> Any:
    return jsonschema_rs.validator_for(contract.load_schema(schema_id))


def _parse(payload: Payload, schema_id: str, max_bytes: int) -> tuple[dict[str, Any], str]:
    """The validated body and the text it was parsed from."""
    if len(payload) > max_bytes:
        raise Invalid(f"oversized: {len(payload)} bytes (at most {max_bytes})")
    try:
        # UTF-8 only (orjson's rule; json.loads also guessed UTF-16 and UTF-32, which no device sends).
        text = payload.decode("utf-8")
        body = orjson.loads(text)
    except (UnicodeDecodeError, ValueError) as exc:
        raise Invalid(f"not UTF-8 JSON: {type(exc).__name__} at {getattr(exc, 'pos', '?')}") from None
    if not isinstance(body, dict):
        raise Invalid(f"not a JSON object: {type(body).__name__}")
    if body.get("schema") != schema_id:
        raise Invalid(f"schema {str(body.get('schema'))[:40]!r}, expected {schema_id!r}")
    validator = _validator(schema_id)
    if not validator.is_valid(body):
        error = next(iter(validator.iter_errors(body)))
        where = "/".join(str(p) for p in error.instance_path) or "(top)"
        raise Invalid(f"{schema_id} schema: {where}: {error.message[:300]}")
    return body, text


def _same_origin(body: dict[str, Any], parts: contract.TopicParts) -> None:
    # The broker's ACL ties a login to its own topic: a body naming another device is not believed.
    for key, expected in (("device_id", parts.device_id), ("location_id", parts.location_id)):
        if key in body and body[key] != expected:
            raise Invalid(f"{key} {str(body[key])[:64]!r} differs from the topic's {expected!r}")


def event(
    parts: contract.TopicParts, payload: Payload, subjects: Subjects, max_bytes: int, wall: float
) -> Event:
    body, text = _parse(payload, contract.EVENT_SCHEMA, max_bytes)
    _same_origin(body, parts)
    received = body["subject"]
    try:
        subject = subjects.stored(received)
    except SubjectError as exc:
        raise Invalid(str(exc)) from None
    try:
        scanned_at = contract.parse_iso_utc(body["scanned_at"])
    except ValueError as exc:
        raise Invalid(str(exc)) from None
    body["subject"] = subject
    if body["seq"] > MAX_INT:
        raise Invalid(f"seq above {MAX_INT}")
    incarnation = _incarnation(body)
    for key, limit in (("key_id", 16), ("masked", 64)):
        if len(str(subject.get(key) or "")) > limit:
            raise Invalid(f"subject {key} longer than {limit} characters")
    row = {
        "event_id": body["event_id"],
        "device_id": parts.device_id,
        "incarnation": incarnation,
        "seq": body["seq"],
        "location_id": parts.location_id,
        "location_kind": body["location_kind"],
        "scanned_at": scanned_at,
        "clock": body["clock"],
        "code_type": body["code"]["type"],
        "subject_mode": subject["mode"],
        "subject_hmac": subject["hmac"],
        "key_id": subject["key_id"],
        "masked": subject.get("masked"),
        "direction": body.get("direction"),
        "source": body["source"],
        "received_at": _utc(wall),
        # The message's own text is the body as stored unless the subject changed (an ID dropped, a
        # sealed subject opened): then only the dict says what may be kept.
        "body": JsonBody(body, text) if subject == received else body,
    }
    return Event(row, parts.device_id, incarnation, parts.location_id, body["seq"])


def _incarnation(body: dict[str, Any]) -> str:
    # Events and statuses from before incarnations existed form the stream "".
    incarnation = body.get("incarnation") or ""
    if not isinstance(incarnation, str) or len(incarnation) > 64:
        raise Invalid("incarnation is not a string of at most 64 characters")
    return incarnation


# Display fields are cut to their columns; what identifies (device, incarnation) is checked instead.
STATUS_TEXT = {
    "location_kind": 16,
    "location_name": 200,
    "reason": 200,
    "version": 64,
    "config_hash": 64,
    "boot_id": 64,
    "location_address": 300,
    "location_ward": 100,
    "location_district": 100,
    "location_province": 100,
}
STATUS_COLUMNS = (
    "location_kind",
    "location_name",
    "state",
    "reason",
    "version",
    "config_hash",
    "backlog",
    "incarnation",
    "last_seq",
    "boot_id",
    "location_address",
    "location_ward",
    "location_district",
    "location_province",
)


def status(parts: contract.TopicParts, payload: Payload, max_bytes: int) -> Status:
    body, _text = _parse(payload, contract.STATUS_SCHEMA, max_bytes)
    _same_origin(body, parts)
    # Only what the message says: a will names few fields, and must not blank the others.
    row: dict[str, Any] = {"device_id": parts.device_id, "location_id": parts.location_id, "status": body}
    row.update({k: body[k] for k in STATUS_COLUMNS if body.get(k) is not None})
    if any(isinstance(row.get(k), int) and row[k] > MAX_INT for k in ("backlog", "last_seq")):
        raise Invalid(f"backlog or last_seq above {MAX_INT}")
    for key, limit in STATUS_TEXT.items():
        if key in row:
            row[key] = str(row[key])[:limit]
    incarnation = _incarnation(body) if "incarnation" in body else None
    replay = body.get("replay")
    last_seq = body.get("last_seq")
    return Status(
        row=row,
        device_id=parts.device_id,
        location_id=parts.location_id,
        incarnation=incarnation,
        last_seq=last_seq if isinstance(last_seq, int) else None,
        replay=replay if isinstance(replay, dict) else None,
    )
