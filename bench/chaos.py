"""`make chaos`: the real daemon against a real mosquitto while faults strike at random.

    CHAOS_SECONDS=600 CHAOS_SEED=<seed> python -m bench.chaos

`qr-checkin run` runs as a subprocess with two sources, stdin and a serial scanner played by a pty, and
publishes through a TCP proxy to a mosquitto with persistence on; an audit client holds a persistent
session there, the way a central consumer does, and so does `qr-collector run` into SQLite (or the
database CHAOS_DATABASE_URL names): the chain ends in its database. Scans arrive one at a time
(people, damaged cards, visitor codes) while fault episodes follow each other, one at a time, in
shuffled rounds so every class strikes once per round. The seed is printed; CHAOS_SEED replays the
same faults and scans (their timing still varies with the machine). CHAOS_REPORT=<path> also writes
the summary as JSON. `python -m bench.chaos --libfaketime` (or `python -m bench.faketime`, which
`make setup` runs) only finds, or builds, the libfaketime the clock jumps preload (bench/faketime.py).

After CHAOS_SECONDS (and at least one full round) the faults stop, the backlog drains, the daemon is
stopped and the invariants are judged; a summary table follows and the exit status is 1 if any
invariant broke or a fault class could not be injected.

Honest limits: the disk-full class needs root (a tmpfs of our own, in a private mount namespace, is
filled with a ballast file; without root SQLite's page limit cannot be reached from outside the
daemon, so the class is skipped and the summary says so). Clock jumps move only the daemon's wall
clock, through libfaketime preloaded into it (monotonic time is left alone, as a real NTP step does);
where libfaketime cannot load, those classes (clock-jump, clock-step) are skipped likewise (the wheel
ships an x86-64 library and its source, which is built for any other CPU with gcc and make). The
corrupt-page class finds an index page through SQLite's dbstat table and is skipped without it. The
refusing broker is the real mosquitto with an ACL loaded into it for the episode (SIGHUP), so its
refusal is the one code an ACL gives, 0x87 "not authorised"; the 0x10 broker is a second, empty
mosquitto the proxy turns the device's link to, as a broker restarted without persistence is before
any consumer is back. The daemon has no test hooks.
"""

from __future__ import annotations

import contextlib
import ctypes
import datetime as dt
import errno
import json
import math
import os
import queue
import random
import secrets
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from bench.common import percentile
from bench.faketime import CLOCK_CACHE_S, STEP_S, faketime, faketime_library
from bench.faketime import main as faketime_main
from collector import tables as t
from collector.settings import load_settings
from collector.store import Store
from device import contract
from device.clock import SystemClock
from tests.support.collector import CollectorProcess
from tests.support.collector import write_config as collector_config
from tests.support.daemon import DaemonProcess, write_config
from tests.support.mosquitto import Mosquitto
from tests.support.payloads import vectors
from tests.support.personal_data import all_personal_strings
from tests.support.proxy import Proxy
from tests.support.pty_scanner import PtyScanner
from tests.support.schema import validate_event, validate_status
from tests.support.slowdown import scaled

DEFAULT_SECONDS = 600.0
# Every class must have struck by this long past CHAOS_SECONDS, or the run stops and names the ones missed.
# Sized for a native CPU, as every bound and wait below that a CPU's speed moves: a slower one
# (emulated Arm, scripts/test_arm.sh) scales them by its factor (tests/support/slowdown.py).
ROUND_GRACE_S = scaled(180.0)
LATENCY_P99_BOUND_MS = scaled(500.0)
# A scan not answered this long is a scan the worker walked away from: counted against the daemon.
ANSWER_TIMEOUT_S = scaled(5.0)
# Covers the publisher's re-send of events whose acknowledgement never came (60 s at keepalive 5).
DRAIN_TIMEOUT_S = scaled(120.0)
RSS_EVERY_S = 1.0
RSS_WARMUP_S = 5.0
RSS_GROWTH_BOUND = 1.5
RSS_PEAK_BOUND = 2.0
# Samples taken past the warm-up that the memory verdict needs: a short run on a slow CPU (the smoke
# test under emulation, daemon restarts taking seconds) keeps soaking until it has them.
RSS_MIN_WARM = 6
PRIVACY_EVERY_S = 30.0
# A replugged serial scanner is found again by the daemon's hotplug watch and reopened.
REPLUG_TIMEOUT_S = scaled(10.0)
TMPFS_SIZE = "32m"
JUMP_S = (30.0, 2 * 86400.0)
INDEXES = ("events_pending", "events_delivered", "sqlite_autoindex_events_1")
# The broker's ACL during a refusing-broker episode, for the anonymous clients (every one here): all
# but writing events, as an ACL being fixed refuses them (the device's status and the collector's
# commands still pass). Outside the episodes the broker has no ACL: mosquitto 2.0.11 with an acl_file
# drops, with a PUBACK 0x00 to the publisher, every message for a session restored from its store
# until that session's client is back, which would add a broker-kill loss of its own to every class.
ACL_REFUSING = "topic read #\ntopic write checkin/v1/+/+/status\ntopic write checkin/v1/+/+/cmd/#\n"
# With max_queued_messages 0 (unlimited) mosquitto 2.0.11 drops the connection after each refused
# publish (its queue-quota check is always true then); a limit no run reaches keeps it a pure refusal.
QUEUE_LIMIT = 1_000_000
# An episode this short still sees events published: the device reconnects within 1 s, scans come
# every 0.1 s.
REFUSE_MIN_HOLD_S = 2.0
UNHEARD_MIN_HOLD_S = 3.0
# The daemon's ALARM lines the two classes are judged by (device/publisher.py words them).
ALARMS = {
    "refusing-broker": "the events are kept and sent again after",
    "0x10-broker": "ALARM: the broker says no subscriber got event",
}
FINAL_ALARM = "ALARM: broker refused event seq="
# Short runs (the smoke test) shrink every hold and gap, so a full round still fits.
FULL_SCALE_S = 300.0

PEOPLE = [s["payload"] for s in vectors()["bhyt"] + vectors()["cccd"]]
DAMAGED = [s["payload"] for s in vectors()["invalid"]]

_CLONE_NEWNS = 0x00020000
_MS_NOSUID, _MS_NODEV, _MS_REC, _MS_PRIVATE = 0x2, 0x4, 0x4000, 0x40000
_MNT_DETACH = 2


@dataclass(frozen=True)
class FaultClass:
    name: str
    what: str
    hold_s: tuple[float, float]


FAULTS = (
    FaultClass("broker-kill", "mosquitto kill -9, restarted on its persistent store", (1, 8)),
    FaultClass("broker-stop", "mosquitto SIGSTOP, then SIGCONT", (1, 12)),
    FaultClass("net-reset", "every connection through the proxy reset", (0, 0)),
    FaultClass("net-blackhole", "the proxy swallows every byte and refuses connections", (2, 12)),
    FaultClass(
        "daemon-kill", "daemon kill -9 (half the time mid-scan), restarted on the same storage", (0, 2)
    ),
    FaultClass("disk-full", "the storage tmpfs filled by a ballast file, then freed", (1, 6)),
    FaultClass("clock-jump", "the daemon's wall clock jumps (libfaketime), then jumps back", (2, 10)),
    FaultClass(
        "clock-step",
        "with the broker out of reach, the synchronised wall clock steps past max_age_days and the daemon"
        " restarts into it (its first housekeeping purges at once): nothing may be dropped",
        (3, 8),
    ),
    FaultClass(
        "corrupt-page",
        "daemon kill -9, one index page of its store overwritten, restarted: the store is salvaged",
        (0, 1),
    ),
    FaultClass("scanner-unplug", "the serial scanner's pty closed, a new pty behind the same link", (0.5, 4)),
    FaultClass(
        "refusing-broker",
        "an ACL that does not grant the events topic, loaded into the broker (SIGHUP), so every event is"
        " refused 0x87, then taken out again: kept, one ALARM an episode, none dead-lettered",
        (1, 8),
    ),
    FaultClass(
        "0x10-broker",
        "the link turned to an empty mosquitto nobody subscribes to (a broker restarted without persistence):"
        " every PUBACK 0x10, so the events are unheard until the collector's replay and cmd/committed",
        (2, 8),
    ),
    # On a schedule of its own, beside the device's episodes (the collector is another machine's process).
    FaultClass("collector-kill", "qr-collector kill -9 during the episodes, restarted at once", (0, 0)),
)
COLLECTOR_KILL_EVERY_S = (2.0, 12.0)
GAP_S = (1.0, 4.0)


@dataclass
class Verdict:
    name: str
    held: bool
    figures: str


@dataclass
class Accepted:
    sent_wall: float
    # Seconds into the run, and the fault episode then under way: where to look when it goes missing.
    at_s: float
    during: str
    # The clock offset in force when the scan was sent; None just after a jump, while it may be either.
    offset_s: float | None


@dataclass
class Incarnation:
    daemon: DaemonProcess
    number: int
    started: float = field(default_factory=time.monotonic)


class Audit:
    """The central consumer: QoS 1 with a session the broker keeps for an hour, so whatever the broker
    acknowledged while this client was away is queued for it, across a broker restart too.

    Clean start is off from the very first connect: mosquitto (2.0) writes to its store only sessions
    that began without it, so a session begun clean is gone after a broker restart however long its
    expiry interval, and what the daemon publishes before this client is back is then lost.
    """

    def __init__(self, port: int, client_id: str) -> None:
        self.events: dict[str, dict[str, Any]] = {}
        self.copies = 0
        self.invalid: list[str] = []
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self.client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5
        )
        # What the devices publish; their cmd/ topics carry the collector's words to them.
        filters = contract.ConsumerFilters.of()
        self.client.on_connect = lambda client, *_: client.subscribe(
            [(filters.events, 1), (filters.status, 1)]
        )
        self.client.on_subscribe = lambda *_: self._subscribed.set()
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(0.2, 1)  # type: ignore[arg-type]
        session = Properties(PacketTypes.CONNECT)
        session.SessionExpiryInterval = 3600
        self.client.connect_async("127.0.0.1", port, keepalive=5, clean_start=False, properties=session)
        self.client.loop_start()
        if not self._subscribed.wait(10):
            raise RuntimeError("the audit client could not subscribe")

    def _on_message(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        # Nothing may escape into paho's thread: it would end the audit silently.
        try:
            body = json.loads(msg.payload)
            if msg.topic.endswith("/status"):
                validate_status(body)
                return
            validate_event(body)
        except (ValueError, jsonschema.ValidationError) as exc:
            with self._lock:
                self.invalid.append(f"{msg.topic}: {str(exc).splitlines()[0][:160]}")
            return
        with self._lock:
            if body["event_id"] in self.events:
                self.copies += 1
            else:
                self.events[body["event_id"]] = body

    def received(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            return dict(self.events)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def private_tmpfs(path: Path) -> str | None:
    """Mounts a small tmpfs at `path` in a mount namespace of our own, which the broker and the daemon
    inherit: nothing shows on the host and the mount vanishes with us. Returns why not, or None."""
    if os.geteuid() != 0:
        return "not root: no tmpfs to fill (a SQLite page limit is not reachable from outside the daemon)"
    libc = ctypes.CDLL(None, use_errno=True)
    path.mkdir(parents=True, exist_ok=True)
    steps: list[tuple[str, Callable[[], int]]] = [
        ("unshare(CLONE_NEWNS)", lambda: libc.unshare(_CLONE_NEWNS)),
        ("mount --make-rprivate /", lambda: libc.mount(b"none", b"/", None, _MS_REC | _MS_PRIVATE, None)),
        (
            f"mount tmpfs on {path}",
            lambda: libc.mount(
                b"tmpfs", bytes(path), b"tmpfs", _MS_NOSUID | _MS_NODEV, f"size={TMPFS_SIZE}".encode()
            ),
        ),
    ]
    for what, step in steps:
        if step() != 0:
            return f"{what} failed: {os.strerror(ctypes.get_errno())}"
    return None


def unmount(path: Path) -> None:
    ctypes.CDLL(None, use_errno=True).umount2(bytes(path), _MNT_DETACH)


def fill(path: Path) -> int:
    """Writes until the filesystem is full (big blocks, then pages); returns the bytes written."""
    written = 0
    with path.open("wb", buffering=0) as ballast:
        for block in (b"\0" * (1 << 20), b"\0" * 4096):
            # Bounded by the tmpfs size; the count bound only guards against a filesystem that never fills.
            for _ in range(1 << 16):
                try:
                    written += ballast.write(block) or 0
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise
                    break
    return written


def dbstat_missing() -> str | None:
    """Why the corrupt-page class cannot find an index page to damage, or None when it can."""
    try:
        sqlite3.connect(":memory:").execute("SELECT count(*) FROM dbstat").fetchone()
    except sqlite3.Error as exc:
        return f"this SQLite has no dbstat table to find a page by ({exc})"
    return None


def rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError):
        return None
    return None


def personal_data_in(files: dict[str, bytes]) -> set[tuple[str, str]]:
    needles = all_personal_strings() | set(PEOPLE) | set(DAMAGED)
    return {
        (where, needle)
        for where, data in files.items()
        for needle in needles
        if needle.encode() in data or needle.encode("utf-16-le") in data
    }


def files_under(root: Path) -> dict[str, bytes]:
    out = {}
    for path in sorted(root.rglob("*")):
        with contextlib.suppress(OSError):  # a WAL checkpointed away between listing and reading
            if path.is_file():
                out[str(path.relative_to(root))] = path.read_bytes()
    return out


def table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    lines = ["| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)) + " |"]
    lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    lines += ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |" for r in rows]
    return "\n".join(lines)


class Chaos:
    def __init__(self, tmp: Path, seconds: float, seed: int) -> None:
        self.tmp = tmp
        self.seconds = seconds
        self.seed = seed
        # Two streams, so the faults replay exactly whatever number of scans fit between them.
        self.rng = random.Random(seed)
        self.scan_rng = random.Random(seed + 1)
        self.scale = min(1.0, max(0.15, seconds / FULL_SCALE_S))
        self.t0 = time.monotonic()
        self.skipped: dict[str, str] = {}
        self.injected: Counter[str] = Counter()
        self.accepted: dict[str, Accepted] = {}
        # Answers by the fault episode under way when they were given ("quiet" between episodes).
        self.outcomes: dict[str, Counter[str]] = defaultdict(Counter)
        self.latency: dict[str, list[float]] = defaultdict(list)
        # Rejections that name the storage: the proof a disk-full episode bit (SQLite may still find room
        # in its WAL, and then the scan is rightly accepted).
        self.storage_refusals: Counter[str] = Counter()
        self.unanswered = 0
        self.late_answers = 0
        self.rss: list[tuple[int, float, float]] = []  # incarnation, age s, MB
        self.leaks: set[tuple[str, str]] = set()
        self.incidents: list[str] = []
        self.jumps: list[float] = []
        self.logs: list[str] = []
        self.timeline: list[str] = []
        self.code_no = 0
        self.offset_s = 0.0
        self.offset_since = 0.0
        self.serial_ready = False
        self.serial_wait: tuple[int, float] | None = None
        self.clean_exit: int | None = None
        # Seqs a salvaged store skipped (above what the old one handed out, up to its reserve).
        self.never_handed_out: set[int] = set()
        self.corrupted = 0
        self.drained_s: float | None = None
        self.store: dict[str, Any] = {"max_seq": 0, "events": {}, "dead": {}, "unheard": 0}
        # Per class judged by its ALARM lines: how many each episode drew (episode 0: outside any).
        self.alarms: dict[str, Counter[int]] = defaultdict(Counter)
        self.final_alarms = 0
        self.alarm_cursor: dict[DaemonProcess, int] = {}
        # Unheard events in the store as each 0x10 episode ended: the proof it bit.
        self.unheard_seen: list[int] = []
        self.active: FaultClass | None = None
        self.incarnation: Incarnation | None = None
        self.runs = 0
        self.rss_at = 0.0
        self.privacy_at = time.monotonic()
        self.scanner = PtyScanner(tmp / "dev/serial/by-id/usb-Chaos_Scanner-if00")

    # -- set-up ----------------------------------------------------------------------------------------

    def setup(self, stack: contextlib.ExitStack) -> None:
        """Brings everything up; `stack` takes it all down again, in reverse."""
        disk = self.tmp / "disk"
        if reason := private_tmpfs(disk):
            self.skipped["disk-full"] = reason
        else:
            stack.callback(unmount, disk)
        self.storage = disk / "state"
        self.ballast = disk / "ballast"
        self.clock_file = self.tmp / "clock-offset"
        lib, reason = faketime_library()
        self.faketime_env, reason = faketime(self.clock_file, lib) if lib else (None, reason)
        if reason:
            self.skipped["clock-jump"] = self.skipped["clock-step"] = reason
        if reason := dbstat_missing():
            self.skipped["corrupt-page"] = reason
        # autosave_on_changes: mosquitto writes its store after every change, not once a second, so a
        # kill -9 loses as little as it can of what it acknowledged.
        self.acl = self.tmp / "broker.acl"
        self.acl.write_text(ACL_REFUSING)
        self.broker = Mosquitto(
            self.tmp / "broker",
            persistence=True,
            extra=f"autosave_on_changes true\nmax_queued_messages {QUEUE_LIMIT}",
        )
        stack.callback(self.broker.kill)
        self.broker.start()
        self.audit = Audit(self.broker.port, f"chaos-audit-{os.getpid()}")
        stack.callback(self.audit.close)
        self.proxy = Proxy(self.broker.port)
        stack.callback(self.proxy.close)
        # Started for each 0x10 episode, empty: no persistence, no session, no subscriber.
        self.empty_broker = Mosquitto(self.tmp / "empty-broker")
        stack.callback(self.empty_broker.kill)
        self.scanner.plug()
        stack.callback(self.scanner.unplug)
        self.config = write_config(
            self.tmp / "device.toml",
            port=self.proxy.port,
            storage=self.storage,
            scanner={"sources": ["stdin", "serial"]},
            checkin={"duplicate_window_s": 3},
            **{"scanner.serial": {"port": str(self.scanner.link), "rescan_s": 0.2, "retry_s": 0.5}},  # type: ignore[arg-type]
        )
        self.env = {
            # The tmpfs is small on purpose; a week of grace keeps delivered rows (clock jumps included)
            # for the cross-check against what the audit client received.
            "QRCHECKIN_STORAGE__LOW_SPACE_MB": "1",
            "QRCHECKIN_STORAGE__DELIVERED_GRACE_H": "168",
            **(self.faketime_env or {}),
        }
        url = os.environ.get("CHAOS_DATABASE_URL") or f"sqlite:///{self.tmp / 'collector.db'}"
        collector_toml = collector_config(self.tmp / "collector.toml", port=self.broker.port, url=url)
        self.collector_db = Store(load_settings(collector_toml).database_url)
        stack.callback(self.collector_db.close)
        self.collector = CollectorProcess(collector_toml).start()
        self.collector_runs = 1
        self.collector_up_at = 1
        stack.callback(self.collector.kill)
        self.collector.wait_connected()
        stack.callback(self.stop)
        self.start_daemon()

    def start_daemon(self) -> None:
        self.runs += 1
        daemon = DaemonProcess(self.config, env=self.env)
        try:
            daemon.start()
        except AssertionError:
            self._retire(daemon)
            raise RuntimeError(
                f"the daemon did not start (run {self.runs}):\n{daemon.stderr[-2000:]}"
            ) from None
        self.incarnation = Incarnation(daemon, self.runs)
        self.serial_ready = False
        if self.scanner.plugged:
            self.serial_wait = (0, time.monotonic() + REPLUG_TIMEOUT_S)

    def _retire(self, daemon: DaemonProcess) -> None:
        """Keeps a finished daemon's output for the privacy check, once its readers caught up."""
        deadline = time.monotonic() + 1.0
        seen = -1
        while len(daemon.stderr_lines) != seen and time.monotonic() < deadline:
            seen = len(daemon.stderr_lines)
            time.sleep(0.1)
        self._read_alarms(daemon)
        self.logs += [f"--- daemon run {self.runs} ---\n", *daemon.stderr_lines, *daemon.stdout_lines]

    @property
    def daemon(self) -> DaemonProcess:
        assert self.incarnation is not None
        return self.incarnation.daemon

    def say(self, text: str) -> None:
        line = f"[{time.monotonic() - self.t0:7.1f}s] {text}"
        self.timeline.append(line)
        print(line, flush=True)

    def keep_evidence(self, where: Path) -> None:
        """The fault timeline, every daemon run's output and the brokers' logs, for whoever looks into it."""
        where.mkdir(parents=True, exist_ok=True)
        (where / "timeline.txt").write_text("\n".join(self.timeline) + "\n")
        (where / "daemon.log").write_text("".join(self.logs))
        with contextlib.suppress(OSError):
            (where / "mosquitto.log").write_bytes(self.broker.log.read_bytes())
        with contextlib.suppress(OSError):  # the 0x10 episodes' broker, when there were any
            (where / "mosquitto-empty.log").write_bytes(self.empty_broker.log.read_bytes())
        with contextlib.suppress(OSError):
            (where / "collector.log").write_bytes(self.collector.log.read_bytes())

    # -- the soak --------------------------------------------------------------------------------------

    def soak(self) -> None:
        enabled = [f for f in FAULTS if f.name not in self.skipped and f.name != "collector-kill"]
        collector_rng = random.Random(self.seed + 2)
        collector_kill_at = time.monotonic() + collector_rng.uniform(*COLLECTOR_KILL_EVERY_S) * self.scale
        deck: list[FaultClass] = []
        end = time.monotonic() + self.seconds
        hard_end = end + ROUND_GRACE_S
        next_at = time.monotonic() + self._draw(GAP_S)
        while True:
            now = time.monotonic()
            every_class = all(self.injected[f.name] for f in enabled) and self.injected["collector-kill"]
            judged = every_class and len(self.warm_rss()) >= RSS_MIN_WARM
            if self.active is None and ((now >= end and judged) or now >= hard_end):
                break
            # A broker that dies while the collector is away takes the collector's queue with it; until the
            # devices answer cmd/replay that would be a loss by design, so the two never overlap here.
            collector_up = self.collector.connections() >= self.collector_up_at
            if now >= next_at and (self.active is not None or collector_up):
                if self.active is None:
                    if not deck:
                        deck = self.rng.sample(enabled, len(enabled))
                    self.active = deck.pop()
                    next_at = time.monotonic() + self.inject(self.active)
                else:
                    self.recover(self.active)
                    self.active = None
                    next_at = time.monotonic() + self._draw(GAP_S)
            broker_down = self.active is not None and self.active.name.startswith("broker")
            if now >= collector_kill_at and collector_up and not broker_down:
                self._kill_collector()
                collector_kill_at = now + collector_rng.uniform(*COLLECTOR_KILL_EVERY_S) * self.scale
            self.housekeeping()
            if self.incarnation is not None:
                self.scan_once()
            time.sleep(self.scan_rng.uniform(0.02, 0.15))

    def _draw(self, span: tuple[float, float]) -> float:
        return self.rng.uniform(*span) * self.scale

    def inject(self, fault: FaultClass) -> float:
        """Starts an episode; returns how long it holds."""
        hold = self._draw(fault.hold_s)
        if fault.name in ("clock-jump", "clock-step"):  # in force for some scans, however short the run
            hold = max(hold, CLOCK_CACHE_S + 2.0)
        if fault.name == "refusing-broker":
            hold = max(hold, REFUSE_MIN_HOLD_S)
        if fault.name == "0x10-broker":
            hold = max(hold, UNHEARD_MIN_HOLD_S)
        self.injected[fault.name] += 1
        detail = ""
        if fault.name == "broker-kill":
            self.broker.kill()
        elif fault.name == "broker-stop":
            self.broker.pause()
        elif fault.name == "net-reset":
            self.proxy.reset()
        elif fault.name == "net-blackhole":
            self.proxy.blackhole()
        elif fault.name == "daemon-kill":
            detail = self._kill_daemon()
        elif fault.name == "disk-full":
            detail = f", ballast {fill(self.ballast) / 2**20:.1f} MB"
        elif fault.name == "clock-jump":
            magnitude = math.exp(self.rng.uniform(*(math.log(j) for j in JUMP_S)))
            self._set_offset(self.rng.choice((-1, 1)) * round(magnitude))
            detail = f", wall clock {self.offset_s:+.0f} s"
        elif fault.name == "clock-step":
            self.proxy.blackhole()
            self._set_offset(STEP_S)
            time.sleep(CLOCK_CACHE_S)  # the offset is in force before the daemon's first purge
            self._restart_daemon()
            detail = f", wall clock {self.offset_s:+.0f} s"
        elif fault.name == "corrupt-page":
            detail = self._kill_daemon() + self._damage_store()
        elif fault.name == "scanner-unplug":
            self.serial_ready = False
            self.serial_wait = None
            self.scanner.unplug()
        elif fault.name == "refusing-broker":
            self._refuse_events(True)
        elif fault.name == "0x10-broker":
            self.empty_broker.start()
            self._turn_link(self.empty_broker.port)
        self.say(f"{fault.name}: injected, holding {hold:.1f} s{detail}")
        return hold

    def recover(self, fault: FaultClass) -> None:
        if fault.name == "broker-kill":
            self.broker.start()
        elif fault.name == "broker-stop":
            self.broker.resume()
        elif fault.name == "net-blackhole":
            self.proxy.blackhole(False)
        elif fault.name == "daemon-kill":
            self.start_daemon()
        elif fault.name == "disk-full":
            self.ballast.unlink()
        elif fault.name == "clock-jump":
            self._set_offset(0)
        elif fault.name == "clock-step":
            self._set_offset(0)
            self.proxy.blackhole(False)
        elif fault.name == "corrupt-page":
            self.start_daemon()
        elif fault.name == "scanner-unplug":
            self.scanner.plug()
            self.serial_wait = (self.daemon.mark(), time.monotonic() + REPLUG_TIMEOUT_S)
        elif fault.name == "refusing-broker":
            self._refuse_events(False)
        elif fault.name == "0x10-broker":
            self.unheard_seen.append(self.unheard_now() or 0)
            self._turn_link(self.broker.port)
            self.empty_broker.kill()
        self.say(f"{fault.name}: recovered")

    def _refuse_events(self, on: bool) -> None:
        """Puts the ACL into the broker's configuration, or takes it out, and has mosquitto reload it
        (SIGHUP): in force at once for every client, the connected ones too."""
        acl = f"acl_file {self.acl}\n" if on else ""
        (self.broker.workdir / "mosquitto.conf").write_text(self.broker.config() + acl)
        assert self.broker.proc is not None
        self.broker.proc.send_signal(signal.SIGHUP)

    def _turn_link(self, port: int) -> None:
        """Points the proxy at another broker and drops the links, so the daemon reconnects to it."""
        self.proxy.target = ("127.0.0.1", port)
        self.proxy.reset()

    def unheard_now(self) -> int | None:
        """The running daemon's unheard events (its store, read beside it), or None if unreadable."""
        with contextlib.suppress(sqlite3.Error):
            db = sqlite3.connect(f"file:{self.storage / 'outbox.sqlite'}?mode=ro", uri=True, timeout=1)
            try:
                return int(db.execute("SELECT COUNT(*) FROM unheard").fetchone()[0])
            finally:
                db.close()
        return None

    def _read_alarms(self, daemon: DaemonProcess) -> None:
        """Counts the new ALARM lines of the two refusal classes, each to the episode under way or last
        ended (so one the daemon logs just after the recovery is still that episode's)."""
        start, end = self.alarm_cursor.get(daemon, 0), len(daemon.stderr_lines)
        self.alarm_cursor[daemon] = end
        for line in daemon.stderr_lines[start:end]:
            for name, needle in ALARMS.items():
                if needle in line:
                    self.alarms[name][self.injected[name]] += 1
            if FINAL_ALARM in line and "for good" in line:
                self.final_alarms += 1

    def _kill_collector(self) -> None:
        self.injected["collector-kill"] += 1
        # Up again once its log shows one more connection than now.
        self.collector_up_at = self.collector.connections() + 1
        self.collector.kill()
        self.collector.start()
        self.collector_runs += 1
        self.say(f"collector-kill: killed -9 and restarted (run {self.collector_runs})")

    def _kill_daemon(self) -> str:
        daemon = self.daemon
        mid_scan = self.rng.random() < 0.5
        if mid_scan:
            # Its answer may or may not come out before the kill; only an answered scan was promised.
            with contextlib.suppress(OSError):
                daemon.send(self._next_code())
            time.sleep(self.rng.uniform(0, 0.02))
        daemon.kill()
        self.incarnation = None
        self._retire(daemon)
        self._collect_late(daemon)
        return ", with a scan in flight" if mid_scan else ""

    def _restart_daemon(self) -> None:
        daemon = self.daemon
        try:
            if daemon.terminate(timeout=15) != 0:
                self.incidents.append(f"the daemon exited non-zero on SIGTERM (run {self.runs})")
        except subprocess.TimeoutExpired:
            self.incidents.append("the daemon did not stop within 15 s of SIGTERM")
            daemon.kill()
        self.incarnation = None
        self._retire(daemon)
        self._collect_late(daemon)
        self.start_daemon()

    def _damage_store(self) -> str:
        """Overwrites one index page of the killed daemon's store, once its WAL is checkpointed into
        the file (as the next start would): every undelivered event is still in the table, by rowid."""
        store = self.storage / "outbox.sqlite"
        db = sqlite3.connect(store)
        try:
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            marks = "?, " * (len(INDEXES) - 1) + "?"
            pages = db.execute(f"SELECT name, pageno FROM dbstat WHERE name IN ({marks})", INDEXES).fetchall()
            (page_size,) = db.execute("PRAGMA page_size").fetchone()
            (next_seq,) = db.execute(
                "SELECT CAST(value AS INTEGER) FROM meta WHERE key='next_seq'"
            ).fetchone()
        finally:
            db.close()
        # The salvaged store continues above the seq reserve: the seqs between were never handed out.
        reserved = int((self.storage / "seq.reserve").read_text().strip() or 0)
        self.never_handed_out |= set(range(int(next_seq), reserved + 1))
        name, page = self.rng.choice(pages)
        with store.open("r+b") as fh:
            fh.seek((page - 1) * page_size)
            fh.write(b"\xa5" * page_size)
        self.corrupted += 1
        return f", page {page} of {name} overwritten"

    def _collect_late(self, daemon: DaemonProcess) -> None:
        while not daemon.decisions.empty():
            decision = daemon.decisions.get_nowait()
            self.outcomes[self.active.name if self.active else "daemon-kill"][decision["feedback"]] += 1
            if decision["feedback"] == "accepted":
                self.accepted[decision["event_id"]] = self._accepted(None)

    def _accepted(self, offset: float | None) -> Accepted:
        during = self.active.name if self.active else "quiet"
        return Accepted(time.time(), time.monotonic() - self.t0, during, offset)

    def _set_offset(self, offset: float) -> None:
        self.clock_file.write_text(f"{offset:+.0f}\n")
        self.offset_s = offset
        self.offset_since = time.monotonic()
        if offset:
            self.jumps.append(offset)

    def housekeeping(self) -> None:
        now = time.monotonic()
        if self.incarnation is not None:
            assert self.daemon.proc is not None
            code = self.daemon.proc.poll()
            if code is not None:
                self.incidents.append(f"daemon exited by itself with code {code} (run {self.runs})")
                self.say(f"daemon exited by itself with code {code}; restarting")
                self._retire(self.daemon)
                self.start_daemon()
        if self.serial_wait is not None and self.incarnation is not None:
            mark, deadline = self.serial_wait
            needle = f"serial scanner {self.scanner.link} connected"
            if any(needle in line for line in self.daemon.stderr_lines[mark:]):
                self.serial_ready, self.serial_wait = True, None
            elif now > deadline:
                self.incidents.append(f"serial scanner not back {REPLUG_TIMEOUT_S:.0f} s after a replug")
                self.serial_wait = None
        if self.incarnation is not None:
            self._read_alarms(self.daemon)
        if self.incarnation is not None and now - self.rss_at >= RSS_EVERY_S:
            self.rss_at = now
            assert self.daemon.proc is not None
            if (mb := rss_mb(self.daemon.proc.pid)) is not None:
                self.rss.append((self.incarnation.number, now - self.incarnation.started, mb))
        if now - self.privacy_at >= PRIVACY_EVERY_S:
            self.privacy_at = now
            self.leaks |= personal_data_in(files_under(self.storage))

    def _next_code(self) -> str:
        roll = self.scan_rng.random()
        if roll < 0.25:
            return self.scan_rng.choice(PEOPLE)
        if roll < 0.30:
            return self.scan_rng.choice(DAMAGED)
        self.code_no += 1
        return f"CHAOS-{self.seed}-{self.code_no:06d}"

    def scan_once(self) -> None:
        daemon = self.daemon
        text = self._next_code()
        by_serial = self.serial_ready and self.scan_rng.random() < 0.5
        while not daemon.decisions.empty():  # an answer that came after its scan was given up on
            late = daemon.decisions.get_nowait()
            self.late_answers += 1
            if late["feedback"] == "accepted":  # still a promise the worker saw, however late
                self.accepted[late["event_id"]] = self._accepted(None)
        offset = self.offset_s if time.monotonic() - self.offset_since > CLOCK_CACHE_S + 0.5 else None
        t0 = time.perf_counter()
        try:
            if by_serial:
                self.scanner.write(text.encode() + b"\r")
            else:
                daemon.send(text)
            decision = daemon.decisions.get(timeout=ANSWER_TIMEOUT_S)
        except OSError:
            return  # the daemon died under us: housekeeping restarts it and says so
        except queue.Empty:
            if daemon.proc is not None and daemon.proc.poll() is None:
                self.unanswered += 1
                self.say(
                    f"a {'serial' if by_serial else 'stdin'} scan went unanswered for {ANSWER_TIMEOUT_S} s"
                )
            return
        phase = self.active.name if self.active else "quiet"
        self.latency[phase].append((time.perf_counter() - t0) * 1000)
        self.outcomes[phase][decision["feedback"]] += 1
        if decision["feedback"] == "rejected" and (decision.get("reason") or "").startswith("storage"):
            self.storage_refusals[phase] += 1
        if decision["feedback"] == "accepted":
            self.accepted[decision["event_id"]] = self._accepted(offset)

    # -- the end ---------------------------------------------------------------------------------------

    def drain(self) -> None:
        started = time.monotonic()
        while time.monotonic() - started < DRAIN_TIMEOUT_S:
            self.housekeeping()
            delivered = (
                set(self.accepted) <= set(self.audit.received()) and set(self.accepted) <= self.collected()
            )
            # The collector's cmd/committed follows its commit: the unheard are released a moment later.
            if delivered and self.unheard_now() == 0:
                self.drained_s = time.monotonic() - started
                break
            time.sleep(0.1)
        self.say("drained" if self.drained_s is not None else f"not drained after {DRAIN_TIMEOUT_S:.0f} s")
        self.leaks |= personal_data_in(files_under(self.storage))  # WAL and SHM exist while it runs
        try:
            self.clean_exit = self.daemon.terminate(timeout=15)
        except subprocess.TimeoutExpired:
            self.incidents.append("the daemon did not stop within 15 s of SIGTERM")
            self.daemon.kill()
        self._retire(self.daemon)
        self.incarnation = None
        self.leaks |= personal_data_in(files_under(self.storage))
        self.leaks |= personal_data_in({"daemon output": "".join(self.logs).encode()})
        self.store = self.read_store()

    def collected(self) -> set[str]:
        """The event ids in the collector's database."""
        try:
            return {r["event_id"] for r in self.collector_db.rows(t.events)}
        except Exception:  # the schema appears with the collector's first start
            return set()

    def read_store(self) -> dict[str, Any]:
        db = sqlite3.connect(f"file:{self.storage / 'outbox.sqlite'}?mode=ro", uri=True)
        try:
            (next_seq,) = db.execute(
                "SELECT CAST(value AS INTEGER) FROM meta WHERE key='next_seq'"
            ).fetchone()
            rows = db.execute("SELECT seq, event_id, delivered_at IS NOT NULL FROM events").fetchall()
            dead = db.execute("SELECT seq, event_id FROM dead_letters").fetchall()
            (unheard,) = db.execute("SELECT COUNT(*) FROM unheard").fetchone()
        finally:
            db.close()
        return {
            "max_seq": int(next_seq) - 1,
            "events": {event_id: (seq, bool(acked)) for seq, event_id, acked in rows},
            "dead": {event_id: seq for seq, event_id in dead},
            "unheard": int(unheard),
        }

    def stop(self) -> None:
        """Ends an episode cut short (an abort, Ctrl-C) and the daemon, if either is still there."""
        if self.active is not None:
            with contextlib.suppress(Exception):
                self.recover(self.active)
        if self.incarnation is not None:
            self.daemon.stop()
            self._retire(self.daemon)
            self.incarnation = None
        if self.collector.proc is not None and self.collector.proc.poll() is None:
            self.collector.stop()

    # -- judgement -------------------------------------------------------------------------------------

    def verdicts(self) -> list[Verdict]:
        return [
            self._delivered(),
            self._collected(),
            self._sequence(),
            Verdict(
                "events match the schema",
                not self.audit.invalid,
                f"{len(self.audit.received())} events, {len(self.audit.invalid)} invalid"
                + (f": {self.audit.invalid[:3]}" if self.audit.invalid else ""),
            ),
            Verdict(
                "no personal data on disk or in logs",
                not self.leaks,
                "storage files (WAL, SHM, audit log) every "
                f"{PRIVACY_EVERY_S:.0f} s and after the stop, daemon stdout/stderr"
                + (f"; FOUND {sorted(self.leaks)[:5]}" if self.leaks else ": nothing found"),
            ),
            self._refusals(),
            self._unheard(),
            self._latency(),
            self._memory(),
            Verdict(
                "daemon survives every fault",
                not self.incidents and self.clean_exit == 0,
                f"{self.runs} runs, exit code {self.clean_exit} on SIGTERM at the end"
                + (f"; {self.incidents[:5]}" if self.incidents else ""),
            ),
        ]

    def _delivered(self) -> Verdict:
        received = self.audit.received()
        missing = [e for e in self.accepted if e not in received]
        stored = self.store["events"]
        figures = f"{len(self.accepted)} accepted, {len(missing)} missing"
        if self.drained_s is not None:
            figures += f", all in {self.drained_s:.1f} s after the faults stopped"
        if missing:
            # Where each missing event got to and when it was accepted: the evidence to start from.
            where: dict[str, list[str]] = defaultdict(list)
            for e in missing:
                sent = self.accepted[e]
                if e in self.store["dead"]:
                    fate = "dead-lettered"
                elif e not in stored:
                    fate = "not in the outbox"
                elif stored[e][1]:
                    fate = "acknowledged by the broker, never received"
                else:
                    fate = "never acknowledged"
                seq = stored[e][0] if e in stored else "?"
                where[fate].append(f"seq {seq} at {sent.at_s:.1f} s ({sent.during})")
            figures += "".join(f"; {fate}: {len(v)}, e.g. {v[:4]}" for fate, v in where.items())
        return Verdict("accepted events delivered", not missing, f"{figures}; {self.audit.copies} repeats")

    def _collected(self) -> Verdict:
        rows = self.collector_db.rows(t.events)
        ids = [r["event_id"] for r in rows]
        missing = set(self.accepted) - set(ids)
        streams = Counter((r["device_id"], r["incarnation"], r["seq"]) for r in rows)
        twice = [key for key, n in streams.items() if n > 1]
        lost = self.collector_db.rows(t.known_losses)
        c = self.collector_db.counters()
        balanced = c["received"] == c["stored"] + c["duplicate"] + c["invalid"]
        figures = (
            f"{len(self.accepted)} accepted, {len(missing)} missing, {len(twice)} seqs twice;"
            f" received {c['received']} = stored {c['stored']} + duplicate {c['duplicate']} + invalid"
            f" {c['invalid']}{'' if balanced else ' (DOES NOT ADD UP)'}; {len(lost)} known losses"
            f" {[(r['from_seq'], r['to_seq']) for r in lost][:5]};"
            f" {self.collector_runs} collector runs"
        )
        if missing:
            received = self.audit.received()
            figures += "; missing: " + ", ".join(
                f"seq {received[e]['seq'] if e in received else '?'} at {self.accepted[e].at_s:.1f} s"
                f" ({self.accepted[e].during})"
                for e in sorted(missing)[:5]
            )
            open_gaps = self.collector_db.rows(t.gaps, t.gaps.c.state == "open")
            figures += f"; open gaps {[(g['from_seq'], g['to_seq'], g['requests']) for g in open_gaps][:5]}"
        # A known loss is the device's word that seqs are gone (a salvaged page, a purge): reported, and
        # harmless as long as it covers no accepted scan, which `missing` would show.
        held = not missing and not twice and balanced and not c["invalid"]
        return Verdict("accepted scans in the database exactly once", held, figures)

    def _sequence(self) -> Verdict:
        by_seq: dict[int, set[str]] = defaultdict(set)
        for event in self.audit.received().values():
            by_seq[event["seq"]].add(event["event_id"])
        top = self.store["max_seq"]
        gaps = sorted(set(range(1, top + 1)) - set(by_seq) - self.never_handed_out)
        reused = {s: sorted(ids) for s, ids in by_seq.items() if len(ids) > 1}
        beyond = sorted(s for s in by_seq if s > top)
        figures = f"seq 1..{top} from the outbox: {len(gaps)} never received, {len(reused)} reused"
        if gaps:
            figures += f" (gaps {gaps[:10]})"
        if reused:
            figures += f" (reused {list(reused.items())[:3]})"
        if beyond:
            figures += f", {len(beyond)} beyond the outbox's counter"
        return Verdict("seq without gap or reuse", not (gaps or reused or beyond), figures)

    def episode_alarms(self, name: str) -> list[int]:
        """How many ALARM lines each episode of `name` drew, first to last."""
        return [self.alarms[name][k] for k in range(1, self.injected[name] + 1)]

    def _refusals(self) -> Verdict:
        """The device's words on a refusal: one ALARM an episode, not one an event (an episode that
        drew none followed another before the broker accepted again: the device's episode went on)."""
        per = {name: self.episode_alarms(name) for name in ALARMS}
        outside = {name: self.alarms[name][0] for name in ALARMS if self.alarms[name][0]}
        dead = len(self.store["dead"])
        held = all(n <= 1 for counts in per.values() for n in counts) and not dead and not self.final_alarms
        figures = "; ".join(f"{name}: ALARM lines per episode {counts}" for name, counts in per.items())
        figures += (
            f"; {dead} dead letters, {self.final_alarms} 'refused for good' alarms (only 0x90/0x99 may)"
        )
        if outside:
            figures += f"; outside their episodes {outside}"
        return Verdict("refusals kept, one alarm an episode", held, figures)

    def _unheard(self) -> Verdict:
        left = self.store["unheard"]
        return Verdict(
            "unheard held until the collector confirms",
            left == 0,
            f"unheard in the store as each 0x10 episode ended {self.unheard_seen};"
            f" {left} left after the drain (released only by the collector's cmd/committed)",
        )

    def _latency(self) -> Verdict:
        during = [ms for name, values in self.latency.items() if name != "quiet" for ms in values]
        every = [ms for values in self.latency.values() for ms in values]
        p99 = percentile(during, 99) if during else math.nan
        held = bool(during) and p99 <= LATENCY_P99_BOUND_MS and not self.unanswered
        return Verdict(
            "feedback latency under faults",
            held,
            f"p99 {p99:.1f} ms (bound {LATENCY_P99_BOUND_MS:.0f}) over {len(during)} scans during faults;"
            f" all {len(every)}: p50 {percentile(every, 50):.1f}, p99 {percentile(every, 99):.1f},"
            f" max {max(every, default=math.nan):.1f} ms; {self.unanswered} unanswered"
            f" within {ANSWER_TIMEOUT_S:.0f} s ({self.late_answers} answered later)",
        )

    def warm_rss(self) -> list[tuple[int, float]]:
        """(run, MB) of the samples past each run's warm-up. A short run shrinks the warm-up with its
        episodes: three restarting classes a round leave runs of a few seconds, past the imports (done
        before "ready") though."""
        return [(run, mb) for run, age, mb in self.rss if age >= RSS_WARMUP_S * self.scale]

    def _memory(self) -> Verdict:
        warm = self.warm_rss()
        if len(warm) < RSS_MIN_WARM:
            return Verdict("daemon memory bounded", False, f"only {len(warm)} warm RSS samples: run longer")
        early = statistics.median(mb for _, mb in warm[:3])
        peak = max(mb for _, mb in warm)
        runs: dict[int, list[float]] = defaultdict(list)
        for run, mb in warm:
            runs[run].append(mb)
        # Within each run long enough to tell: its last samples against its first (restarts reset RSS).
        growth = max(
            (statistics.median(v[-3:]) / statistics.median(v[:3]) for v in runs.values() if len(v) >= 6),
            default=1.0,
        )
        longest = max(len(v) for v in runs.values()) * RSS_EVERY_S
        held = growth <= RSS_GROWTH_BOUND and peak <= RSS_PEAK_BOUND * early
        return Verdict(
            "daemon memory bounded",
            held,
            f"RSS early {early:.1f} MB, peak {peak:.1f} MB (bound x{RSS_PEAK_BOUND:g}); worst growth within"
            f" a run x{growth:.2f} (bound x{RSS_GROWTH_BOUND:g}); longest run sampled {longest:.0f} s",
        )

    def fault_rows(self) -> list[list[str]]:
        rows = []
        for fault in FAULTS:
            values = self.latency.get(fault.name, [])
            p99 = f"{percentile(values, 99):.1f}" if values else "-"
            if fault.name in self.skipped:
                rows.append([fault.name, "skipped", "-", "-", self.skipped[fault.name]])
                continue
            what = fault.what
            if fault.name == "clock-jump":
                seen = self.jumps_seen()
                what += f"; {seen} of {len(self.jumps)} jumps seen in the events' scanned_at"
            if fault.name == "disk-full":
                what += f"; {self.storage_refusals[fault.name]} scans answered 'storage full'"
            if fault.name == "corrupt-page":
                what += f"; {self.salvages()} of {self.corrupted} damaged stores salvaged"
            if fault.name == "refusing-broker":
                what += f"; ALARM lines per episode {self.episode_alarms(fault.name)}"
            if fault.name == "0x10-broker":
                what += f"; unheard as each episode ended {self.unheard_seen}"
            if fault.name == "clock-step" and not SystemClock().synced():
                # Ageing by the wall clock needs a synchronised one: here the step cannot test that.
                what += "; this host's clock is unsynchronised, so wall-clock ageing was never in play"
            answers = self.outcomes[fault.name]
            said = ", ".join(
                f"{answers[k]} {k[:3]}" for k in ("accepted", "duplicate", "rejected") if answers[k]
            )
            rows.append([fault.name, str(self.injected[fault.name]), said or "-", p99, what])
        return rows

    def salvages(self) -> int:
        """How many times the daemon found its store damaged and salvaged it (its audit log says)."""
        try:
            lines = (self.storage / "audit.jsonl").read_text().splitlines()
        except OSError:
            return 0
        return sum(1 for line in lines if '"event":"store_corrupt"' in line)

    def jumps_seen(self) -> int:
        """Jumps proven in force: an event sent under the offset carries a scanned_at that far off."""
        received = self.audit.received()
        seen = set()
        for event_id, sent in self.accepted.items():
            if sent.offset_s and event_id in received:
                stamped = dt.datetime.fromisoformat(received[event_id]["scanned_at"].replace("Z", "+00:00"))
                if abs(stamped.timestamp() - sent.sent_wall - sent.offset_s) < 5:
                    seen.add(sent.offset_s)
        return sum(1 for offset in self.jumps if offset in seen)


def main(argv: list[str]) -> int:
    if argv == ["--libfaketime"]:
        return faketime_main()
    if argv:
        print("usage: python -m bench.chaos [--libfaketime]  (CHAOS_SECONDS, CHAOS_SEED, CHAOS_REPORT)")
        return 2
    seconds = float(os.environ.get("CHAOS_SECONDS") or DEFAULT_SECONDS)
    seed = int(os.environ.get("CHAOS_SEED") or secrets.randbelow(2**31))
    print(f"chaos: seed {seed} (CHAOS_SEED={seed} replays it), {seconds:.0f} s of faults", flush=True)
    with tempfile.TemporaryDirectory(prefix="qr-chaos-") as name, contextlib.ExitStack() as stack:
        chaos = Chaos(Path(name), seconds, seed)
        try:
            chaos.setup(stack)
        except (RuntimeError, OSError) as exc:
            print(f"chaos: cannot set up: {exc}", flush=True)
            return 2
        for fault, reason in chaos.skipped.items():
            chaos.say(f"{fault}: SKIPPED: {reason}")
        try:
            chaos.soak()
            chaos.drain()
        except RuntimeError as exc:
            chaos.incidents.append(str(exc).splitlines()[0])
            print(f"chaos: aborted: {exc}", flush=True)
            chaos.stop()
            with contextlib.suppress(sqlite3.Error):
                chaos.store = chaos.read_store()
        code = summarise(chaos, os.environ.get("CHAOS_REPORT"))
        if code:
            evidence = Path(tempfile.gettempdir()) / f"qr-chaos-evidence-{seed}-{os.getpid()}"
            chaos.keep_evidence(evidence)
            print(f"chaos: evidence (timeline, daemon and broker logs) kept in {evidence}", flush=True)
        return code


def summarise(chaos: Chaos, report: str | None) -> int:
    verdicts = chaos.verdicts()
    missed = [f.name for f in FAULTS if f.name not in chaos.skipped and not chaos.injected[f.name]]
    if chaos.jumps and not chaos.jumps_seen():
        missed.append("clock-jump (no event carried a jumped clock: libfaketime had no effect)")
    if chaos.corrupted and chaos.salvages() < chaos.corrupted:
        missed.append(f"corrupt-page (only {chaos.salvages()} of {chaos.corrupted} damaged stores noticed)")
    if chaos.injected["refusing-broker"] and not any(chaos.episode_alarms("refusing-broker")):
        missed.append("refusing-broker (no episode drew the device's refusal alarm)")
    if chaos.unheard_seen and not any(chaos.unheard_seen):
        missed.append("0x10-broker (no episode left an event unheard)")
    failed = bool(missed) or any(not v.held for v in verdicts)
    total = sum(chaos.outcomes.values(), Counter())
    outcomes = ", ".join(f"{n} {k}" for k, n in sorted(total.items()))
    scans = total.total()
    print(f"\nchaos summary: seed {chaos.seed}, {chaos.seconds:.0f} s, {scans} scans ({outcomes})")
    print(table(["fault class", "injected", "answers during", "p99 ms", "what"], chaos.fault_rows()))
    print()
    rows = [[v.name, "held" if v.held else "VIOLATED", v.figures] for v in verdicts]
    print(table(["invariant", "result", "figures"], rows))
    if missed:
        print(f"never injected: {', '.join(missed)} (run longer)")
    print(f"\nchaos: {'FAILED' if failed else 'passed'} (seed {chaos.seed})", flush=True)
    if report:
        summary = {
            "seed": chaos.seed,
            "seconds": chaos.seconds,
            "faults": {f.name: chaos.injected[f.name] for f in FAULTS if f.name not in chaos.skipped},
            "skipped": chaos.skipped,
            "invariants": {v.name: {"held": v.held, "figures": v.figures} for v in verdicts},
            "passed": not failed,
        }
        Path(report).write_text(json.dumps(summary, indent=1) + "\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
