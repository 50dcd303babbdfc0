"""The outbox on real SQLite files: sequence, duplicate window, delivery, retention, corruption."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from device.clock import Stamp
from device.contract import iso_utc
from device.errors import StorageFull
from device.outbox import DB_NAME, Outbox, StoreReader


def stamp(wall: float = 1_700_000_000.0, mono: float = 100.0, boot: str = "b1", synced: bool = True) -> Stamp:
    return Stamp(wall=wall, mono=mono, boot_id=boot, synced=synced)


def event(seq: int) -> dict[str, Any]:
    return {"event_id": f"id-{seq}", "seq": seq, "scanned_at": "x", "clock": "synced"}


def test_seq_is_contiguous_and_survives_reopen_and_deletion(tmp_path: Path) -> None:
    box = Outbox.open(tmp_path)
    seqs = [box.append_unless_recent(f"k{i}", stamp(), 0, event)[0] for i in range(5)]  # type: ignore[index]
    assert seqs == [1, 2, 3, 4, 5]
    box.mark_delivered(seqs, at=0)
    assert box.purge(stamp(wall=10_000), delivered_grace_s=1, max_age_s=1e9, window_s=0) == 0
    assert box.pending(10) == []
    box.close()
    again = Outbox.open(tmp_path)
    assert again.append_unless_recent("k9", stamp(), 0, event) is not None
    assert again.max_seq() == 6


def test_duplicate_window_uses_monotonic_time_within_a_boot(tmp_path: Path) -> None:
    box = Outbox.open(tmp_path)
    assert box.append_unless_recent("who", stamp(mono=100), 60, event) is not None
    # The wall clock jumped (NTP sync) but only 10 s passed: still a duplicate.
    assert box.append_unless_recent("who", stamp(wall=1_800_000_000, mono=110), 60, event) is None
    assert box.append_unless_recent("who", stamp(mono=161), 60, event) is not None
    # After a reboot only the wall clock can tell.
    assert box.append_unless_recent("who", stamp(wall=1_700_000_030, mono=5, boot="b2"), 60, event) is None
    assert box.max_seq() == 2


def test_pending_reads_ranges_of_undelivered_events(tmp_path: Path) -> None:
    box = Outbox.open(tmp_path)
    for i in range(6):
        box.append_unless_recent(f"k{i}", stamp(), 0, event)
    box.mark_delivered([2])
    assert [p.seq for p in box.pending(10)] == [1, 3, 4, 5, 6]
    assert [p.seq for p in box.pending(2, after=3)] == [4, 5]
    assert [p.seq for p in box.pending(10, upto=3)] == [1, 3]


def test_dead_letter_leaves_the_queue_and_is_kept(tmp_path: Path) -> None:
    box = Outbox.open(tmp_path)
    box.append_unless_recent("a", stamp(), 0, event)
    box.dead_letter(1, "broker refused: Not authorized (0x87)")
    assert box.pending(10) == []
    assert box.backlog().dead_letters == 1
    assert box.dead_letters()[0]["reason"].endswith("(0x87)")


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


def test_duplicate_window_entries_of_this_boot_expire_on_monotonic_time(tmp_path: Path) -> None:
    box = Outbox.open(tmp_path)
    box.append_unless_recent("who", stamp(wall=1000, mono=100), 60, event)
    # The wall clock leapt a day ahead, 10 s later: the entry must survive the purge.
    box.purge(stamp(wall=1000 + 86400, mono=110), delivered_grace_s=3600, max_age_s=1e9, window_s=60)
    assert box.append_unless_recent("who", stamp(wall=1000 + 86400, mono=111), 60, event) is None


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


def test_corrupt_database_is_moved_aside(tmp_path: Path) -> None:
    (tmp_path / DB_NAME).write_bytes(b"this is not a database" * 100)
    box = Outbox.open(tmp_path)
    assert box.append_unless_recent("a", stamp(), 0, event) is not None
    kept = list(tmp_path.glob(f"{DB_NAME}.corrupt-*"))
    assert kept and kept[0].read_bytes().startswith(b"this is not")


def test_full_disk_is_a_storage_full_error(tmp_path: Path) -> None:
    box = Outbox.open(tmp_path)
    # A page limit makes SQLite's "database or disk is full" appear exactly as on a full SD card.
    (pages,) = box._db.execute("PRAGMA page_count").fetchone()
    box._db.execute(f"PRAGMA max_page_count={pages}")
    big = {"event_id": "big", "pad": "x" * 100_000}
    with pytest.raises(StorageFull):
        box.append_unless_recent("a", stamp(), 0, lambda seq: big)
    assert box.max_seq() == 0, "a failed append must not consume a seq"


def test_committed_events_survive_kill_9(tmp_path: Path) -> None:
    """A child appends and reports each commit, then is SIGKILLed: every reported event is on disk."""
    code = textwrap.dedent(
        f"""
        import sys
        from pathlib import Path
        from device.clock import Stamp
        from device.outbox import Outbox
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


def test_seq_is_not_reused_after_a_corrupt_store_is_moved_aside(tmp_path: Path) -> None:
    box = Outbox.open(tmp_path)
    handed_out = [box.append_unless_recent(f"k{i}", stamp(), 0, event)[0] for i in range(5)]  # type: ignore[index]
    box.close()
    for suffix in ("-wal", "-shm"):
        (tmp_path / f"{DB_NAME}{suffix}").unlink(missing_ok=True)
    (tmp_path / DB_NAME).write_bytes(b"\x00" * 8192)
    fresh = Outbox.open(tmp_path)
    assert fresh.moved_aside is not None
    stored = fresh.append_unless_recent("after", stamp(), 0, event)
    assert stored is not None and stored[0] > max(handed_out)


def damage_page(store: Path, table: str, which: str = "leaf") -> int:
    """Overwrites one page of `table` as a failing SD card does; returns the page number."""
    db = sqlite3.connect(store)
    pages = [
        row[0] for row in db.execute("SELECT pageno FROM dbstat WHERE name=? AND pagetype=?", (table, which))
    ]
    (page_size,) = db.execute("PRAGMA page_size").fetchone()
    db.close()
    page = pages[len(pages) // 2]
    with store.open("r+b") as fh:
        fh.seek((page - 1) * page_size)
        fh.write(b"\xa5" * page_size)
    return int(page)


def test_one_damaged_page_costs_only_its_rows(tmp_path: Path) -> None:
    """Issue 12 item 4: one bad page sent the whole store aside, its 300 undelivered events with it."""
    box = Outbox.open(tmp_path)
    bodies = {}
    for i in range(400):
        seq, body = box.append_unless_recent(  # type: ignore[misc]
            f"k{i}", stamp(), 0, lambda s: {**event(s), "pad": "x" * 300}
        )
        bodies[seq] = body
    box.mark_delivered(range(1, 101), at=0)  # 100 delivered, 300 not
    box.dead_letter(400, "refused (0x99)")
    box.add_counters({"accepted": 400})
    reserved, incarnation = box.seqs.upto, box.incarnation
    box.close()
    damage_page(tmp_path / DB_NAME, "events")

    fresh = Outbox.open(tmp_path)
    assert fresh.moved_aside is not None and fresh.moved_aside.exists()
    pending = fresh.pending(1000)
    salvaged = {p.seq for p in pending}
    lost = set(range(101, 400)) - salvaged
    # A 4 KiB page holds about ten of these rows: those are all that may be lost.
    assert 0 < len(lost) <= 12 and fresh.salvaged == len(salvaged), sorted(lost)
    assert max(lost) - min(lost) == len(lost) - 1, "only one contiguous run of rows shares a page"
    assert all(json.loads(p.body) == bodies[p.seq] for p in pending)
    assert [d["seq"] for d in fresh.dead_letters()] == [400]
    assert fresh.counters()["accepted"] == 400
    fresh.check_integrity()
    stored = fresh.append_unless_recent("after", stamp(), 0, event)
    assert stored is not None and stored[0] == reserved + 1
    # The same incarnation continues above the reserve: no seq of it is ever handed out twice.
    assert fresh.incarnation == incarnation


def test_a_salvage_keeps_the_unheard_events_for_sending_again(tmp_path: Path) -> None:
    """An event acknowledged 0x10 reached nobody: a salvage must not treat it as delivered and drop it."""
    box = Outbox.open(tmp_path)
    for i in range(400):
        box.append_unless_recent(f"k{i}", stamp(), 0, lambda s: {**event(s), "pad": "x" * 300})
    box.mark_delivered(range(1, 201), at=0, unheard=range(1, 21))
    box.close()
    damage_page(tmp_path / DB_NAME, "events")

    fresh = Outbox.open(tmp_path)
    assert fresh.moved_aside is not None
    salvaged = {p.seq for p in fresh.pending(1000)}
    # Only the rows of the one damaged page (in the undelivered half) may be missing.
    assert set(range(1, 21)) <= salvaged and not salvaged & set(range(21, 201))


def test_a_damaged_index_hides_no_undelivered_event(tmp_path: Path) -> None:
    box = Outbox.open(tmp_path)
    box._db.execute("PRAGMA synchronous=OFF")  # setting up: no fsync per event needed here
    for i in range(2000):
        box.append_unless_recent(f"k{i}", stamp(), 0, event)
    box.close()
    damage_page(tmp_path / DB_NAME, "events_pending")
    fresh = Outbox.open(tmp_path)
    assert fresh.moved_aside is not None
    assert [p.seq for p in fresh.pending(5000)] == list(range(1, 2001))


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


def test_a_fresh_store_file_is_a_new_incarnation_kept_across_reopen(tmp_path: Path) -> None:
    box = Outbox.open(tmp_path)
    first = box.incarnation
    assert len(first) == 36
    box.close()
    assert Outbox.open(tmp_path).incarnation == first
    assert StoreReader(tmp_path / DB_NAME).incarnation == first
    other = tmp_path / "other"
    assert Outbox.open(other).incarnation not in ("", first)


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


def test_a_dead_letter_is_not_unheard(tmp_path: Path) -> None:
    box = Outbox.open(tmp_path)
    box.append_unless_recent("a", stamp(), 0, event)
    box.mark_delivered([1], unheard=[1])
    box.dead_letter(1, "refused")
    assert box.backlog().unheard == 0


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


def test_dead_letters_go_back_to_the_queue_with_their_age(tmp_path: Path) -> None:
    box = Outbox.open(tmp_path)

    def scanned(seq: int) -> dict[str, Any]:
        return {**event(seq), "scanned_at": "2023-11-14T22:13:20.000Z", "boot_id": "b1", "monotonic_s": 7.5}

    box.append_unless_recent("a", stamp(), 0, scanned)
    box.append_unless_recent("b", stamp(), 0, scanned)
    box.dead_letter(1, "broker refused: Payload format invalid (0x99)")
    assert box.retry_dead_letters() == [1]
    assert box.dead_letters() == [] and [p.seq for p in box.pending(10)] == [1, 2]
    assert box.retry_dead_letters() == []
    # Aged from the scan (monotonic 7.5 in this boot), not from the retry: past max_age it is dropped
    # like any undelivered event, before the event scanned later (monotonic 100).
    later = stamp(wall=1_700_000_000 + 100, mono=200.0)
    assert box.purge(later, delivered_grace_s=1, max_age_s=250, window_s=0) == 0
    assert box.purge(later, delivered_grace_s=1, max_age_s=150, window_s=0) == 1
    assert [p.seq for p in box.pending(10)] == [2]
    assert box.purge(later, delivered_grace_s=1, max_age_s=50, window_s=0) == 1
