"""Replayed frames: an image, a folder of images (sorted by name) or a video file, at `max_fps` with
timestamps on that schedule, so a replay gives the same results however busy the machine is. Also how
`qr-checkin decode` reads image files."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from device.errors import ImageUnreadable, SourceUnavailable
from device.sources.camera.frames import Frame, Roi, roi_view
from device.sources.camera.opencv import import_cv2

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset(
    {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff", ".pgm", ".pnm"}
)
VIDEO_SUFFIXES = frozenset({".mp4", ".avi", ".mkv", ".mov", ".mjpeg", ".h264", ".webm"})
PILLOW_HINT = "reading image files needs Pillow: pip install 'qr-checkin[label]'"


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
    cv2 = import_cv2()
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
