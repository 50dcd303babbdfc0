"""The daemon keeps answering whatever one scan, one source or one housekeeping turn throws at it,
and stops feeding systemd's watchdog once the scan loop or the housekeeping is gone (issue 12, item 6).

Faults are real: the console's stdout pipe closed by its reader, a table of the real store dropped
under the running daemon, a scan source whose driver raises an error nobody expected.
"""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

from device.clock import FakeClock
from device.notify import Notifier
from device.scan import Scan, SourceKind
from device.sources import SourceState
from device.store import DB_NAME, StoreReader
from tests.support.daemon import ROOT, DaemonProcess, write_config
from tests.support.harness import TRUE_NOW, Harness, run
from tests.support.mosquitto import Mosquitto, free_port
from tests.support.notify import NotifySocket
from tests.support.payloads import other_codes
from tests.support.slowdown import scaled
from tests.support.subscriber import Subscriber
from tests.support.wait import until


def test_a_closed_console_pipe_costs_no_later_scan(tmp_path: Path) -> None:
    config = write_config(tmp_path / "device.toml", port=free_port(), storage=tmp_path / "state")
    stderr = (tmp_path / "stderr.log").open("w+b")
    proc = subprocess.Popen(
        [sys.executable, "-m", "device.cli", "run", "--config", str(config)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=stderr,
        cwd=ROOT,
    )
    assert proc.stdin is not None and proc.stdout is not None
    # The tool that read the answers went away: every console write now fails with EPIPE.
    proc.stdout.close()
    codes = other_codes(7)
    try:
        deadline = time.monotonic() + scaled(20)
        while b" ready" not in (tmp_path / "stderr.log").read_bytes():
            assert time.monotonic() < deadline and proc.poll() is None, (tmp_path / "stderr.log").read_text()
            time.sleep(0.05)
        proc.stdin.write("".join(f"{c}\n" for c in codes).encode())
        proc.stdin.flush()
        while b"accepted seq=7 " not in (tmp_path / "stderr.log").read_bytes():
            assert time.monotonic() < deadline, (tmp_path / "stderr.log").read_text()
            time.sleep(0.05)
        assert proc.poll() is None, "the daemon died of a closed console"
        proc.terminate()
        assert proc.wait(scaled(10)) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
    log = (tmp_path / "stderr.log").read_text()
    assert log.count("could not be answered") == len(codes), log
    stored = StoreReader(tmp_path / "state" / DB_NAME).history()
    assert len(stored) == len(codes)


def test_the_watchdog_is_fed_only_while_the_scan_loop_lives(tmp_path: Path) -> None:
    notify = NotifySocket()
    notifier = Notifier(notify.address, watchdog_usec=200_000)
    h = Harness(tmp_path, free_port(), FakeClock(TRUE_NOW), notifier=notifier)

    async def scenario() -> None:
        await h.start()
        assert (await h.answer("VISITOR-WATCHDOG"))["feedback"] == "accepted"
        await until(lambda: len(notify.times_of("WATCHDOG=1")) >= 3, "the watchdog was never fed")
        # The scan loop ends as only a bug can make it (every error of a scan is caught inside it).
        (consume,) = [t for t in asyncio.all_tasks() if t.get_name() == "consume"]
        consume.cancel()
        await asyncio.sleep(0.25)
        fed = len(notify.times_of("WATCHDOG=1"))
        await asyncio.sleep(1.0)  # ten intervals
        assert len(notify.times_of("WATCHDOG=1")) == fed, "the watchdog was fed with the scan loop gone"
        assert await h.stop() == 0

    try:
        run(scenario)
    finally:
        notify.close()


class FailingSource:
    """A scan source whose driver raises an error of a class no source expects, on its first run."""

    kind: SourceKind = "camera"

    def __init__(self) -> None:
        self.runs = 0

    @property
    def state(self) -> dict[str, SourceState]:
        return {"camera0": "connected"}

    async def scans(self) -> AsyncIterator[Scan]:
        self.runs += 1
        if self.runs == 1:
            raise MemoryError("cannot allocate the frame buffer")
        yield Scan(text="VISITOR-FROM-CAMERA", source="camera", reader="camera0")
        await asyncio.Event().wait()

    def close(self) -> None:
        return None


def test_a_source_failing_with_any_error_is_restarted(tmp_path: Path) -> None:
    h = Harness(tmp_path, free_port(), FakeClock(TRUE_NOW))
    source = FailingSource()
    h.parts.sources.append(source)

    async def scenario() -> None:
        await h.start()
        await until(h.out.getvalue, "the restarted source was never answered")
        assert '"accepted"' in h.out.getvalue()
        assert source.runs == 2
        assert await h.stop() == 0

    run(scenario)


def test_housekeeping_survives_raw_sqlite_errors_from_the_store(tmp_path: Path, broker: Mosquitto) -> None:
    """Issue 12 item 18: backlog() and counters() raise sqlite3 errors, not ours; housekeeping lives on."""
    sub = Subscriber(broker.port)
    state = tmp_path / "state"
    config = write_config(
        tmp_path / "device.toml", port=broker.port, storage=state, broker={"heartbeat_s": 0.5}
    )
    daemon = DaemonProcess(config).start()
    try:
        daemon.wait_log("connected to broker")
        mark = daemon.mark()
        db = sqlite3.connect(state / DB_NAME, timeout=10)
        db.execute("ALTER TABLE counters RENAME TO counters_away")
        daemon.wait_log("maintenance: storage error: no such table: counters", after=mark)
        db.execute("ALTER TABLE counters_away RENAME TO counters")
        db.close()
        answer = daemon.scan("VISITOR-AFTER-THE-FAULT")
        assert answer["feedback"] == "accepted"
        deadline = time.monotonic() + 10
        while not any(s["counters"]["accepted"] == 1 for s in sub.statuses()):
            assert time.monotonic() < deadline, "the status was never refreshed after the fault"
            time.sleep(0.05)
        assert daemon.terminate() == 0
    finally:
        daemon.stop()
        sub.close()
