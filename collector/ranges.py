"""Sets of seqs as sorted disjoint inclusive ranges: a device's 100 000 events are one range, not a set."""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Iterator

Range = tuple[int, int]


class RangeSet:
    def __init__(self, ranges: Iterable[Range] = ()) -> None:
        self._starts: list[int] = []
        self._ends: list[int] = []
        for first, last in ranges:
            self.add(first, last)

    def __iter__(self) -> Iterator[Range]:
        return iter(zip(self._starts, self._ends, strict=True))

    def __repr__(self) -> str:
        return f"RangeSet({list(self)})"

    def __bool__(self) -> bool:
        return bool(self._starts)

    def add(self, first: int, last: int | None = None) -> None:
        last = first if last is None else last
        if last < first:
            raise ValueError(f"empty range {first}..{last}")
        # The common case first: the next seq of a device extends the last range.
        if self._ends and self._ends[-1] + 1 >= first >= self._starts[-1]:
            self._ends[-1] = max(self._ends[-1], last)
            return
        # Ranges touching or overlapping [first, last] merge with it.
        lo = bisect.bisect_left(self._ends, first - 1)
        hi = bisect.bisect_right(self._starts, last + 1)
        if lo < hi:
            first = min(first, self._starts[lo])
            last = max(last, self._ends[hi - 1])
        self._starts[lo:hi] = [first]
        self._ends[lo:hi] = [last]

    def __contains__(self, seq: int) -> bool:
        i = bisect.bisect_right(self._starts, seq) - 1
        return i >= 0 and self._ends[i] >= seq

    def prefix(self) -> int:
        """The highest n such that 1..n are all in the set (0 when 1 is not)."""
        return self._ends[0] if self._starts and self._starts[0] <= 1 else 0

    def highest(self) -> int:
        return self._ends[-1] if self._ends else 0

    def missing(self, first: int, last: int) -> list[Range]:
        """The ranges of first..last that are not in the set."""
        out: list[Range] = []
        at = first
        i = max(bisect.bisect_right(self._starts, first) - 1, 0)
        while at <= last and i < len(self._starts):
            start, end = self._starts[i], self._ends[i]
            if end < at:
                i += 1
                continue
            if start > last:
                break
            if start > at:
                out.append((at, start - 1))
            at = end + 1
            i += 1
        if at <= last:
            out.append((at, last))
        return out

    def count(self, first: int, last: int) -> int:
        """How many of first..last are in the set."""
        return (last - first + 1) - sum(b - a + 1 for a, b in self.missing(first, last))
