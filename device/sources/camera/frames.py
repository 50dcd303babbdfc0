"""Frame sources: where grey frames come from, behind one small interface.

- `Picamera2Frames`: the Pi camera through picamera2 (apt's python3-picamera2, imported lazily). The
  lores stream is YUV420 and its first `height` rows are the Y plane: the decoder gets a numpy view of
  them, with no colour conversion and no copy beyond picamera2's own.
- `OpenCvFrames`: USB webcams through OpenCV/V4L2 (the `webcam` extra, imported lazily).
- `FileFrames`: an image, a folder of images or a video file, replayed at `max_fps` with timestamps
  on that schedule, so a replay gives the same results however busy the machine is.

Live sources deliver frames in real time; `NewestFrame` runs their capture loop in a thread and keeps
only the newest frame, so a slow decode drops frames instead of falling behind.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from device.errors import ImageUnreadable, SourceUnavailable
from device.settings import CameraSourceSettings

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset(
    {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff", ".pgm", ".pnm"}
)
VIDEO_SUFFIXES = frozenset({".mp4", ".avi", ".mkv", ".mov", ".mjpeg", ".h264", ".webm"})
PILLOW_HINT = "reading image files needs Pillow: pip install 'qr-checkin[label]'"
OPENCV_HINT = "OpenCV is not installed: pip install 'qr-checkin[webcam]'"
PICAMERA2_HINT = (
    "picamera2 is not importable: install apt's python3-picamera2 and create the venv with "
    "`python3 -m venv --system-site-packages`"
)


@dataclass(frozen=True, slots=True)
class Frame:
    # 2-D uint8; may be a strided view into a camera buffer.
    gray: np.ndarray
    # Monotonic seconds at capture (at the replay schedule for files).
    at: float


class FrameSource(Protocol):
    # Safe to log: "camera0", "video0", "files".
    name: str
    # True: frames arrive in real time and stale ones must be dropped; False: replay, read on demand.
    live: bool

    def frames(self) -> Iterator[Frame]:
        """Blocks for each frame. Ends only for replays; raises SourceUnavailable when the device goes."""
        ...

    def focus(self) -> None:
        """Restarts autofocus where the camera has it; otherwise does nothing."""
        ...

    def close(self) -> None: ...


Roi = tuple[float, float, float, float]
# The exposure cap is released once the sensor's gain is back at its floor (bright light).
GAIN_FLOOR = 1.05


def roi_view(gray: np.ndarray, roi: Roi | None) -> np.ndarray:
    """The region of interest (fractions x, y, width, height) of a frame, as a view: no copy."""
    if roi is None:
        return gray
    h, w = gray.shape
    x, y, rw, rh = roi
    return gray[round(y * h) : round((y + rh) * h), round(x * w) : round((x + rw) * w)]


def load_gray(path: Path) -> np.ndarray:
    """An image file as a 2-D uint8 grey array (colour is converted here: files are not the camera)."""
    try:
        from PIL import Image, UnidentifiedImageError
    except ImportError as exc:
        raise ImageUnreadable(f"{path}: {PILLOW_HINT}") from exc
    try:
        with Image.open(path) as img:
            return np.asarray(img.convert("L"))
    except FileNotFoundError as exc:
        raise ImageUnreadable(f"{path}: no such file") from exc
    except IsADirectoryError as exc:
        raise ImageUnreadable(f"{path}: is a folder, not an image") from exc
    except UnidentifiedImageError as exc:
        raise ImageUnreadable(f"{path}: not an image Pillow can read") from exc
    except (OSError, ValueError) as exc:
        raise ImageUnreadable(f"{path}: cannot read: {exc}") from exc


def image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


class FileFrames:
    """Replays an image, a folder of images (sorted by name) or a video file."""

    live = False
    name = "files"

    def __init__(
        self,
        path: Path,
        max_fps: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        roi: Roi | None = None,
    ) -> None:
        self._roi = roi
        if not path.exists():
            raise SourceUnavailable(f"{path}: no such file or folder")
        if path.is_dir():
            self._images = image_files(path)
            if not self._images:
                raise SourceUnavailable(f"{path}: no image files ({', '.join(sorted(IMAGE_SUFFIXES))})")
        elif path.suffix.lower() in VIDEO_SUFFIXES:
            self._images = []
        elif path.suffix.lower() in IMAGE_SUFFIXES:
            self._images = [path]
        else:
            raise SourceUnavailable(f"{path}: neither an image nor a video file (by its suffix)")
        self._path = path
        self._period = 1.0 / max_fps
        self._clock = clock
        self._sleep = sleep
        self._closed = False

    def _grays(self) -> Iterator[np.ndarray]:
        if self._images:
            for image in self._images:
                try:
                    yield load_gray(image)
                except ImageUnreadable as exc:
                    log.warning("skipping %s", exc)
            return
        yield from _video_grays(self._path)

    def frames(self) -> Iterator[Frame]:
        start = self._clock()
        for i, gray in enumerate(self._grays()):
            if self._closed:
                return
            due = start + i * self._period
            if (delay := due - self._clock()) > 0:
                self._sleep(delay)
            yield Frame(roi_view(gray, self._roi), due)

    def focus(self) -> None:
        pass

    def close(self) -> None:
        self._closed = True


def _video_grays(path: Path) -> Iterator[np.ndarray]:
    cv2 = _import_cv2()
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise SourceUnavailable(f"{path}: OpenCV cannot open this video")
    try:
        while True:
            ok, bgr = cap.read()
            if not ok:
                return
            yield cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY) if bgr.ndim == 3 else bgr
    finally:
        cap.release()


def _import_cv2() -> Any:
    try:
        import cv2
    except ImportError as exc:
        raise SourceUnavailable(OPENCV_HINT) from exc
    return cv2


class OpenCvFrames:
    """A USB webcam through V4L2. Frames beyond `max_fps` are dropped here if the camera ignores the cap."""

    live = True

    def __init__(self, index: int, width: int, height: int, max_fps: float, roi: Roi | None = None) -> None:
        self._cv2 = cv2 = _import_cv2()
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


def open_frames(settings: CameraSourceSettings) -> FrameSource:
    """The configured frame source, opened. SourceUnavailable when the device or library is missing."""
    if settings.backend == "files":
        assert settings.path is not None, "validated by CameraSourceSettings"
        return FileFrames(settings.path, settings.max_fps, roi=settings.roi)
    if settings.backend == "opencv":
        return OpenCvFrames(settings.index, settings.width, settings.height, settings.max_fps, settings.roi)
    return Picamera2Frames(
        settings.index,
        settings.width,
        settings.height,
        settings.max_fps,
        settings.autofocus,
        settings.max_exposure_ms,
        settings.roi,
    )


def reader_name(settings: CameraSourceSettings) -> str:
    """The safe name a source will have, known before it opens (for state while it cannot)."""
    return {"files": "files", "opencv": f"video{settings.index}"}.get(
        settings.backend, f"camera{settings.index}"
    )


class NewestFrame:
    """Holds only the newest frame of a source. Live sources are captured in a thread (a slow decode
    drops frames, never queues them); replays are read on demand, so none is skipped."""

    def __init__(self, source: FrameSource) -> None:
        self.source = source
        self.dropped = 0
        self.ended = False
        self._frames = source.frames()
        self._cond = threading.Condition()
        self._newest: Frame | None = None
        self._error: BaseException | None = None
        self._stop = False
        self._thread: threading.Thread | None = None
        if source.live:
            self._thread = threading.Thread(target=self._capture, name=f"capture-{source.name}", daemon=True)
            self._thread.start()

    def _capture(self) -> None:
        try:
            for frame in self._frames:
                with self._cond:
                    if self._stop:
                        return
                    if self._newest is not None:
                        self.dropped += 1
                    self._newest = frame
                    self._cond.notify()
        except Exception as exc:
            with self._cond:
                self._error = exc
        finally:
            with self._cond:
                self.ended = True
                self._cond.notify()

    def take(self, timeout: float) -> Frame | None:
        """The newest frame not yet taken. None if none came within `timeout`, or if the source has
        ended and every frame was taken (then `exhausted` is true). After a live source's last frame,
        re-raises the error that ended it."""
        if self._thread is None:
            frame = next(self._frames, None)
            self.ended = frame is None
            return frame
        with self._cond:
            self._cond.wait_for(lambda: self._newest is not None or self.ended, timeout)
            frame, self._newest = self._newest, None
            if frame is None and self._error is not None:
                raise self._error
            return frame

    @property
    def exhausted(self) -> bool:
        with self._cond:
            return self.ended and self._newest is None

    def close(self) -> None:
        with self._cond:
            self._stop = True
        self.source.close()
