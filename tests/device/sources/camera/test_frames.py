"""Frame sources: file replay on its schedule, newest-frame-only for live sources, clear errors."""

from __future__ import annotations

import importlib.util
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from device.errors import ImageUnreadable, SourceUnavailable
from device.settings import CameraSourceSettings
from device.sources.camera import open_frames, reader_name
from device.sources.camera.files import FileFrames, load_gray
from device.sources.camera.frames import Frame, NewestFrame
from device.sources.camera.opencv import OPENCV_HINT
from device.sources.camera.picamera2 import PICAMERA2_HINT


def _png(path: Path, value: int, size: tuple[int, int] = (64, 48)) -> Path:
    Image.new("L", size, value).save(path)
    return path


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(round(seconds, 6))
        self.now += seconds


def test_a_folder_replays_its_images_in_name_order_on_the_max_fps_schedule(tmp_path: Path) -> None:
    for i, value in enumerate((10, 20, 30)):
        _png(tmp_path / f"{i:03d}.png", value)
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "002b.png").write_bytes(b"not a png at all")  # skipped with a warning
    clock = FakeClock()
    source = FileFrames(tmp_path, max_fps=10, clock=clock, sleep=clock.sleep)
    frames = list(source.frames())
    assert [int(f.gray[0, 0]) for f in frames] == [10, 20, 30]
    assert [f.at for f in frames] == pytest.approx([100.0, 100.1, 100.2])
    assert clock.slept == [0.1, 0.1]
    assert all(f.gray.shape == (48, 64) and f.gray.dtype == np.uint8 for f in frames)
    assert source.live is False and source.name == "files"


def test_a_replay_that_falls_behind_does_not_sleep_and_keeps_its_timestamps(tmp_path: Path) -> None:
    for i in range(3):
        _png(tmp_path / f"{i}.png", 50)
    clock = FakeClock()
    source = FileFrames(tmp_path, max_fps=10, clock=clock, sleep=clock.sleep)
    ats = []
    for frame in source.frames():
        ats.append(frame.at)
        clock.now += 0.5  # a decode slower than the frame period
    assert clock.slept == []
    assert ats == pytest.approx([100.0, 100.1, 100.2])


def test_a_single_image_and_a_colour_image_become_one_grey_frame(tmp_path: Path) -> None:
    path = tmp_path / "colour.jpg"
    Image.new("RGB", (40, 30), (255, 0, 0)).save(path)
    frames = list(FileFrames(path, max_fps=1000).frames())
    assert len(frames) == 1 and frames[0].gray.shape == (30, 40) and frames[0].gray.ndim == 2


def test_replay_sources_that_cannot_work_say_why(tmp_path: Path) -> None:
    with pytest.raises(SourceUnavailable, match="no such file or folder"):
        FileFrames(tmp_path / "missing", max_fps=15)
    with pytest.raises(SourceUnavailable, match="no image files"):
        FileFrames(tmp_path, max_fps=15)
    (tmp_path / "table.csv").write_text("a,b")
    with pytest.raises(SourceUnavailable, match="neither an image nor a video"):
        FileFrames(tmp_path / "table.csv", max_fps=15)


def test_a_video_needs_opencv(tmp_path: Path) -> None:
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"not really a video")
    source = FileFrames(clip, max_fps=15)
    expected = "cannot open this video" if importlib.util.find_spec("cv2") else "qr-checkin\\[webcam\\]"
    with pytest.raises(SourceUnavailable, match=expected):
        list(source.frames())


def test_load_gray_names_the_problem(tmp_path: Path) -> None:
    with pytest.raises(ImageUnreadable, match="no such file"):
        load_gray(tmp_path / "missing.png")
    with pytest.raises(ImageUnreadable, match="is a folder"):
        load_gray(tmp_path)
    (tmp_path / "bad.webp").write_bytes(b"RIFF....garbage")
    with pytest.raises(ImageUnreadable, match=r"bad\.webp: not an image"):
        load_gray(tmp_path / "bad.webp")


def test_open_frames_by_backend(tmp_path: Path) -> None:
    _png(tmp_path / "a.png", 1)
    assert isinstance(open_frames(CameraSourceSettings(backend="files", path=tmp_path)), FileFrames)
    # Neither a Pi camera nor a webcam exists here: both refuse with a reason, never crash.
    with pytest.raises(SourceUnavailable) as picam:
        open_frames(CameraSourceSettings(backend="picamera2"))
    if importlib.util.find_spec("picamera2") is None:
        assert str(picam.value) == PICAMERA2_HINT
    with pytest.raises(SourceUnavailable) as webcam:
        open_frames(CameraSourceSettings(backend="opencv", index=57))
    if importlib.util.find_spec("cv2") is None:
        assert str(webcam.value) == OPENCV_HINT
    assert reader_name(CameraSourceSettings(backend="picamera2", index=1)) == "camera1"
    assert reader_name(CameraSourceSettings(backend="opencv", index=2)) == "video2"


class LiveFrames:
    """A live source at full speed: frames numbered by `at`, then optionally an error."""

    live = True
    name = "fake0"

    def __init__(self, count: int, error: Exception | None = None) -> None:
        self.count = count
        self.error = error
        self.closed = threading.Event()
        self.focused = 0

    def frames(self) -> Iterator[Frame]:
        for i in range(self.count):
            yield Frame(np.full((4, 4), i % 256, np.uint8), float(i))
        if self.error is not None:
            raise self.error

    def focus(self) -> None:
        self.focused += 1

    def close(self) -> None:
        self.closed.set()


def test_a_slow_consumer_gets_the_newest_frame_and_the_rest_are_dropped() -> None:
    source = LiveFrames(200)
    feed = NewestFrame(source)
    assert feed._thread is not None
    feed._thread.join(5)
    assert feed.ended and not feed.exhausted, "the newest frame is still there to take"
    frame = feed.take(timeout=1)
    assert frame is not None and frame.at == 199.0
    assert feed.dropped == 199
    assert feed.exhausted
    assert feed.take(timeout=0.05) is None
    feed.close()
    assert source.closed.is_set()


def test_the_capture_threads_error_reaches_the_consumer() -> None:
    feed = NewestFrame(LiveFrames(1, SourceUnavailable("fake0: capture failed")))
    assert feed._thread is not None
    feed._thread.join(5)
    first = feed.take(timeout=1)
    assert first is not None and first.at == 0.0
    with pytest.raises(SourceUnavailable, match="capture failed"):
        feed.take(timeout=1)


def test_a_replay_is_read_on_demand_and_nothing_is_dropped(tmp_path: Path) -> None:
    for i in range(4):
        _png(tmp_path / f"{i}.png", i)
    feed = NewestFrame(FileFrames(tmp_path, max_fps=1000))
    seen = []
    while (frame := feed.take(timeout=1)) is not None:
        seen.append(int(frame.gray[0, 0]))
    assert seen == [0, 1, 2, 3]
    assert feed.ended and feed.dropped == 0
