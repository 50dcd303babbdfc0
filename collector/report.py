"""What `qr-collector status` and `qr-collector gaps` read from the database (no MQTT, no writes)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa

from collector import tables as t
from collector.store import COUNTER_NAMES, Store, wall_of


def _iso(value: dt.datetime | None) -> str | None:
    wall = wall_of(value)
    return None if wall is None else dt.datetime.fromtimestamp(wall, dt.UTC).isoformat(timespec="seconds")


def presence(row: dict[str, Any], now: float, heartbeat_s: float) -> str:
    """online | offline | stale | unknown: stale after two heartbeats without news, whatever is retained."""
    seen = wall_of(row.get("last_seen_at"))
    if row["state"] == "offline":
        return "offline"
    if seen is None or now - seen > 2 * heartbeat_s:
        return "stale"
    return "online" if row["state"] == "online" else "unknown"


def status(store: Store, now: float, heartbeat_s: float) -> dict[str, Any]:
    counters = store.counters()
    streams = {(r["device_id"], r["incarnation"]): r for r in store.rows(t.streams)}
    with store.engine.connect() as conn:
        last_commit = conn.execute(sa.select(sa.func.max(t.streams.c.updated_at))).scalar_one()
    devices = []
    for row in store.rows(t.devices, order_by=[t.devices.c.location_id, t.devices.c.device_id]):
        stream = streams.get((row["device_id"], row["incarnation"] or ""))
        through = int(stream["through_seq"]) if stream else 0
        devices.append(
            {
                "device_id": row["device_id"],
                "location_id": row["location_id"],
                "location_kind": row["location_kind"],
                "location_name": row["location_name"],
                "state": row["state"],
                "presence": presence(row, now, heartbeat_s),
                "version": row["version"],
                "config_hash": row["config_hash"],
                "backlog": row["backlog"],
                "incarnation": row["incarnation"],
                "last_seq": row["last_seq"],
                "through_seq": through,
                "behind": max(int(row["last_seq"] or 0) - through, 0),
                "last_heartbeat_at": _iso(row["last_heartbeat_at"]),
                "last_seen_at": _iso(row["last_seen_at"]),
            }
        )
    last_commit_wall = wall_of(last_commit)
    lost = store.rows(t.known_losses)
    return {
        "database": store.safe_url,
        "counters": counters,
        # The identity the ingest keeps: every event message is stored, a duplicate, or invalid.
        "balanced": counters["received"] == sum(counters[n] for n in ("stored", "duplicate", "invalid")),
        "events": store.count(t.events),
        "invalid_messages": store.count(t.invalid_messages),
        "last_commit_at": _iso(last_commit),
        "lag_s": None if last_commit_wall is None else round(max(now - last_commit_wall, 0.0), 1),
        "devices": devices,
        "open_gaps": store.count(t.gaps, t.gaps.c.state == "open"),
        "known_losses": len(lost),
        "known_lost_seqs": sum(int(r["to_seq"]) - int(r["from_seq"]) + 1 for r in lost),
    }


def gaps(store: Store) -> list[dict[str, Any]]:
    """Per (device, incarnation): its prefix, open and closed gaps, and known losses."""
    out: dict[tuple[str, str], dict[str, Any]] = {}

    def entry(device_id: str, incarnation: str, location_id: str) -> dict[str, Any]:
        return out.setdefault(
            (device_id, incarnation),
            {
                "device_id": device_id,
                "location_id": location_id,
                "incarnation": incarnation,
                "through_seq": None,
                "open": [],
                "repaired": [],
                "lost": [],
                "known_losses": [],
            },
        )

    for row in store.rows(t.streams):
        entry(row["device_id"], row["incarnation"], row["location_id"])["through_seq"] = int(
            row["through_seq"]
        )
    g = t.gaps.c
    for row in store.rows(t.gaps, order_by=[g.device_id, g.incarnation, g.from_seq]):
        entry(row["device_id"], row["incarnation"], row["location_id"])[row["state"]].append(
            {
                "from_seq": int(row["from_seq"]),
                "to_seq": int(row["to_seq"]),
                "missing": int(row["missing"]),
                "requests": int(row["requests"]),
                "opened_at": _iso(row["opened_at"]),
                "last_request_at": _iso(row["last_request_at"]),
                "closed_at": _iso(row["closed_at"]),
            }
        )
    k = t.known_losses.c
    for row in store.rows(t.known_losses, order_by=[k.device_id, k.incarnation, k.from_seq]):
        entry(row["device_id"], row["incarnation"], row["location_id"])["known_losses"].append(
            {
                "from_seq": int(row["from_seq"]),
                "to_seq": int(row["to_seq"]),
                "reported_at": _iso(row["reported_at"]),
                "request_id": row["request_id"],
                "detail": row["detail"],
            }
        )
    return [out[key] for key in sorted(out)]


__all__ = ["COUNTER_NAMES", "gaps", "presence", "status"]
