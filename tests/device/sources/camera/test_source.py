"""CameraSource end to end: frames from files (or a live test source), real zxing-cpp, Scans out."""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from device.errors import ConfigError, SourceUnavailable
from device.scan import Scan
from device.settings import CameraSourceSettings, load_settings
from device.sources import camera as camera_module
from device.sources.camera import CameraSource
from device.sources.camera.frames import Frame
from tests.support.daemon import DaemonProcess, ask_for_status, write_config
from tests.support.frames import Condition, render
from tests.support.mosquitto import Mosquitto
from tests.support.schema import validate_status
from tests.support.subscriber import Subscriber

FPS = 50.0
A = "001090999901||Nguyễn Văn A|01011990|Nam|Số 1 Đường Thử Nghiệm, Phường Mẫu, Hà Nội|01072021"
B = "EMP-004711"
C = "https://checkin.example/u/7f3a9c"


def _frame(text: str | None, seed: int) -> np.ndarray:
    image, _ = render(text, Condition(module_px=4.0, angle_deg=7.0), seed)
    return image


def _replay(folder: Path, script: list[str | None]) -> None:
    """Writes one PNG per scripted frame (None: nobody there); identical frames share one render."""
    folder.mkdir()
    rendered: dict[str | None, Path] = {}
    for n, text in enumerate(script):
        if text not in rendered:
            rendered[text] = folder / f"{n:04d}.png"
            Image.fromarray(_frame(text, seed=len(rendered))).save(rendered[text])
        else:
            shutil.copyfile(rendered[text], folder / f"{n:04d}.png")


def _collect(source: CameraSource, timeout: float = 20.0) -> list[Scan]:
    async def run() -> list[Scan]:
        async with asyncio.timeout(timeout):
            return [scan async for scan in source.scans()]

    try:
        return asyncio.run(run())
    finally:
        source.close()


def test_a_replay_yields_one_scan_per_appearance_and_drops_a_one_frame_read(tmp_path: Path) -> None:
    rearm_frames = 5
    script: list[str | None] = (
        [A] * 6  # A shown: one scan
        + [None] * (rearm_frames + 2)  # gone long enough to re-arm
        + [A] * 4  # shown again: a second scan
        + [None]
        + [B]  # one frame only: never confirmed, never a check-in
        + [None] * 2
        + [C] * 3
        + [None] * 2
    )
    _replay(tmp_path / "frames", script)
    settings = CameraSourceSettings(
        backend="files", path=tmp_path / "frames", max_fps=FPS, rearm_s=rearm_frames / FPS, direction="in"
    )
    source = CameraSource(settings)
    assert source.kind == "camera"
    scans = _collect(source)
    assert [s.text for s in scans] == [A, A, C]
    assert all(s.source == "camera" and s.reader == "files" and s.direction == "in" for s in scans)
    assert all(s.damage is None for s in scans)
    # Each scan is stamped with its confirming frame's time (the second frame of each showing), on the
    # replay schedule.
    start = scans[0].at_monotonic - 1 / FPS
    second_showing = 6 + rearm_frames + 2
    assert [round((s.at_monotonic - start) * FPS) for s in scans] == [
        1,
        second_showing + 1,
        script.index(C) + 1,
    ]
    assert source.state == {"files": "disconnected"}
    assert source.frames_decoded == len(script)


def test_scan_repr_keeps_the_text_out(tmp_path: Path) -> None:
    _replay(tmp_path / "frames", [A] * 3)
    scans = _collect(
        CameraSource(CameraSourceSettings(backend="files", path=tmp_path / "frames", max_fps=FPS))
    )
    assert len(scans) == 1 and "Nguy" not in repr(scans[0])


def test_files_backend_without_a_path_is_a_configuration_error(tmp_path: Path) -> None:
    config = tmp_path / "device.toml"
    config.write_text('[device]\nid = "d"\n[location]\nid = "l"\n[scanner.camera]\nbackend = "files"\n')
    with pytest.raises(ConfigError, match=r"scanner\.camera\.path") as err:
        load_settings(config)
    assert str(config) in str(err.value)


def test_a_missing_camera_is_a_fault_retried_not_a_crash(tmp_path: Path) -> None:
    source = CameraSource(CameraSourceSettings(backend="files", path=tmp_path / "not-mounted-yet"))

    async def first_scan() -> Scan:
        return await anext(source.scans())

    async def run() -> dict[str, str]:
        task = asyncio.create_task(first_scan())
        try:
            async with asyncio.timeout(5):
                while source.state != {"files": "fault"}:
                    await asyncio.sleep(0.01)
            return dict(source.state)
        finally:
            task.cancel()

    try:
        assert asyncio.run(run()) == {"files": "fault"}
    finally:
        source.close()


class LiveCamera:
    """A live test source at 100 fps: its images in turn for `frames` frames, then an unplug."""

    live = True
    name = "camera0"

    def __init__(self, images: list[np.ndarray], frames: int) -> None:
        self.images = images
        self.count = frames

    def frames(self) -> Iterator[Frame]:
        for i in range(self.count):
            time.sleep(0.01)
            yield Frame(self.images[min(i, len(self.images) - 1)], time.monotonic())
        raise SourceUnavailable("camera0: capture failed: unplugged")

    def focus(self) -> None:
        pass

    def close(self) -> None:
        pass


def _first_scans(source: CameraSource, count: int) -> list[Scan]:
    async def run() -> list[Scan]:
        scans: list[Scan] = []
        async with asyncio.timeout(20):
            async for scan in source.scans():
                scans.append(scan)
                if len(scans) == count:
                    break
        return scans

    try:
        return asyncio.run(run())
    finally:
        source.close()


def test_a_lost_live_camera_is_reopened_and_keeps_scanning(monkeypatch: pytest.MonkeyPatch) -> None:
    shown = [_frame(B, seed=3), _frame(C, seed=4)]
    opened: list[LiveCamera] = []

    def open_frames(settings: CameraSourceSettings) -> LiveCamera:
        opened.append(LiveCamera([shown[min(len(opened), 1)]], frames=30))
        return opened[-1]

    monkeypatch.setattr(camera_module, "RETRY_MIN_S", 0.01)
    scans = _first_scans(CameraSource(CameraSourceSettings(backend="picamera2"), open_frames=open_frames), 2)
    assert [s.text for s in scans] == [B, C], "the second code came from the reopened camera"
    assert len(opened) >= 2
    assert all(s.reader == "camera0" for s in scans)


def test_a_frame_the_decoder_refuses_is_skipped_not_fatal(caplog: pytest.LogCaptureFixture) -> None:
    colour = np.zeros((48, 64, 3), np.uint8)  # not a grey frame: the decoder raises ValueError
    camera = LiveCamera([colour] * 10 + [_frame(B, seed=3)], frames=40)
    scans = _first_scans(
        CameraSource(CameraSourceSettings(backend="picamera2"), open_frames=lambda s: camera), 1
    )
    assert [s.text for s in scans] == [B]
    assert "frame skipped: a frame must be a 2-D uint8 grey image" in caplog.text


@pytest.mark.slow
def test_the_daemons_status_carries_the_cameras_decode_figures(tmp_path: Path, broker: Mosquitto) -> None:
    # A replay long enough to still run when the status is asked for: 10 s of frames at 20 fps.
    _replay(tmp_path / "frames", [None] * 20 + [B] * 10 + [None] * 170)
    config = write_config(
        tmp_path / "device.toml",
        port=broker.port,
        storage=tmp_path / "state",
        scanner={"sources": ["stdin", "camera"]},
        extra=f'[scanner.camera]\nbackend = "files"\npath = "{tmp_path / "frames"}"\nmax_fps = 20\n',
    )
    subscriber = Subscriber(broker.port)
    daemon = DaemonProcess(config).start()
    try:
        daemon.wait_log("connected to broker")
        assert daemon.next_decision()["feedback"] == "accepted", "the held card became one check-in"
        time.sleep(1.5)  # the status snapshot is refreshed every second
        ask_for_status(daemon, subscriber.statuses)
    finally:
        daemon.stop()
        subscriber.close()
    (status,) = [s for s in subscriber.statuses() if "provisioning_check" in s]
    validate_status(status)
    camera = status["camera"]
    assert set(camera) == {"frames_per_s", "decode_p99_ms", "escalated_share", "frames_dropped"}
    assert camera["frames_per_s"] > 0 and camera["decode_p99_ms"] > 0
    assert 0 <= camera["escalated_share"] <= 1
