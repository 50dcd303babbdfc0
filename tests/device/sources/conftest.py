"""What the source tests share: a serial scanner on a pty, under the stable by-id link a udev rule makes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.pty_scanner import PtyScanner


@pytest.fixture
def scanner(tmp_path: Path) -> Iterator[PtyScanner]:
    pty = PtyScanner(tmp_path / "dev/serial/by-id/usb-Test_QR_Scanner-if00").plug()
    yield pty
    if pty.plugged:
        pty.unplug()
