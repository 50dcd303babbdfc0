"""Dead letters on real SQLite files: kept aside out of the queue, and put back with their age."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from device.store import Outbox
from tests.support.store import event, stamp


def test_dead_letter_leaves_the_queue_and_is_kept(tmp_path: Path) -> None:
    box = Outbox.open(tmp_path)
    box.append_unless_recent("a", stamp(), 0, event)
    box.dead_letter(1, "broker refused: Not authorized (0x87)")
    assert box.pending(10) == []
    assert box.backlog().dead_letters == 1
    assert box.dead_letters()[0]["reason"].endswith("(0x87)")


def test_a_dead_letter_is_not_unheard(tmp_path: Path) -> None:
    box = Outbox.open(tmp_path)
    box.append_unless_recent("a", stamp(), 0, event)
    box.mark_delivered([1], unheard=[1])
    box.dead_letter(1, "refused")
    assert box.backlog().unheard == 0


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
