"""A small TCP proxy between the daemon and the broker, to cut the network in two ways:
`reset()` closes every connection (as a dropped link), `blackhole()` keeps them open but swallows
every byte, so only MQTT keepalive can notice.

With `puback`, the broker's PUBACKs to the client pass through it: it returns the MQTT 5 reason code to
send instead, or None to withhold the PUBACK (a broker that never answers, or answers 0x87 or 0x99
while a real mosquitto stays behind it)."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable

from tests.support.mosquitto import free_port

# (packet id, reason code) -> the reason code to pass on, or None to withhold the PUBACK.
PubackFilter = Callable[[int, int], int | None]
PUBACK = 0x40


class Proxy:
    def __init__(self, target_port: int, host: str = "127.0.0.1", puback: PubackFilter | None = None) -> None:
        self.target = (host, target_port)
        self.puback = puback
        self.port = free_port()
        self._listener = socket.create_server((host, self.port))
        self._listener.settimeout(0.2)
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        self._swallow = threading.Event()
        self._refuse = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept_loop, daemon=True)
        self._thread.start()

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            if self._refuse.is_set():
                client.close()
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=2)
            except OSError:
                client.close()
                continue
            # The timeout was for connecting: a link quiet for a while is no broken link.
            upstream.settimeout(None)
            with self._lock:
                self._conns += [client, upstream]
            threading.Thread(target=self._pipe, args=(client, upstream), daemon=True).start()
            back = self._pipe if self.puback is None else self._filter_pipe
            threading.Thread(target=back, args=(upstream, client), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                if not self._swallow.is_set():
                    dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def _filter_pipe(self, src: socket.socket, dst: socket.socket) -> None:
        """Broker to client, packet by packet, with the PUBACKs through the filter."""
        buffer = b""
        try:
            while data := src.recv(65536):
                buffer += data
                while (packet := _next_packet(buffer)) is not None:
                    buffer = buffer[len(packet) :]
                    if self._swallow.is_set():
                        continue
                    dst.sendall(self._rewrite(packet))
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def _rewrite(self, packet: bytes) -> bytes:
        assert self.puback is not None
        if packet[0] != PUBACK:
            return packet
        body = packet[_header_length(packet) :]
        packet_id = int.from_bytes(body[:2], "big")
        code = self.puback(packet_id, body[2] if len(body) > 2 else 0)
        if code is None:
            return b""
        return bytes([PUBACK, 3]) + body[:2] + bytes([code])

    def reset(self) -> None:
        with self._lock:
            conns, self._conns = self._conns, []
        for s in conns:
            # shutdown() wakes the pipe threads blocked in recv(); close() alone would not drop anything.
            with contextlib.suppress(OSError):
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                s.shutdown(socket.SHUT_RDWR)
            s.close()

    def blackhole(self, on: bool = True) -> None:
        """Swallow bytes on open connections and refuse new ones (a dead route)."""
        if on:
            self._swallow.set()
            self._refuse.set()
        else:
            self.reset()
            self._swallow.clear()
            self._refuse.clear()

    def close(self) -> None:
        self._stop.set()
        self._listener.close()
        self.reset()


def _header_length(packet: bytes) -> int:
    """Bytes of the fixed header: the type byte and the variable-length remaining length."""
    n = 1
    while packet[n] & 0x80:
        n += 1
    return n + 1


def _next_packet(buffer: bytes) -> bytes | None:
    """The first whole MQTT packet in `buffer`, or None while it is incomplete."""
    length, shift, n = 0, 0, 1
    while True:
        if n >= len(buffer):
            return None
        byte = buffer[n]
        length |= (byte & 0x7F) << shift
        shift += 7
        n += 1
        if not byte & 0x80:
            break
    return buffer[: n + length] if len(buffer) >= n + length else None
