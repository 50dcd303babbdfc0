"""A fake `picamera2` and `libcamera` at the import boundary, so the Picamera2Frames adapter runs off a Pi.

It behaves as far as the adapter relies on it: a lores YUV420 buffer with a padded stride whose first
rows are the Y plane; controls that take effect on the next request; an auto exposure that, like the
Raspberry Pi's, keeps a fixed shutter when `ExposureTime` is set (0: auto again) and makes up the light
with analogue gain; `ScalerCropMaximum` among the properties; errors where the real one raises them.
"""

from __future__ import annotations

import enum
import sys
import time
import types
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest


class AfModeEnum(enum.IntEnum):
    Manual = 0
    Auto = 1
    Continuous = 2


@dataclass
class Scene:
    """What the fake camera sees; tests change it between frames."""

    images: list[np.ndarray]
    # Exposure (us) x gain the scene needs: 40 ms at gain 1 is a dim room, 2 ms a sunny door.
    light: float = 40_000.0
    has_autofocus: bool = True
    cameras: int = 1
    # Capture fails (the camera went away) once this many frames were shown, by any instance.
    fail_after: int | None = None
    shown: int = 0
    crop_maximum: tuple[int, int, int, int] = (16, 0, 4608, 2592)
    opened: list[FakePicamera2] = field(default_factory=list)


class FakeRequest:
    def __init__(self, yuv: np.ndarray, metadata: dict[str, Any]) -> None:
        self._yuv, self._metadata, self.released = yuv, metadata, False

    def make_array(self, name: str) -> np.ndarray:
        assert name == "lores" and not self.released
        return self._yuv.copy()

    def get_metadata(self) -> dict[str, Any]:
        return dict(self._metadata)

    def release(self) -> None:
        self.released = True


class FakePicamera2:
    scene: Scene

    def __init__(self, camera_num: int = 0) -> None:
        if camera_num >= self.scene.cameras:
            raise IndexError("list index out of range")
        self.camera_controls: dict[str, Any] = {"ExposureTime": (1, 1_000_000, 0)}
        if self.scene.has_autofocus:
            self.camera_controls["AfMode"] = (0, 2, 0)
        self.camera_properties = {"ScalerCropMaximum": self.scene.crop_maximum}
        self.config: dict[str, Any] | None = None
        self.controls: dict[str, Any] = {}
        # Every set_controls call, in order, with the number of frames captured before it.
        self.control_log: list[tuple[int, dict[str, Any]]] = []
        self.captured = 0
        self.started = self.closed = False
        self.scene.opened.append(self)

    def create_video_configuration(self, **kwargs: Any) -> dict[str, Any]:
        return kwargs

    def configure(self, config: dict[str, Any]) -> None:
        self.config = config
        self.controls.update(config.get("controls", {}))

    def set_controls(self, controls: dict[str, Any]) -> None:
        self.control_log.append((self.captured, dict(controls)))
        self.controls.update(controls)

    def start(self) -> None:
        assert self.config is not None, "configure() before start()"
        self.started = True

    def _exposure(self) -> tuple[float, float]:
        frame_us = self.controls["FrameDurationLimits"][1]
        fixed = self.controls.get("ExposureTime", 0)
        exposure = fixed if fixed else min(self.scene.light, frame_us)
        return exposure, max(1.0, self.scene.light / exposure)

    def capture_request(self) -> FakeRequest:
        assert self.started and not self.closed
        if self.scene.fail_after is not None and self.scene.shown >= self.scene.fail_after:
            raise RuntimeError("Camera frontend has timed out!")
        assert self.config is not None
        # A real capture blocks until the sensor's next frame.
        time.sleep(self.controls["FrameDurationLimits"][1] / 1e6)
        width, height = self.config["lores"]["size"]
        stride = (width + 63) // 64 * 64
        yuv = np.full((height * 3 // 2, stride), 128, np.uint8)
        yuv[:height, :width] = self.scene.images[min(self.scene.shown, len(self.scene.images) - 1)]
        self.captured += 1
        self.scene.shown += 1
        exposure, gain = self._exposure()
        return FakeRequest(yuv, {"ExposureTime": int(exposure), "AnalogueGain": gain})

    def stop(self) -> None:
        self.started = False

    def close(self) -> None:
        self.closed = True


def install(monkeypatch: pytest.MonkeyPatch, scene: Scene) -> None:
    """Puts the fake modules where `from picamera2 import Picamera2` and `from libcamera import
    controls` find them, for this test only."""
    camera_class = type("Picamera2", (FakePicamera2,), {"scene": scene})
    picamera2 = types.ModuleType("picamera2")
    picamera2.Picamera2 = camera_class  # type: ignore[attr-defined]
    libcamera = types.ModuleType("libcamera")
    libcamera.controls = types.SimpleNamespace(AfModeEnum=AfModeEnum)  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "picamera2", picamera2)
    monkeypatch.setitem(sys.modules, "libcamera", libcamera)
