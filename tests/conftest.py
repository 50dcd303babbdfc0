from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.mosquitto import Mosquitto

# Fixtures that device and collector tests share, defined beside the helpers they wrap.
pytest_plugins = ["tests.support.notify"]


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    if shutil.which("mosquitto") is None and not Path("/usr/sbin/mosquitto").exists():
        pytest.fail("mosquitto is not installed: run `make setup` (it installs it when root)")
    b = Mosquitto(tmp_path / "broker").start()
    try:
        yield b
    finally:
        b.kill()
