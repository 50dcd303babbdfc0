"""The in-flight window: which messages paho holds under which message id, and which rows go next.

Pure bookkeeping, no socket and no thread of its own: the publisher's drain thread is its only user,
and tests drive it with a real store and invented message ids.

Two promises keep delivery honest:
- a row paho still holds is never handed to it again (paho re-sends what it holds after a reconnect;
  a second copy would grow its hidden queue and repeat to consumers), and
- a message id names at most one message: an acknowledgement can only confirm what was sent under it.

Order of what goes next: events accepted since the connection began ("live") first, then the rows a
collector asked to replay, then the backlog oldest first.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass, field

from device.contract import ReplayRequest
from device.store import Outbox, Pending


@dataclass(slots=True)
class Flight:
    """One message paho holds: an event row (`seq`), or a status message (`seq` None)."""

    seq: int | None
    sent_at: float


@dataclass(slots=True)
class Replay:
    """A replay request being worked through: rows up to `cursor` have been handed out."""

    request: ReplayRequest
    cursor: int
    sent: list[int] = field(default_factory=list)


class _Batch:
    """The rows of one refill: none twice, none in flight, and none acknowledged but not yet recorded
    (except for a replay, which is asked for because a consumer missed a row the broker took)."""

    def __init__(self, room: int, in_flight: set[int], recording: set[int]) -> None:
        self.rows: list[Pending] = []
        self._room = room
        self._in_flight = in_flight
        self._recording = recording
        self._taken: set[int] = set()

    @property
    def room(self) -> int:
        return self._room - len(self.rows)

    @property
    def full(self) -> bool:
        return len(self.rows) >= self._room

    def take(self, rows: list[Pending], cursor: int, replayed: list[int] | None = None) -> int:
        """Takes what fits; returns the lane's new cursor (the last row looked at)."""
        for item in rows:
            if self.full:
                break
            cursor = item.seq
            if replayed is not None:
                replayed.append(item.seq)  # a replayed row already on the wire counts as replayed
            elif item.seq in self._recording:
                continue
            if item.seq not in self._in_flight and item.seq not in self._taken:
                self._taken.add(item.seq)
                self.rows.append(item)
        return cursor


class Window:
    def __init__(self, size: int) -> None:
        self.size = size
        self._flights: dict[int, Flight] = {}
        self._seqs: set[int] = set()
        # Acknowledged, but the store has not recorded it yet: still pending there, not to be sent again.
        self._recording: set[int] = set()
        self.live_after = 0
        self._live_cursor = 0
        self._backlog_cursor = 0
        self.replays: collections.deque[Replay] = collections.deque()

    def __len__(self) -> int:
        return len(self._flights)

    @property
    def room(self) -> int:
        return self.size - len(self._flights)

    @property
    def events(self) -> int:
        """Event rows in flight (statuses not counted)."""
        return len(self._seqs)

    def holds(self, seq: int) -> bool:
        return seq in self._seqs or seq in self._recording

    # -- cursors --------------------------------------------------------------------------------------

    def connected(self, max_seq: int, now: float) -> None:
        """A new connection: what is accepted from now on is live, and paho re-sends all it holds."""
        self.live_after = max_seq
        self.rewind()
        for flight in self._flights.values():
            flight.sent_at = now

    def rewind(self) -> None:
        """Read the backlog from its start again (rows put back: a refusal retried, a dead letter)."""
        self._live_cursor = self.live_after
        self._backlog_cursor = 0

    def next_rows(self, box: Outbox, room: int) -> tuple[list[Pending], list[Replay]]:
        """Up to `room` rows to publish now, none already in flight, and the replays now complete."""
        batch = _Batch(room, self._seqs, self._recording)
        want = room + self._ahead(self._live_cursor)
        self._live_cursor = batch.take(box.pending(want, after=self._live_cursor), self._live_cursor)
        done: list[Replay] = []
        while self.replays and not batch.full:
            job = self.replays[0]
            want = batch.room + self._ahead(job.cursor)
            got = box.replay_rows(want, after=job.cursor, upto=job.request.to_seq)
            job.cursor = batch.take(got, job.cursor, job.sent)
            if len(got) == want or (got and job.cursor != got[-1].seq):
                break  # the batch filled up before the range ended
            done.append(self.replays.popleft())
        if not batch.full:
            want = batch.room + self._ahead(self._backlog_cursor)
            got = box.pending(want, after=self._backlog_cursor, upto=self.live_after)
            self._backlog_cursor = batch.take(got, self._backlog_cursor)
        if not batch.rows:
            self.rewind()  # nothing anywhere: look from the start next time (rows put back)
        return batch.rows, done

    def _ahead(self, cursor: int) -> int:
        """Rows past a lane's cursor that the store still returns but that cannot go out (in flight,
        or acknowledged and not yet recorded): a read of the lane asks for that many more. Only those
        past the cursor: counting every one (up to a window and a batch of marks) made each refill
        read and build hundreds of rows it then skipped."""
        return sum(1 for held in (self._seqs, self._recording) for seq in held if seq > cursor)

    # -- messages ---------------------------------------------------------------------------------------

    def sent(self, mid: int, seq: int | None, now: float) -> None:
        """paho took a message under `mid` (it refuses an id it still holds, so this one is free)."""
        if mid in self._flights:
            raise ValueError(f"message id {mid} is already in flight")
        self._flights[mid] = Flight(seq, now)
        if seq is not None:
            self._seqs.add(seq)

    def acked(self, mid: int) -> Flight | None:
        """The message the acknowledgement for `mid` answers, or None for one we never sent."""
        flight = self._flights.pop(mid, None)
        if flight is not None and flight.seq is not None:
            self._seqs.discard(flight.seq)
        return flight

    def recording(self, seq: int) -> None:
        """An acknowledged row waits to be marked delivered in the store: do not send it again."""
        self._recording.add(seq)

    def recorded(self, seqs: list[int]) -> None:
        """The store has marked those rows delivered (they are no longer pending)."""
        self._recording.difference_update(seqs)

    def stalled(self, now: float, limit: float) -> int:
        """How many messages have waited longer than `limit` for their acknowledgement."""
        return sum(1 for flight in self._flights.values() if now - flight.sent_at > limit)
