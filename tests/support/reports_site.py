"""A synthetic site for the reports' tests, stored by the real collector from a real broker.

300 roster people; two buses (98C-123.45 with two morning trips; 98C-678.90 offline from the morning
until it syncs), a main gate with two readers, a canteen door, a back gate whose reader's clock is not
synchronised, a visitor, a duplicate delivery, and a worker who shows a BHYT card at the gate and the
personal QR on the bus. The scans are of yesterday (local), so every live status the collector takes
is "after the day's end"; day 22 and day 21 before today hold scans for the retention test.

Everything goes through the collector as a device would send it (`qr-collector run` in a thread,
mosquitto on a free port): events and statuses as published, so the reports see what ingest stores.
"""

from __future__ import annotations

import base64
import csv
import datetime as dt
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast
from zoneinfo import ZoneInfo

import pytest
import uuid6
from nacl.public import PrivateKey

from collector import tables as t
from collector.settings import Settings, load_settings
from collector.store import Store
from device import contract
from device.payloads import CodeType, Recognition, mask
from device.privacy import Privacy
from tests.support.collector import PREFIX, Publisher, running, wait_until, write_config
from tests.support.mosquitto import Mosquitto

TZ = ZoneInfo("Asia/Ho_Chi_Minh")
SITE_KEY = b"7e" * 32
# The event schema names the personal QR once issue 14 lands; until then such a read is `other`.
_CODE_TYPES = contract.load_schema(contract.EVENT_SCHEMA)["properties"]["code"]["properties"]["type"]["enum"]
PERSONAL_CODE = "personal" if "personal" in _CODE_TYPES else "other"

BUS1, BUS2 = "98C12345", "98C67890"
GATE, DOOR, BACK = "gate-main", "door-canteen", "gate-back"
BUS1_ADDRESS = {
    "location_address": "Thôn A",
    "location_ward": "Xã Hương Gián",
    "location_district": "Huyện Yên Dũng",
    "location_province": "Bắc Giang",
}
NAMES = {
    BUS1: ("bus", "Xe đưa đón công nhân BKS: 98C-123.45"),
    BUS2: ("bus", "Xe đưa đón công nhân BKS: 98C-678.90"),
    GATE: ("gate", "Cổng chính"),
    DOOR: ("door", "Nhà ăn"),
    BACK: ("gate", "Cổng sau"),
}


def cccd_of(n: int) -> str:
    return f"0010990{n:05d}"


def employee(n: int) -> str:
    return f"E{n:03d}"


@dataclass
class Worker:
    number: str
    name: str
    team: str
    line: str
    assigned: str
    cccd: str
    bhxh: str = ""
    qid: str = ""


# The worker who shows a BHYT card at the gate and the personal QR on the bus (trip 1).
TWO_CODES = 10
TWO_CODES_BHXH = "0123456789"
TWO_CODES_QID = "123456789012345678"
VISITOR_CCCD = "001099099999"
TRACED = 5
TRIP1 = range(1, 21)
TRIP2 = range(21, 41)
BUS2_MORNING = range(41, 51)
BUS2_EVENING = range(51, 60)
BUS2_ABSENT = 60
GATE_PEOPLE = range(61, 275)
GATE_ABSENT = range(275, 281)
BACK_PEOPLE = range(281, 291)
UNASSIGNED_SCANNED = range(291, 296)
UNASSIGNED_ABSENT = range(296, 301)
CANTEEN = range(61, 71)


def workers() -> list[Worker]:
    out = []
    for n in range(1, 301):
        if n <= 40:
            assigned = "98C-123.45"
        elif n <= 60:
            assigned = "98C-678.90"
        elif n <= 280:
            assigned = "Cổng chính"
        elif n <= 290:
            assigned = BACK
        else:
            assigned = ""
        w = Worker(
            employee(n), f"Nguyễn Văn {n:03d}", f"Tổ {n % 5 + 1}", f"Chuyền {n % 3 + 1}", assigned, cccd_of(n)
        )
        if n == TWO_CODES:
            w.bhxh, w.qid = TWO_CODES_BHXH, TWO_CODES_QID
        out.append(w)
    return out


def write_roster_csv(path: Path, people: list[Worker], *, extra: Sequence[list[str]] = ()) -> Path:
    with path.open("w", encoding="utf-8-sig", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["Mã NV", "Họ tên", "Tổ", "Chuyền", "Xe/Cổng", "CCCD", "BHXH", "QID"])
        for p in people:
            w.writerow([p.number, p.name, p.team, p.line, p.assigned, p.cccd, p.bhxh, p.qid])
        for row in extra:
            w.writerow(row)
    return path


@dataclass
class Device:
    device_id: str
    location_id: str
    synced: bool = True
    seq: int = 0
    incarnation: str = field(default_factory=lambda: str(uuid.uuid4()))


class Site:
    """Builds the site into `url` and knows what it holds."""

    def __init__(self, url: str, workdir: Path) -> None:
        self.url = url
        self.dir = workdir
        self.dir.mkdir(parents=True, exist_ok=True)
        # Sealed mode: the pseudonym for the enterprise, a box only the health authority opens.
        self.authority = PrivateKey.generate()
        public = base64.b64encode(bytes(self.authority.public_key)).decode()
        self.privacy = Privacy("sealed", SITE_KEY, public)
        self.today = dt.datetime.now(TZ).date()
        self.day = self.today - dt.timedelta(days=1)
        self.devices = {
            d.device_id: d
            for d in (
                Device("bus-1", BUS1),
                Device("bus-2", BUS2),
                Device("gate-1a", GATE),
                Device("gate-1b", GATE),
                Device("door-1", DOOR),
                Device("gate-2", BACK, synced=False),
            )
        }
        self.people = workers()
        self.key_file = self.dir / "site.key"
        self.key_file.write_bytes(SITE_KEY)
        self.key_file.chmod(0o600)
        self.held_back: list[dict[str, Any]] = []
        self.stored = 0

    # -- what a device sends ------------------------------------------------------------------------

    def at(self, hh: int, mm: int, ss: int = 0, *, days_before: int = 0) -> float:
        day = self.day - dt.timedelta(days=days_before)
        return dt.datetime.combine(day, dt.time(hh, mm, ss), TZ).timestamp()

    def subject(self, code_type: str, subject_id: str) -> dict[str, Any]:
        masked = mask(subject_id) if code_type != "bhyt" else mask(subject_id, 2, 2)
        rec = Recognition(type=cast(CodeType, code_type), accepted=True, subject_id=subject_id, masked=masked)
        return self.privacy.subject(rec)

    def pseudonym(self, code_type: str, subject_id: str) -> str:
        return self.privacy.pseudonym(code_type, subject_id)

    def scan(self, device_id: str, wall: float, code_type: str, subject_id: str) -> dict[str, Any]:
        d = self.devices[device_id]
        d.seq += 1
        kind, name = NAMES[d.location_id]
        return contract.build_event(
            event_id=str(uuid6.uuid7()),
            seq=d.seq,
            incarnation=d.incarnation,
            device_id=device_id,
            location_id=d.location_id,
            location_kind=kind,
            location_name=name,
            wall=wall,
            synced=d.synced,
            boot_id="boot-1",
            monotonic_s=100.0 + d.seq,
            source="serial",
            direction="in",
            code_type=PERSONAL_CODE if code_type == "personal" else code_type,
            code_variant=None,
            subject=self.subject(code_type, subject_id),
            software="test",
        )

    def status(self, device_id: str, *, online: bool = True) -> dict[str, Any]:
        d = self.devices[device_id]
        kind, name = NAMES[d.location_id]
        fields = contract.status_fields(
            device_id=device_id,
            location_id=d.location_id,
            location_kind=kind,
            location_name=name,
            version="test",
            config_hash="c0ffee",
            incarnation=d.incarnation,
            boot_id="boot-1",
            last_seq=d.seq,
            backlog=0,
            oldest_undelivered_age_s=None,
            dead_letters=0,
            unheard=0,
            counters={},
        )
        if not online:
            return contract.offline_status("connection lost", fields)
        body = contract.online_status(fields)
        if d.location_id == BUS1:
            body.update(BUS1_ADDRESS)  # the device's [location] address, carried in its birth status
        return body

    # -- the site's day ----------------------------------------------------------------------------------

    def build(self) -> Site:
        ev: list[dict[str, Any]] = []
        # Day 22 and day 21 before today, at the canteen door: the retention test's scans.
        for i in range(5):
            ev.append(self.scan("door-1", self.at(11, 30 + i, days_before=21), "cccd", cccd_of(200 + i)))
        for i in range(3):
            ev.append(self.scan("door-1", self.at(11, 30 + i, days_before=20), "cccd", cccd_of(210 + i)))
        # Bus 1: trip 1 from 06:00 (a visitor and the two-code worker's personal QR aboard), trip 2 from
        # 06:55, after a 36-minute pause.
        for i, n in enumerate(TRIP1):
            if n == TWO_CODES:
                ev.append(self.scan("bus-1", self.at(6, i), "personal", TWO_CODES_QID))
            else:
                ev.append(self.scan("bus-1", self.at(6, i), "cccd", cccd_of(n)))
            if i == 10:
                ev.append(self.scan("bus-1", self.at(6, 10, 30), "cccd", VISITOR_CCCD))
        for i, n in enumerate(TRIP2):
            ev.append(self.scan("bus-1", self.at(6, 55) + 40 * i, "cccd", cccd_of(n)))
        # Bus 2's morning trip reaches the collector; its evening trip stays on the bus (offline).
        for i, n in enumerate(BUS2_MORNING):
            ev.append(self.scan("bus-2", self.at(6, 30 + i), "cccd", cccd_of(n)))
        bus2_birth = self.status("bus-2")
        evening = [
            self.scan("bus-2", self.at(17, 30 + i), "cccd", cccd_of(n)) for i, n in enumerate(BUS2_EVENING)
        ]
        self.held_back = evening
        # The main gate's two readers; the two-code worker shows the BHYT card there; the visitor passes.
        for i, n in enumerate([*GATE_PEOPLE, *UNASSIGNED_SCANNED]):
            ev.append(
                self.scan("gate-1a" if i % 2 else "gate-1b", self.at(7, 0) + 15 * i, "cccd", cccd_of(n))
            )
        ev.append(self.scan("gate-1a", self.at(7, 30), "bhyt", TWO_CODES_BHXH))
        ev.append(self.scan("gate-1b", self.at(7, 5), "cccd", VISITOR_CCCD))
        for i, n in enumerate(CANTEEN):
            ev.append(self.scan("door-1", self.at(11, 30 + i), "cccd", cccd_of(n)))
        # The back gate's reader never synchronised its clock: its scans say so.
        for i, n in enumerate(BACK_PEOPLE):
            ev.append(self.scan("gate-2", self.at(7, 10 + i), "cccd", cccd_of(n)))
        statuses = [bus2_birth if d == "bus-2" else self.status(d) for d in self.devices]
        # The duplicate: the broker delivers one event twice (stored once).
        self.stored = len(ev)
        ev.append(ev[len(ev) // 2])
        # Bus 2 said goodbye by its will after the morning trip.
        self.publish(ev, [*statuses, self.status("bus-2", online=False)], wait_events=self.stored)
        return self

    def sync_offline_bus(self) -> None:
        """Bus 2 comes back the next morning: its evening trip arrives, then its birth status."""
        self.stored += len(self.held_back)
        self.publish(self.held_back, [self.status("bus-2")], wait_events=self.stored)

    def publish(
        self, events: list[dict[str, Any]], statuses: list[dict[str, Any]], *, wait_events: int
    ) -> None:
        broker = Mosquitto(self.dir / f"broker-{uuid.uuid4().hex[:6]}").start()
        try:
            settings = load_settings(self.config(broker.port))
            with running(settings) as collector:
                pub = Publisher(broker.port)
                try:
                    pub.events(events)
                    infos = [
                        pub.publish(
                            contract.Topics.of(PREFIX, s["location_id"], s["device_id"]).status,
                            json.dumps(s),
                            retain=True,
                        )
                        for s in statuses
                    ]
                    for info in infos:
                        info.wait_for_publish(30)
                    store = collector.store
                    last = statuses[-1]

                    def arrived() -> bool:
                        rows = store.rows(t.devices, t.devices.c.device_id == last["device_id"])
                        return (
                            store.count(t.events) == wait_events
                            and bool(rows)
                            and rows[0]["state"] == last["state"]
                            and rows[0]["last_seq"] == last.get("last_seq", rows[0]["last_seq"])
                        )

                    wait_until(arrived, 60, "the site stored")
                finally:
                    pub.close()
        finally:
            broker.kill()

    def settings_file(self) -> Path:
        """A configuration for the report commands (they read the database, not the broker)."""
        return self.config(1883)

    def config(self, port: int) -> Path:
        return write_config(
            self.dir / "collector.toml",
            port=port,
            url=self.url,
            privacy={"site_key_file": str(self.key_file)},
            site={"timezone": str(TZ)},
        )

    def settings(self) -> Settings:
        return load_settings(self.config(1883))

    def store(self) -> Store:
        return Store(self.settings().database_url)

    def roster_file(self) -> Path:
        return write_roster_csv(self.dir / "roster.csv", self.people)


def _site(request: pytest.FixtureRequest, workdir: Path) -> Site:
    if request.param == "sqlite":
        url = f"sqlite:///{workdir / 'collector.db'}"
    else:
        server = request.getfixturevalue("postgres")
        if not server.running:
            server.start()
        url = server.create_database()
    return Site(url, workdir).build()


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def site(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Site:
    """One site per module and database, for tests that only read it."""
    return _site(request, tmp_path_factory.mktemp("site"))


@pytest.fixture(params=["sqlite", "postgresql"])
def fresh_site(request: pytest.FixtureRequest, tmp_path: Path) -> Site:
    """A site of its own, for a test that changes it."""
    return _site(request, tmp_path / "site")
