"""Waiting in tests for something another thread, process or task does: one helper for plain code and
one for a running event loop, so every test waits (and fails) the same way. Timeouts stretch by the
emulated CPU's measured slowdown (tests/support/slowdown.py; 1 natively)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from tests.support.slowdown import scaled

Why = str | Callable[[], str]


def wait_until(
    condition: Callable[[], object], timeout: float = 30.0, what: Why = "condition", poll_s: float = 0.02
) -> None:
    """Returns once `condition()` is true; AssertionError naming `what` (or its call) after `timeout`."""
    deadline = time.monotonic() + scaled(timeout)
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{_said(what)} not met within {timeout}s")
        time.sleep(poll_s)


async def until(condition: Callable[[], object], what: Why = "condition", timeout: float = 10.0) -> None:
    """The same inside an event loop: the loop keeps running the code under test while this waits."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + scaled(timeout)
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"{_said(what)} not met within {timeout}s")
        await asyncio.sleep(0.01)


def _said(what: Why) -> str:
    return what if isinstance(what, str) else what()
