"""From a received MQTT message to what the database keeps: an events row, a devices row, or an
invalid_messages row with the reason. Every message is validated against the shipped JSON Schema."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from typing import Any

import jsonschema_rs

from collector.store import utc
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
        "received_at": utc(wall),
        # Unmasked: only device and location ids can be in a topic we subscribe to.
        "topic": topic[:512],
        "reason": mask_digits(reason)[:500],
        "excerpt": mask_digits(excerpt),
        "size": len(payload),
    }


@cache
def _validator(schema_id: str) -> Any:
    return jsonschema_rs.validator_for(contract.load_schema(schema_id))


def _parse(payload: Payload, schema_id: str, max_bytes: int) -> dict[str, Any]:
    if len(payload) > max_bytes:
        raise Invalid(f"oversized: {len(payload)} bytes (at most {max_bytes})")
    try:
        body = json.loads(payload)
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
    return body


def _same_origin(body: dict[str, Any], parts: contract.TopicParts) -> None:
    # The broker's ACL ties a login to its own topic: a body naming another device is not believed.
    for key, expected in (("device_id", parts.device_id), ("location_id", parts.location_id)):
        if key in body and body[key] != expected:
            raise Invalid(f"{key} {str(body[key])[:64]!r} differs from the topic's {expected!r}")


def event(
    parts: contract.TopicParts, payload: Payload, subjects: Subjects, max_bytes: int, wall: float
) -> Event:
    body = _parse(payload, contract.EVENT_SCHEMA, max_bytes)
    _same_origin(body, parts)
    try:
        subject = subjects.stored(body["subject"])
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
        "received_at": utc(wall),
        "body": body,
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
)


def status(parts: contract.TopicParts, payload: Payload, max_bytes: int) -> Status:
    body = _parse(payload, contract.STATUS_SCHEMA, max_bytes)
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
