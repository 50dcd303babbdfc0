"""device.notify against a real AF_UNIX datagram socket standing in for systemd."""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from device.notify import Notifier


@pytest.fixture
def systemd_socket(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(2.0)
    try:
        yield sock, path
    finally:
        sock.close()


def receive(sock: socket.socket) -> list[str]:
    return sock.recv(4096).decode("utf-8").split("\n")


def test_ready_status_watchdog_and_stopping_arrive_as_datagrams(
    systemd_socket: tuple[socket.socket, str],
) -> None:
    sock, path = systemd_socket
    notifier = Notifier.from_env({"NOTIFY_SOCKET": path})
    assert notifier.enabled

    notifier.ready("up: backlog 0, scanner hid connected")
    assert receive(sock) == ["READY=1", "STATUS=up: backlog 0, scanner hid connected"]
    notifier.watchdog()
    assert receive(sock) == ["WATCHDOG=1"]
    notifier.status("Cổng 1: 12 scans\nsecond line")
    assert receive(sock) == ["STATUS=Cổng 1: 12 scans second line"]
    notifier.stopping()
    assert receive(sock) == ["STOPPING=1"]
    notifier.close()


def test_abstract_socket_address() -> None:
    name = f"qr-checkin-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(2.0)
        Notifier.from_env({"NOTIFY_SOCKET": "@" + name}).ready()
        assert receive(sock) == ["READY=1"]


def test_without_notify_socket_everything_is_a_no_op() -> None:
    notifier = Notifier.from_env({"WATCHDOG_USEC": "2000000"})
    assert not notifier.enabled
    assert notifier.watchdog_interval() is None
    notifier.ready("x")
    notifier.status("x")
    notifier.watchdog()
    notifier.stopping()


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"WATCHDOG_USEC": "2000000"}, 1.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid())}, 15.0),
        ({"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": str(os.getpid() + 1)}, None),
        ({"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": "garbage"}, None),
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "soon"}, None),
        ({}, None),
    ],
)
def test_watchdog_interval_is_half_of_watchdog_usec_for_this_process(
    tmp_path: Path, env: dict[str, str], expected: float | None
) -> None:
    notifier = Notifier.from_env({"NOTIFY_SOCKET": str(tmp_path / "sock"), **env})
    assert notifier.watchdog_interval() == expected


def test_a_vanished_socket_is_logged_once_and_never_raises(
    systemd_socket: tuple[socket.socket, str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="device.notify")
    sock, path = systemd_socket
    notifier = Notifier.from_env({"NOTIFY_SOCKET": path})
    sock.close()
    os.unlink(path)
    for _ in range(3):
        notifier.watchdog()
    assert [r.levelname for r in caplog.records] == ["WARNING"]

    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as again:
        again.bind(path)
        again.settimeout(2.0)
        notifier.watchdog()
        assert receive(again) == ["WATCHDOG=1"]
    assert "works again" in caplog.records[-1].getMessage()


def test_a_full_receiver_queue_does_not_block(systemd_socket: tuple[socket.socket, str]) -> None:
    sock, path = systemd_socket
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1)
    notifier = Notifier.from_env({"NOTIFY_SOCKET": path})
    # Far more than a receive queue holds (net.unix.max_dgram_qlen is 10 to 512): a blocking send hangs here.
    for _ in range(2000):
        notifier.watchdog()
    assert receive(sock) == ["WATCHDOG=1"]
