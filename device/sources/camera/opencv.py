"""USB webcams through OpenCV/V4L2 (the `webcam` extra, imported only when used)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from device.errors import SourceUnavailable
from device.sources.camera.frames import Frame, Roi, roi_view

OPENCV_HINT = "OpenCV is not installed: pip install 'qr-checkin[webcam]'"


def import_cv2() -> Any:
    try:
        import cv2
    except ImportError as exc:
        raise SourceUnavailable(OPENCV_HINT) from exc
    return cv2


class OpenCvFrames:
    """A USB webcam through V4L2. Frames beyond `max_fps` are dropped here if the camera ignores the cap."""

    live = True

    def __init__(self, index: int, width: int, height: int, max_fps: float, roi: Roi | None = None) -> None:
        self._cv2 = cv2 = import_cv2()
        self._roi = roi
        self.name = f"video{index}"
        self._cap = cv2.VideoCapture(index, cv2.CAP_V4L2)
        if not self._cap.isOpened():
            raise SourceUnavailable(f"/dev/video{index}: cannot open (absent, or held by another process)")
        self._cap.set(cv2.CAP_PROP_FRAME_WIDTH, width)
        self._cap.set(cv2.CAP_PROP_FRAME_HEIGHT, height)
        self._cap.set(cv2.CAP_PROP_FPS, max_fps)
        # One driver buffer: a queued frame is a stale frame.
        self._cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)
        self._period = 1.0 / max_fps

    def frames(self) -> Iterator[Frame]:
        cv2 = self._cv2
        last = float("-inf")
        while True:
            ok, bgr = self._cap.read()
            if not ok:
                raise SourceUnavailable(f"{self.name}: no frame (unplugged?)")
            now = time.monotonic()
            if now - last < self._period:
                continue
            last = now
            gray = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY) if bgr.ndim == 3 else bgr
            yield Frame(roi_view(gray, self._roi), now)

    def focus(self) -> None:
        pass

    def close(self) -> None:
        self._cap.release()
