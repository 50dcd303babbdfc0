"""The list of check-in locations the province asked for: name, kind, plate, address, devices, the
first and last check-in, and the state of its devices."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import sqlalchemy as sa

from collector import tables as t
from collector.report import presence
from collector.reports.common import aware, locations
from collector.store import Store

COLUMNS = (
    "location_id",
    "name",
    "kind",
    "plate",
    "address",
    "ward",
    "district",
    "province",
    "devices",
    "first_checkin",
    "last_checkin",
    "state",
)


@dataclass
class LocationRow:
    location_id: str
    name: str | None
    kind: str | None
    plate: str | None
    address: str | None
    ward: str | None
    district: str | None
    province: str | None
    devices: list[str]
    first_checkin: dt.datetime | None
    last_checkin: dt.datetime | None
    # online when every device is online; otherwise each device's presence (online/offline/stale).
    state: str

    def cells(self, tz: dt.tzinfo) -> tuple[object, ...]:
        local = [
            None if v is None else v.astimezone(tz).strftime("%Y-%m-%d %H:%M:%S")
            for v in (self.first_checkin, self.last_checkin)
        ]
        return (
            self.location_id,
            self.name,
            self.kind,
            self.plate,
            self.address,
            self.ward,
            self.district,
            self.province,
            ", ".join(self.devices),
            *local,
            self.state,
        )


def location_rows(store: Store, *, now: float, heartbeat_s: float) -> list[LocationRow]:
    e = t.events.c
    known = locations(store)
    spans: dict[str, tuple[dt.datetime | None, dt.datetime | None]] = {}
    with store.engine.connect() as conn:
        for location_id in known:
            # Two index lookups per location (location_id, scanned_at), not a pass over every event.
            here = e.location_id == location_id
            first = conn.execute(sa.select(sa.func.min(e.scanned_at)).where(here)).scalar()
            last = conn.execute(sa.select(sa.func.max(e.scanned_at)).where(here)).scalar()
            spans[location_id] = (
                None if first is None else aware(first),
                None if last is None else aware(last),
            )
    out = []
    for loc in known.values():
        states = {d["device_id"]: presence(d, now, heartbeat_s) for d in loc.devices}
        if set(states.values()) == {"online"}:
            state = "online"
        else:
            state = ", ".join(f"{d} {s}" for d, s in sorted(states.items()))
        first, last = spans.get(loc.location_id, (None, None))
        out.append(
            LocationRow(
                loc.location_id,
                loc.name,
                loc.kind,
                loc.plate,
                loc.address,
                loc.ward,
                loc.district,
                loc.province,
                sorted(states),
                first,
                last,
                state,
            )
        )
    return sorted(out, key=lambda r: (r.kind or "", r.name or r.location_id))
