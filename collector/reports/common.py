"""What every report shares: local days and periods, the locations as the devices describe them."""

from __future__ import annotations

import datetime as dt
import gc
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from collector import tables as t
from collector.store import Store

UTC = dt.UTC
_NOT_ALNUM = re.compile(r"[^0-9A-Z]")


class ReportError(ValueError):
    """A report cannot run as asked (bad period, unknown employee...): the message says why."""


@contextmanager
def collection_paused() -> Iterator[None]:
    """The cyclic garbage collector paused while a report builds tens of thousands of objects that
    stay alive to the end: each collection would walk every live one again (the roster's included),
    and a trace of 23 000 contacts spent a third of its CPU there. The objects hold no reference
    cycles, so reference counting frees them all the same. Usable as a decorator."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def aware(value: dt.datetime) -> dt.datetime:
    """A timestamp from the database as an aware datetime: SQLite hands back naive ones, which are UTC
    here; PostgreSQL's come in the session's zone (the same instant, so left as they are)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def local_day(day: dt.date, tz: ZoneInfo) -> tuple[dt.datetime, dt.datetime]:
    """The UTC bounds [start, end) of a local day (23 or 25 hours long where clocks change)."""
    start = dt.datetime.combine(day, dt.time(), tz)
    end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tz)
    return start.astimezone(UTC), end.astimezone(UTC)


def parse_day(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise ReportError(f"not a date (YYYY-MM-DD): {text[:40]!r}") from None


def parse_when(text: str, tz: ZoneInfo, *, end: bool = False) -> dt.datetime:
    """A local date or date-time as UTC. A bare date as an end means the end of that day."""
    try:
        if len(text) == 10:
            day = dt.date.fromisoformat(text)
            return local_day(day, tz)[1 if end else 0]
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        raise ReportError(
            f"not a local date or time (YYYY-MM-DD or YYYY-MM-DDTHH:MM): {text[:40]!r}"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=tz)
    return moment.astimezone(UTC)


def period(start: str, end: str, tz: ZoneInfo) -> tuple[dt.datetime, dt.datetime]:
    a, b = parse_when(start, tz), parse_when(end, tz, end=True)
    if b <= a:
        raise ReportError(f"the period ends ({end}) before it starts ({start})")
    return a, b


def place_key(text: str | None) -> str:
    """A plate or gate as people write it and as a topic id spells it compare equal: 98C-123.45 = 98C12345."""
    return _NOT_ALNUM.sub("", (text or "").upper())


@dataclass
class Location:
    location_id: str
    name: str | None = None
    kind: str | None = None
    plate: str | None = None
    address: str | None = None
    ward: str | None = None
    district: str | None = None
    province: str | None = None
    devices: list[dict[str, Any]] = field(default_factory=list)

    @property
    def label(self) -> str:
        return self.name or self.location_id


ADDRESS_FIELDS = ("address", "ward", "district", "province")


class Places(dict[str, Location]):
    """Locations by id, matched to what people write (an id, a plate, a name) through one index."""

    _index: dict[str, Location] | None = None

    def match(self, written: str | None) -> Location | None:
        key = place_key(written)
        if not key:
            return None
        if self._index is None:
            self._index = {}
            # An id wins over a plate, a plate over a name.
            for attr in ("location_id", "plate", "name"):
                for loc in self.values():
                    if place_key(getattr(loc, attr)):
                        self._index.setdefault(place_key(getattr(loc, attr)), loc)
        return self._index.get(key)


def locations(store: Store) -> Places:
    """Every location a device has described (its latest non-empty words win), by location_id."""
    out = Places()
    d = t.devices.c
    with store.engine.connect() as conn:
        rows = conn.execute(sa.select(t.devices).order_by(d.location_id, d.device_id)).mappings().all()
    for row in rows:
        loc = out.setdefault(row["location_id"], Location(row["location_id"]))
        for key in ("name", "kind", *ADDRESS_FIELDS):
            value = row[f"location_{key}"]
            if value and not getattr(loc, key):
                setattr(loc, key, value)
        loc.devices.append(dict(row))
    for loc in out.values():
        # A bus is named by its plate: its location id is the plate without punctuation by convention.
        if loc.kind == "bus":
            loc.plate = loc.location_id
    return out


def match_location(assigned: str | None, known: Places) -> Location | None:
    """The location a roster row's bus plate or gate names (by id, plate or name, punctuation ignored)."""
    return known.match(assigned)
