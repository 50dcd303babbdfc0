"""The event queue on real SQLite files: pending ranges, delivery and unheard, release, replay,
the clock restamp, retention."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from device.contract import iso_utc
from device.store import DB_NAME, Outbox
from tests.support.store import event, stamp


def test_pending_reads_ranges_of_undelivered_events(tmp_path: Path) -> None:
    box = Outbox.open(tmp_path)
    for i in range(6):
        box.append_unless_recent(f"k{i}", stamp(), 0, event)
    box.mark_delivered([2])
    assert [p.seq for p in box.pending(10)] == [1, 3, 4, 5, 6]
    assert [p.seq for p in box.pending(2, after=3)] == [4, 5]
    assert [p.seq for p in box.pending(10, upto=3)] == [1, 3]


def test_replay_rows_reads_delivered_and_undelivered_events_with_their_bodies(tmp_path: Path) -> None:
    box = Outbox.open(tmp_path)
    for i in range(6):
        box.append_unless_recent(f"k{i}", stamp(), 0, event)
    box.mark_delivered([1, 2, 3], at=0)
    box.purge(stamp(wall=10_000), delivered_grace_s=1, max_age_s=1e9, window_s=0)  # 1-3 are gone
    box.mark_delivered([5])
    rows = box.replay_rows(10, after=0, upto=5)
    assert [r.seq for r in rows] == [4, 5]
    assert [r.seq for r in box.replay_rows(1, after=4, upto=6)] == [5]
    assert json.loads(rows[0].body) == event(4)


def test_unheard_events_outlive_the_grace_until_the_collector_releases_them(tmp_path: Path) -> None:
    box = Outbox.open(tmp_path)
    for i in range(4):
        box.append_unless_recent(f"k{i}", stamp(), 0, event)
    box.mark_delivered([1, 2, 3, 4], at=0, unheard=[2, 3])
    assert box.backlog().unheard == 2 and box.backlog().count == 0
    box.purge(stamp(wall=10_000), delivered_grace_s=1, max_age_s=1e9, window_s=0)
    assert [e["seq"] for e in box.history()] == [2, 3]
    # A second PUBACK (a replay) keeps the first delivery time and the unheard mark.
    box.mark_delivered([2], at=9_000)
    box.purge(stamp(wall=10_000), delivered_grace_s=1, max_age_s=1e9, window_s=0)
    assert [e["seq"] for e in box.history()] == [2, 3]
    assert box.release(2) == 1
    assert box.backlog().unheard == 1
    box.purge(stamp(wall=10_000), delivered_grace_s=1, max_age_s=1e9, window_s=0)
    assert [e["seq"] for e in box.history()] == [3]


def test_release_confirms_undelivered_events_too(tmp_path: Path) -> None:
    box = Outbox.open(tmp_path)
    for i in range(3):
        box.append_unless_recent(f"k{i}", stamp(), 0, event)
    # The collector has 1 and 2 though their PUBACKs never came back.
    assert box.release(2, at=0) == 0
    assert [p.seq for p in box.pending(10)] == [3]
    box.purge(stamp(wall=10_000), delivered_grace_s=1, max_age_s=1e9, window_s=0)
    assert [e["seq"] for e in box.history()] == [3]


def test_unheard_events_age_out_like_undelivered_ones(tmp_path: Path) -> None:
    box = Outbox.open(tmp_path)
    # Within a boot by the monotonic clock, as undelivered ones (a wall-clock step ages neither).
    box.append_unless_recent("old", stamp(wall=1000, mono=1000), 0, event)
    box.append_unless_recent("new", stamp(wall=5000, mono=5000), 0, event)
    box.mark_delivered([1, 2], at=5000, unheard=[1, 2])
    assert box.purge(stamp(wall=5000, mono=5000), delivered_grace_s=1e9, max_age_s=3000, window_s=0) == 1
    assert [e["seq"] for e in box.history()] == [2]
    assert box.backlog().unheard == 1 and box.counters()["dropped"] == 1


def test_clock_correction_restamps_unsynced_events_of_this_boot(tmp_path: Path) -> None:
    box = Outbox.open(tmp_path)
    box.append_unless_recent("a", stamp(wall=0.0, mono=50, synced=False), 0, event)
    box.append_unless_recent("b", stamp(wall=0.0, mono=50, boot="other", synced=False), 0, event)
    fixed = box.correct_unsynced("b1", wall_now=1_700_000_100.0, mono_now=150.0)
    assert fixed == 1
    bodies = {e["event_id"]: e for e in box.history()}
    assert (
        bodies["id-1"]["scanned_at"] == iso_utc(1_700_000_000) and bodies["id-1"]["clock_corrected"] is True
    )
    assert bodies["id-2"]["clock"] == "synced"  # the builder's value: untouched, another boot


def test_retention_drops_old_undelivered_and_counts_them(tmp_path: Path) -> None:
    box = Outbox.open(tmp_path)
    # Both clocks run on together, as they do when nothing steps the wall clock.
    box.append_unless_recent("old", stamp(wall=1000, mono=1000), 0, event)
    box.append_unless_recent("new", stamp(wall=5000, mono=5000), 0, event)
    assert box.purge(stamp(wall=5000, mono=5000), delivered_grace_s=3600, max_age_s=3000, window_s=60) == 1
    assert [p.seq for p in box.pending(10)] == [2]
    assert box.counters()["dropped"] == 1


def test_retention_never_ages_events_by_an_untrue_clock(tmp_path: Path) -> None:
    box = Outbox.open(tmp_path)
    # Stamped in 1970 by a clock-less Pi in an earlier boot, then the clock synchronised: no age known.
    box.append_unless_recent("then", stamp(wall=100, boot="b0", synced=False), 0, event)
    assert box.purge(stamp(wall=1_800_000_000), delivered_grace_s=3600, max_age_s=86400, window_s=60) == 0
    # While the clock itself is not synchronised, its wall time ages nothing.
    box.append_unless_recent("old", stamp(wall=1000), 0, event)
    assert box.purge(stamp(wall=1e9, synced=False), delivered_grace_s=3600, max_age_s=10, window_s=60) == 0
    assert [p.seq for p in box.pending(10)] == [1, 2]


def test_a_synchronised_clock_stepping_forward_drops_nothing_of_this_boot(tmp_path: Path) -> None:
    """Issue 12 item 7: 50 check-ins minutes old were dropped when a synced clock stepped 22 days."""
    box = Outbox.open(tmp_path)
    for i in range(50):
        box.append_unless_recent(f"k{i}", stamp(wall=1_700_000_000 + i, mono=100 + i), 0, event)
    stepped = stamp(wall=1_700_000_000 + 22 * 86400, mono=400)
    assert box.purge(stepped, delivered_grace_s=3600, max_age_s=21 * 86400, window_s=60) == 0
    assert len(box.pending(100)) == 50
    # 21 days by the monotonic clock are 21 days, whatever the wall clock says.
    aged = stamp(wall=1_700_000_000 + 22 * 86400, mono=100 + 21 * 86400 + 25)
    assert box.purge(aged, delivered_grace_s=3600, max_age_s=21 * 86400, window_s=60) == 25
    # An earlier boot left only its wall time: that ages by the synchronised clock, as before.
    box.append_unless_recent("before", stamp(wall=1_600_000_000, mono=5, boot="b0"), 0, event)
    assert box.purge(aged, delivered_grace_s=3600, max_age_s=21 * 86400, window_s=60) == 1


def test_purged_events_leave_no_bytes_in_the_store_file(tmp_path: Path) -> None:
    """Issue 12 item 18: "delivered events leave the disk" relied on secure_delete, never set. Debian's
    SQLite (Raspberry Pi OS's too) is built with SQLITE_SECURE_DELETE, so it held there; other builds
    default to off, so the store sets it. The control below shows what off would leave on the card."""
    box = Outbox.open(tmp_path)
    for i in range(50):
        box.append_unless_recent(f"k{i}", stamp(), 0, lambda s: {**event(s), "mark": f"BODY-{s % 2}-{s:04d}"})
    # Every other event delivered and purged: the pages stay in use around the deleted rows.
    box.mark_delivered(range(1, 51, 2), at=0)
    box.purge(stamp(), delivered_grace_s=3600, max_age_s=1e9, window_s=60)
    box.close()  # the last connection checkpoints the WAL into the file and removes it
    assert not (tmp_path / f"{DB_NAME}-wal").exists()
    data = (tmp_path / DB_NAME).read_bytes()
    assert data.count(b"BODY-0-") == 25
    assert b"BODY-1-" not in data

    control = sqlite3.connect(tmp_path / "control.sqlite", isolation_level=None)
    control.execute("PRAGMA secure_delete=OFF")
    control.execute("CREATE TABLE t (n INTEGER PRIMARY KEY, body TEXT)")
    control.executemany("INSERT INTO t VALUES (?, ?)", [(n, f"BODY-{n % 2}-{n:04d}") for n in range(50)])
    control.execute("DELETE FROM t WHERE n % 2 = 1")
    control.close()
    assert b"BODY-1-" in (tmp_path / "control.sqlite").read_bytes()
