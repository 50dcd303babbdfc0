"""Which seqs of each device stream are here, which are missing, and what to ask the device for.

A stream is one (device_id, incarnation): seq is unique within it. The tracker holds, per stream, the
seqs committed here or known lost as ranges; a seq between 1 and the highest heard of (an event's, or
the status's `last_seq`) that is not there may still be on its way. Once it has been expected for the
settle time, the database is asked whether another collector stored it (instances of a shared group
each see a part of every stream); what is still missing then is a gap: logged, written, and asked
for from the device at once, again with backoff until it is filled or the device says it is gone:
then it is a known loss, said loudly, never closed silently.

Pure bookkeeping: no MQTT, no SQL. The collector feeds it what it committed and carries out what a
sweep returns (replay requests, gap rows, committed marks).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from collector.ranges import Range, RangeSet
from device import contract

log = logging.getLogger(__name__)

# The device replays at most this many seqs per request: ask in pieces of this size.
MAX_REPLAY_SPAN = contract.MAX_REPLAY_SPAN
StreamKey = tuple[str, str]
# (device_id, incarnation, first, last): a range of one stream.
Span = tuple[str, str, int, int]
# Spans -> the (device_id, incarnation, seq) of theirs already in the database: one query per sweep.
Lookup = Callable[[Sequence[Span]], Iterable[tuple[str, str, int]]]


@dataclass
class Gap:
    first: int
    last: int
    opened_wall: float
    next_request: float
    requests: int = 0
    last_request_wall: float | None = None
    # The missing count of the last row written for this gap.
    written_missing: int = -1


@dataclass
class Stream:
    device_id: str
    incarnation: str
    location_id: str
    have: RangeSet = field(default_factory=RangeSet)
    lost: RangeSet = field(default_factory=RangeSet)
    reported: int = 0
    gaps: dict[int, Gap] = field(default_factory=dict)
    published: int = 0
    published_at: float = float("-inf")
    # The through_seq last written to the streams table.
    saved: int = 0
    # (highest seq expected, since when), oldest first: what the settle time runs on.
    expected: list[tuple[int, float]] = field(default_factory=list)
    # Every seq up to here has been expected for the settle time: its absence is a gap.
    settled: int = 0

    @property
    def key(self) -> StreamKey:
        return (self.device_id, self.incarnation)

    @property
    def through(self) -> int:
        return self.have.prefix()

    @property
    def target(self) -> int:
        return max(self.have.highest(), self.reported)


@dataclass(frozen=True)
class ReplayRequest:
    device_id: str
    location_id: str
    incarnation: str
    first: int
    last: int


@dataclass(frozen=True)
class CommittedMark:
    device_id: str
    location_id: str
    incarnation: str
    through_seq: int


@dataclass
class Sweep:
    requests: list[ReplayRequest] = field(default_factory=list)
    gap_rows: list[dict[str, Any]] = field(default_factory=list)
    marks: list[CommittedMark] = field(default_factory=list)


@dataclass(frozen=True)
class Policy:
    settle_s: float = 5.0
    retry_min_s: float = 10.0
    retry_max_s: float = 600.0
    committed_interval_s: float = 1.0

    def backoff(self, requests: int) -> float:
        return float(min(self.retry_min_s * 2 ** max(requests - 1, 0), self.retry_max_s))


class Tracker:
    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.streams: dict[StreamKey, Stream] = {}
        # Each device's newest incarnation: the committed mark (one retained topic) is for it alone.
        self.current: dict[str, str] = {}

    def stream(self, device_id: str, incarnation: str, location_id: str) -> Stream:
        key = (device_id, incarnation)
        found = self.streams.get(key)
        if found is None:
            found = self.streams[key] = Stream(device_id, incarnation, location_id)
            self.current.setdefault(device_id, incarnation)
        return found

    def committed(self, device_id: str, incarnation: str, location_id: str, seqs: Iterable[int]) -> None:
        """Seqs now in the database (stored or already there as duplicates)."""
        stream = self.stream(device_id, incarnation, location_id)
        stream.location_id = location_id
        # A replayed event may be of an older incarnation: only a status says which one is current.
        self.current.setdefault(device_id, incarnation)
        for seq in seqs:
            stream.have.add(seq)

    def reported(self, device_id: str, incarnation: str, location_id: str, last_seq: int) -> None:
        """A live status's `last_seq`: the device has handed out every seq up to it."""
        stream = self.stream(device_id, incarnation, location_id)
        stream.reported = max(stream.reported, last_seq)
        self.current[device_id] = incarnation

    def gone(
        self, device_id: str, incarnation: str, location_id: str, ranges: Iterable[Range]
    ) -> list[Range]:
        """The device no longer holds these seqs: the ones not here become known losses (returned)."""
        stream = self.stream(device_id, incarnation, location_id)
        losses: list[Range] = []
        for first, last in ranges:
            if first < 1 or last < first:
                continue
            for a, b in stream.have.missing(first, last):
                losses.append((a, b))
                stream.lost.add(a, b)
        for a, b in losses:
            stream.have.add(a, b)
        return losses

    def restore(
        self,
        device_id: str,
        incarnation: str,
        location_id: str,
        through: int,
        seqs: Iterable[int],
        losses: Iterable[Range],
    ) -> Stream:
        """A stream as the database holds it, after a restart."""
        stream = self.stream(device_id, incarnation, location_id)
        if through > 0:
            stream.have.add(1, through)
        for seq in seqs:
            stream.have.add(seq)
        for a, b in losses:
            stream.have.add(a, b)
            stream.lost.add(a, b)
        return stream

    def sweep(self, now: float, wall: float, lookup: Lookup | None = None) -> Sweep:
        """Opens, requests and closes gaps; returns what to publish and write."""
        out = Sweep()
        doubts: list[Span] = []
        for stream in self.streams.values():
            self._settle(stream, now)
            doubts.extend(self._doubts(stream, now))
        if doubts and lookup is not None:
            for device_id, incarnation, seq in lookup(doubts):
                found = self.streams.get((device_id, incarnation))
                if found is not None:
                    found.have.add(seq)
        for stream in self.streams.values():
            self._sweep_stream(stream, now, wall, out)
        return out

    def _settle(self, stream: Stream, now: float) -> None:
        target = stream.target
        # A stream with nothing missing (the usual one) has nothing to wait for.
        if target > max(stream.expected[-1][0] if stream.expected else 0, stream.settled, stream.through):
            stream.expected.append((target, now))
        while stream.expected and now >= stream.expected[0][1] + self.policy.settle_s:
            stream.settled = max(stream.settled, stream.expected.pop(0)[0])

    def _unexplained(self, stream: Stream) -> list[Range]:
        """Settled seqs missing here that no gap holds yet."""
        through = stream.through
        if stream.settled <= through:
            return []
        spans = RangeSet((g.first, g.last) for g in stream.gaps.values())
        return [r for a, b in stream.have.missing(through + 1, stream.settled) for r in spans.missing(a, b)]

    def _doubts(self, stream: Stream, now: float) -> list[Span]:
        """What to look up before a gap opens or is asked for: another collector may have stored it."""
        spans: list[Span] = []
        if unexplained := self._unexplained(stream):
            spans.append((stream.device_id, stream.incarnation, unexplained[0][0], unexplained[-1][1]))
        for gap in stream.gaps.values():
            if now >= gap.next_request and stream.have.missing(gap.first, gap.last):
                spans.append((stream.device_id, stream.incarnation, gap.first, gap.last))
        return spans

    def _sweep_stream(self, stream: Stream, now: float, wall: float, out: Sweep) -> None:
        for first, last in self._unexplained(stream):
            # Settled and looked up already: asked for in this very sweep.
            gap = Gap(first, last, opened_wall=wall, next_request=now)
            stream.gaps[first] = gap
            log.warning(
                "gap: device %s incarnation %s seq %d-%d missing",
                stream.device_id,
                stream.incarnation or "-",
                first,
                last,
            )
        for first, gap in sorted(stream.gaps.items()):
            remaining = stream.have.missing(gap.first, gap.last)
            if not remaining:
                del stream.gaps[first]
                lost = stream.lost.count(gap.first, gap.last)
                state = "lost" if lost else "repaired"
                (log.error if lost else log.info)(
                    "gap %s: device %s incarnation %s seq %d-%d (%d known lost)",
                    state,
                    stream.device_id,
                    stream.incarnation or "-",
                    gap.first,
                    gap.last,
                    lost,
                )
                out.gap_rows.append(self._row(stream, gap, state, wall, closed=True))
                continue
            if now < gap.next_request:
                if sum(b - a + 1 for a, b in remaining) != gap.written_missing:
                    out.gap_rows.append(self._row(stream, gap, "open", wall))
                continue
            for a, b in remaining:
                for start in range(a, b + 1, MAX_REPLAY_SPAN):
                    out.requests.append(
                        ReplayRequest(
                            stream.device_id,
                            stream.location_id,
                            stream.incarnation,
                            start,
                            min(b, start + MAX_REPLAY_SPAN - 1),
                        )
                    )
            gap.requests += 1
            gap.last_request_wall = wall
            gap.next_request = now + self.policy.backoff(gap.requests)
            out.gap_rows.append(self._row(stream, gap, "open", wall))
        self._mark(stream, now, out)

    def _mark(self, stream: Stream, now: float, out: Sweep) -> None:
        through = stream.through
        if (
            through > stream.published
            and self.current.get(stream.device_id) == stream.incarnation
            and now - stream.published_at >= self.policy.committed_interval_s
        ):
            out.marks.append(CommittedMark(stream.device_id, stream.location_id, stream.incarnation, through))

    def marked(self, mark: CommittedMark, now: float) -> None:
        """The committed mark went to the broker."""
        stream = self.streams[(mark.device_id, mark.incarnation)]
        stream.published = max(stream.published, mark.through_seq)
        stream.published_at = now

    def restore_gap(
        self, device_id: str, incarnation: str, location_id: str, row: dict[str, Any], now: float
    ) -> None:
        stream = self.stream(device_id, incarnation, location_id)
        stream.gaps[int(row["from_seq"])] = Gap(
            int(row["from_seq"]),
            int(row["to_seq"]),
            opened_wall=float(row["opened_wall"]),
            next_request=now + self.policy.settle_s,
            requests=int(row["requests"]),
            last_request_wall=row.get("last_request_wall"),
        )

    def open_gaps(self) -> int:
        return sum(len(s.gaps) for s in self.streams.values())

    @staticmethod
    def _row(stream: Stream, gap: Gap, state: str, wall: float, *, closed: bool = False) -> dict[str, Any]:
        gap.written_missing = sum(b - a + 1 for a, b in stream.have.missing(gap.first, gap.last))
        return {
            "device_id": stream.device_id,
            "incarnation": stream.incarnation,
            "from_seq": gap.first,
            "to_seq": gap.last,
            "location_id": stream.location_id,
            "state": state,
            "missing": gap.written_missing,
            "opened_wall": gap.opened_wall,
            "requests": gap.requests,
            "last_request_wall": gap.last_request_wall,
            "closed_wall": wall if closed else None,
        }
