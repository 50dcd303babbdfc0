"""On a Pi with a camera: the picamera2 backend delivers grey Y-plane views at the configured size."""

from __future__ import annotations

import pytest

pytest.importorskip("picamera2", reason="needs apt's python3-picamera2 (a Raspberry Pi with a camera)")

from device.sources.camera.frames import NewestFrame
from device.sources.camera.picamera2 import Picamera2Frames
from device.vision.cascade import Cascade

pytestmark = pytest.mark.hardware


def test_picamera2_gives_y_plane_views_at_the_frame_rate_cap() -> None:
    source = Picamera2Frames(index=0, width=640, height=480, max_fps=15, autofocus=True)
    feed = NewestFrame(source)
    try:
        frames = []
        for _ in range(20):
            frame = feed.take(timeout=2.0)
            assert frame is not None, "the camera delivered no frame within 2 s"
            frames.append(frame)
        for frame in frames:
            assert frame.gray.shape == (480, 640) and frame.gray.dtype.name == "uint8"
            assert frame.gray.base is not None, "the Y plane is a view into the YUV420 buffer, not a copy"
        span = frames[-1].at - frames[0].at
        assert span >= 19 / 15 * 0.9, f"20 frames in {span:.2f} s: faster than the 15 fps cap"
        source.focus()  # Camera Module 3: restarts continuous AF; other modules: nothing happens
        assert feed.take(timeout=2.0) is not None
        # Decoding a live frame works on the view as it is (nothing need be in front of the camera).
        Cascade(budget_ms=40.0).decode(frames[-1].gray, frames[-1].at)
    finally:
        feed.close()
