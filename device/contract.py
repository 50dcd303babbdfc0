"""The message contract between a device and whoever consumes it, in one place.

Schema ids, topics, the time format, the event body (and its re-stamp after a clock sync), the status
body and the shipped JSON Schemas. The collector imports this module (`from device import contract`),
so it holds only the standard library: no paho, no PyNaCl, no hardware, no settings. The JSON Schemas
in device/schema/ stay the single source of the enums; a test checks the code's literals against them.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, Literal, NamedTuple, get_args

EVENT_SCHEMA = "checkin.event/1"
STATUS_SCHEMA = "checkin.status/1"
REPLAY_SCHEMA = "checkin.replay/1"
COMMITTED_SCHEMA = "checkin.committed/1"

# The topic version: a breaking change of the messages gets a new one, and new topics with it.
TOPIC_VERSION = "v1"
DEFAULT_PREFIX = "checkin"

TopicKind = Literal["events", "status", "cmd/replay", "cmd/committed"]
TOPIC_KINDS: tuple[TopicKind, ...] = get_args(TopicKind)

# What is counted per scan; the store keeps the totals across restarts, plus "dropped".
COUNTER_NAMES = ("scans", "accepted", "duplicates", "rejected", "storage_failures")
STATUS_COUNTERS = (*COUNTER_NAMES, "dropped")
# The fields the offline status (the will, a clean stop) repeats from the last online one.
OFFLINE_FIELDS = ("device_id", "location_id", "version", "incarnation")


@dataclass(frozen=True, slots=True)
class Topics:
    """One device's topics under `{prefix}/v1/{location_id}/{device_id}`."""

    events: str
    status: str
    cmd_replay: str
    cmd_committed: str

    @classmethod
    def of(cls, prefix: str, location_id: str, device_id: str) -> Topics:
        base = f"{prefix}/{TOPIC_VERSION}/{location_id}/{device_id}"
        return cls(
            events=f"{base}/events",
            status=f"{base}/status",
            cmd_replay=f"{base}/cmd/replay",
            cmd_committed=f"{base}/cmd/committed",
        )


@dataclass(frozen=True, slots=True)
class ConsumerFilters:
    """What a consumer subscribes to: every device's events and statuses under one prefix."""

    events: str
    status: str

    @classmethod
    def of(cls, prefix: str = DEFAULT_PREFIX) -> ConsumerFilters:
        base = f"{prefix}/{TOPIC_VERSION}/+/+"
        return cls(events=f"{base}/events", status=f"{base}/status")

    def shared(self, group: str) -> ConsumerFilters:
        """The same filters as an MQTT 5 shared subscription: each message goes to one group member."""
        return ConsumerFilters(events=f"$share/{group}/{self.events}", status=f"$share/{group}/{self.status}")


class TopicParts(NamedTuple):
    kind: TopicKind
    location_id: str
    device_id: str


def parse_topic(topic: str, prefix: str | None = None) -> TopicParts:
    """(kind, location_id, device_id) of a device topic; ValueError for any other topic.

    Without `prefix` any prefix is accepted (it may hold slashes); with it, only that one."""
    for kind in TOPIC_KINDS:
        tail = f"/{kind}"
        if not topic.endswith(tail):
            continue
        head = topic[: -len(tail)].split("/")
        if len(head) < 4 or head[-3] != TOPIC_VERSION:
            break
        location_id, device_id = head[-2], head[-1]
        found_prefix = "/".join(head[:-3])
        if prefix is not None and found_prefix != prefix:
            break
        if not (_TOPIC_SAFE.fullmatch(location_id) and _TOPIC_SAFE.fullmatch(device_id) and found_prefix):
            break
        return TopicParts(kind, location_id, device_id)
    raise ValueError(f"not a qr-checkin device topic: {topic[:200]!r}")


_TOPIC_SAFE = re.compile(r"[A-Za-z0-9._-]{1,64}")


# -- time --------------------------------------------------------------------------------------------

_ISO_UTC = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z")


def iso_utc(ts: float) -> str:
    """The contract's time format: UTC, ISO 8601, milliseconds, `Z` (2026-12-01T21:11:38.123Z)."""
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_iso_utc(text: str) -> dt.datetime:
    """An aware UTC datetime from the contract's time format; ValueError for any other form."""
    if not isinstance(text, str) or not _ISO_UTC.fullmatch(text):
        raise ValueError(f"not a contract time (YYYY-MM-DDTHH:MM:SS.mmmZ): {str(text)[:40]!r}")
    return dt.datetime.fromisoformat(text[:-1] + "+00:00")


# -- the event ---------------------------------------------------------------------------------------


def build_event(
    *,
    event_id: str,
    seq: int,
    incarnation: str,
    device_id: str,
    location_id: str,
    location_kind: str,
    location_name: str | None,
    wall: float,
    synced: bool,
    boot_id: str,
    monotonic_s: float,
    source: str,
    direction: str | None,
    code_type: str,
    code_variant: str | None,
    subject: Mapping[str, Any],
    software: str,
) -> dict[str, Any]:
    """One check-in as published (checkin.event/1)."""
    event: dict[str, Any] = {
        "schema": EVENT_SCHEMA,
        "event_id": event_id,
        "device_id": device_id,
        "location_id": location_id,
        "location_kind": location_kind,
        "seq": seq,
        "incarnation": incarnation,
        "scanned_at": iso_utc(wall),
        "clock": "synced" if synced else "unsynced",
        "boot_id": boot_id,
        "monotonic_s": round(monotonic_s, 3),
        "source": source,
        "direction": direction,
        "code": {"type": code_type, "variant": code_variant},
        "subject": dict(subject),
        "software": software,
    }
    if location_name:
        event["location_name"] = location_name
    return event


def restamp(event: Mapping[str, Any], wall: float) -> dict[str, Any]:
    """The event with the time a synchronised clock gives it, marked as corrected (nothing else changes)."""
    return {**event, "scanned_at": iso_utc(wall), "clock": "synced", "clock_corrected": True}


# -- the status --------------------------------------------------------------------------------------


def status_fields(
    *,
    device_id: str,
    location_id: str,
    location_kind: str,
    location_name: str | None,
    version: str,
    config_hash: str,
    incarnation: str,
    boot_id: str,
    last_seq: int,
    backlog: int,
    oldest_undelivered_age_s: float | None,
    dead_letters: int,
    unheard: int,
    counters: Mapping[str, int],
) -> dict[str, Any]:
    """The part of the status both the daemon's heartbeat and `qr-checkin status` report."""
    return {
        "device_id": device_id,
        "location_id": location_id,
        "location_kind": location_kind,
        "location_name": location_name,
        "version": version,
        "config_hash": config_hash,
        "incarnation": incarnation,
        "boot_id": boot_id,
        "last_seq": last_seq,
        "backlog": backlog,
        "oldest_undelivered_age_s": oldest_undelivered_age_s,
        "dead_letters": dead_letters,
        "unheard": unheard,
        "counters": {name: int(counters.get(name, 0)) for name in STATUS_COUNTERS},
    }


def online_status(fields: Mapping[str, Any]) -> dict[str, Any]:
    """The retained birth/heartbeat message (checkin.status/1, state online)."""
    return {"schema": STATUS_SCHEMA, "state": "online", **fields}


def offline_status(reason: str, fields: Mapping[str, Any]) -> dict[str, Any]:
    """The will or the clean stop's message: who, and why it went."""
    kept = {k: v for k, v in fields.items() if k in OFFLINE_FIELDS}
    return {"schema": STATUS_SCHEMA, "state": "offline", "reason": reason, **kept}


# -- commands to a device (the collector publishes, the device obeys) --------------------------------

# The most seqs one replay request covers; a larger range is clipped and the answer says so.
MAX_REPLAY_SPAN = 10_000
MAX_REQUEST_ID = 64
# A command larger than this is not one of ours.
MAX_COMMAND_BYTES = 4096

SeqRange = tuple[int, int]


@dataclass(frozen=True, slots=True)
class ReplayRequest:
    request_id: str
    from_seq: int
    to_seq: int
    incarnation: str | None = None

    def clipped(self) -> ReplayRequest:
        """The request cut to at most MAX_REPLAY_SPAN seqs from its start."""
        to_seq = min(self.to_seq, self.from_seq + MAX_REPLAY_SPAN - 1)
        return ReplayRequest(self.request_id, self.from_seq, to_seq, self.incarnation)

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "schema": REPLAY_SCHEMA,
            "request_id": self.request_id,
            "from_seq": self.from_seq,
            "to_seq": self.to_seq,
        }
        if self.incarnation is not None:
            body["incarnation"] = self.incarnation
        return body


@dataclass(frozen=True, slots=True)
class Committed:
    incarnation: str
    through_seq: int

    def body(self) -> dict[str, Any]:
        return {"schema": COMMITTED_SCHEMA, "incarnation": self.incarnation, "through_seq": self.through_seq}


def parse_replay(payload: bytes | str) -> ReplayRequest:
    """A checkin.replay/1 request; ValueError naming what is wrong (never quoting the payload)."""
    body = _command(payload, REPLAY_SCHEMA)
    request_id = body.get("request_id")
    if not isinstance(request_id, str) or not 1 <= len(request_id) <= MAX_REQUEST_ID:
        raise ValueError(f"request_id must be a string of 1 to {MAX_REQUEST_ID} characters")
    from_seq, to_seq = _seq(body, "from_seq", 1), _seq(body, "to_seq", 1)
    if to_seq < from_seq:
        raise ValueError("to_seq is below from_seq")
    incarnation = body.get("incarnation")
    if incarnation is not None and not isinstance(incarnation, str):
        raise ValueError("incarnation must be a string")
    return ReplayRequest(request_id, from_seq, to_seq, incarnation)


def parse_committed(payload: bytes | str) -> Committed:
    """A checkin.committed/1 confirmation; ValueError naming what is wrong."""
    body = _command(payload, COMMITTED_SCHEMA)
    incarnation = body.get("incarnation")
    if not isinstance(incarnation, str) or not incarnation:
        raise ValueError("incarnation must be a non-empty string")
    return Committed(incarnation, _seq(body, "through_seq", 0))


def _command(payload: bytes | str, schema: str) -> dict[str, Any]:
    if len(payload) > MAX_COMMAND_BYTES:
        raise ValueError(f"larger than {MAX_COMMAND_BYTES} bytes")
    try:
        body = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        raise ValueError("not JSON") from None
    if not isinstance(body, dict):
        raise ValueError("not a JSON object")
    if body.get("schema") != schema:
        raise ValueError(f"schema is not {schema!r}")
    return body


def _seq(body: Mapping[str, Any], name: str, minimum: int) -> int:
    value = body.get(name)
    # bool is an int to Python, never to the contract.
    if not isinstance(value, int) or isinstance(value, bool) or not minimum <= value < 2**63:
        raise ValueError(f"{name} must be an integer >= {minimum}")
    return value


def seq_ranges(seqs: Iterable[int]) -> list[SeqRange]:
    """Sorted distinct seqs as inclusive ranges: 1 2 3 7 -> [(1, 3), (7, 7)]."""
    ranges: list[list[int]] = []
    for seq in sorted(set(seqs)):
        if ranges and seq == ranges[-1][1] + 1:
            ranges[-1][1] = seq
        else:
            ranges.append([seq, seq])
    return [(a, b) for a, b in ranges]


def missing_ranges(lo: int, hi: int, present: Iterable[int]) -> list[SeqRange]:
    """The inclusive ranges of lo..hi not in `present`."""
    missing: list[SeqRange] = []
    start = lo
    for a, b in seq_ranges(s for s in present if lo <= s <= hi):
        if a > start:
            missing.append((start, a - 1))
        start = b + 1
    if start <= hi:
        missing.append((start, hi))
    return missing


def replay_answer(
    request_id: str, incarnation: str, replayed: Iterable[SeqRange], gone: Iterable[SeqRange]
) -> dict[str, Any]:
    """The status's `replay` field: what a request got back and what the device no longer holds."""
    return {
        "request_id": request_id,
        "incarnation": incarnation,
        "replayed": [[a, b] for a, b in replayed],
        "gone": [[a, b] for a, b in gone],
    }


# -- the shipped JSON Schemas -------------------------------------------------------------------------

SCHEMA_FILES = {
    EVENT_SCHEMA: "checkin.event.v1.json",
    STATUS_SCHEMA: "checkin.status.v1.json",
    REPLAY_SCHEMA: "checkin.replay.v1.json",
    COMMITTED_SCHEMA: "checkin.committed.v1.json",
}


def schema_path(name: str) -> Path:
    """The file of a shipped schema, by schema id (`checkin.event/1`) or file name."""
    file = SCHEMA_FILES.get(name, name)
    if file not in SCHEMA_FILES.values():
        raise KeyError(f"no shipped schema {name!r}; known: {', '.join(SCHEMA_FILES)}")
    return Path(str(resources.files("device").joinpath("schema", file)))


@cache
def _load(file: str) -> str:
    return schema_path(file).read_text(encoding="utf-8")


def load_schema(name: str) -> dict[str, Any]:
    """A shipped schema as a fresh dict (callers may change it)."""
    schema: dict[str, Any] = json.loads(_load(SCHEMA_FILES.get(name, name)))
    return schema
