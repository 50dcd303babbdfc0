"""The Pi camera through picamera2 (apt's python3-picamera2, imported only when used)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any

from device.errors import SourceUnavailable
from device.sources.camera.frames import Frame, Roi

PICAMERA2_HINT = (
    "picamera2 is not importable: install apt's python3-picamera2 and create the venv with "
    "`python3 -m venv --system-site-packages`"
)
# The exposure cap is released once the sensor's gain is back at its floor (bright light).
GAIN_FLOOR = 1.05


class Picamera2Frames:
    """The Pi camera: lores YUV420 stream, Y plane as a view, sensor frame duration fixed at max_fps.

    - Autofocus (Camera Module 3): continuous, restarted by `focus()` when a code stays unreadable.
    - Exposure cap: the RPi auto-exposure keeps a fixed shutter when `ExposureTime` is set and goes on
      adjusting the gain. Whenever it wants a longer exposure than the cap, the shutter is fixed at the
      cap (the gain makes up the light); when the gain is back at its floor (bright light), the shutter
      is handed back to auto exposure, which may then choose anything shorter.
    - Region of interest: the ISP's `ScalerCrop`, so the lores stream is the region at full detail
      rather than a crop of a downscaled view.
    """

    live = True

    def __init__(
        self,
        index: int,
        width: int,
        height: int,
        max_fps: float,
        autofocus: bool,
        max_exposure_ms: float | None = None,
        roi: Roi | None = None,
    ) -> None:
        try:
            from libcamera import controls
            from picamera2 import Picamera2
        except ImportError as exc:
            raise SourceUnavailable(PICAMERA2_HINT) from exc
        self.name = f"camera{index}"
        self._width, self._height = width, height
        try:
            self._cam = Picamera2(index)
        except (IndexError, RuntimeError) as exc:
            raise SourceUnavailable(f"{self.name}: no such camera ({exc})") from exc
        frame_us = int(1_000_000 / max_fps)
        start_controls: dict[str, Any] = {"FrameDurationLimits": (frame_us, frame_us)}
        if roi is not None:
            # ScalerCrop is in sensor pixels, within the largest crop the sensor mode allows.
            x0, y0, full_w, full_h = self._cam.camera_properties["ScalerCropMaximum"]
            x, y, w, h = roi
            start_controls["ScalerCrop"] = (
                x0 + round(x * full_w),
                y0 + round(y * full_h),
                round(w * full_w),
                round(h * full_h),
            )
        # The lores output is the ISP's second scaler; main is kept at the same small size so no
        # full-resolution buffer is filled for nothing. queue=False: a capture is never an old frame.
        config = self._cam.create_video_configuration(
            main={"size": (width, height), "format": "YUV420"},
            lores={"size": (width, height), "format": "YUV420"},
            buffer_count=4,
            queue=False,
            controls=start_controls,
        )
        self._cam.configure(config)
        self._af_modes = controls.AfModeEnum
        self._has_af = autofocus and "AfMode" in self._cam.camera_controls
        if self._has_af:
            self._cam.set_controls({"AfMode": controls.AfModeEnum.Continuous})
        self._cap_us = None if max_exposure_ms is None else int(max_exposure_ms * 1000)
        self.exposure_capped = False
        self._resume_af = False
        self._cam.start()

    def frames(self) -> Iterator[Frame]:
        while True:
            try:
                request = self._cam.capture_request()
                try:
                    yuv = request.make_array("lores")
                    metadata = request.get_metadata()
                finally:
                    request.release()
            except Exception as exc:  # libcamera reports a lost camera as assorted runtime errors
                raise SourceUnavailable(f"{self.name}: capture failed: {exc}") from exc
            now = time.monotonic()
            if self._resume_af:
                # Second half of the refocus toggle, one request after the first (see focus()).
                self._cam.set_controls({"AfMode": self._af_modes.Continuous})
                self._resume_af = False
            self._cap_exposure(metadata)
            yield Frame(yuv[: self._height, : self._width], now)

    def _cap_exposure(self, metadata: dict[str, Any]) -> None:
        if self._cap_us is None:
            return
        exposure, gain = metadata.get("ExposureTime"), metadata.get("AnalogueGain")
        if not self.exposure_capped and exposure is not None and exposure > self._cap_us:
            self._cam.set_controls({"ExposureTime": self._cap_us})
            self.exposure_capped = True
        elif self.exposure_capped and gain is not None and gain <= GAIN_FLOOR:
            self._cam.set_controls({"ExposureTime": 0})  # 0: auto exposure chooses again
            self.exposure_capped = False

    def focus(self) -> None:
        """Continuous AF can stick at a stale lens position (picamera2 issue #1272); switching to
        manual and back restarts the scan. The two modes must land in different requests, so the
        switch back happens after the next frame."""
        if self._has_af and not self._resume_af:
            self._cam.set_controls({"AfMode": self._af_modes.Manual})
            self._resume_af = True

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._cam.stop()
        with contextlib.suppress(Exception):
            self._cam.close()
