"""Collectors sharing one RabbitMQ quorum queue: a backlog drained into PostgreSQL by 1, 2 and 3.

Two shapes, each for 1, 2 and 3 collector processes in the same run:
- backlog: the queue holds `count` events before the collectors start (a night of a depot's buses);
- devices: 20 devices' backlogs published over MQTT at once while the collectors run (shift start).
  The simulator publishes the devices' messages directly (no daemon, no outbox), from one process
  per broker node, each on behalf of its share of the devices: 20 paho clients in one Python
  process missed their keepalives on a loaded machine and the run stalled.
The rate is events / (last received_at - first received_at), from the database itself: a collector
that starts a little later than another counts against the group, so the ratios are conservative.
Each stands next to one collector (the ratio the issue's targets name) and to a plain batched insert
of the same rows into the same PostgreSQL, measured in the same run: where the database is the limit.

Where the time goes: CPU seconds (user + system, from /proc) per 1 000 events of the collectors,
the broker nodes, PostgreSQL (the postmaster and its backends) and the simulator, over each drain,
next to what the whole machine spent busy in the same window (other engineers' work included). A
collector's start-up (imports, migrations check, connect) is measured once against an empty queue
and taken off, so the figure is the cost of the drain. `1000 / (CPU s per 1 000 events)` is what one
core gives that component: the figure to size with where each process has cores of its own.

Each shape runs twice: as the machine gives it (collectors, broker and PostgreSQL sharing its two
cores, where the machine is the limit), and with every collector capped at a fixed CPU share of its
own (bench/cpucap.py: a core per collector host, scaled down), where the collectors are the limit and
the ratio shows whether they get in each other's way. The capped shapes are skipped, saying why, where
no control group can be made (not root, no cpu controller).

Every phase has its own deadline: one that stalls is reported as such (what it stored, in how long)
and the others still run.
`--quick` (the smoke test's budget has no room for RabbitMQ's boot) runs the devices' shape on
mosquitto with a `$share` group, 1 and 2 collectors.
"""

from __future__ import annotations

import itertools
import multiprocessing
import tempfile
import time
import uuid
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pika
import sqlalchemy as sa
from paho.mqtt.enums import CallbackAPIVersion

from bench import cpucap
from bench.common import Row, cpu_seconds, machine_cpu_seconds, main_for, row
from bench.ingest import _payloads, _plain_insert_rate
from collector import tables as t
from collector.amqp import bindings, routing_key
from collector.settings import GapSettings, load_settings
from collector.store import Store
from tests.support.collector import CollectorProcess, Publisher, wait_until, write_config
from tests.support.mosquitto import Mosquitto
from tests.support.postgres import Postgres
from tests.support.rabbitmq import RabbitCluster, available

DEVICES = 20
PHASE_TIMEOUT_S = 150.0
STALL_S = 20.0
IDLE_S = 5.0
COUNT = 100_000  # the issue: a backlog of at least 100 000 events
COMPONENTS = ("collectors", "broker", "postgres", "simulator")
# Each collector's CPU share in the capped shapes, in cores: small enough that three of them, the
# broker nodes and PostgreSQL fit in this machine's two (the live shape's broker and simulator cost
# ten times the backlog's per event, so its collectors get less).
CAPS = {"backlog": 0.25, f"{DEVICES} devices": 0.08}
# A capped collector alone drains the devices' shape at ~700 events/s: its phase needs longer.
CAPPED_PHASE_TIMEOUT_S = 300.0


class Stalled(Exception):
    """A phase did not finish within its deadline."""


@dataclass
class Site:
    """Where the collectors run: a RabbitMQ cluster (one quorum queue) or mosquitto (one $share group)."""

    ports: list[int]
    protocol: int
    broker_pids: Callable[[], list[int]]
    cluster: RabbitCluster | None = None

    def collector_keys(self, group: str) -> dict[str, dict[str, Any]]:
        if self.cluster is not None:
            return {"amqp": {"urls": list(self.cluster.amqp_urls), "queue": group}}
        return {"broker": {"shared_group": group}}

    def forget(self, group: str, procs: list[CollectorProcess]) -> None:
        """Drops what a finished phase left subscribed: a queue (or a `$share` member's session)
        that outlives its collectors gets a copy of every later phase's messages, and the broker's
        cost of routing, replicating and storing those copies would be charged to the later phase."""
        if self.cluster is not None:
            connection = pika.BlockingConnection(pika.URLParameters(self.cluster.amqp_urls[0]))
            try:
                connection.channel().queue_delete(group)
            finally:
                connection.close()
            return
        for p in procs:
            client_id = load_settings(p.config).broker.client_id
            client = mqtt.Client(
                callback_api_version=CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5
            )
            client.connect("127.0.0.1", self.ports[0], clean_start=True)  # session expiry 0: gone
            client.loop_start()
            wait_until(client.is_connected, 10, "session cleared")
            client.disconnect()
            client.loop_stop()


@dataclass
class Drain:
    """One phase: what reached the database, how fast, and the CPU each component spent on it."""

    events: int
    stored: int = 0
    seconds: float = 0.0  # first to last received_at
    wall: float = 0.0  # collectors connected to last event stored
    cpu: dict[str, float] = field(default_factory=dict)  # raw less idle: the events' cost
    raw: dict[str, float] = field(default_factory=dict)  # CPU seconds in the window (less start-ups)
    idle: dict[str, float] = field(default_factory=dict)  # what doing nothing costs in that window
    machine: float = 0.0  # every process of the machine, CPU seconds in the same window
    stalled: str = ""
    limit_s: float = PHASE_TIMEOUT_S  # the phase's deadline
    gaps: int = 0  # gap rows the collectors opened
    requests: int = 0  # replay requests they sent for them

    @property
    def rate(self) -> float:
        return self.stored / max(self.seconds, 1e-3)


def _configs(tmp: Path, site: Site, url: str, group: str, n: int) -> list[CollectorProcess]:
    procs = []
    for i in range(n):
        keys = site.collector_keys(group)
        keys.setdefault("broker", {})["client_id"] = f"{group}-{i}"
        # The gap sweep as deployed, not the tests' quick one: a shared stream is full of
        # another instance's seqs, which this instance's sweep looks up in the database.
        keys["gaps"] = GapSettings().model_dump()
        procs.append(
            CollectorProcess(write_config(tmp / f"{group}-{i}.toml", port=site.ports[0], url=url, **keys))
        )
    return procs


def _remaining(deadline: float, what: str) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise Stalled(what)
    return left


def _postgres_pid(pg: Postgres) -> int:
    return int((pg.data / "postmaster.pid").read_text().split()[0])


def _idle(tmp: Path, site: Site, pg: Postgres) -> tuple[float, dict[str, float]]:
    """A collector's start-up CPU seconds (exec to consuming an empty queue) and what each component
    burns doing nothing, in cores (Erlang's and Raft's ticks, the collector's polls and sweeps,
    PostgreSQL's background workers): both are taken off each drain, which is then the events' cost."""
    url, group = pg.create_database(), f"bench-idle-{uuid.uuid4().hex[:6]}"
    proc = _configs(tmp, site, url, group, 1)[0]
    Store(load_settings(proc.config).database_url).migrate()
    proc.start()
    try:
        proc.wait_connected(timeout=60)
        time.sleep(1.0)  # the subscription (or the queue's declaration) follows the connect
        assert proc.proc is not None
        roots = {"collectors": [proc.proc.pid], "broker": site.broker_pids(), "postgres": [_postgres_pid(pg)]}
        before = {name: cpu_seconds(pids) for name, pids in roots.items()}
        time.sleep(IDLE_S)
        after = {name: cpu_seconds(pids) for name, pids in roots.items()}
        return before["collectors"], {name: (after[name] - before[name]) / IDLE_S for name in roots}
    finally:
        proc.kill()
        site.forget(group, [proc])


def _drain(
    tmp: Path,
    site: Site,
    pg: Postgres,
    payloads: list[tuple[str, bytes]],
    n: int,
    live: bool,
    idle: tuple[float, dict[str, float]],
    cap: float | None = None,
) -> Drain:
    timeout = PHASE_TIMEOUT_S if cap is None else CAPPED_PHASE_TIMEOUT_S
    deadline = time.monotonic() + timeout
    url, queue = pg.create_database(), f"bench-{uuid.uuid4().hex[:6]}"
    procs = _configs(tmp, site, url, queue, n)
    store = Store(load_settings(procs[0].config).database_url)
    store.migrate()
    result = Drain(len(payloads), limit_s=timeout)
    fleet: list[multiprocessing.process.BaseProcess] = []
    roots: dict[str, list[int]] = {"broker": site.broker_pids(), "postgres": [_postgres_pid(pg)]}
    caps: list[cpucap.CpuCap] = []
    try:
        if not live:
            assert site.cluster is not None, "a backlog is preloaded into a RabbitMQ queue only"
            _publish_amqp(site.cluster, queue, payloads, deadline)
        before = {name: cpu_seconds(pids) for name, pids in roots.items()}
        measured = time.monotonic()
        for p in procs:
            p.start()
            if cap is not None and p.proc is not None:
                caps.append(cpucap.CpuCap(cap, "qr-bench-collector"))
                caps[-1].add(p.proc.pid)
        roots["collectors"] = [p.proc.pid for p in procs if p.proc is not None]
        for p in procs:
            p.wait_connected(timeout=_remaining(deadline, "collectors connecting"))
        machine_before, started = machine_cpu_seconds(), time.monotonic()
        if live:
            time.sleep(0.5)  # the SUBACKs follow the CONNACKs
            fleet = _fleet(site, payloads, deadline)
            roots["simulator"] = [p.pid for p in fleet if p.pid is not None]
        stored, moved = 0, time.monotonic()
        while stored < len(payloads):
            if time.monotonic() > deadline:
                # Still moving: the rate so far is a rate. Not moving: it is a stall.
                still = time.monotonic() - moved < STALL_S
                result.stalled = "unfinished" if still else f"stalled ({STALL_S:.0f} s without a row)"
                break
            time.sleep(0.05)
            now = store.count(t.events)
            if now > stored:
                stored, moved = now, time.monotonic()
        # Read before anything is stopped: a killed process's times are gone with it.
        after = {name: cpu_seconds(pids) for name, pids in roots.items()}
        result.machine, result.wall = machine_cpu_seconds() - machine_before, time.monotonic() - started
        startup, idle_cores = idle
        window = time.monotonic() - measured
        result.raw = {name: after[name] - before.get(name, 0.0) for name in roots}
        result.raw["collectors"] -= n * startup
        result.idle = {
            name: idle_cores.get(name, 0.0) * window * (n if name == "collectors" else 1) for name in roots
        }
        result.cpu = {name: max(result.raw[name] - result.idle[name], 0.0) for name in roots}
        _span(store, result)
    except Stalled as exc:
        result.stalled = f"stalled in its {exc} ({timeout:.0f} s)"
        _span(store, result)
    finally:
        for proc in fleet:
            if proc.is_alive():
                proc.kill()
            proc.join(10)
        for p in procs:
            p.kill()  # everything is committed: nothing to wait for
        for c in caps:
            c.close()
        site.forget(queue, procs)
        store.close()
    return result


def _span(store: Store, result: Drain) -> None:
    c, g = t.events.c, t.gaps.c
    with store.engine.connect() as conn:
        count, first, last = conn.execute(
            sa.select(sa.func.count(), sa.func.min(c.received_at), sa.func.max(c.received_at))
        ).one()
        # Nothing is lost in a bench: every gap is another instance's seqs, seen before they were stored.
        gaps, requests = conn.execute(sa.select(sa.func.count(), sa.func.sum(g.requests))).one()
    result.stored, result.seconds = int(count), (last - first).total_seconds() if count else 0.0
    result.gaps, result.requests = int(gaps), int(requests or 0)


def _publish_amqp(
    cluster: RabbitCluster, queue: str, payloads: list[tuple[str, bytes]], deadline: float
) -> None:
    """Declares and binds the queue as a collector does, then fills it through the exchange."""
    connection = pika.BlockingConnection(pika.URLParameters(cluster.amqp_urls[0]))
    try:
        channel = connection.channel()
        channel.queue_declare(queue, durable=True, arguments={"x-queue-type": "quorum"})
        for key in bindings("checkin"):
            channel.queue_bind(queue, "amq.topic", routing_key=key)
        props = pika.BasicProperties(delivery_mode=2)
        for i, (topic, payload) in enumerate(payloads):
            channel.basic_publish("amq.topic", routing_key(topic), payload, props)
            if i % 5000 == 0:
                _remaining(deadline, "preload")
        while channel.queue_declare(queue, passive=True).method.message_count < len(payloads):
            _remaining(deadline, "preload")
            time.sleep(0.2)
    finally:
        connection.close()


def _fleet(
    site: Site, payloads: list[tuple[str, bytes]], deadline: float
) -> list[multiprocessing.process.BaseProcess]:
    """The 20 devices' messages at once, in their order, one publisher process per broker node.

    Forked, so the payloads are not copied through a pipe; the child ends with os._exit (what
    multiprocessing does), so it never closes the parent's database connections on its way out.
    """
    shares: list[list[tuple[str, bytes]]] = [[] for _ in site.ports]
    devices: dict[str, int] = {}
    slots = itertools.cycle(range(len(site.ports)))
    for topic, payload in payloads:
        shares[devices.setdefault(topic, next(slots))].append((topic, payload))
    context = multiprocessing.get_context("fork")
    timeout = max(deadline - time.monotonic(), 1.0)
    fleet: list[multiprocessing.process.BaseProcess] = [
        context.Process(target=_publish_share, args=(port, site.protocol, share, timeout), daemon=True)
        for port, share in zip(site.ports, shares, strict=True)
    ]
    for proc in fleet:
        proc.start()
    return fleet


def _publish_share(port: int, protocol: int, messages: list[tuple[str, bytes]], timeout: float) -> None:
    pub = Publisher(port, protocol=protocol)
    infos = [pub.publish(topic, payload) for topic, payload in messages]
    for info in infos:
        info.wait_for_publish(timeout)
    pub.close()


def _rows(shape: str, where: str, drains: dict[int, Drain], plain: float) -> list[Row]:
    rows: list[Row] = []
    one = drains[1].rate if 1 in drains and not drains[1].stalled else 0.0
    for n, d in drains.items():
        note = f"{d.events} events, {n} collector(s), {where}, PostgreSQL"
        if d.stalled:
            note = f"{note}; {d.stalled}: {d.stored} of {d.events} stored in {d.limit_s:.0f} s"
        if d.stalled.startswith("stalled"):
            rows.append(row(f"cluster {shape}", f"{n} collectors STALLED", d.rate, "ev/s", None, note))
            continue
        mark = " (unfinished)" if d.stalled else ""
        note = f"{note}; {d.gaps} gaps opened, {d.requests} replay requests"
        rows.append(row(f"cluster {shape}", f"{n} collectors vs 1{mark}", d.rate, "ev/s", one or None, note))
        rows.append(row(f"cluster {shape}", f"{n} collectors vs plain insert", d.rate, "ev/s", plain, note))
        per = 1000 / max(d.stored, 1)
        total = sum(d.cpu.values())
        for name in COMPONENTS:
            if name in d.cpu:
                rows.append(
                    row(
                        f"cluster {shape} cpu",
                        f"{n} collectors: {name} CPU s per 1000 ev",
                        d.cpu[name] * per,
                        "s",
                        None,
                        f"{1000 / max(d.cpu[name] * per, 1e-6):.0f} ev/s per core of {name}; raw "
                        f"{d.raw[name] * per:.3f} less idle {d.idle.get(name, 0.0) * per:.3f}",
                    )
                )
        cores = d.machine / max(d.wall, 1e-3)
        rows.append(
            row(
                f"cluster {shape} cpu",
                f"{n} collectors: machine busy, cores",
                cores,
                "cores",
                None,
                f"of {multiprocessing.cpu_count()}; ours {total / max(d.wall, 1e-3):.2f} cores "
                f"over {d.wall:.1f} s, the rest other processes",
            )
        )
    return rows


def run(quick: bool = False) -> list[Row]:
    # --quick (the smoke test's budget): mosquitto and a $share group, the live shape, 1 and 2 collectors.
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="qr-bench-cluster-") as tmp_name, ExitStack() as stack:
        tmp = Path(tmp_name)
        if quick:
            broker = Mosquitto(tmp / "mosquitto").start()
            stack.callback(broker.kill)
            site = Site(
                [broker.port] * 2,
                mqtt.MQTTv5,
                lambda: [broker.proc.pid] if broker.proc is not None else [],
            )
            count = 2_000
            counts: tuple[int, ...] = (1, 2)
            shapes: tuple[tuple[str, bool], ...] = ((f"{DEVICES} devices", True),)
            where = "mosquitto $share"
        elif available():
            cluster = RabbitCluster(tmp / "rabbitmq").start()
            stack.callback(cluster.stop)
            site = Site(
                list(cluster.mqtt_ports),
                mqtt.MQTTv311,
                lambda: [n.proc.pid for n in cluster.nodes if n.proc is not None],
                cluster,
            )
            count, counts = COUNT, (1, 2, 3)
            shapes = (("backlog", False), (f"{DEVICES} devices", True))
            where = "3 RabbitMQ nodes"
        else:
            return [
                row("cluster", "skipped", 0, "-", None, "rabbitmq-server not installed (make setup as root)")
            ]
        pg = Postgres(fsync=True).start()
        stack.callback(pg.close)
        payloads = _payloads(count)
        pg_pid = _postgres_pid(pg)
        pg_before = cpu_seconds([pg_pid])
        plain = _plain_insert_rate(pg.create_database(), payloads)
        pg_plain = (cpu_seconds([pg_pid]) - pg_before) * 1000 / count
        rows.append(
            row(
                "cluster",
                "plain batched insert",
                plain,
                "ev/s",
                None,
                f"the database's ceiling here; PostgreSQL {pg_plain:.3f} CPU s per 1000 rows",
            )
        )
        idle = _idle(tmp, site, pg)
        rows.append(
            row("cluster", "collector start-up CPU", idle[0], "s", None, "taken off each drain's collectors")
        )
        for name, cores in idle[1].items():
            note = f"over {IDLE_S:.0f} s doing nothing, taken off each drain"
            rows.append(
                row(
                    "cluster",
                    f"idle {name} (one)" if name == "collectors" else f"idle {name}",
                    cores,
                    "cores",
                    None,
                    note,
                )
            )
        for shape, live in shapes:
            drains = {n: _drain(tmp, site, pg, payloads, n, live, idle) for n in counts}
            rows += _rows(shape, where, drains, plain)
        if quick:
            return rows
        why = cpucap.unavailable()
        for shape, live in shapes:
            capped = f"{shape}, each collector capped at {CAPS[shape]:g} core"
            if why is not None:
                rows.append(row(f"cluster {capped}", "skipped", 0, "-", None, why))
                continue
            drains = {n: _drain(tmp, site, pg, payloads, n, live, idle, CAPS[shape]) for n in counts}
            rows += _rows(capped, where, drains, plain)
    return rows


if __name__ == "__main__":
    main_for(run)
