"""The in-flight window without a socket: a real store, invented message ids."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from device.clock import Stamp
from device.contract import ReplayRequest
from device.store import Outbox
from device.window import Replay, Window


def event(seq: int) -> dict[str, Any]:
    return {"event_id": f"id-{seq}", "seq": seq}


@pytest.fixture
def box(tmp_path: Path) -> Outbox:
    return Outbox.open(tmp_path)


def add(box: Outbox, count: int) -> list[int]:
    stamp = Stamp(wall=1_700_000_000.0, mono=1.0, boot_id="b", synced=True)
    return [box.append_unless_recent(f"k{box.max_seq() + 1}", stamp, 0, event)[0] for _ in range(count)]  # type: ignore[index]


def send(window: Window, box: Outbox, room: int, first_mid: int = 1, now: float = 0.0) -> list[int]:
    rows, _ = window.next_rows(box, room)
    for mid, item in enumerate(rows, start=first_mid):
        window.sent(mid, item.seq, now)
    return [item.seq for item in rows]


def test_live_events_go_before_the_backlog_and_nothing_is_handed_out_twice(box: Outbox) -> None:
    add(box, 5)
    window = Window(4)
    window.connected(box.max_seq(), now=0.0)
    assert send(window, box, 2) == [1, 2]
    add(box, 2)  # accepted after the connection began: live
    assert send(window, box, 2, first_mid=3) == [6, 7]
    assert window.room == 0 and window.holds(6)
    # Rows in flight are never taken again, however the cursors move.
    window.rewind()
    assert send(window, box, 10, first_mid=5) == [3, 4, 5]


def test_an_ack_frees_its_slot_and_a_recorded_row_is_not_sent_again(box: Outbox) -> None:
    add(box, 3)
    window = Window(3)
    window.connected(0, now=0.0)
    assert send(window, box, 3) == [1, 2, 3]
    flight = window.acked(2)
    assert flight is not None and flight.seq == 2 and window.acked(2) is None
    window.recording(2)  # acknowledged, the store not yet told
    window.rewind()
    assert window.next_rows(box, 3)[0] == []
    box.mark_delivered([2])
    window.recorded([2])
    assert not window.holds(2) and window.room == 1


def test_a_refused_row_goes_out_again_after_a_rewind(box: Outbox) -> None:
    add(box, 2)
    window = Window(2)
    window.connected(0, now=0.0)
    send(window, box, 2)
    window.acked(1)  # refused: still pending in the store
    assert window.next_rows(box, 1)[0] == []  # the cursor is past it...
    window.rewind()
    assert [r.seq for r in window.next_rows(box, 1)[0]] == [1]  # ...until a rewind


def test_the_end_of_the_backlog_rewinds_by_itself(box: Outbox) -> None:
    add(box, 2)
    window = Window(4)
    window.connected(box.max_seq(), now=0.0)
    send(window, box, 4)
    window.acked(1)
    window.acked(2)
    assert window.next_rows(box, 4)[0] == []  # nothing found: look from the start next time
    assert [r.seq for r in window.next_rows(box, 4)[0]] == [1, 2]


def test_a_message_id_names_one_message_only(box: Outbox) -> None:
    window = Window(2)
    window.sent(7, 1, 0.0)
    with pytest.raises(ValueError):
        window.sent(7, 2, 0.0)
    window.sent(8, None, 0.0)  # a status
    assert window.events == 1 and len(window) == 2


def test_stalled_messages_and_a_new_connection_restarts_their_clock(box: Outbox) -> None:
    add(box, 2)
    window = Window(2)
    window.connected(0, now=0.0)
    send(window, box, 1, now=0.0)
    send(window, box, 1, first_mid=2, now=50.0)
    assert window.stalled(now=61.0, limit=60.0) == 1
    window.connected(box.max_seq(), now=61.0)  # paho sends them again
    assert window.stalled(now=100.0, limit=60.0) == 0


def test_replays_come_after_live_events_and_before_the_backlog(box: Outbox) -> None:
    add(box, 6)
    box.mark_delivered([1, 2, 3])
    window = Window(10)
    window.connected(5, now=0.0)  # 6 is live, 4 and 5 are backlog
    window.replays.append(Replay(ReplayRequest("r", 2, 3), cursor=1))
    rows, done = window.next_rows(box, 10)
    assert [r.seq for r in rows] == [6, 2, 3, 4, 5]
    assert [job.request.request_id for job in done] == ["r"] and done[0].sent == [2, 3]


def test_a_long_replay_is_handed_out_over_several_refills(box: Outbox) -> None:
    add(box, 5)
    box.mark_delivered([1, 2, 3, 4, 5])
    window = Window(2)
    window.connected(5, now=0.0)
    job = Replay(ReplayRequest("r", 1, 5), cursor=0)
    window.replays.append(job)
    handed: list[int] = []
    for mid in range(1, 10, 2):
        rows, done = window.next_rows(box, 2)
        handed += [r.seq for r in rows]
        for offset, item in enumerate(rows):
            window.sent(mid + offset, item.seq, 0.0)
            window.acked(mid + offset)
        if done:
            break
    assert handed == [1, 2, 3, 4, 5] and job.sent == [1, 2, 3, 4, 5]
    assert not window.replays


def test_a_replay_counts_a_row_in_flight_without_sending_it_twice(box: Outbox) -> None:
    add(box, 2)
    window = Window(4)
    window.connected(0, now=0.0)
    assert send(window, box, 1) == [1]
    job = Replay(ReplayRequest("r", 1, 2), cursor=0)
    window.replays.append(job)
    rows, done = window.next_rows(box, 3)
    assert [r.seq for r in rows] == [2] and done == [job] and job.sent == [1, 2]


class CountingOutbox(Outbox):
    """The real store, counting the rows each read returns (what a refill costs)."""

    read = 0

    def pending(self, *args: Any, **kwargs: Any) -> Any:
        rows = super().pending(*args, **kwargs)
        self.read += len(rows)
        return rows


def test_a_refill_reads_what_it_can_send_not_every_row_in_flight_again(tmp_path: Path) -> None:
    box = CountingOutbox.open(tmp_path)
    assert isinstance(box, CountingOutbox)
    add(box, 3000)
    window = Window(100)
    window.connected(box.max_seq(), now=0.0)
    assert send(window, box, 100) == list(range(1, 101))
    for mid in range(1, 76):  # three quarters acknowledged, their marks not yet in the store
        flight = window.acked(mid)
        assert flight is not None and flight.seq is not None
        window.recording(flight.seq)
    box.read = 0
    assert send(window, box, 75, first_mid=101) == list(range(101, 176))
    # The 25 still in flight and the 75 awaiting their marks lie behind the cursor: not read again.
    assert box.read == 75
    window.rewind()  # from the start (a refusal retried): then they must be read past
    assert send(window, box, 10, first_mid=176) == list(range(176, 186))
    box.close()
