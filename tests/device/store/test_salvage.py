"""A corrupt store on real SQLite files: moved aside, what its pages still give carried into a fresh
one, no seq reused."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from device.store import DB_NAME, Outbox
from tests.support.store import event, stamp


def test_corrupt_database_is_moved_aside(tmp_path: Path) -> None:
    (tmp_path / DB_NAME).write_bytes(b"this is not a database" * 100)
    box = Outbox.open(tmp_path)
    assert box.append_unless_recent("a", stamp(), 0, event) is not None
    kept = list(tmp_path.glob(f"{DB_NAME}.corrupt-*"))
    assert kept and kept[0].read_bytes().startswith(b"this is not")


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
