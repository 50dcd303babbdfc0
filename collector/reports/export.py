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

The rows come from a server-side cursor in batches, so a million of them need no more memory than a
thousand; the writers (collector/reports/output.py) stream as well.
"""

from __future__ import annotations

import datetime as dt
import queue
import threading
from collections.abc import Iterator, Sequence
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.engine import Connection

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
# PostgreSQL writes the local time itself (its IANA zones are the same data as zoneinfo's): the
# client then only looks up names, which keeps a million rows within the export's time budget.
LOCAL_FORMAT = "YYYY-MM-DD HH24:MI:SS"


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
    names = {k: (v.label, v.plate) for k, v in locations(store).items()}
    employee = roster.by_subject.get
    e = t.events.c
    postgres = store.dialect == "postgresql"
    when = (
        sa.func.to_char(sa.func.timezone(str(tz), e.scanned_at), LOCAL_FORMAT) if postgres else e.scanned_at
    )
    query = (
        sa.select(
            when,
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
    with store.engine.connect() as conn:
        rows = _server_side(conn, query) if postgres else _streamed(conn, query, tz)
        for local, location_id, kind, direction, subject, masked, code_type, device_id, seq, clock in rows:
            name, plate = names.get(location_id) or (location_id, None)
            yield (
                local,
                name,
                kind,
                plate if kind == "bus" else None,
                direction,
                employee(subject),
                masked,
                code_type,
                device_id,
                seq,
                clock,
            )


def _server_side(conn: Connection, query: sa.Select[Any]) -> Iterator[tuple[Any, ...]]:
    """PostgreSQL: the driver's plain tuples from a server-side cursor, FETCH_ROWS a round trip, the
    next batch fetched while the caller writes this one (the server's half of the time overlaps the
    client's). SQLAlchemy's streamed result cost a Row object per row and a round trip per few dozen
    rows; COPY TO STDOUT took twice this client's CPU to parse."""
    compiled = query.compile(dialect=conn.dialect, compile_kwargs={"render_postcompile": True})
    raw: Any = conn.connection.dbapi_connection
    with raw.cursor(name="qr_export") as cursor:
        cursor.execute(str(compiled), compiled.params)
        for batch in _ahead(iter(lambda: cursor.fetchmany(FETCH_ROWS), [])):
            yield from batch


def _ahead(batches: Iterator[list[Any]]) -> Iterator[list[Any]]:
    """`batches`, each fetched by a thread while the caller works on the one before: at most two
    batches in memory. The thread alone touches the connection until it has stopped."""
    handoff: queue.Queue[list[Any] | BaseException | None] = queue.Queue(maxsize=1)
    stop = threading.Event()

    def fetch() -> None:
        try:
            for batch in batches:
                while not stop.is_set():
                    try:
                        handoff.put(batch, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            handoff.put(None)
        except BaseException as exc:  # the caller raises it
            handoff.put(exc)

    worker = threading.Thread(target=fetch, name="export-fetch", daemon=True)
    worker.start()
    try:
        while (item := handoff.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        worker.join()


def _streamed(conn: Connection, query: sa.Select[Any], tz: ZoneInfo) -> Iterator[tuple[Any, ...]]:
    """SQLite: the driver's rows, with the local time made here (SQLite hands back naive UTC)."""
    result = conn.execution_options(stream_results=True, yield_per=FETCH_ROWS).execute(query)
    for at, *rest in result:
        # isoformat is several times cheaper than strftime per row.
        local = (at if at.tzinfo else at.replace(tzinfo=dt.UTC)).astimezone(tz)
        yield (local.replace(tzinfo=None).isoformat(" ", "seconds"), *rest)
