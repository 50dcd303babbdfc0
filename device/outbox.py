"""The outbox: every accepted check-in, durable before the worker sees green, until the broker acks it.

One SQLite file in WAL mode with synchronous=FULL: a commit returns only once the event is on the
disk, so a power cut after the green light loses nothing. The per-device sequence lives in `meta`, not
in the events table, so it is never reused even after every event has been delivered and deleted.

Each thread opens its own `Outbox` on the same file (the daemon's loop appends, the publisher drains);
SQLite's WAL lets them work side by side.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import sqlite3
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from device import contract, duplicate_window
from device.clock import Stamp
from device.durable import fsync_dir, owned_like_directory, write_atomic
from device.errors import StorageCorrupt, StorageError, StorageFull, StorageReadOnly

log = logging.getLogger(__name__)

DB_NAME = "outbox.sqlite"
# Sequence numbers are reserved in blocks in a small file beside the store, so a store lost to
# corruption restarts above every seq it may have handed out: seq is never reused, and the gap
# shows consumers what the moved-aside store still holds.
RESERVE_NAME = "seq.reserve"
SEQ_RESERVE_BLOCK = 1000
SPACE_RESERVE_NAME = "space.reserve"
# SQLite's WAL needs a few MB of headroom to open and checkpoint a busy store.
SPACE_RESERVE_MAX = 8 * 1024 * 1024
# Below this much free space a failing write is taken for a full disk, whatever SQLite called it.
NO_SPACE_BYTES = 256 * 1024
# A fresh store is built under this name from what a corrupt one still gives, then moved in.
SALVAGE_NAME = f"{DB_NAME}.salvage"
# Past a row a damaged page hides, the salvage looks this many seqs further before it gives up.
SALVAGE_PROBE_LIMIT = 1 << 20
SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY,
    event_id TEXT NOT NULL UNIQUE,
    body TEXT NOT NULL,
    created_wall REAL NOT NULL,
    created_mono REAL NOT NULL,
    boot_id TEXT NOT NULL,
    clock_synced INTEGER NOT NULL,
    delivered_at REAL
);
CREATE INDEX IF NOT EXISTS events_pending ON events(seq) WHERE delivered_at IS NULL;
CREATE INDEX IF NOT EXISTS events_delivered ON events(delivered_at) WHERE delivered_at IS NOT NULL;
CREATE TABLE IF NOT EXISTS dead_letters (
    seq INTEGER PRIMARY KEY,
    event_id TEXT NOT NULL,
    body TEXT NOT NULL,
    reason TEXT NOT NULL,
    at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS recent (
    key TEXT PRIMARY KEY,
    wall REAL NOT NULL,
    mono REAL NOT NULL,
    boot_id TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
-- Delivered events whose PUBACK said 0x10 "no matching subscribers": nobody got them, so they stay
-- past the delivered grace until a checkin.committed/1 from the collector covers them.
CREATE TABLE IF NOT EXISTS unheard (seq INTEGER PRIMARY KEY);
"""


@dataclass(frozen=True, slots=True)
class Pending:
    seq: int
    event_id: str
    body: str


@dataclass(frozen=True, slots=True)
class Backlog:
    count: int
    oldest_wall: float | None
    dead_letters: int
    unheard: int
    # The oldest one's monotonic stamp and boot: within a boot its age survives a wall-clock step.
    oldest_mono: float | None = None
    oldest_boot_id: str | None = None


def storage_error(exc: sqlite3.Error, directory: Path | None = None) -> StorageError:
    """Maps SQLite's errors to ours, so callers can tell a full disk from a read-only one."""
    text = str(exc).lower()
    code = getattr(exc, "sqlite_errorcode", None)
    if code == sqlite3.SQLITE_FULL or "disk is full" in text:
        return StorageFull("storage full")
    if code == sqlite3.SQLITE_READONLY or "readonly" in text or "read-only" in text:
        return StorageReadOnly("storage is read-only")
    if code is not None and (code & 0xFF) in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB):
        return StorageCorrupt(f"storage is corrupt: {exc}")
    # SQLite names a read-only filesystem only when it knew at open: a card the kernel turned read-only
    # under an open store (errors=remount-ro) gives "disk I/O error", a store opened on one afterwards
    # "unable to open database file". The filesystem itself tells.
    if directory is not None and _read_only(directory):
        return StorageReadOnly("storage is read-only")
    # On a full disk SQLite may say only "disk I/O error" (opening the WAL, say): the free space tells.
    if directory is not None and (free := free_bytes(directory)) is not None and free < NO_SPACE_BYTES:
        return StorageFull("storage full")
    return StorageError(f"storage error: {exc}")


def free_bytes(directory: Path) -> int | None:
    """Bytes an unprivileged writer may still use on the filesystem holding `directory`."""
    try:
        st = os.statvfs(directory)
    except OSError:
        return None
    return st.f_bavail * st.f_frsize


class SeqReserve:
    """The block of sequence numbers reserved in a small file beside the store (see RESERVE_NAME)."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / RESERVE_NAME
        try:
            self.upto = int(self.path.read_text().strip() or 0)
        except (OSError, ValueError):
            self.upto = 0

    def cover(self, seq: int) -> None:
        """Makes sure `seq` is reserved (durably, before any event takes it), a block at a time."""
        if seq <= self.upto:
            return
        upto = seq + SEQ_RESERVE_BLOCK
        try:
            write_atomic(self.path, f"{upto}\n".encode(), 0o640)
            owned_like_directory(self.path)
        except OSError as exc:
            raise (
                StorageFull("storage full") if exc.errno == errno.ENOSPC else StorageError(str(exc))
            ) from None
        self.upto = upto


class SpaceReserve:
    """A preallocated file beside the store, given back when the disk runs full: room for SQLite's
    journal to open and checkpoint the store, and for the daemon to start on a full card.

    Its size is SPACE_RESERVE_MAX, or an eighth of a small filesystem."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / SPACE_RESERVE_NAME
        try:
            st = os.statvfs(directory)
            self.size = min(SPACE_RESERVE_MAX, st.f_blocks * st.f_frsize // 8)
        except OSError:
            self.size = SPACE_RESERVE_MAX

    def held(self) -> bool:
        return self.path.exists()

    def ensure(self) -> bool:
        """Makes the reserve when it is missing and the disk has room for it three times over (the
        reserve, and the room check-ins resume at, see Outbox.append_unless_recent)."""
        if self.held():
            return True
        free = free_bytes(self.path.parent)
        if free is None or free < 3 * self.size:
            return False
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        except FileExistsError:
            return True
        except OSError:
            return False
        try:
            os.posix_fallocate(fd, 0, self.size)  # real blocks, not a sparse promise
            os.fsync(fd)
        except OSError:
            os.close(fd)
            self.path.unlink(missing_ok=True)
            return False
        os.close(fd)
        owned_like_directory(self.path)
        return True

    def release(self) -> int:
        """Gives the reserve back to the filesystem; the bytes freed (0 when there was none)."""
        try:
            size = self.path.stat().st_size
            self.path.unlink()
        except OSError:
            return 0
        return size


def _read_only(directory: Path) -> bool:
    try:
        with tempfile.TemporaryFile(dir=directory):
            return False
    except OSError as exc:
        return exc.errno == errno.EROFS


class StoreReader:
    """The store opened for reading only (`status`, `history`, `dead-letters`): beside a running
    daemon without its write lock, on a read-only filesystem too; it never creates, migrates or moves
    a store, and it has no method that writes. `Outbox` is the writer and reads the same way."""

    _db: sqlite3.Connection

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db = _connect_read_only(path)

    @property
    def incarnation(self) -> str:
        """This store file's incarnation id ("" for a store older than incarnations, read-only)."""
        row = self._db.execute("SELECT value FROM meta WHERE key='incarnation'").fetchone()
        return "" if row is None else str(row[0])

    def max_seq(self) -> int:
        (value,) = self._db.execute(
            "SELECT CAST(value AS INTEGER) - 1 FROM meta WHERE key='next_seq'"
        ).fetchone()
        return int(value)

    def backlog(self) -> Backlog:
        # Read every second for the status: both from the pending index, never a scan of the bodies.
        # Events are created in seq order, so the lowest pending seq is the oldest.
        (count,) = self._db.execute("SELECT COUNT(*) FROM events WHERE delivered_at IS NULL").fetchone()
        row = self._db.execute(
            "SELECT created_wall, created_mono, boot_id FROM events WHERE delivered_at IS NULL"
            " ORDER BY seq LIMIT 1"
        ).fetchone()
        wall, mono, boot = (None, None, None) if row is None else row
        (dead,) = self._db.execute("SELECT COUNT(*) FROM dead_letters").fetchone()
        return Backlog(int(count), wall, int(dead), self._unheard(), mono, boot)

    def _unheard(self) -> int:
        try:
            (unheard,) = self._db.execute("SELECT COUNT(*) FROM unheard").fetchone()
        except sqlite3.OperationalError:
            return 0  # a store older than the table, read without migrating it
        return int(unheard)

    def dead_letters(self) -> list[dict[str, Any]]:
        rows = self._db.execute("SELECT seq, event_id, reason, at FROM dead_letters ORDER BY seq").fetchall()
        return [{"seq": s, "event_id": e, "reason": r, "at": a} for s, e, r, a in rows]

    def counters(self) -> dict[str, int]:
        return {name: int(value) for name, value in self._db.execute("SELECT name, value FROM counters")}

    def history(self, since: float | None = None, until: float | None = None) -> list[dict[str, Any]]:
        """Events still kept on the device (as published: masked per the privacy mode)."""
        rows = self._db.execute(
            "SELECT body, delivered_at FROM events WHERE created_wall >= ? AND created_wall < ? ORDER BY seq",
            (since if since is not None else float("-inf"), until if until is not None else float("inf")),
        ).fetchall()
        out = []
        for body, delivered in rows:
            event = json.loads(body)
            event["delivered"] = delivered is not None
            out.append(event)
        return out

    def close(self) -> None:
        self._db.close()


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
            self._db = _connect_for_reading(path)
            return
        self.seqs = SeqReserve(path.parent)
        self._db = sqlite3.connect(path, timeout=10, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        # A purged event's bytes are overwritten, not left in a free page for whoever reads the card.
        self._db.execute("PRAGMA secure_delete=ON")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.executescript(_SCHEMA)
        with self._write() as db:
            db.execute("INSERT OR IGNORE INTO meta VALUES ('next_seq', '1')")
            db.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
            # Made once per store file: a replaced card (same bundle, seq from 1 again) gets a new one,
            # so consumers key seq by (device_id, incarnation).
            db.execute("INSERT OR IGNORE INTO meta VALUES ('incarnation', ?)", (str(uuid.uuid4()),))

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
        return cls(storage_dir / DB_NAME, refusing=True)

    def twin(self) -> Outbox:
        """Another connection to the same store, for another thread."""
        return Outbox(self.path, refusing=self.refusing)

    @classmethod
    def _open(cls, storage_dir: Path) -> Outbox:
        try:
            storage_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(f"cannot create the storage directory {storage_dir}: {exc.strerror}") from None
        path = storage_dir / DB_NAME
        building = path.with_name(SALVAGE_NAME)
        if not path.exists() and building.exists():
            # A salvage finished and moved the damaged store aside, then the power went.
            os.replace(building, path)
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
        """Salvages what the damaged store still gives into a fresh one, then moves the old one aside.

        The fresh store is built under another name and moved in last: a power cut part way leaves
        either the damaged store (salvaged again at the next start) or the finished fresh one."""
        aside = path.with_name(f"{DB_NAME}.corrupt-{time.strftime('%Y%m%dT%H%M%S')}")
        building = path.with_name(SALVAGE_NAME)
        for suffix in ("", "-wal", "-shm"):
            Path(f"{building}{suffix}").unlink(missing_ok=True)
        salvage = _salvage(path)
        fresh = cls(building)
        try:
            restored = fresh._restore(salvage)
        finally:
            fresh.close()  # the last connection's close checkpoints the WAL into the file
        log.error(
            "ALARM: outbox %s is corrupt (%s); salvaged %d undelivered events%s, moved it aside to %s,"
            " continuing in a fresh store",
            path,
            damage,
            restored,
            f" ({salvage.unreadable} unreadable)" if salvage.unreadable else "",
            aside,
        )
        for suffix in ("", "-wal", "-shm"):
            src = Path(f"{path}{suffix}")
            if src.exists():
                os.replace(src, f"{aside}{suffix}")
        os.replace(building, path)
        fsync_dir(path.parent)
        box = cls(path)
        box.moved_aside = aside
        box.salvaged = restored
        return box

    def _restore(self, salvage: Salvage) -> int:
        """Writes the salvaged rows into this (fresh) store; returns how many undelivered events."""
        with self._write() as db:
            db.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)", salvage.meta)
            db.executemany(
                "INSERT OR IGNORE INTO events (seq, event_id, body, created_wall, created_mono, boot_id,"
                " clock_synced) VALUES (?, ?, ?, ?, ?, ?, ?)",
                salvage.events,
            )
            db.executemany("INSERT OR IGNORE INTO dead_letters VALUES (?, ?, ?, ?, ?)", salvage.dead_letters)
            db.executemany("INSERT OR IGNORE INTO recent VALUES (?, ?, ?, ?)", salvage.recent)
            db.executemany("INSERT OR IGNORE INTO counters VALUES (?, ?)", salvage.counters)
            # Above every seq the old store may have handed out: never reused, and the gap tells.
            highest = max([self.seqs.upto, salvage.next_seq - 1, *(row[0] for row in salvage.events)])
            db.execute("UPDATE meta SET value=? WHERE key='next_seq'", (str(highest + 1),))
            db.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
        return len(salvage.events)

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
            if window_s > 0 and self._is_recent(db, key, stamp, window_s):
                return None
            (next_seq,) = db.execute(
                "SELECT CAST(value AS INTEGER) FROM meta WHERE key='next_seq'"
            ).fetchone()
            self.seqs.cover(next_seq)
            event = build(next_seq)
            db.execute(
                "INSERT INTO events (seq, event_id, body, created_wall, created_mono, boot_id, clock_synced)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    next_seq,
                    event["event_id"],
                    _dumps(event),
                    stamp.wall,
                    stamp.mono,
                    stamp.boot_id,
                    int(stamp.synced),
                ),
            )
            db.execute("UPDATE meta SET value=? WHERE key='next_seq'", (str(next_seq + 1),))
            if window_s > 0:
                db.execute(
                    "INSERT OR REPLACE INTO recent VALUES (?, ?, ?, ?)",
                    (key, stamp.wall, stamp.mono, stamp.boot_id),
                )
            return next_seq, event

    @staticmethod
    def _is_recent(db: sqlite3.Connection, key: str, stamp: Stamp, window_s: float) -> bool:
        row = db.execute("SELECT wall, mono, boot_id FROM recent WHERE key=?", (key,)).fetchone()
        return row is not None and duplicate_window.holds(
            stamp, window_s, wall=row[0], mono=row[1], boot_id=row[2]
        )

    # -- the publisher's side ---------------------------------------------------------------------

    def pending(self, limit: int, after: int = 0, upto: int | None = None) -> list[Pending]:
        """Undelivered events with after < seq <= upto, oldest first (an index range scan)."""
        rows = self._db.execute(
            "SELECT seq, event_id, body FROM events WHERE delivered_at IS NULL AND seq > ? AND seq <= ?"
            " ORDER BY seq LIMIT ?",
            (after, upto if upto is not None else 2**62, limit),
        ).fetchall()
        return [Pending(*row) for row in rows]

    def mark_delivered(
        self, seqs: Iterable[int], at: float | None = None, *, unheard: Iterable[int] = ()
    ) -> None:
        """Records PUBACKs; those also in `unheard` (0x10) are kept past the grace until released."""
        seqs, unheard = list(seqs), list(unheard)
        if not seqs:
            return
        when = time.time() if at is None else at
        with self._write() as db:
            # A replayed or re-sent event keeps the time of its first acknowledgement.
            db.executemany(
                "UPDATE events SET delivered_at=? WHERE seq=? AND delivered_at IS NULL",
                [(when, s) for s in seqs],
            )
            db.executemany(
                "INSERT OR IGNORE INTO unheard SELECT seq FROM events WHERE seq=?", [(s,) for s in unheard]
            )

    def release(self, through_seq: int, at: float | None = None) -> int:
        """The collector committed every seq <= through_seq: those events count as delivered and
        purgeable after the grace, the unheard ones too. Returns how many unheard were released."""
        when = time.time() if at is None else at
        with self._write() as db:
            released = db.execute("DELETE FROM unheard WHERE seq <= ?", (through_seq,)).rowcount
            db.execute(
                "UPDATE events SET delivered_at=? WHERE delivered_at IS NULL AND seq <= ?",
                (when, through_seq),
            )
            return int(released)

    def replay_rows(self, limit: int, after: int, upto: int) -> list[Pending]:
        """Every event still kept with after < seq <= upto, delivered or not, oldest first."""
        rows = self._db.execute(
            "SELECT seq, event_id, body FROM events WHERE seq > ? AND seq <= ? ORDER BY seq LIMIT ?",
            (after, upto, limit),
        ).fetchall()
        return [Pending(*row) for row in rows]

    def dead_letter(self, seq: int, reason: str) -> None:
        """A permanent refusal by the broker: kept aside for a technician, never retried."""
        with self._write() as db:
            row = db.execute("SELECT event_id, body FROM events WHERE seq=?", (seq,)).fetchone()
            if row is None:
                return
            db.execute(
                "INSERT OR REPLACE INTO dead_letters VALUES (?, ?, ?, ?, ?)", (seq, *row, reason, time.time())
            )
            db.execute("DELETE FROM events WHERE seq=?", (seq,))
            db.execute("DELETE FROM unheard WHERE seq=?", (seq,))

    def retry_dead_letters(self) -> list[int]:
        """Puts every dead letter back among the undelivered events, for the publisher to send again;
        returns their seqs. Their age counts from the scan, as for any undelivered event."""
        with self._write() as db:
            rows = db.execute("SELECT seq, event_id, body, at FROM dead_letters ORDER BY seq").fetchall()
            back = []
            for seq, event_id, body, at in rows:
                event = json.loads(body)
                try:
                    wall = contract.parse_iso_utc(event.get("scanned_at")).timestamp()
                except ValueError:
                    wall = at
                restored = db.execute(
                    "INSERT OR IGNORE INTO events"
                    " (seq, event_id, body, created_wall, created_mono, boot_id, clock_synced)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (
                        seq,
                        event_id,
                        body,
                        wall,
                        float(event.get("monotonic_s", 0.0)),
                        str(event.get("boot_id", "")),
                        int(event.get("clock") == "synced"),
                    ),
                ).rowcount
                if restored:
                    db.execute("DELETE FROM dead_letters WHERE seq=?", (seq,))
                    back.append(int(seq))
            return back

    # -- clock truth --------------------------------------------------------------------------------

    def correct_unsynced(self, boot_id: str, wall_now: float, mono_now: float) -> int:
        """Once the clock is synchronised: re-stamps undelivered events of this boot from monotonic time."""
        with self._write() as db:
            rows = db.execute(
                "SELECT seq, body, created_mono FROM events"
                " WHERE delivered_at IS NULL AND clock_synced=0 AND boot_id=?",
                (boot_id,),
            ).fetchall()
            for seq, body, mono in rows:
                wall = wall_now - (mono_now - mono)
                db.execute(
                    "UPDATE events SET body=?, created_wall=?, clock_synced=1 WHERE seq=?",
                    (_dumps(contract.restamp(json.loads(body), wall)), wall, seq),
                )
            return len(rows)

    # -- retention ----------------------------------------------------------------------------------

    def purge(self, stamp: Stamp, delivered_grace_s: float, max_age_s: float, window_s: float) -> int:
        """Removes delivered events past the grace and expired window entries; drops undelivered
        (or unheard) events older than max_age_s. Returns how many of those were dropped.

        An event of this boot is aged by the monotonic clock only, so no step of the wall clock drops
        one. An event of an earlier boot has only its wall time left: only a synchronised clock ages
        it, and only one stamped by a synchronised clock (a clock-less Pi may have stamped 1970, and
        that must not be dropped as 56 years old). Window entries of this boot expire on monotonic
        time."""
        now = stamp.wall
        with self._write() as db:
            db.execute(
                "DELETE FROM events WHERE delivered_at IS NOT NULL AND delivered_at < ?"
                " AND seq NOT IN (SELECT seq FROM unheard)",
                (now - delivered_grace_s,),
            )
            # Within this boot the monotonic clock alone ages an event: a synchronised clock that steps
            # (a bad NTP answer, a GPS fix) moves the wall clock, never an event's true age.
            # An unheard event reached nobody: it ages like an undelivered one.
            dropped = db.execute(
                "DELETE FROM events WHERE (delivered_at IS NULL OR seq IN (SELECT seq FROM unheard))"
                " AND boot_id = ? AND created_mono < ?",
                (stamp.boot_id, stamp.mono - max_age_s),
            ).rowcount
            if stamp.synced:
                dropped += db.execute(
                    "DELETE FROM events WHERE delivered_at IS NULL AND boot_id != ? AND clock_synced = 1"
                    " AND created_wall < ?",
                    (stamp.boot_id, now - max_age_s),
                ).rowcount
                dropped += db.execute(
                    "DELETE FROM events WHERE seq IN (SELECT seq FROM unheard) AND boot_id != ?"
                    " AND clock_synced = 1 AND created_wall < ?",
                    (stamp.boot_id, now - max_age_s),
                ).rowcount
            db.execute("DELETE FROM unheard WHERE seq NOT IN (SELECT seq FROM events)")
            mono_cut, wall_cut = duplicate_window.expired_before(stamp, window_s)
            db.execute(
                "DELETE FROM recent WHERE (boot_id = ? AND mono < ?) OR (boot_id != ? AND wall < ?)",
                (stamp.boot_id, mono_cut, stamp.boot_id, wall_cut),
            )
            if dropped:
                self._bump(db, "dropped", dropped)
            return int(dropped)

    # -- counters that survive restarts -------------------------------------------------------------

    def add_counters(self, deltas: dict[str, int]) -> None:
        with self._write() as db:
            for name, delta in deltas.items():
                if delta:
                    self._bump(db, name, delta)

    @staticmethod
    def _bump(db: sqlite3.Connection, name: str, delta: int) -> None:
        db.execute(
            "INSERT INTO counters VALUES (?, ?)"
            " ON CONFLICT(name) DO UPDATE SET value = value + excluded.value",
            (name, delta),
        )


def _connect_read_only(path: Path) -> sqlite3.Connection:
    """For `status` and `history`: reads beside a running daemon without its write lock, on a read-only
    filesystem too, and never creates, migrates or moves a store."""
    if not path.is_file():
        raise StorageError(f"no store at {path}")
    uri = path.resolve().as_uri()
    try:
        return _probed(
            sqlite3.connect(
                f"{uri}?mode=ro", uri=True, timeout=10, isolation_level=None, check_same_thread=False
            )
        )
    except sqlite3.OperationalError as exc:
        # A clean stop removes the WAL index, which SQLite cannot recreate on a read-only filesystem;
        # there nobody can change the file either, which is what `immutable` promises.
        if not _read_only(path.parent):
            raise storage_error(exc, path.parent) from None
    except sqlite3.DatabaseError as exc:
        raise StorageError(f"store {path} is unreadable: {exc}") from None
    try:
        return _probed(
            sqlite3.connect(f"{uri}?immutable=1", uri=True, isolation_level=None, check_same_thread=False)
        )
    except sqlite3.DatabaseError as exc:
        raise StorageError(f"store {path} is unreadable: {exc}") from None


def _connect_for_reading(path: Path) -> sqlite3.Connection:
    """Whatever can be read of a store on a full disk: the file, read-only, or if SQLite cannot even
    open it so (no room for its WAL index), the file as immutable; with no file, an empty store."""
    if path.is_file():
        try:
            return _connect_read_only(path)
        except StorageError:
            pass
        try:
            uri = path.resolve().as_uri()
            return _probed(
                sqlite3.connect(f"{uri}?immutable=1", uri=True, isolation_level=None, check_same_thread=False)
            )
        except sqlite3.Error:
            pass
    db = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
    db.executescript(_SCHEMA)
    db.execute("INSERT INTO meta VALUES ('next_seq', '1')")
    return db


def _probed(db: sqlite3.Connection) -> sqlite3.Connection:
    """The connection, once a read went through (SQLite opens lazily); closed if it did not."""
    try:
        db.execute("SELECT value FROM meta WHERE key='next_seq'").fetchone()
    except sqlite3.Error:
        db.close()
        raise
    return db


@dataclass
class Salvage:
    """The rows a damaged store still gives; each table read on its own, so one bad table costs only
    itself."""

    events: list[tuple[Any, ...]] = field(default_factory=list)
    dead_letters: list[tuple[Any, ...]] = field(default_factory=list)
    recent: list[tuple[Any, ...]] = field(default_factory=list)
    counters: list[tuple[Any, ...]] = field(default_factory=list)
    meta: list[tuple[Any, ...]] = field(default_factory=list)
    next_seq: int = 1
    # Reads that failed on a damaged page (rows behind it may be lost).
    unreadable: int = 0


_EVENT_COLUMNS = "seq, event_id, body, created_wall, created_mono, boot_id, clock_synced"


def _salvage(path: Path) -> Salvage:
    """Everything still readable of a damaged store: undelivered (and unheard) events and dead letters
    (by their rowid b-tree, NOT INDEXED, since a damaged index must not hide a row), the duplicate
    window, the counters and the meta values (next seq, and whatever identity the store keeps there)."""
    out = Salvage()
    if not path.exists():
        return out
    try:
        db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, isolation_level=None)
    except sqlite3.Error:
        return out
    try:
        # An unheard event was "delivered" to nobody: until the collector confirms it, it is as
        # undelivered as any, so it comes back to be sent again (consumers drop repeats by event_id).
        unheard = {int(row[0]) for row in _readable(db, "SELECT seq FROM unheard NOT INDEXED", out)}
        rows = _rows_by_rowid(
            db, f"SELECT {_EVENT_COLUMNS}, delivered_at FROM events NOT INDEXED WHERE 1", out
        )
        out.events = [row[:-1] for row in rows if row[-1] is None or row[0] in unheard]
        out.dead_letters = _rows_by_rowid(db, "SELECT * FROM dead_letters NOT INDEXED WHERE 1", out)
        out.recent = _readable(db, "SELECT key, wall, mono, boot_id FROM recent NOT INDEXED", out)
        out.counters = _readable(db, "SELECT name, value FROM counters NOT INDEXED", out)
        meta = _readable(db, "SELECT key, value FROM meta NOT INDEXED", out)
        out.meta = [(k, v) for k, v in meta if k not in ("next_seq", "schema_version")]
        out.next_seq = max([1, *(int(v) for k, v in meta if k == "next_seq" and str(v).isdigit())])
    finally:
        db.close()
    return out


def _readable(db: sqlite3.Connection, sql: str, out: Salvage) -> list[tuple[Any, ...]]:
    rows: list[tuple[Any, ...]] = []
    try:
        for row in db.execute(sql):
            rows.append(tuple(row))
    except sqlite3.DatabaseError:
        out.unreadable += 1
    return rows


def _rows_by_rowid(db: sqlite3.Connection, sql: str, out: Salvage) -> list[tuple[Any, ...]]:
    """Rows of a table whose first column is its rowid (seq), in order, stepping over damaged pages:
    a read that fails resumes by a seek past the last good row, probing ever further ahead."""
    rows: list[tuple[Any, ...]] = []
    after = 0
    while True:
        try:
            for row in db.execute(f"{sql} AND seq > ? ORDER BY seq", (after,)):
                rows.append(tuple(row))
                after = int(row[0])
            return rows
        except sqlite3.DatabaseError:
            out.unreadable += 1
        # A seek into the damaged page fails, one past it works: find the first seq that works.
        bad, good = after, after + 1
        while not _seekable(db, sql, good):
            bad, good = good, after + 2 * (good - after)
            if good - after > SALVAGE_PROBE_LIMIT:
                return rows
        while good - bad > 1:
            middle = (bad + good) // 2
            bad, good = (bad, middle) if _seekable(db, sql, middle) else (middle, good)
        after = good


def _seekable(db: sqlite3.Connection, sql: str, after: int) -> bool:
    try:
        db.execute(f"{sql} AND seq > ? ORDER BY seq LIMIT 1", (after,)).fetchall()
    except sqlite3.DatabaseError:
        return False
    return True


def _dumps(event: dict[str, Any]) -> str:
    return json.dumps(event, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
