"""The hot-plug supervisor: one reader per device the config names, kept alive across unplugs, replugs
and other processes holding the device. The keyboard and serial sources are each a `HotplugSource`.

Hot-plug is a rescan (every second by default), not inotify. Python has no inotify without ctypes or
another dependency; udev creates the by-id links and sets permissions a moment after the kernel node
appears, so an inotify watcher would need a retry loop anyway; and a rescan costs a few stat() calls
and small sysfs reads (inventory.py). One second keeps a replug well inside the 3 s budget.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping, Sequence
from typing import Protocol

from device.errors import SourceBusy, SourceError, SourceUnavailable
from device.scan import Scan
from device.sources import SourceState

log = logging.getLogger(__name__)

QUEUE_SIZE = 64


class Reader(Protocol):
    """One opened physical reader."""

    def scans(self) -> AsyncIterator[Scan]:
        """Yields until the device goes away, then raises SourceUnavailable."""
        ...

    def close(self) -> None:
        """Releases the device. Idempotent."""
        ...


class Hotplug:
    """Keeps one reader task per device the config names, reopening after unplugs and busy spells.

    `find` says which readers are present per config line; `open_reader` opens one and raises
    SourceBusy (held by another process), SourceUnavailable (gone) or SourceError (anything else).
    Busy and faulty devices are retried every `retry_s`; missing ones at each rescan.
    """

    def __init__(
        self,
        kind: str,
        selectors: Sequence[str],
        find: Callable[[], Mapping[str, Sequence[str]]],
        open_reader: Callable[[str], Reader],
        *,
        rescan_s: float,
        retry_s: float,
    ) -> None:
        self._kind = kind
        self._selectors = list(selectors)
        self._find = find
        self._open = open_reader
        self._rescan_s = rescan_s
        self._retry_s = retry_s
        self._states: dict[str, SourceState] = {}
        self._readers: dict[str, Reader] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._retry_at: dict[str, float] = {}
        # Config line -> every reader it has named so far.
        self._seen: dict[str, set[str]] = {}
        # Config lines already reported as matching nothing, so the log says it once.
        self._announced: set[str] = set()
        self._closed = False

    @property
    def state(self) -> dict[str, SourceState]:
        # A config line that never matched anything shows as itself, so status names what is missing.
        states: dict[str, SourceState] = {
            sel: "disconnected" for sel in self._selectors if not self._seen.get(sel)
        }
        states.update(self._states)
        return states

    async def scans(self) -> AsyncGenerator[Scan, None]:
        queue: asyncio.Queue[Scan] = asyncio.Queue(QUEUE_SIZE)
        next_rescan = time.monotonic()
        try:
            while not self._closed:
                now = time.monotonic()
                if now >= next_rescan:
                    self._rescan(queue, now)
                    next_rescan = now + self._rescan_s
                try:
                    scan = await asyncio.wait_for(queue.get(), max(0.0, next_rescan - time.monotonic()))
                except TimeoutError:
                    continue
                yield scan
        finally:
            self._stop_all()

    def close(self) -> None:
        self._closed = True
        self._stop_all()

    def _rescan(self, queue: asyncio.Queue[Scan], now: float) -> None:
        try:
            found = self._find()
        except OSError as exc:
            log.warning("%s: cannot list devices: %s", self._kind, exc)
            return
        for selector, names in found.items():
            self._seen.setdefault(selector, set()).update(names)
            if not self._seen[selector] and selector not in self._announced:
                self._announced.add(selector)
                log.warning("%s scanner %s: no such device attached; waiting for it", self._kind, selector)
        present = {name for names in found.values() for name in names}
        for name, state in list(self._states.items()):
            if name not in present and name not in self._tasks and state != "disconnected":
                self._set(name, "disconnected", "no longer present")
        for name in sorted(present):
            if name in self._tasks or self._retry_at.get(name, 0.0) > now:
                continue
            self._start(name, queue, now)

    def _start(self, name: str, queue: asyncio.Queue[Scan], now: float) -> None:
        try:
            reader = self._open(name)
        except SourceBusy as exc:
            self._retry_at[name] = now + self._retry_s
            self._set(name, "busy", str(exc))
            return
        except SourceUnavailable as exc:
            self._set(name, "disconnected", str(exc))
            return
        except SourceError as exc:
            self._retry_at[name] = now + self._retry_s
            self._set(name, "fault", str(exc))
            return
        self._readers[name] = reader
        self._set(name, "connected", "open")
        self._tasks[name] = asyncio.create_task(self._pump(name, reader, queue), name=f"{self._kind}:{name}")

    async def _pump(self, name: str, reader: Reader, queue: asyncio.Queue[Scan]) -> None:
        try:
            async for scan in reader.scans():
                await queue.put(scan)
            self._set(name, "disconnected", "closed")
        except SourceUnavailable as exc:
            self._set(name, "disconnected", str(exc))
        except SourceError as exc:
            self._retry_at[name] = time.monotonic() + self._retry_s
            self._set(name, "fault", str(exc))
        except Exception:
            log.exception("%s: reader %s failed", self._kind, name)
            self._retry_at[name] = time.monotonic() + self._retry_s
            self._set(name, "fault", "reader failed")
        finally:
            reader.close()
            self._readers.pop(name, None)
            self._tasks.pop(name, None)

    def _set(self, name: str, state: SourceState, why: str) -> None:
        if self._states.get(name) == state:
            return
        self._states[name] = state
        if state == "connected":
            log.info("%s scanner %s connected", self._kind, name)
        elif state == "disconnected":
            log.warning("%s scanner %s disconnected: %s", self._kind, name, why)
        else:
            log.error(
                "%s scanner %s %s: %s (retrying every %gs)", self._kind, name, state, why, self._retry_s
            )

    def _stop_all(self) -> None:
        for task in list(self._tasks.values()):
            with contextlib.suppress(RuntimeError):  # the loop may already be closed at shutdown
                task.cancel()
        for reader in list(self._readers.values()):
            reader.close()


class HotplugSource:
    """A source whose readers come and go: its state, scans and close are its Hotplug's."""

    _hotplug: Hotplug

    @property
    def state(self) -> dict[str, SourceState]:
        return self._hotplug.state

    def scans(self) -> AsyncGenerator[Scan, None]:
        return self._hotplug.scans()

    def close(self) -> None:
        self._hotplug.close()
