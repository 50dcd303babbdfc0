"""Frame sources: where grey frames come from, behind one small interface (`FrameSource`).

The adapters, one module each (camera/__init__.py `open_frames` picks the configured one):
- picamera2.py `Picamera2Frames`: the Pi camera through picamera2 (apt's python3-picamera2, imported
  lazily). The lores stream is YUV420 and its first `height` rows are the Y plane: the decoder gets a
  numpy view of them, with no colour conversion and no copy beyond picamera2's own.
- opencv.py `OpenCvFrames`: USB webcams through OpenCV/V4L2 (the `webcam` extra, imported lazily).
- files.py `FileFrames`: an image, a folder of images or a video file, replayed at `max_fps` with
  timestamps on that schedule, so a replay gives the same results however busy the machine is.

Live sources deliver frames in real time; `NewestFrame` runs their capture loop in a thread and keeps
only the newest frame, so a slow decode drops frames instead of falling behind.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

import numpy as np


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


def roi_view(gray: np.ndarray, roi: Roi | None) -> np.ndarray:
    """The region of interest (fractions x, y, width, height) of a frame, as a view: no copy."""
    if roi is None:
        return gray
    h, w = gray.shape
    x, y, rw, rh = roi
    return gray[round(y * h) : round((y + rh) * h), round(x * w) : round((x + rw) * w)]


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
