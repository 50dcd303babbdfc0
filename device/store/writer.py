"""The writer: every accepted check-in durable before the worker sees green, until the broker acks it.

One SQLite file in WAL mode with synchronous=FULL: a commit returns only once the event is on the
disk, so a power cut after the green light loses nothing. Each accepted scan is one transaction over
the tables the modules beside this one hold (the event, the next seq, the duplicate-window entry).

Each thread opens its own `Outbox` on the same file (the daemon's loop appends, the publisher drains);
SQLite's WAL lets them work side by side.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from device import duplicate_window
from device.clock import Stamp
from device.errors import StorageCorrupt, StorageError, StorageFull
from device.store import counters, dead_letters, events, recent, salvage, schema, sequence
from device.store.errors import free_bytes, storage_error
from device.store.events import Pending
from device.store.reader import StoreReader, connect_for_reading
from device.store.reserve import SeqReserve, SpaceReserve

log = logging.getLogger(__name__)


class Outbox(StoreReader):
    def __init__(self, path: Path, *, refusing: bool = False) -> None:
        # Not the reader's __init__: the writer opens its own connection, read-write.
        self.path = path
        # Where open() put a corrupt store it found, for the audit log and the status.
        self.moved_aside: Path | None = None
        # How many undelivered events open() salvaged from that store.
        self.salvaged = 0
        # A store opened on a full disk: it reads what it can and refuses every write as "storage full".
        self.refusing = refusing
        self.space = SpaceReserve(path.parent)
        # Set once the space reserve was given back: check-ins wait until the disk has room again.
        self._short_of_space = False
        if refusing:
            self._db = connect_for_reading(path)
            return
        self.seqs = SeqReserve(path.parent)
        self._db = sqlite3.connect(path, timeout=10, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        # A purged event's bytes are overwritten, not left in a free page for whoever reads the card.
        self._db.execute("PRAGMA secure_delete=ON")
        self._db.execute("PRAGMA foreign_keys=ON")
        schema.create_tables(self._db)
        with self._write() as db:
            sequence.start(db)
            schema.record_version(db)
            sequence.new_incarnation(db)

    @classmethod
    def open(cls, storage_dir: Path) -> Outbox:
        """Opens the store; a corrupt one is moved aside (kept for forensics) and a fresh one begun.
        On a full disk the space reserve is given back to open it; StorageFull when even that fails."""
        try:
            return cls._open(storage_dir)
        except StorageFull:
            freed = SpaceReserve(storage_dir).release()
            if not freed:
                raise
            log.error("ALARM: storage full at start: gave back the %.1f MB space reserve", freed / 2**20)
            box = cls._open(storage_dir)
            box._short_of_space = True  # the reserve is the journal's, not room for more events
            return box

    @classmethod
    def refusing_writes(cls, storage_dir: Path) -> Outbox:
        """The store of a disk too full to open it: reads what is there, refuses every write."""
        return cls(storage_dir / schema.DB_NAME, refusing=True)

    def twin(self) -> Outbox:
        """Another connection to the same store, for another thread."""
        return Outbox(self.path, refusing=self.refusing)

    @classmethod
    def _open(cls, storage_dir: Path) -> Outbox:
        try:
            storage_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(f"cannot create the storage directory {storage_dir}: {exc.strerror}") from None
        path = storage_dir / schema.DB_NAME
        salvage.finish_interrupted(path)
        box: Outbox | None = None
        try:
            box = cls(path)
            box.check_integrity()
            return box
        except sqlite3.OperationalError as exc:  # cannot open or write: not corruption
            raise storage_error(exc, storage_dir) from None
        except (sqlite3.DatabaseError, StorageCorrupt) as exc:
            # Damage may show in open's own first writes (StorageCorrupt) or only in the check.
            if box is not None:
                box.close()
            return cls._replace_corrupt(path, exc)

    @classmethod
    def _replace_corrupt(cls, path: Path, damage: Exception) -> Outbox:
        def build(at: Path, found: salvage.Salvage) -> int:
            fresh = cls(at)
            try:
                with fresh._write() as db:
                    return salvage.restore(db, found, fresh.seqs.upto)
            finally:
                fresh.close()  # the last connection's close checkpoints the WAL into the file

        aside, restored = salvage.replace(path, damage, build)
        box = cls(path)
        box.moved_aside = aside
        box.salvaged = restored
        return box

    def check_integrity(self) -> None:
        row = self._db.execute("PRAGMA quick_check").fetchone()
        if row is None or row[0] != "ok":
            raise sqlite3.DatabaseError(f"quick_check: {row[0] if row else 'no answer'}")

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        if self.refusing:
            raise StorageFull("storage full")
        try:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                # SQLite rolls back by itself on some errors (a full disk): only roll back what is open.
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise storage_error(exc, self.path.parent) from None

    # -- the decision's side: one transaction per accepted event -------------------------------------

    def append_unless_recent(
        self, key: str, stamp: Stamp, window_s: float, build: Callable[[int], dict[str, Any]]
    ) -> tuple[int, dict[str, Any]] | None:
        """Atomically: None if `key` was accepted within the window, else the next seq and the event.

        `build(seq)` makes the event body; it is committed (and synced) with the duplicate-window
        entry before this returns.

        The first time the disk is full the space reserve is given back, for SQLite's journal, not
        for more events: check-ins stay refused until the disk has room for the reserve twice over.
        """
        if self._short_of_space:
            free = free_bytes(self.path.parent)
            if free is not None and free < 2 * self.space.size:
                raise StorageFull("storage full")
            self._short_of_space = False
        try:
            return self._append(key, stamp, window_s, build)
        except StorageFull:
            if freed := self.space.release():
                self._short_of_space = True
                log.error(
                    "ALARM: storage full: gave back the %.1f MB space reserve for the store's journal;"
                    " check-ins are refused until there is room again",
                    freed / 2**20,
                )
            raise

    def _append(
        self, key: str, stamp: Stamp, window_s: float, build: Callable[[int], dict[str, Any]]
    ) -> tuple[int, dict[str, Any]] | None:
        with self._write() as db:
            if window_s > 0 and self._within_window(db, key, stamp, window_s):
                return None
            seq = sequence.next_seq(db)
            self.seqs.cover(seq)
            event = build(seq)
            events.append(db, seq, event, stamp)
            sequence.set_next(db, seq + 1)
            if window_s > 0:
                recent.remember(db, key, stamp)
            return seq, event

    @staticmethod
    def _within_window(db: sqlite3.Connection, key: str, stamp: Stamp, window_s: float) -> bool:
        seen = recent.last(db, key)
        return seen is not None and duplicate_window.holds(
            stamp, window_s, wall=seen.wall, mono=seen.mono, boot_id=seen.boot_id
        )

    # -- the publisher's side ---------------------------------------------------------------------

    def pending(self, limit: int, after: int = 0, upto: int | None = None) -> list[Pending]:
        """Undelivered events with after < seq <= upto, oldest first (an index range scan)."""
        return events.pending(self._db, limit, after, upto)

    def replay_rows(self, limit: int, after: int, upto: int) -> list[Pending]:
        """Every event still kept with after < seq <= upto, delivered or not, oldest first."""
        return events.replay_rows(self._db, limit, after, upto)

    def mark_delivered(
        self, seqs: Iterable[int], at: float | None = None, *, unheard: Iterable[int] = ()
    ) -> None:
        """Records PUBACKs; those also in `unheard` (0x10) are kept past the grace until released."""
        seqs, unheard = list(seqs), list(unheard)
        if not seqs:
            return
        with self._write() as db:
            events.mark_delivered(db, seqs, time.time() if at is None else at, unheard)

    def release(self, through_seq: int, at: float | None = None) -> int:
        """The collector committed every seq <= through_seq: those events count as delivered and
        purgeable after the grace, the unheard ones too. Returns how many unheard were released."""
        with self._write() as db:
            return events.release(db, through_seq, time.time() if at is None else at)

    def dead_letter(self, seq: int, reason: str) -> None:
        """A permanent refusal by the broker: kept aside for a technician, never retried."""
        with self._write() as db:
            dead_letters.put_aside(db, seq, reason, time.time())

    def retry_dead_letters(self) -> list[int]:
        """Puts every dead letter back among the undelivered events, for the publisher to send again;
        returns their seqs. Their age counts from the scan, as for any undelivered event."""
        with self._write() as db:
            return dead_letters.retry(db)

    # -- clock truth --------------------------------------------------------------------------------

    def correct_unsynced(self, boot_id: str, wall_now: float, mono_now: float) -> int:
        """Once the clock is synchronised: re-stamps undelivered events of this boot from monotonic time."""
        with self._write() as db:
            return events.restamp_unsynced(db, boot_id, wall_now, mono_now)

    # -- retention ----------------------------------------------------------------------------------

    def purge(self, stamp: Stamp, delivered_grace_s: float, max_age_s: float, window_s: float) -> int:
        """Removes delivered events past the grace and expired window entries; drops undelivered
        (or unheard) events older than max_age_s. Returns how many of those were dropped.

        An event of this boot is aged by the monotonic clock only, so no step of the wall clock drops
        one. An event of an earlier boot has only its wall time left: only a synchronised clock ages
        it, and only one stamped by a synchronised clock (a clock-less Pi may have stamped 1970, and
        that must not be dropped as 56 years old). Window entries of this boot expire on monotonic
        time."""
        with self._write() as db:
            dropped = events.purge(db, stamp, delivered_grace_s, max_age_s)
            recent.expire(db, stamp.boot_id, *duplicate_window.expired_before(stamp, window_s))
            if dropped:
                counters.bump(db, "dropped", dropped)
            return dropped

    # -- counters that survive restarts -------------------------------------------------------------

    def add_counters(self, deltas: dict[str, int]) -> None:
        with self._write() as db:
            counters.add(db, deltas)
