"""RangeSet against the plain set of ints it stands for."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

from collector.ranges import RangeSet

spans = st.lists(st.tuples(st.integers(1, 200), st.integers(0, 20)), max_size=40)


@given(spans, st.integers(1, 220), st.integers(0, 60))
def test_rangeset_is_the_set_it_stands_for(added: list[tuple[int, int]], first: int, length: int) -> None:
    ranges, model = RangeSet(), set[int]()
    for start, extra in added:
        ranges.add(start, start + extra)
        model.update(range(start, start + extra + 1))
    listed = list(ranges)
    # Disjoint, sorted, never touching: one range per run.
    assert all(a <= b and b + 1 < c for (a, b), (c, _) in itertools.pairwise(listed))
    assert {s for a, b in listed for s in range(a, b + 1)} == model
    last = first + length
    missing = {s for a, b in ranges.missing(first, last) for s in range(a, b + 1)}
    assert missing == set(range(first, last + 1)) - model
    assert ranges.count(first, last) == len(set(range(first, last + 1)) & model)
    prefix = 0
    while prefix + 1 in model:
        prefix += 1
    assert ranges.prefix() == prefix
    assert ranges.highest() == max(model, default=0)
    assert all((s in ranges) == (s in model) for s in range(0, 230))


def test_in_order_seqs_stay_one_range() -> None:
    ranges = RangeSet()
    for seq in range(1, 100_001):
        ranges.add(seq)
    assert list(ranges) == [(1, 100_000)]
