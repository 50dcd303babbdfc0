"""The writer on real SQLite files: a committed event survives kill -9, a full disk is StorageFull
and costs no seq."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from device.errors import StorageFull
from device.store import DB_NAME, Outbox
from tests.support.store import stamp


def test_committed_events_survive_kill_9(tmp_path: Path) -> None:
    """A child appends and reports each commit, then is SIGKILLed: every reported event is on disk."""
    code = textwrap.dedent(
        f"""
        import sys
        from pathlib import Path
        from device.clock import Stamp
        from device.store import Outbox
        box = Outbox.open(Path({str(tmp_path)!r}))
        for i in range(100000):
            seq, _ = box.append_unless_recent(
                f"k{{i}}", Stamp(1.0, 1.0, "b", True), 0, lambda s: {{"event_id": f"e{{s}}"}}
            )
            print(seq, flush=True)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    reported = [int(proc.stdout.readline()) for _ in range(300)]
    proc.kill()
    proc.wait(10)
    db = sqlite3.connect(tmp_path / DB_NAME)
    stored = {row[0] for row in db.execute("SELECT seq FROM events")}
    assert set(reported) <= stored
    assert sorted(stored) == list(range(1, len(stored) + 1))


def test_full_disk_is_a_storage_full_error(tmp_path: Path) -> None:
    box = Outbox.open(tmp_path)
    # A page limit makes SQLite's "database or disk is full" appear exactly as on a full SD card.
    (pages,) = box._db.execute("PRAGMA page_count").fetchone()
    box._db.execute(f"PRAGMA max_page_count={pages}")
    big = {"event_id": "big", "pad": "x" * 100_000}
    with pytest.raises(StorageFull):
        box.append_unless_recent("a", stamp(), 0, lambda seq: big)
    assert box.max_seq() == 0, "a failed append must not consume a seq"
