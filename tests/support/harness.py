"""The daemon in this process, in this event loop: scans in through a test Source, answers out of the
console feedback, with an injected clock and a real broker. For tests that step clocks and cut links
while the daemon runs."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

from device.clock import FakeClock
from device.daemon import Daemon, build
from device.feedback.console import ConsoleFeedback
from device.notify import Notifier
from device.scan import Scan, SourceKind
from device.settings import load_settings
from device.sources import SourceState
from tests.support.daemon import write_config
from tests.support.wait import until

# 1970-01-01T01:00:00Z: what a Pi without a real-time clock may believe before NTP.
EPOCH_HOUR = 3600.0
TRUE_NOW = 1_750_000_000.0
WAIT_S = 10.0


class PushSource:
    """The test backend of the Source protocol: the test pushes texts, the daemon's pump reads them."""

    kind: SourceKind = "stdin"

    def __init__(self) -> None:
        self._texts: asyncio.Queue[str] = asyncio.Queue()

    @property
    def state(self) -> dict[str, SourceState]:
        return {"push": "connected"}

    def push(self, text: str) -> None:
        self._texts.put_nowait(text)

    async def scans(self) -> AsyncIterator[Scan]:
        while True:
            yield Scan(text=await self._texts.get(), source="stdin", reader="push")

    def close(self) -> None:
        return None


class Harness:
    """One Daemon running in this event loop; scans in through PushSource, answers out of the console."""

    def __init__(
        self,
        tmp_path: Path,
        port: int,
        clock: FakeClock,
        *,
        notifier: Notifier | None = None,
        **sections: Any,
    ) -> None:
        config = write_config(tmp_path / "device.toml", port=port, storage=tmp_path / "state", **sections)
        self.settings = load_settings(config)
        self.clock = clock
        self.source = PushSource()
        self.out = io.StringIO()
        self.parts = build(
            self.settings,
            clock=clock,
            feedback=ConsoleFeedback(self.out),
            sources=[self.source],
            notifier=notifier or Notifier(None),
        )
        self.daemon = Daemon(self.parts)
        self.task: asyncio.Task[int] | None = None

    async def start(self) -> None:
        self.task = asyncio.create_task(self.daemon.run())
        # run() is synchronous up to its wait for the stop: once it recorded the start, it is running.
        await until(lambda: any(r.get("event") == "start" for r in self.parts.audit.read()), "never started")

    async def stop(self) -> int:
        assert self.task is not None
        self.daemon.stop()
        return await asyncio.wait_for(self.task, WAIT_S)

    async def answer(self, text: str) -> dict[str, Any]:
        seen = len(self.out.getvalue().splitlines())
        self.source.push(text)
        await until(lambda: len(self.out.getvalue().splitlines()) > seen, f"no answer to {text}")
        return dict(json.loads(self.out.getvalue().splitlines()[seen]))

    def stored(self) -> dict[str, dict[str, Any]]:
        """The events still in the store, by event_id, as the publisher would send them."""
        return {e["event_id"]: e for e in self.parts.outbox.history()}


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(scenario(), 60))
