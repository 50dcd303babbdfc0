"""The camera as a scan source: frames in, one Scan per code shown.

The frames come from one adapter per `scanner.camera.backend` (picamera2.py, opencv.py, files.py,
behind frames.py's `FrameSource`; `open_frames` picks it). One worker thread takes the newest frame,
decodes it through the cascade (device/vision/cascade.py; zxing-cpp releases the GIL, so the event
loop keeps running) and feeds the presence debounce; the event loop only yields what comes out. A lost
or missing camera is reopened with a growing pause; a replay (backend "files") ends the iteration when
its last frame is done.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor

from device.errors import SourceError
from device.scan import Scan, SourceKind
from device.settings import CameraSourceSettings
from device.sources import SourceState
from device.sources.camera.files import FileFrames
from device.sources.camera.frames import FrameSource, NewestFrame
from device.sources.camera.opencv import OpenCvFrames
from device.sources.camera.picamera2 import Picamera2Frames
from device.vision.cascade import Cascade
from device.vision.presence import Presence, Refocus

log = logging.getLogger(__name__)

# No frame for this long from a live camera: it is stalled, say so in the state.
STALL_S = 2.0
RETRY_MIN_S = 0.5
RETRY_MAX_S = 30.0


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


def cascade_for(settings: CameraSourceSettings) -> Cascade:
    return Cascade(
        escalation_share=settings.escalation_share,
        probe_share=settings.probe_share,
        budget_ms=settings.decode_budget_ms,
    )


class CameraSource:
    kind: SourceKind = "camera"

    def __init__(
        self,
        settings: CameraSourceSettings,
        *,
        open_frames: Callable[[CameraSourceSettings], FrameSource] = open_frames,
    ) -> None:
        self._settings = settings
        # The seam a test's live camera comes in by, as the serial source's open_port.
        self._open_frames = open_frames
        self._reader = reader_name(settings)
        self._state: SourceState = "disconnected"
        self._cascade = cascade_for(settings)
        self._presence = Presence(settings.rearm_s, settings.confirm_reads)
        self._refocus = Refocus(settings.refocus_after_s)
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="camera-decode")
        self._feed: NewestFrame | None = None
        self._closed = False
        self.frames_decoded = 0

    @property
    def state(self) -> dict[str, SourceState]:
        return {self._reader: self._state}

    def vision_stats(self) -> dict[str, float]:
        """For the status: frames/s, decode time p99 and the share of frames escalated, last minute."""
        return {**self._cascade.stats.snapshot(), "frames_dropped": self.frames_dropped}

    @property
    def frames_dropped(self) -> int:
        return self._feed.dropped if self._feed is not None else 0

    async def scans(self) -> AsyncIterator[Scan]:
        loop = asyncio.get_running_loop()
        pause = RETRY_MIN_S
        while not self._closed:
            try:
                feed = await loop.run_in_executor(self._worker, self._open)
            except SourceError as exc:
                self._state = "fault"
                # Loud once per outage, then quiet: a camera-less device should not fill its journal.
                level = logging.WARNING if pause == RETRY_MIN_S else logging.DEBUG
                log.log(level, "camera %s unavailable, retrying in %.1f s: %s", self._reader, pause, exc)
                await asyncio.sleep(pause)
                pause = min(pause * 2, RETRY_MAX_S)
                continue
            pause = RETRY_MIN_S
            try:
                while (scans := await loop.run_in_executor(self._worker, self._next, feed)) is not None:
                    for scan in scans:
                        yield scan
            except SourceError as exc:
                log.warning(
                    "camera %s lost after %d frames decoded, %d dropped: %s",
                    self._reader,
                    self.frames_decoded,
                    self.frames_dropped,
                    exc,
                )
            finally:
                feed.close()
            self._state = "disconnected"
            if not feed.source.live:
                log.info("camera %s: replay finished, %d frames decoded", self._reader, self.frames_decoded)
                return
            await asyncio.sleep(pause)

    def _open(self) -> NewestFrame:
        source = self._open_frames(self._settings)
        self._feed = NewestFrame(source)
        self._state = "connected"
        log.info("camera %s open (%s)", source.name, self._settings.backend)
        return self._feed

    def _next(self, feed: NewestFrame) -> list[Scan] | None:
        """Runs in the worker thread: one frame through decode, debounce and the focus nudge. None
        when the source has no more frames."""
        frame = feed.take(STALL_S)
        if self._closed:
            return None
        if frame is None:
            if feed.exhausted:
                return None
            self._state = "fault"
            log.warning("camera %s: no frame for %.0f s", self._reader, STALL_S)
            return []
        self._state = "connected"
        try:
            decoded = self._cascade.decode(frame.gray, frame.at, self._presence.hints(frame.at))
        except (ValueError, RuntimeError) as exc:  # one odd frame must not stop the camera
            log.warning("camera %s: frame skipped: %s", self._reader, exc)
            return []
        self.frames_decoded += 1
        texts = self._presence.observe(frame.at, decoded.found, decoded.undecoded)
        if self._refocus.due(frame.at, bool(decoded.undecoded) and not decoded.found):
            feed.source.focus()
        direction = self._settings.direction
        return [Scan(t, "camera", direction, self._reader, at_monotonic=frame.at) for t in texts]

    def close(self) -> None:
        self._closed = True
        if self._feed is not None:
            self._feed.close()
        self._worker.shutdown(wait=False, cancel_futures=True)
        self._state = "disconnected"
