"""The database: SQLite (one site) or PostgreSQL (a park, a province), one code path for both.

Every write of the ingest is one transaction per batch: the events (idempotent on event_id, with the
conflict target named), the invalid messages, the statuses, the devices and streams met for the first
time, and the instance's counters. The collector acknowledges the batch's messages only after
`write_batch` returns. The rows every batch would touch (a device's last sighting, a stream's prefix)
are written by the gap sweep, once a second: collectors sharing a group write the same devices'
events, and a batch that updated those rows would hold their locks until its commit, so the
instances' commits would queue behind each other.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

from collector import tables as t
from collector.gaps import Span

log = logging.getLogger(__name__)
MIGRATIONS = Path(__file__).resolve().parent / "migrations"
COUNTER_NAMES = ("received", "stored", "duplicate", "invalid", "statuses", "statuses_invalid")
UTC = dt.UTC
# Spans per lookup query: a sweep of a province's buses asks about a few thousand.
LOOKUP_SPANS = 500


def utc(wall: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(wall, UTC)


def wall_of(value: dt.datetime | None) -> float | None:
    """Seconds since the epoch; SQLite hands back naive datetimes, which are UTC here."""
    if value is None:
        return None
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()


class JsonBody(dict[str, Any]):
    """A body as a dict, with its JSON text when the message's own text says exactly that (the insert
    then stores the text instead of serialising the dict again)."""

    __slots__ = ("text",)

    def __init__(self, body: dict[str, Any], text: str) -> None:
        super().__init__(body)
        self.text = text


@dataclass
class Batch:
    """What one transaction writes. Event rows are complete `events` rows."""

    events: list[dict[str, Any]] = field(default_factory=list)
    invalid: list[dict[str, Any]] = field(default_factory=list)
    # device_id -> devices row (a status); `live` False for a retained copy (not news).
    statuses: list[tuple[dict[str, Any], bool]] = field(default_factory=list)
    # device_id -> (location_id, wall): a device whose events arrived, inserted if it is new
    seen: dict[str, tuple[str, float]] = field(default_factory=dict)
    # (device_id, incarnation) -> streams row of a stream new to this instance, inserted if absent
    streams: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    received: int = 0
    statuses_invalid: int = 0


@dataclass(frozen=True)
class BatchResult:
    # The counters' increments, by name (COUNTER_NAMES).
    deltas: dict[str, int]

    @property
    def stored(self) -> int:
        return self.deltas["stored"]


class Store:
    def __init__(self, url: str, *, instance: str = "collector") -> None:
        self.url = url
        self.instance = instance[:64]
        self.engine = make_engine(url)
        self.dialect = self.engine.dialect.name
        self._insert = postgresql.insert if self.dialect == "postgresql" else sqlite.insert
        dialect = self.engine.dialect
        self._event_columns = [c.name for c in t.events.c]
        self._body_index = self._event_columns.index("body")
        types = [c.type.dialect_impl(dialect) for c in t.events.c]
        # SQLite keeps times as text in SQLAlchemy's own format: the readers compare those strings.
        self._event_processors = [
            (i, process)
            for i, ty in enumerate(types)
            if i != self._body_index and (process := ty.bind_processor(dialect)) is not None
        ]
        names = ", ".join(self._event_columns)
        if self.dialect == "postgresql":
            arrays = ", ".join(f"%b::{ty.compile(dialect=dialect)}[]" for ty in types)
            source = f"SELECT * FROM unnest({arrays})"
        else:
            source = "VALUES (" + ", ".join("?" for _ in types) + ")"
        self._events_sql = f"INSERT INTO events ({names}) {source} ON CONFLICT (event_id) DO NOTHING"

    def close(self) -> None:
        self.engine.dispose()

    def migrate(self) -> None:
        """Brings the schema to the head revision (several instances at once: one at a time)."""
        # Imported here: `status`, `gaps` and the tests' readers do not pay for Alembic (and Mako).
        from alembic import command
        from alembic.config import Config

        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        with self.engine.begin() as conn:
            if self.dialect == "postgresql":
                # Transactional DDL plus a lock: a second instance waits, then finds nothing to do.
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(7203917)"))
            config.attributes["connection"] = conn
            command.upgrade(config, "head")

    @property
    def safe_url(self) -> str:
        return self.engine.url.render_as_string(hide_password=True)

    # -- the ingest's transaction -------------------------------------------------------------------

    def write_batch(self, batch: Batch, wall: float) -> BatchResult:
        now = utc(wall)
        with self.engine.begin() as conn:
            stored = 0
            if batch.events:
                # In key order, as every lock below: two collectors writing the same keys (a
                # redelivery, two devices' rows in both batches) then queue instead of deadlocking.
                stored = self._insert_events(conn, sorted(batch.events, key=_event_key))
            if batch.invalid:
                conn.execute(sa.insert(t.invalid_messages), batch.invalid)
            for row, live in sorted(batch.statuses, key=lambda s: str(s[0]["device_id"])):
                self._upsert_device(conn, row, live, now)
            seen = [
                {"device_id": d, "location_id": loc, "state": "unknown", "last_seen_at": utc(w)}
                for d, (loc, w) in sorted(batch.seen.items())
            ]
            if seen:
                # DO NOTHING takes no lock on a row that is there: another instance's batch goes on.
                conn.execute(self._insert(t.devices).on_conflict_do_nothing(), seen)
            if batch.streams:
                conn.execute(
                    self._insert(t.streams).on_conflict_do_nothing(),
                    [{**batch.streams[k], "updated_at": now} for k in sorted(batch.streams)],
                )
            duplicate = len(batch.events) - stored
            invalid = len(batch.invalid) - batch.statuses_invalid
            deltas = {
                "received": batch.received,
                "stored": stored,
                "duplicate": duplicate,
                "invalid": invalid,
                "statuses": len(batch.statuses) + batch.statuses_invalid,
                "statuses_invalid": batch.statuses_invalid,
            }
            self._add_counters(conn, deltas)
        return BatchResult(deltas)

    def _insert_events(self, conn: Connection, events: list[dict[str, Any]]) -> int:
        """Inserts the rows new by event_id; returns how many (a conflict on event_id inserts none)."""
        columns = [[row[name] for row in events] for name in self._event_columns]
        if self.dialect == "postgresql":
            # jsonb re-parses the text, keeping the last of duplicate keys as orjson.loads does: the
            # message's own text stores the same body, without serialising it again. (SQLite keeps
            # JSON as text, so there a duplicate key of the text would survive: it gets the dict.)
            columns[self._body_index] = [
                b.text if isinstance(b, JsonBody) else _json(b) for b in columns[self._body_index]
            ]
            # One statement per batch, its columns as arrays: PostgreSQL plans and executes one
            # INSERT instead of 500, and the driver adapts 17 lists instead of 500 x 17 parameters.
            result = conn.exec_driver_sql(self._events_sql, tuple(columns))
        else:
            columns[self._body_index] = [_json(b) for b in columns[self._body_index]]
            for i, process in self._event_processors:
                columns[i] = [None if v is None else process(v) for v in columns[i]]
            # sqlite3's own executemany: SQLAlchemy's per-row parameter handling costs more than
            # SQLite's insert.
            result = conn.execution_options(preserve_rowcount=True).exec_driver_sql(
                self._events_sql, list(zip(*columns, strict=True))
            )
        stored = int(result.rowcount)
        if stored < 0:
            raise RuntimeError(f"the {self.dialect} driver reports no rowcount for the events insert")
        return stored

    def _upsert_device(self, conn: Connection, row: dict[str, Any], live: bool, now: dt.datetime) -> None:
        values = dict(row)
        if live:
            values.update(last_heartbeat_at=now, last_seen_at=now)
        stmt = self._insert(t.devices).values(values)
        update = {k: stmt.excluded[k] for k in values if k != "device_id"}
        conn.execute(stmt.on_conflict_do_update(index_elements=[t.devices.c.device_id], set_=update))

    def _upsert_streams(self, conn: Connection, rows: list[dict[str, Any]], now: dt.datetime) -> None:
        stmt = self._insert(t.streams)
        conn.execute(
            stmt.on_conflict_do_update(
                index_elements=[t.streams.c.device_id, t.streams.c.incarnation],
                set_={
                    "location_id": stmt.excluded.location_id,
                    "through_seq": _greatest(t.streams.c.through_seq, stmt.excluded.through_seq),
                    "max_seq": _greatest(t.streams.c.max_seq, stmt.excluded.max_seq),
                    "updated_at": stmt.excluded.updated_at,
                },
            ),
            [{**row, "updated_at": now} for row in rows],
        )

    def _add_counters(self, conn: Connection, deltas: dict[str, int]) -> None:
        rows = [{"instance": self.instance, "name": k, "value": v} for k, v in deltas.items() if v]
        if not rows:
            return
        stmt = self._insert(t.counters)
        conn.execute(
            stmt.on_conflict_do_update(
                index_elements=[t.counters.c.instance, t.counters.c.name],
                set_={"value": t.counters.c.value + stmt.excluded.value},
            ),
            rows,
        )

    # -- gaps and losses ------------------------------------------------------------------------------

    def write_sweep(
        self,
        rows: Sequence[dict[str, Any]],
        losses: Sequence[dict[str, Any]],
        streams: list[dict[str, Any]],
        seen: dict[str, float] | None = None,
    ) -> None:
        """Gap rows, known losses, advanced stream prefixes and the devices' last sightings (device_id
        -> wall), in one transaction."""
        # In key order, as the ingest's batches: two collectors sweeping the same streams (a shared
        # group) then queue for each other's row locks instead of deadlocking.
        streams = sorted(streams, key=_stream_key)
        losses = sorted(losses, key=_seq_key)
        rows = sorted(rows, key=_seq_key)
        with self.engine.begin() as conn:
            if seen:
                d = t.devices.c
                conn.execute(
                    t.devices.update()
                    .where(d.device_id == sa.bindparam("id"))
                    .values(last_seen_at=_greatest(d.last_seen_at, sa.bindparam("seen_at"))),
                    [{"id": device, "seen_at": utc(wall)} for device, wall in sorted(seen.items())],
                )
            if streams:
                self._upsert_streams(conn, streams, dt.datetime.now(UTC))
            if losses:
                conn.execute(
                    self._insert(t.known_losses).on_conflict_do_nothing(
                        index_elements=[
                            t.known_losses.c.device_id,
                            t.known_losses.c.incarnation,
                            t.known_losses.c.from_seq,
                        ]
                    ),
                    list(losses),
                )
            for row in rows:
                values = {
                    **{k: v for k, v in row.items() if not k.endswith("_wall")},
                    "opened_at": utc(row["opened_wall"]),
                    "last_request_at": None
                    if row["last_request_wall"] is None
                    else utc(row["last_request_wall"]),
                    "closed_at": None if row["closed_wall"] is None else utc(row["closed_wall"]),
                }
                stmt = self._insert(t.gaps).values(values)
                conn.execute(
                    stmt.on_conflict_do_update(
                        index_elements=[t.gaps.c.device_id, t.gaps.c.incarnation, t.gaps.c.from_seq],
                        set_={
                            k: stmt.excluded[k]
                            for k in (
                                "to_seq",
                                "state",
                                "missing",
                                "requests",
                                "last_request_at",
                                "closed_at",
                            )
                        },
                    )
                )

    def seqs_in(self, spans: Sequence[Span]) -> list[tuple[str, str, int]]:
        """The (device_id, incarnation, seq) stored within the spans: the gap sweep's one question."""
        c = t.events.c
        found: list[tuple[str, str, int]] = []
        with self.engine.connect() as conn:
            for start in range(0, len(spans), LOOKUP_SPANS):
                where = sa.or_(
                    *(
                        sa.and_(c.device_id == d, c.incarnation == i, c.seq.between(a, b))
                        for d, i, a, b in spans[start : start + LOOKUP_SPANS]
                    )
                )
                rows = conn.execute(sa.select(c.device_id, c.incarnation, c.seq).where(where))
                found.extend((str(d), str(i), int(s)) for d, i, s in rows)
        return found

    def streams_state(self) -> Iterator[tuple[dict[str, Any], list[int], list[tuple[int, int]]]]:
        """Each stream's row, its seqs above the committed prefix, and its known losses."""
        e, k = t.events.c, t.known_losses.c
        with self.engine.connect() as conn:
            streams = [dict(r._mapping) for r in conn.execute(sa.select(t.streams))]
            for row in streams:
                where = (e.device_id == row["device_id"], e.incarnation == row["incarnation"])
                seqs = [
                    int(s)
                    for (s,) in conn.execute(sa.select(e.seq).where(*where, e.seq > row["through_seq"]))
                ]
                losses = [
                    (int(a), int(b))
                    for a, b in conn.execute(
                        sa.select(k.from_seq, k.to_seq).where(
                            k.device_id == row["device_id"], k.incarnation == row["incarnation"]
                        )
                    )
                ]
                yield row, seqs, losses

    def open_gap_rows(self) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(t.gaps).where(t.gaps.c.state == "open"))
            return [
                {
                    **dict(r._mapping),
                    "opened_wall": wall_of(r.opened_at),
                    "last_request_wall": wall_of(r.last_request_at),
                }
                for r in rows
            ]

    # -- reading, for `status`, `gaps` and the tests -----------------------------------------------

    def counters(self) -> dict[str, int]:
        c = t.counters.c
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(c.name, sa.func.sum(c.value)).group_by(c.name))
            totals = {name: int(value) for name, value in rows}
        return {name: totals.get(name, 0) for name in COUNTER_NAMES}

    def rows(self, table: sa.Table, *where: Any, order_by: Iterable[Any] = ()) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            result = conn.execute(sa.select(table).where(*where).order_by(*order_by))
            return [dict(r._mapping) for r in result]

    def count(self, table: sa.Table, *where: Any) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(table).where(*where)).scalar_one())


def _json(body: dict[str, Any]) -> str:
    return orjson.dumps(body).decode()


def _stream_key(row: dict[str, Any]) -> tuple[str, str]:
    return str(row["device_id"]), str(row["incarnation"])


def _seq_key(row: dict[str, Any]) -> tuple[str, str, int]:
    return str(row["device_id"]), str(row["incarnation"]), int(row["from_seq"])


def _event_key(row: dict[str, Any]) -> str:
    return str(row["event_id"])


def _greatest(a: Any, b: Any) -> Any:
    # GREATEST in PostgreSQL, the two-argument max() in SQLite: both ignore nothing, so NULLs are handled.
    return sa.case((a.is_(None), b), (b.is_(None), a), (a >= b, a), else_=b)


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        path = url.removeprefix("sqlite:///")
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(url, connect_args={"timeout": 30})

        @sa.event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            # WAL lets `qr-collector status` read beside the ingest; FULL makes a commit durable before
            # the PUBACK it allows (NORMAL may lose the last commits in a power cut).
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=FULL")
            cur.close()

        return engine
    return sa.create_engine(url, pool_pre_ping=True, pool_size=2, max_overflow=2)
