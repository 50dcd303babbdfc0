from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.extras import ExtraModule
from tests.support.mosquitto import Mosquitto
from tests.support.slowdown import SLOWDOWN, scaled


def pytest_pycollect_makemodule(module_path: Path, parent: pytest.Collector) -> pytest.Module:
    return ExtraModule.from_parent(parent, path=module_path)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test's own timeout marker is sized for a native CPU, as the ini's limit is (which
    scripts/test_arm.sh scales through PYTEST_TIMEOUT): scaled by the same factor, 1 natively."""
    if SLOWDOWN == 1.0:
        return
    for item in items:
        marker = item.get_closest_marker("timeout")
        if marker is not None and marker.args:
            item.add_marker(pytest.mark.timeout(scaled(float(marker.args[0]))), append=False)


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
