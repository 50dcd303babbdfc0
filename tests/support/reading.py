"""Driving a scan source in tests: run its scans() in the background and collect what it yields."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

from device.scan import Scan
from device.sources import Source
from tests.support.slowdown import scaled
from tests.support.wait import until


def run(body: Callable[[], Coroutine[Any, Any, None]], timeout: float = 15.0) -> None:
    async def bounded() -> None:
        async with asyncio.timeout(scaled(timeout)):
            await body()

    asyncio.run(bounded())


class Reading:
    """`async with Reading(source) as r:` collects scans; closes the source on the way out."""

    def __init__(self, source: Source) -> None:
        self.source = source
        self.scans: list[Scan] = []
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Reading:
        self._task = asyncio.create_task(self._collect(self.source.scans()))
        return self

    async def _collect(self, scans: AsyncIterator[Scan]) -> None:
        async for scan in scans:
            self.scans.append(scan)

    async def next(self, count: int = 1, timeout: float = 3.0) -> list[Scan]:
        start = len(self.scans)
        await until(lambda: len(self.scans) >= start + count, f"{count} scans", timeout)
        return self.scans[start : start + count]

    async def connected(self, name: str, timeout: float = 3.0) -> None:
        await until(lambda: self.source.state.get(name) == "connected", f"{name} connected", timeout)

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        self.source.close()
