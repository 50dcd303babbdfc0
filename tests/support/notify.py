"""systemd's end of sd_notify for tests: an abstract AF_UNIX datagram socket that collects every
notification with the monotonic time it arrived. Device and collector tests hand its `address` over as
NOTIFY_SOCKET."""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator

import pytest

from tests.support.wait import wait_until


class NotifySocket:
    """systemd's end: collects every datagram with the monotonic time it arrived."""

    def __init__(self) -> None:
        # The abstract namespace needs no path (a deep pytest tmp_path can exceed sun_path's 108 bytes).
        self.address = f"@qr-checkin-test-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.bind("\0" + self.address[1:])
        self._sock.settimeout(0.1)
        self.received: list[tuple[float, list[str]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._collect, daemon=True)
        self._thread.start()

    def _collect(self) -> None:
        while not self._stop.is_set():
            try:
                data = self._sock.recv(4096)
            except TimeoutError:
                continue
            self.received.append((time.monotonic(), data.decode("utf-8").split("\n")))

    def times_of(self, assignment: str) -> list[float]:
        return [at for at, lines in list(self.received) if assignment in lines]

    def lines(self) -> list[str]:
        """Every line received, in order."""
        return [line for _, lines in list(self.received) for line in lines]

    def statuses(self) -> list[str]:
        return [line for _, lines in list(self.received) for line in lines if line.startswith("STATUS=")]

    def wait_for(self, predicate: Callable[[], object], timeout: float) -> None:
        wait_until(predicate, timeout, lambda: f"received {self.received[-5:]}:")

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self._sock.close()


@pytest.fixture
def notify() -> Iterator[NotifySocket]:
    ns = NotifySocket()
    yield ns
    ns.close()
