"""Imports point down: the ground floor loads no room above it, and the read-only commands load no
network, crypto or id library (a technician's `status` on a Pi with a broken paho still answers).

Each probe runs in a fresh interpreter, because this test process has long since imported everything.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from device.store import DB_NAME, Outbox
from tests.support.daemon import ROOT, write_config

HEAVY = ("paho", "nacl", "uuid6", "evdev", "serial", "gpiozero", "cv2", "picamera2", "zxingcpp")
# The rooms above the ground floor: a ground-floor module that loads one of them imports upward.
UPPER = ("device.sources", "device.feedback", "device.vision", "device.publisher", "device.daemon")
GROUND = ("device.settings", "device.contract", "device.scan", "device.errors", "device.selectors")

PROBE = """
import contextlib, io, json, sys
from device.cli import main
with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
    code = main(sys.argv[1:])
print(json.dumps({"code": code, "modules": sorted(sys.modules)}))
"""


def loaded_by(*argv: str) -> tuple[int, list[str]]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *argv], capture_output=True, text=True, cwd=ROOT, timeout=60, check=True
    )
    result = json.loads(done.stdout.splitlines()[-1])
    return result["code"], result["modules"]


def heavy(modules: list[str]) -> list[str]:
    return sorted({name for name in modules if name.split(".")[0] in HEAVY})


@pytest.fixture
def config(tmp_path: Path) -> Path:
    state = tmp_path / "state"
    state.mkdir()
    Outbox(state / DB_NAME).close()
    return write_config(tmp_path / "device.toml", port=1, storage=state)


@pytest.mark.parametrize("command", [["status", "--json"], ["history", "--format", "json"]])
def test_a_read_only_command_on_a_store_loads_no_network_crypto_or_id_library(
    config: Path, command: list[str]
) -> None:
    code, modules = loaded_by(*command, "--config", str(config))
    assert code == 0
    assert heavy(modules) == []


def test_inspect_loads_no_network_crypto_or_id_library() -> None:
    code, modules = loaded_by("inspect", "not a card")
    assert code in (0, 1)
    assert heavy(modules) == []


@pytest.mark.parametrize("module", GROUND)
def test_the_ground_floor_imports_nothing_above_it(module: str) -> None:
    probe = f"import sys, json, {module}; print(json.dumps(sorted(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, check=True)
    modules = json.loads(done.stdout)
    assert [name for name in modules if name.startswith(UPPER)] == []
    assert heavy(modules) == []
