"""The picamera2 adapter off a Pi: Picamera2Frames against the fake picamera2 at the import boundary."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from device.errors import SourceUnavailable
from device.scan import Scan
from device.settings import CameraSourceSettings
from device.sources.camera import CameraSource
from device.sources.camera.picamera2 import Picamera2Frames
from tests.support.fake_picamera2 import AfModeEnum, Scene, install
from tests.support.frames import Condition, render

W, H = 640, 480


def _frames(scene: Scene, count: int, **kwargs: object) -> tuple[Picamera2Frames, list[np.ndarray]]:
    source = Picamera2Frames(index=0, width=W, height=H, max_fps=15, autofocus=True, **kwargs)  # type: ignore[arg-type]
    it = source.frames()
    return source, [next(it).gray for _ in range(count)]


@pytest.fixture
def scene(monkeypatch: pytest.MonkeyPatch) -> Scene:
    images = [np.full((H, W), v, np.uint8) for v in (10, 20, 30, 40)]
    s = Scene(images)
    install(monkeypatch, s)
    return s


def test_frames_are_y_plane_views_of_the_lores_stream_at_the_frame_rate(scene: Scene) -> None:
    source, grays = _frames(scene, 4)
    cam = scene.opened[0]
    assert cam.config is not None
    assert cam.config["lores"] == {"size": (W, H), "format": "YUV420"}
    assert cam.config["queue"] is False
    assert cam.controls["FrameDurationLimits"] == (66_666, 66_666)
    assert [int(g[0, 0]) for g in grays] == [10, 20, 30, 40]
    for g in grays:
        assert g.shape == (H, W) and g.dtype == np.uint8
        assert g.base is not None and g.base.shape == (H * 3 // 2, W), "a view into the YUV420 buffer"
    source.close()
    assert cam.closed


def test_autofocus_is_continuous_and_a_refocus_toggles_over_two_requests(scene: Scene) -> None:
    source, _ = _frames(scene, 1)
    cam = scene.opened[0]
    assert cam.control_log[0] == (0, {"AfMode": AfModeEnum.Continuous})
    source.focus()
    source.focus()  # a second nudge before the first completes adds nothing
    it = source.frames()
    next(it)
    af = [(n, c["AfMode"]) for n, c in cam.control_log if "AfMode" in c]
    assert af == [(0, AfModeEnum.Continuous), (1, AfModeEnum.Manual), (2, AfModeEnum.Continuous)]


def test_a_camera_without_autofocus_gets_no_af_controls(monkeypatch: pytest.MonkeyPatch) -> None:
    scene = Scene([np.zeros((H, W), np.uint8)], has_autofocus=False)
    install(monkeypatch, scene)
    source, _ = _frames(scene, 2)
    source.focus()
    next(source.frames())
    assert all("AfMode" not in c for _, c in scene.opened[0].control_log)


def test_exposure_is_capped_in_dim_light_and_handed_back_in_bright_light(scene: Scene) -> None:
    scene.light = 40_000  # auto exposure would take 40 ms: a moving card smears
    source = Picamera2Frames(0, W, H, 15, autofocus=False, max_exposure_ms=5)
    it = source.frames()
    next(it)
    cam = scene.opened[0]
    assert source.exposure_capped and cam.controls["ExposureTime"] == 5000
    next(it)
    assert [c for _, c in cam.control_log] == [{"ExposureTime": 5000}], "capped once, not every frame"
    scene.light = 2_000  # sunlight: at the cap the gain is at its floor
    next(it)
    assert not source.exposure_capped and cam.controls["ExposureTime"] == 0
    next(it)  # auto exposure now picks 2 ms by itself: nothing to do
    assert len(cam.control_log) == 2


def test_no_cap_leaves_exposure_alone(scene: Scene) -> None:
    source = Picamera2Frames(0, W, H, 15, autofocus=False, max_exposure_ms=None)
    it = source.frames()
    for _ in range(3):
        next(it)
    assert scene.opened[0].control_log == [] and not source.exposure_capped


def test_the_region_of_interest_is_the_isp_scaler_crop(scene: Scene) -> None:
    Picamera2Frames(0, W, H, 15, autofocus=False, roi=(0.25, 0.5, 0.5, 0.5))
    x0, y0, w, h = scene.crop_maximum
    assert scene.opened[0].controls["ScalerCrop"] == (x0 + w // 4, y0 + h // 2, w // 2, h // 2)


def test_a_missing_camera_and_a_failed_capture_are_source_unavailable(scene: Scene) -> None:
    with pytest.raises(SourceUnavailable, match="camera1: no such camera"):
        Picamera2Frames(1, W, H, 15, autofocus=True)
    scene.fail_after = 2
    source = Picamera2Frames(0, W, H, 15, autofocus=True)
    it = source.frames()
    next(it), next(it)
    with pytest.raises(SourceUnavailable, match="capture failed: Camera frontend has timed out"):
        next(it)


def test_camera_source_on_the_fake_pi_camera_scans_a_code_once_while_it_is_held(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    text = "EMP-004711"
    code, _ = render(text, Condition(module_px=4.0, angle_deg=7.0), seed=5)
    empty, _ = render(None, Condition(), seed=6)
    # Nobody, the card held for 40 frames, nobody again; then the camera goes away.
    scene = Scene([empty] * 5 + [code] * 40 + [empty] * 10, fail_after=55)
    install(monkeypatch, scene)
    source = CameraSource(CameraSourceSettings(backend="picamera2", max_fps=50, rearm_s=1.0))

    async def run() -> list[Scan]:
        scans: list[Scan] = []

        async def collect() -> None:
            async for scan in source.scans():
                scans.append(scan)

        task = asyncio.create_task(collect())
        async with asyncio.timeout(20):
            while scene.shown < 55:
                await asyncio.sleep(0.05)
        task.cancel()
        return scans

    try:
        scans = asyncio.run(run())
    finally:
        source.close()
    assert [s.text for s in scans] == [text]
    assert scans[0].reader == "camera0"
    stats = source.vision_stats()
    assert stats["frames_per_s"] > 0 and stats["decode_p99_ms"] > 0
    assert 0 <= stats["escalated_share"] <= 1
