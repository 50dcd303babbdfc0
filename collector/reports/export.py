"""The scan history as a file ("Xuất file danh sách lịch sử quét Mã QR"), streamed row by row.

Columns (a contract: added to, never renamed):

| column           | content                                                               |
| ---------------- | --------------------------------------------------------------------- |
| scanned_at_local | the scan's time in the site's time zone, `YYYY-MM-DD HH:MM:SS`         |
| location_name    | the location's name as its device describes it                       |
| location_kind    | bus, door, workshop, gate, other                                      |
| plate            | a bus's plate, i.e. its location id (empty for other kinds)           |
| direction        | in, out or empty                                                      |
| employee_no      | the roster's employee number; empty for a visitor                     |
| masked_id        | the masked ID as the device showed it (never the number)              |
| code_type        | bhyt, cccd, personal, other                                           |
| device_id        | the reader                                                            |
| seq              | the reader's sequence number (with device_id, the scan's identity)    |
| clock            | synced, or unsynced when the reader's clock was not yet true          |

The rows come from a server-side cursor (`yield_per`), so a million of them need no more memory than
a thousand; the writers (collector/reports/output.py) stream as well.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from collector import tables as t
from collector.reports.common import locations
from collector.reports.roster import Roster
from collector.store import Store

COLUMNS = (
    "scanned_at_local",
    "location_name",
    "location_kind",
    "plate",
    "direction",
    "employee_no",
    "masked_id",
    "code_type",
    "device_id",
    "seq",
    "clock",
)
FETCH_ROWS = 5000


def export_rows(
    store: Store,
    roster: Roster,
    tz: ZoneInfo,
    *,
    start: dt.datetime,
    end: dt.datetime,
    location_ids: Sequence[str] = (),
) -> Iterator[tuple[Any, ...]]:
    """Rows of COLUMNS in time order; `location_ids` limits them to those locations."""
    known = locations(store)
    employee = roster.by_subject
    e = t.events.c
    query = (
        sa.select(
            e.scanned_at,
            e.location_id,
            e.location_kind,
            e.direction,
            e.subject_hmac,
            e.masked,
            e.code_type,
            e.device_id,
            e.seq,
            e.clock,
        )
        .where(e.scanned_at >= start, e.scanned_at < end)
        .order_by(e.scanned_at, e.device_id, e.seq)
    )
    if location_ids:
        query = query.where(e.location_id.in_(list(location_ids)))
    names = {k: (v.label, v.plate) for k, v in known.items()}
    utc = dt.UTC
    with store.engine.connect() as conn:
        result = conn.execution_options(stream_results=True, yield_per=FETCH_ROWS).execute(query)
        for at, location_id, kind, direction, subject, masked, code_type, device_id, seq, clock in result:
            name, plate = names.get(location_id, (location_id, None))
            # SQLite hands back naive UTC; isoformat is several times cheaper than strftime per row.
            local = (at if at.tzinfo else at.replace(tzinfo=utc)).astimezone(tz)
            yield (
                local.replace(tzinfo=None).isoformat(" ", "seconds"),
                name,
                kind,
                plate if kind == "bus" else None,
                direction,
                employee.get(subject),
                masked,
                code_type,
                device_id,
                seq,
                clock,
            )
