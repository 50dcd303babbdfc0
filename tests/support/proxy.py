"""A small TCP proxy between the daemon and the broker, to cut the network in two ways:
`reset()` closes every connection (as a dropped link), `blackhole()` keeps them open but swallows
every byte, so only MQTT keepalive can notice."""

from __future__ import annotations

import contextlib
import socket
import threading

from tests.support.mosquitto import free_port


class Proxy:
    def __init__(self, target_port: int, host: str = "127.0.0.1") -> None:
        self.target = (host, target_port)
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
            with self._lock:
                self._conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

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
