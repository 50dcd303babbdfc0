"""Has a device confirmed that the collector holds every scan it made before a moment?

A device confirms a moment when, after it, it said so in a live status: state online, a heartbeat
received after the moment, and every seq up to that status's `last_seq` committed here (or known
lost), with no open gap. Until then its scans of the time before may still be on the device (a bus
offline until the next morning), so whoever could have scanned there is `unknown`, not absent.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from collector import tables as t
from collector.reports.common import aware
from collector.store import Store


@dataclass(frozen=True)
class Verdict:
    device_id: str
    location_id: str
    confirmed: bool
    reason: str | None
    # A known loss in the period: no later status can confirm it.
    permanent: bool = False


def verdicts(store: Store, start: dt.datetime, end: dt.datetime) -> dict[str, Verdict]:
    """Per device: does it confirm every scan before `end`? (losses matter only within [start, end))."""
    out: dict[str, Verdict] = {}
    with store.engine.connect() as conn:
        devices = conn.execute(sa.select(t.devices)).mappings().all()
        streams = {
            (r.device_id, r.incarnation): int(r.through_seq) for r in conn.execute(sa.select(t.streams))
        }
        open_gaps = {
            d: int(n)
            for d, n in conn.execute(
                sa.select(t.gaps.c.device_id, sa.func.count())
                .where(t.gaps.c.state == "open")
                .group_by(t.gaps.c.device_id)
            )
        }
        losses = conn.execute(sa.select(t.known_losses)).mappings().all()
        lost_in_period = {
            loss["device_id"]: f"known loss of seq {loss['from_seq']}-{loss['to_seq']}"
            for loss in losses
            if _loss_touches(conn, loss, start, end)
        }
        for row in devices:
            device, location = row["device_id"], row["location_id"]
            if device in lost_in_period:
                out[device] = Verdict(device, location, False, lost_in_period[device], permanent=True)
                continue
            reason = _reason(conn, row, streams, open_gaps, end)
            out[device] = Verdict(device, location, reason is None, reason)
    return out


def _reason(
    conn: Connection,
    row: sa.RowMapping,
    streams: dict[tuple[str, str], int],
    open_gaps: dict[str, int],
    end: dt.datetime,
) -> str | None:
    heard = row["last_heartbeat_at"]
    if row["state"] != "online":
        return f"{row['state']} (last status {_when(heard)})"
    if heard is None or aware(heard) < end:
        return f"no status since the period's end (last {_when(heard)})"
    last_seq = row["last_seq"]
    if last_seq is None:
        return "its status names no last_seq"
    if open_gaps.get(row["device_id"]):
        return f"{open_gaps[row['device_id']]} open gap(s) being replayed"
    incarnation = row["incarnation"] or ""
    through = streams.get((row["device_id"], incarnation), 0)
    if through < last_seq:
        # The streams row is a checkpoint; the events are the truth (the checkpoint may lag a sweep).
        e, k = t.events.c, t.known_losses.c
        have = conn.execute(
            sa.select(sa.func.count(sa.distinct(e.seq))).where(
                e.device_id == row["device_id"],
                e.incarnation == incarnation,
                e.seq > through,
                e.seq <= last_seq,
            )
        ).scalar_one()
        lost = sum(
            min(int(b), last_seq) - max(int(a), through + 1) + 1
            for a, b in conn.execute(
                sa.select(k.from_seq, k.to_seq).where(
                    k.device_id == row["device_id"],
                    k.incarnation == incarnation,
                    k.to_seq > through,
                    k.from_seq <= last_seq,
                )
            )
        )
        missing = last_seq - through - int(have) - lost
        if missing > 0:
            return f"{missing} of its {last_seq} seqs not received yet"
    return None


def _loss_touches(conn: Connection, loss: sa.RowMapping, start: dt.datetime, end: dt.datetime) -> bool:
    """A lost range lies between the scans just before and just after it: does that span the period?"""
    e = t.events.c
    where = (e.device_id == loss["device_id"], e.incarnation == loss["incarnation"])
    before = conn.execute(
        sa.select(e.scanned_at).where(*where, e.seq < loss["from_seq"]).order_by(e.seq.desc()).limit(1)
    ).scalar()
    after = conn.execute(
        sa.select(e.scanned_at).where(*where, e.seq > loss["to_seq"]).order_by(e.seq).limit(1)
    ).scalar()
    return (before is None or aware(before) < end) and (after is None or aware(after) >= start)


def _when(value: dt.datetime | None) -> str:
    return "never" if value is None else aware(value).astimezone(dt.UTC).isoformat(timespec="seconds")
