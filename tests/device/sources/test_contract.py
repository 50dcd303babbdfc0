"""One suite for the `Source` protocol, run over every kind of source on the real part behind it (as
gpiozero runs one suite over every pin factory): stdin on a pipe, serial on a pty pair, the keyboard
source on evdev's own read loop (a pipe-backed InputDevice), and the camera on replayed image files
and, live, on the picamera2 adapter against the fake picamera2 at the import boundary.

A new kind of source gets a backend fixture here; the table test below fails until it does.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import time
import typing
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from device.scan import SourceKind
from device.settings import (
    CameraSourceSettings,
    HidSourceSettings,
    ScannerSettings,
    SerialSourceSettings,
    SourceName,
    StdinSourceSettings,
)
from device.sources import SOURCES, Source, SourceState, build_sources
from device.sources.camera import CameraSource
from device.sources.hid import HidSource
from device.sources.inventory import Inventory
from device.sources.serial import SerialSource
from device.sources.stdin import StdinSource
from tests.support.evdev_pipe import PipeBus
from tests.support.fake_picamera2 import Scene, install
from tests.support.frames import Condition, render
from tests.support.pty_scanner import PtyScanner
from tests.support.reading import Reading, run

CODE = "EMP-004711"
# Long enough for the camera's confirming read and the replay to still be running when the test looks.
CAMERA_FRAMES = 8
CAMERA_FPS = 20.0


@dataclass
class Backend:
    """A source on its real part: `show()` makes its reader read CODE once."""

    source: Source
    reader: str
    show: Callable[[], None]


@pytest.fixture
def stdin_backend() -> Iterator[Backend]:
    read_end, write_end = os.pipe()
    stream = os.fdopen(read_end, "rb", buffering=0)
    source = StdinSource(StdinSourceSettings(direction="out"), stream=stream)

    def show() -> None:
        os.write(write_end, CODE.encode() + b"\n")

    yield Backend(source, "stdin", show)
    os.close(write_end)
    stream.close()


@pytest.fixture
def serial_backend(tmp_path: Path) -> Iterator[Backend]:
    scanner = PtyScanner(tmp_path / "dev/serial/by-id/usb-Test_QR_Scanner-if00").plug()
    settings = SerialSourceSettings(port=str(scanner.link), direction="out", rescan_s=0.05)
    source = SerialSource(settings, inventory=Inventory(tmp_path))
    yield Backend(source, str(scanner.link), lambda: scanner.write(CODE.encode() + b"\r\n"))
    if scanner.plugged:
        scanner.unplug()


@pytest.fixture
def hid_backend(tmp_path: Path) -> Iterator[Backend]:
    bus = PipeBus(tmp_path / "root")
    scanner = bus.add().plug()
    settings = HidSourceSettings(devices=[str(scanner.link)], direction="out", rescan_s=0.05)
    source = HidSource(settings, open_device=bus.open_device, inventory=Inventory(bus.root))
    yield Backend(source, str(scanner.link), lambda: scanner.type(CODE))
    bus.close()


def _code_frame() -> np.ndarray:
    return render(CODE, Condition(module_px=5.0), seed=1)[0]


@pytest.fixture
def camera_backend(tmp_path: Path) -> Backend:
    folder = tmp_path / "frames"
    folder.mkdir()
    first = folder / "0000.png"
    Image.fromarray(_code_frame()).save(first)
    for n in range(1, CAMERA_FRAMES):
        shutil.copyfile(first, folder / f"{n:04d}.png")
    settings = CameraSourceSettings(backend="files", path=folder, max_fps=CAMERA_FPS, direction="out")
    # A replay shows its frames whatever the test does: the code is "shown" from the start.
    return Backend(CameraSource(settings), "files", lambda: None)


@pytest.fixture
def picamera2_backend(monkeypatch: pytest.MonkeyPatch) -> Backend:
    # A live camera with the card held up from the first frame to the last.
    install(monkeypatch, Scene([_code_frame()]))
    settings = CameraSourceSettings(backend="picamera2", max_fps=CAMERA_FPS, direction="out")
    return Backend(CameraSource(settings), "camera0", lambda: None)


# Backend fixture -> the kind of source it runs.
BACKENDS: dict[str, SourceKind] = {
    "stdin_backend": "stdin",
    "serial_backend": "serial",
    "hid_backend": "hid",
    "camera_backend": "camera",
    "picamera2_backend": "camera",
}


@pytest.fixture(params=sorted(BACKENDS))
def backend(request: pytest.FixtureRequest) -> Backend:
    found: Backend = request.getfixturevalue(request.param)
    assert found.source.kind == BACKENDS[request.param]
    return found


def test_every_kind_in_the_table_has_a_backend_here_and_agrees_with_the_literals() -> None:
    kinds = set(typing.get_args(SourceKind))
    assert set(SOURCES) == set(BACKENDS.values()) == kinds == set(typing.get_args(SourceName))
    assert set(SOURCES) <= set(ScannerSettings.model_fields), "each kind has its scanner.<kind> section"


def test_the_kind_is_the_table_entry(backend: Backend) -> None:
    source = backend.source
    entry = SOURCES[source.kind]
    assert (type(source).__module__, type(source).__name__) == (entry.module, entry.cls)
    source.close()


def test_build_sources_makes_each_configured_kind_from_its_own_section(tmp_path: Path) -> None:
    scanner = ScannerSettings(
        sources=["stdin", "serial"], serial=SerialSourceSettings(port=str(tmp_path / "none"), direction="in")
    )
    sources = build_sources(scanner)
    try:
        assert [type(s) for s in sources] == [StdinSource, SerialSource]
        assert list(sources[1].state) == [str(tmp_path / "none")]
    finally:
        for source in sources:
            source.close()


def test_a_code_shown_is_one_scan_with_the_kind_the_direction_and_the_reader(backend: Backend) -> None:
    source = backend.source

    async def body() -> None:
        async with Reading(source) as reading:
            await reading.connected(backend.reader, timeout=5)
            backend.show()
            (scan,) = await reading.next(timeout=10)
            # A second look: nothing else came out of one code.
            await asyncio.sleep(0.2)
            assert len(reading.scans) == 1
        assert (scan.text, scan.damage) == (CODE, None)
        assert (scan.source, scan.direction, scan.reader) == (source.kind, "out", backend.reader)
        assert scan.at_monotonic <= time.monotonic()
        assert CODE not in repr(scan)

    run(body)


def test_state_names_the_reader_before_it_opens_and_uses_the_four_words(backend: Backend) -> None:
    words = set(typing.get_args(SourceState))
    before = backend.source.state
    assert backend.reader in before and set(before.values()) <= words

    async def body() -> None:
        async with Reading(backend.source) as reading:
            await reading.connected(backend.reader, timeout=5)
            assert set(backend.source.state.values()) <= words

    run(body)
    assert set(backend.source.state.values()) <= words


def test_close_before_scans_and_twice_is_harmless(backend: Backend) -> None:
    backend.source.close()
    backend.source.close()


def test_a_closed_source_is_closed_again_without_error_after_reading(backend: Backend) -> None:
    async def body() -> None:
        async with Reading(backend.source) as reading:
            await reading.connected(backend.reader, timeout=5)

    run(body)  # Reading closes the source on the way out
    backend.source.close()
