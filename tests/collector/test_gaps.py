"""The gap bookkeeping: settle, look up, request with backoff, repaired, known loss, committed marks."""

from __future__ import annotations

from collections.abc import Sequence

from collector.gaps import MAX_REPLAY_SPAN, Policy, Span, Tracker

POLICY = Policy(settle_s=5, retry_min_s=10, retry_max_s=40, committed_interval_s=1)


def test_a_gap_opens_after_the_settle_time_is_asked_for_at_once_then_with_backoff_until_repaired() -> None:
    tracker = Tracker(POLICY)
    tracker.committed("d1", "inc", "loc", [1, 2, 3, 7, 8])
    first = tracker.sweep(now=0, wall=1000)
    # Seqs 4-6 may be on their way: no gap yet, nothing asked for.
    assert (first.gap_rows, first.requests) == ([], [])
    assert [(m.through_seq, m.incarnation) for m in first.marks] == [(3, "inc")]
    tracker.marked(first.marks[0], 0)

    early = tracker.sweep(now=4.9, wall=1004.9)
    assert (early.gap_rows, early.requests, tracker.open_gaps()) == ([], [], 0)
    settled = tracker.sweep(now=5, wall=1005)
    assert [
        (r["from_seq"], r["to_seq"], r["state"], r["missing"], r["requests"]) for r in settled.gap_rows
    ] == [(4, 6, "open", 3, 1)]
    assert [(r.first, r.last) for r in settled.requests] == [(4, 6)]
    asks = [tracker.sweep(now=t, wall=1000 + t).requests for t in (14, 15, 34, 35, 74, 75, 115)]
    assert [[(r.first, r.last) for r in a] for a in asks] == [
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
    tracker.committed("d1", "", "loc", [1, 6])
    tracker.sweep(now=0, wall=0)
    opened = tracker.sweep(now=5, wall=5)
    assert [(r.first, r.last) for r in opened.requests] == [(2, 5)]
    # The answer may name more than is missing: only what is not here is lost.
    assert tracker.gone("d1", "", "loc", [(1, 3)]) == [(2, 3)]
    still = tracker.sweep(now=6, wall=6)
    assert [(r["from_seq"], r["state"], r["missing"]) for r in still.gap_rows] == [(2, "open", 2)]
    assert [(r.first, r.last) for r in tracker.sweep(now=15, wall=15).requests] == [(4, 5)]
    assert tracker.gone("d1", "", "loc", [(4, 5)]) == [(4, 5)]
    end = tracker.sweep(now=16, wall=16)
    assert [(r["from_seq"], r["to_seq"], r["state"]) for r in end.gap_rows] == [(2, 5, "lost")]
    assert [m.through_seq for m in end.marks] == [6]
    assert tracker.open_gaps() == 0


def test_a_gap_that_fills_within_the_settle_time_never_opens() -> None:
    tracker = Tracker(POLICY)
    tracker.committed("d1", "a", "loc", [1, 3])
    tracker.sweep(now=0, wall=0)
    tracker.committed("d1", "a", "loc", [2])  # out of order, not lost
    assert [(s.gap_rows, s.requests) for s in (tracker.sweep(now=t, wall=t) for t in (5, 20))] == [
        ([], []),
        ([], []),
    ]


def test_a_status_last_seq_above_the_highest_event_is_a_gap() -> None:
    tracker = Tracker(POLICY)
    tracker.committed("d1", "a", "loc", [1, 2])
    tracker.reported("d1", "a", "loc", 4)
    assert tracker.sweep(now=0, wall=0).gap_rows == []
    rows = tracker.sweep(now=5, wall=5).gap_rows
    assert [(r["from_seq"], r["to_seq"]) for r in rows] == [(3, 4)]


def test_requests_are_cut_to_what_a_device_replays_at_once() -> None:
    tracker = Tracker(Policy(settle_s=0))
    tracker.committed("d1", "a", "loc", [1, 25_002])
    spans = [(r.first, r.last) for r in tracker.sweep(now=0, wall=0).requests]
    assert spans == [(2, 10_001), (10_002, 20_001), (20_002, 25_001)]
    assert all(b - a + 1 <= MAX_REPLAY_SPAN for a, b in spans)


def test_seqs_another_instance_stored_are_looked_up_once_settled_and_open_no_gap() -> None:
    tracker = Tracker(POLICY)
    stored = {("d1", "a"): {2, 3, 5}, ("d2", "a"): {2}}
    asked: list[list[Span]] = []

    def lookup(spans: Sequence[Span]) -> list[tuple[str, str, int]]:
        asked.append(list(spans))
        return [(d, i, s) for d, i, a, b in spans for s in sorted(stored[d, i]) if a <= s <= b]

    tracker.committed("d1", "a", "loc", [1, 4, 6])
    tracker.committed("d2", "a", "loc", [1, 3])
    tracker.committed("d3", "a", "loc", [1, 2])  # nothing missing: never asked about
    assert tracker.sweep(now=0, wall=0, lookup=lookup).gap_rows == []
    assert asked == []  # not settled yet: no query at all
    sweep = tracker.sweep(now=5, wall=5, lookup=lookup)
    # One query for every stream with settled seqs missing, each from its first missing to its last.
    assert asked == [[("d1", "a", 2, 5), ("d2", "a", 2, 2)]]
    assert (sweep.gap_rows, sweep.requests) == ([], [])
    assert sorted((m.device_id, m.through_seq) for m in sweep.marks) == [("d1", 6), ("d2", 3), ("d3", 2)]


def test_a_lookup_that_finds_part_of_a_span_opens_a_gap_for_the_rest() -> None:
    tracker = Tracker(POLICY)
    tracker.committed("d1", "a", "loc", [1, 5])
    tracker.sweep(now=0, wall=0, lookup=lambda spans: [])
    sweep = tracker.sweep(now=5, wall=5, lookup=lambda spans: [("d1", "a", 3), ("d9", "a", 3)])
    assert [(r["from_seq"], r["to_seq"], r["missing"]) for r in sweep.gap_rows] == [(2, 2, 1), (4, 4, 1)]
    assert [(r.first, r.last) for r in sweep.requests] == [(2, 2), (4, 4)]


def test_only_the_current_incarnation_gets_the_committed_mark() -> None:
    tracker = Tracker(POLICY)
    tracker.committed("d1", "old", "loc", [1, 2])
    tracker.reported("d1", "new", "loc", 1)  # the status names the device's incarnation
    tracker.committed("d1", "new", "loc", [1])
    tracker.committed("d1", "old", "loc", [3])  # a replayed event of the old one changes nothing
    assert [(m.incarnation, m.through_seq) for m in tracker.sweep(now=0, wall=0).marks] == [("new", 1)]
