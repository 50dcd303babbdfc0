"""sd_notify: tell systemd the daemon is ready, alive, what it is doing, and that it is stopping.

The protocol is one datagram of `KEY=value` lines on the AF_UNIX socket named by NOTIFY_SOCKET, so this
speaks it directly instead of through the `sdnotify` package, which encodes as latin-1 (a STATUS with
a Vietnamese location name would be dropped), swallows every exception including KeyboardInterrupt,
blocks when the receiver's queue is full, and knows nothing of WATCHDOG_USEC or WATCHDOG_PID.

Outside systemd (NOTIFY_SOCKET unset) every call is a no-op, so the daemon needs no branches.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping

log = logging.getLogger(__name__)


class Notifier:
    """One notification socket. Sends never block and never raise: a lost datagram is logged."""

    def __init__(self, address: str | None, *, watchdog_usec: int | None = None) -> None:
        self._address = _socket_address(address) if address else None
        self._watchdog_usec = watchdog_usec if watchdog_usec and watchdog_usec > 0 else None
        self._sock: socket.socket | None = None
        self._failing = False

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Notifier:
        """The notifier systemd set up for this process (NOTIFY_SOCKET, WATCHDOG_USEC, WATCHDOG_PID)."""
        env = os.environ if environ is None else environ
        return cls(env.get("NOTIFY_SOCKET") or None, watchdog_usec=_watchdog_usec(env))

    @property
    def enabled(self) -> bool:
        return self._address is not None

    def ready(self, status: str | None = None) -> None:
        """READY=1: storage and sources are up (never wait for the broker to send this)."""
        self._send("READY=1", status)

    def status(self, text: str) -> None:
        """STATUS=: the one-line summary `systemctl status` shows."""
        self._send(None, text)

    def stopping(self, status: str | None = None) -> None:
        self._send("STOPPING=1", status)

    def watchdog(self) -> None:
        """WATCHDOG=1: call from the event loop itself, so a stuck loop stops the pings."""
        self._send("WATCHDOG=1", None)

    def watchdog_interval(self) -> float | None:
        """Seconds between pings (half of WatchdogSec), or None when no watchdog is set for us."""
        if self._address is None or self._watchdog_usec is None:
            return None
        return self._watchdog_usec / 2_000_000

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def _send(self, assignment: str | None, status: str | None) -> None:
        if self._address is None:
            return
        lines = [assignment] if assignment else []
        if status is not None:
            # One datagram is newline-separated assignments: a newline in the text would start a new one.
            lines.append("STATUS=" + " ".join(status.split()))
        if not lines:
            return
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                self._sock.setblocking(False)
            self._sock.sendto("\n".join(lines).encode("utf-8"), self._address)
        except OSError as exc:
            # A full queue or a vanished socket must not stall the loop the watchdog is watching.
            if not self._failing:
                log.warning("sd_notify to %s failed: %s", _printable(self._address), exc)
            self._failing = True
            return
        if self._failing:
            log.info("sd_notify works again")
            self._failing = False


def _socket_address(address: str) -> str:
    # "@name" is Linux's abstract namespace, spelled with a leading NUL on the wire.
    return "\0" + address[1:] if address.startswith("@") else address


def _printable(address: str) -> str:
    return "@" + address[1:] if address.startswith("\0") else address


def _watchdog_usec(env: Mapping[str, str]) -> int | None:
    pid = env.get("WATCHDOG_PID")
    # systemd sets WATCHDOG_PID to the main process; a child that inherited the environment must not ping.
    if pid is not None and (not pid.strip().isdigit() or int(pid) != os.getpid()):
        return None
    raw = env.get("WATCHDOG_USEC", "").strip()
    if not raw.isdigit():
        if raw:
            log.warning("ignoring WATCHDOG_USEC=%r: not a number of microseconds", raw)
        return None
    return int(raw) or None
