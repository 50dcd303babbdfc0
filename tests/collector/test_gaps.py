"""The gap bookkeeping: settle, request with backoff, repaired, known loss, committed marks."""

from __future__ import annotations

from collector.gaps import MAX_REPLAY_SPAN, Policy, Tracker

POLICY = Policy(settle_s=5, retry_min_s=10, retry_max_s=40, committed_interval_s=1)


def test_a_gap_is_asked_for_after_the_settle_time_then_with_backoff_until_repaired() -> None:
    tracker = Tracker(POLICY)
    tracker.committed("d1", "inc", "loc", [1, 2, 3, 7, 8])
    first = tracker.sweep(now=0, wall=1000)
    assert [(r["from_seq"], r["to_seq"], r["state"], r["missing"]) for r in first.gap_rows] == [
        (4, 6, "open", 3)
    ]
    assert first.requests == []
    assert [(m.through_seq, m.incarnation) for m in first.marks] == [(3, "inc")]
    tracker.marked(first.marks[0], 0)

    assert tracker.sweep(now=4.9, wall=1004.9).requests == []
    asks = [tracker.sweep(now=t, wall=1000 + t).requests for t in (5, 14, 15, 34, 35, 74, 75, 115)]
    assert [[(r.first, r.last) for r in a] for a in asks] == [
        [(4, 6)],
        [],
        [(4, 6)],
        [],
        [(4, 6)],
        [],
        [(4, 6)],
        [(4, 6)],
    ]

    tracker.committed("d1", "inc", "loc", [5])
    assert [(r.first, r.last) for r in tracker.sweep(now=200, wall=1200).requests] == [(4, 4), (6, 6)]
    tracker.committed("d1", "inc", "loc", [4, 6])
    done = tracker.sweep(now=201, wall=1201)
    assert [(r["from_seq"], r["to_seq"], r["state"], r["missing"]) for r in done.gap_rows] == [
        (4, 6, "repaired", 0)
    ]
    assert [m.through_seq for m in done.marks] == [8]
    assert tracker.open_gaps() == 0


def test_what_the_device_says_is_gone_becomes_a_known_loss_and_closes_the_gap() -> None:
    tracker = Tracker(POLICY)
    tracker.committed("d1", "", "loc", [1, 5])
    tracker.sweep(now=0, wall=0)
    # The answer may name more than is missing: only what is not here is lost.
    assert tracker.gone("d1", "", "loc", [(1, 3)]) == [(2, 3)]
    closed = tracker.sweep(now=1, wall=1)
    assert [(r["from_seq"], r["state"]) for r in closed.gap_rows] == [(2, "open")]
    assert [(r.first, r.last) for r in tracker.sweep(now=10, wall=10).requests] == [(4, 4)]
    assert tracker.gone("d1", "", "loc", [(4, 4)]) == [(4, 4)]
    end = tracker.sweep(now=11, wall=11)
    assert [(r["from_seq"], r["to_seq"], r["state"]) for r in end.gap_rows] == [(2, 4, "lost")]
    assert [m.through_seq for m in end.marks] == [5]


def test_a_status_last_seq_above_the_highest_event_is_a_gap() -> None:
    tracker = Tracker(POLICY)
    tracker.committed("d1", "a", "loc", [1, 2])
    tracker.reported("d1", "a", "loc", 4)
    rows = tracker.sweep(now=0, wall=0).gap_rows
    assert [(r["from_seq"], r["to_seq"]) for r in rows] == [(3, 4)]


def test_requests_are_cut_to_what_a_device_replays_at_once() -> None:
    tracker = Tracker(Policy(settle_s=0))
    tracker.committed("d1", "a", "loc", [1, 25_002])
    spans = [(r.first, r.last) for r in tracker.sweep(now=0, wall=0).requests]
    assert spans == [(2, 10_001), (10_002, 20_001), (20_002, 25_001)]
    assert all(b - a + 1 <= MAX_REPLAY_SPAN for a, b in spans)


def test_seqs_another_instance_stored_close_the_gap_without_a_request() -> None:
    tracker = Tracker(Policy(settle_s=0))
    tracker.committed("d1", "a", "loc", [1, 4])
    sweep = tracker.sweep(now=0, wall=0, lookup=lambda d, i, a, b: [2, 3])
    assert sweep.requests == []
    assert [r["state"] for r in sweep.gap_rows] == ["open", "repaired"]


def test_only_the_current_incarnation_gets_the_committed_mark() -> None:
    tracker = Tracker(POLICY)
    tracker.committed("d1", "old", "loc", [1, 2])
    tracker.reported("d1", "new", "loc", 1)  # the status names the device's incarnation
    tracker.committed("d1", "new", "loc", [1])
    tracker.committed("d1", "old", "loc", [3])  # a replayed event of the old one changes nothing
    assert [(m.incarnation, m.through_seq) for m in tracker.sweep(now=0, wall=0).marks] == [("new", 1)]
