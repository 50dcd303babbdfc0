"""The reports' figures on PostgreSQL: compliance for 10 000 roster people over a day, a trace over
21 days, an export of a million rows (time and peak memory).

The site is scaled to what this machine loads in a few minutes: EVENTS_PER_DAY events a day for 21
days, with the per-location density of a 1-million-a-day park kept (people scan four times a day:
bus, gate in, gate out, bus; a bus carries 100 people a day, a gate 500), so a park ten times larger
has ten times the locations, not busier ones. Event ids are UUIDv7s of the scan's time, so on
PostgreSQL the rows lie in the day partitions as the ingest's do, and the load ends with the VACUUM
that autovacuum gives an insert-only table (statistics, visibility map). A trace reads the traced
person's events by pseudonym, then every visit's window at its location in one query, from the
(location_id, scanned_at, subject, masked) index of each day partition: the rows a window holds
depend on that density, the probes on the number of day partitions (the retention, not the daily
volume), the B-tree's depth grows by a level at 10x; so the trace figure extrapolates to 1 M events
a day nearly unchanged. Compliance groups one day's events: it grows with the day's events, linearly
(10 000 people scan ~40 000 times a day). The events are loaded with COPY (the ingest has its own
benchmark); devices, streams and the roster go through the collector's own code.

Baselines, same run and machine: compliance against the plain GROUP BY of the day's events; the
trace against fetching the person's own events; the export against a COPY of the same rows to a
file. Memory: peak RSS (VmHWM) of the export of 1 M rows against that of one day (flat means ~1x).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import psycopg
import sqlalchemy as sa

from bench.common import Row, main_for, percentile, row
from collector import decode
from collector import tables as t
from collector.reports.common import local_day
from collector.reports.compliance import compliance
from collector.reports.config import TraceSettings
from collector.reports.roster import import_roster, load_roster
from collector.reports.trace import trace
from collector.settings import Settings
from collector.store import Batch, Store
from device import contract
from device.privacy import Privacy
from tests.support.collector import ROOT
from tests.support.postgres import Postgres

DAYS = 21
EVENTS_PER_DAY = 50_000
ROSTER = 10_000
EXPORT_ROWS = 1_000_000
TRACES = 40
TZ_NAME = "Asia/Ho_Chi_Minh"
SITE_KEY = b"b3" * 32
BODY = {
    "schema": "checkin.event/1",
    "location_kind": "bus",
    "clock": "synced",
    "boot_id": "5f0b3c1e-3c3a-4a57-9a0d-1c2b3a4d5e6f",
    "monotonic_s": 12345.678,
    "source": "serial",
    "direction": "in",
    "code": {"type": "cccd", "variant": "cccd"},
    "software": "qr-checkin 0.1.0",
}


def _cccd(i: int) -> str:
    return f"001{i:09d}"


def _uuid7(at: dt.datetime, n: int) -> str:
    """A UUIDv7 of the scan's millisecond, as a device makes its event ids (n keeps it unique): on
    PostgreSQL the rows land in the day partitions as the ingest's would, not all in the default one."""
    ms = int(at.timestamp() * 1000)
    return str(uuid.UUID(int=(ms << 80) | (0x7 << 76) | (0b10 << 62) | n))


class Park:
    def __init__(self, events_per_day: int, days: int) -> None:
        self.people = events_per_day // 4
        self.buses = max(self.people // 100, 1)
        self.gates = max(self.people // 500, 1)
        self.days = days
        privacy = Privacy("hmac", SITE_KEY)
        self.key_id = privacy.key_id
        self.subjects = [privacy.pseudonym("cccd", _cccd(i)) for i in range(self.people)]
        self.seq: dict[str, int] = {}
        self.count = 0
        # A real event's body (about 600 bytes), the same for every row: the reports never read it.
        self.bodies = {
            kind: json.dumps({**BODY, "location_kind": kind, "subject": {"mode": "hmac", "hmac": "0" * 64}})
            for kind in ("bus", "gate")
        }
        self.incarnation = str(uuid.UUID(int=7))
        tz = __import__("zoneinfo").ZoneInfo(TZ_NAME)
        self.tz = tz
        self.today = dt.datetime.now(tz).date()
        self.first_day = self.today - dt.timedelta(days=days)

    def bus(self, i: int) -> str:
        return f"BUS{i % self.buses:05d}"

    def gate(self, i: int) -> str:
        return f"gate-{i % self.gates:04d}"

    def day_rows(self, day: dt.date, rng: random.Random) -> list[tuple[Any, ...]]:
        """One day's scans in time order per device (seq grows with time)."""
        base = dt.datetime.combine(day, dt.time(), self.tz).astimezone(dt.UTC)
        scans: list[tuple[dt.datetime, str, str, int]] = []
        for i in range(self.people):
            # Two trips a morning per bus: the person's half of the bus rides the first or second.
            trip = (i // self.buses) % 2
            am = base + dt.timedelta(hours=5.5 + trip, minutes=rng.uniform(0, 25))
            gin = base + dt.timedelta(hours=7, minutes=rng.uniform(0, 55))
            gout = base + dt.timedelta(hours=17, minutes=rng.uniform(0, 30))
            pm = base + dt.timedelta(hours=17.5 + trip, minutes=rng.uniform(0, 25))
            scans += [
                (am, "bus", self.bus(i), i),
                (gin, "gate", self.gate(i), i),
                (gout, "gate", self.gate(i), i),
                (pm, "bus", self.bus(i), i),
            ]
        scans.sort()
        out = []
        for at, kind, location, i in scans:
            device = f"dev-{location}"
            seq = self.seq[device] = self.seq.get(device, 0) + 1
            self.count += 1
            out.append(
                (
                    _uuid7(at, self.count),
                    device,
                    self.incarnation,
                    seq,
                    location,
                    kind,
                    at,
                    "synced",
                    "cccd",
                    "hmac",
                    self.subjects[i],
                    self.key_id,
                    f"0010******{i % 100:02d}",
                    "in",
                    "serial",
                    at,
                    self.bodies[kind],
                )
            )
        return out


COPY_COLUMNS = (
    "event_id, device_id, incarnation, seq, location_id, location_kind, scanned_at, clock, code_type,"
    " subject_mode, subject_hmac, key_id, masked, direction, source, received_at, body"
)


def _load(park: Park, pg_url: str) -> tuple[int, float]:
    rng = random.Random(18)
    started = time.monotonic()
    total = 0
    with psycopg.connect(pg_url) as conn:
        for d in range(park.days):
            rows = park.day_rows(park.first_day + dt.timedelta(days=d), rng)
            with conn.cursor() as cur, cur.copy(f"COPY events ({COPY_COLUMNS}) FROM STDIN") as copy:
                for r in rows:
                    copy.write_row(r)
            conn.commit()
            total += len(rows)
    with psycopg.connect(pg_url, autocommit=True) as conn:
        # What autovacuum does to an insert-only table within a minute of such a load (since
        # PostgreSQL 13): statistics, and the visibility map that index-only scans rely on.
        conn.execute("VACUUM (ANALYZE) events")
    return total, time.monotonic() - started


def _devices(park: Park, store: Store) -> None:
    """Every device's status and stream as the ingest writes them: all confirmed past yesterday."""
    batch = Batch()
    for device, last in park.seq.items():
        location = device.removeprefix("dev-")
        kind = "bus" if location.startswith("BUS") else "gate"
        body = contract.online_status(
            contract.status_fields(
                device_id=device,
                location_id=location,
                location_kind=kind,
                location_name=location,
                version="bench",
                config_hash="c0ffee",
                incarnation=park.incarnation,
                boot_id="b",
                last_seq=last,
                backlog=0,
                oldest_undelivered_age_s=None,
                dead_letters=0,
                unheard=0,
                counters={},
            )
        )
        parts = contract.parse_topic(contract.Topics.of("checkin", location, device).status, "checkin")
        batch.statuses.append((decode.status(parts, json.dumps(body).encode(), 65536).row, True))
        batch.streams[device, park.incarnation] = {
            "device_id": device,
            "incarnation": park.incarnation,
            "location_id": location,
            "through_seq": last,
            "max_seq": last,
        }
    store.write_batch(batch, time.time())


def _roster(park: Park, store: Store, tmp: Path, size: int) -> None:
    path = tmp / "roster.csv"
    with path.open("w", encoding="utf-8") as fh:
        fh.write("employee_no,name,team,line,assigned,cccd\n")
        for i in range(size):
            fh.write(f"N{i:05d},Worker {i},T{i % 20},L{i % 7},{park.bus(i)},{_cccd(i)}\n")
    result = import_roster(store, path, SITE_KEY, wall=time.time())
    assert result.imported == size, result.bad[:3]


def _timed(fn: Any, repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        out.append(time.perf_counter() - started)
    return out


def _export_rss(config: Path, start: str, end: str, out: Path) -> tuple[float, float, int, int]:
    """Seconds, CPU seconds, rows and peak RSS (KiB) of `qr-collector export` in its own process.

    The peak is the process's own VmHWM: getrusage's ru_maxrss also counts the parent's memory that
    the child held between fork and exec (the bench's ~150 MiB), which made every export look alike."""
    code = (
        "import resource, sys, time; from collector import cli; t = time.perf_counter();"
        " rc = cli.main(sys.argv[1:]); u = resource.getrusage(resource.RUSAGE_SELF);"
        " hwm = next(int(x.split()[1]) for x in open('/proc/self/status') if x.startswith('VmHWM:'));"
        " print(time.perf_counter() - t, u.ru_utime + u.ru_stime, hwm); sys.exit(rc)"
    )
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            code,
            "export",
            "--config",
            str(config),
            "--from",
            start,
            "--to",
            end,
            "--format",
            out.suffix[1:],
            "-o",
            str(out),
            "--purpose",
            "benchmark",
            "--who",
            "bench",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=True,
    )
    seconds, cpu, rss = done.stdout.split()[-3:]
    lines = sum(1 for _ in out.open(encoding="utf-8-sig")) - 1 if out.suffix == ".csv" else 0
    return float(seconds), float(cpu), lines, int(rss)


def run(quick: bool = False) -> list[Row]:
    per_day = 4_000 if quick else EVENTS_PER_DAY
    days = 3 if quick else DAYS
    export_rows = 20_000 if quick else EXPORT_ROWS
    size = 2_000 if quick else ROSTER
    repeat = 3 if quick else 5
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="qr-bench-reports-") as tmp_name:
        tmp = Path(tmp_name)
        server = Postgres().start()
        try:
            url = server.create_database()
            settings = Settings(database={"url": url}, site={"timezone": TZ_NAME})
            store = Store(settings.database_url)
            store.migrate()
            park = Park(per_day, days)
            loaded, load_s = _load(park, url)
            _devices(park, store)
            _roster(park, store, tmp, size)
            note = f"{days} days x {per_day} events ({loaded} rows, loaded in {load_s:.0f} s), PostgreSQL"
            roster = load_roster(store, SITE_KEY)
            tz = park.tz
            day = park.today - dt.timedelta(days=1)
            start, end = local_day(day, tz)

            e = t.events.c
            group = (
                sa.select(e.subject_hmac, sa.func.min(e.scanned_at), sa.func.max(e.scanned_at))
                .where(e.scanned_at >= start, e.scanned_at < end)
                .group_by(e.subject_hmac)
            )

            def plain_group() -> None:
                with store.engine.connect() as conn:
                    conn.execute(group).all()

            report = compliance(store, roster, day, tz)
            assert report.totals.total == size and report.totals.scanned == min(size, park.people), (
                report.totals
            )
            cpu = time.process_time()
            took = _timed(lambda: compliance(store, roster, day, tz), repeat)
            compliance_cpu = (time.process_time() - cpu) / repeat
            base = _timed(plain_group, repeat)
            rows.append(
                row(
                    "reports compliance",
                    f"{size} people, one day (median of {repeat})",
                    sorted(took)[repeat // 2],
                    "s",
                    sorted(base)[repeat // 2],
                    f"vs the day's GROUP BY alone; {per_day} events that day; {compliance_cpu:.2f} s of this"
                    f" process's CPU; target <= 2 s",
                )
            )

            rng = random.Random(7)
            people = [rng.randrange(min(size, park.people)) for _ in range(3 if quick else TRACES)]
            period = (local_day(park.first_day, tz)[0], end)
            settings_trace = TraceSettings()
            contacts = []

            def one(i: int) -> None:
                result = trace(
                    store, roster, settings_trace, tz, start=period[0], end=period[1], employee_no=f"N{i:05d}"
                )
                contacts.append(len(result.contacts))

            def own(i: int) -> None:
                with store.engine.connect() as conn:
                    conn.execute(
                        sa.select(e.location_id, e.scanned_at).where(
                            e.subject_hmac == park.subjects[i],
                            e.scanned_at >= period[0],
                            e.scanned_at < period[1],
                        )
                    ).all()

            one(people[0])  # warm the cache like a second tracer would find it
            cpu = time.process_time()
            trace_s = [_timed(lambda i=i: one(i), 1)[0] for i in people]
            trace_cpu = (time.process_time() - cpu) / len(people)
            own_s = [_timed(lambda i=i: own(i), 1)[0] for i in people]
            rows.append(
                row(
                    "reports trace",
                    f"{days} days, p95 of {len(people)} people",
                    percentile(trace_s, 95),
                    "s",
                    percentile(own_s, 95),
                    f"vs fetching the person's own events; median {percentile(trace_s, 50):.3f} s"
                    f" ({trace_cpu:.3f} s of this process's CPU), load average {os.getloadavg()[0]:.1f},"
                    f" {sum(contacts) // len(contacts)} contacts each; {note}; target p95 <= 1 s",
                )
            )

            config = tmp / "collector.toml"
            config.write_text(f'[database]\nurl = "{url}"\n[site]\ntimezone = "{TZ_NAME}"\n')
            export_days = max(1, round(export_rows / per_day))
            first = park.first_day.isoformat()
            last = (park.first_day + dt.timedelta(days=export_days - 1)).isoformat()
            small_last = first
            seconds, cpu_s, count, rss = _export_rss(config, first, last, tmp / "big.csv")
            copy_s = _copy_baseline(url, park, export_days, tmp / "copy.csv", tz)
            rows.append(
                row(
                    "reports export csv",
                    f"{count} rows",
                    seconds,
                    "s",
                    copy_s,
                    f"vs COPY of the same rows to a file; {cpu_s:.1f} s of the exporter's CPU, load average"
                    f" {os.getloadavg()[0]:.1f}; target 1 M rows <= 10 s",
                )
            )
            if not quick:  # a smoke run skips the memory comparison and the XLSX
                _, _, small_count, small_rss = _export_rss(config, first, small_last, tmp / "small.csv")
                rows.append(
                    row(
                        "reports export csv",
                        f"peak RSS, {count} rows vs {small_count}",
                        rss / 1024,
                        "MiB",
                        small_rss / 1024,
                        "ratio ~1: memory flat",
                    )
                )
                xseconds, _, _, xrss = _export_rss(config, first, small_last, tmp / "small.xlsx")
                rows.append(
                    row(
                        "reports export xlsx",
                        f"{small_count} rows",
                        xseconds,
                        "s",
                        seconds * small_count / max(count, 1),
                        f"vs the CSV's time for as many rows; write_only openpyxl,"
                        f" peak RSS {xrss / 1024:.0f} MiB",
                    )
                )
            store.close()
        finally:
            server.close()
    return rows


def _copy_baseline(url: str, park: Park, days: int, out: Path, tz: Any) -> float:
    start = local_day(park.first_day, tz)[0]
    end = local_day(park.first_day + dt.timedelta(days=days - 1), tz)[1]
    started = time.perf_counter()
    with psycopg.connect(url) as conn, conn.cursor() as cur, out.open("wb") as fh:
        query = (
            "COPY (SELECT scanned_at, location_id, location_kind, direction, subject_hmac, masked, code_type,"
            f" device_id, seq, clock FROM events WHERE scanned_at >= '{start.isoformat()}' AND scanned_at <"
            f" '{end.isoformat()}' ORDER BY scanned_at, device_id, seq) TO STDOUT WITH CSV"
        )
        with cur.copy(query) as copy:
            for data in copy:
                fh.write(data)
    return time.perf_counter() - started


if __name__ == "__main__":
    main_for(run)
