"""The sequence on real SQLite files: contiguous seqs that survive reopening and deletion, one
incarnation per store file."""

from __future__ import annotations

from pathlib import Path

from device.store import DB_NAME, Outbox, StoreReader
from tests.support.store import event, stamp


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


def test_a_fresh_store_file_is_a_new_incarnation_kept_across_reopen(tmp_path: Path) -> None:
    box = Outbox.open(tmp_path)
    first = box.incarnation
    assert len(first) == 36
    box.close()
    assert Outbox.open(tmp_path).incarnation == first
    assert StoreReader(tmp_path / DB_NAME).incarnation == first
    other = tmp_path / "other"
    assert Outbox.open(other).incarnation not in ("", first)
