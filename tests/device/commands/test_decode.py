"""`qr-checkin decode` as a subprocess: each file read as the camera path reads it held in view for one
second, one JSON line per file."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from device.settings import CameraSourceSettings
from device.sources.camera.files import load_gray
from device.vision.cascade import Cascade, hold
from device.vision.presence import Presence
from tests.support.frames import camera_frames, empty_frames, photo_cases, plain_texts
from tests.support.paths import PHOTOS, ROOT


def _decode(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "device.cli", "decode", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, str | None]]:
    """A few photographs of each set, camera-like frames (one only escalation reads), empty frames."""
    out: dict[str, tuple[Path, str | None]] = {}
    photos = PHOTOS
    for photo_set in ("zxing-cpp", "zxing-java"):
        for case in photo_cases(photos, photo_set)[::20]:
            out[str(case.path)] = (case.path, case.text)
    folder = tmp_path_factory.mktemp("frames")
    # Frame 10 of seed 7 is a tilted code only escalation reads.
    generated = list(camera_frames(11, seed=7)) + list(empty_frames(2))
    for n, frame in enumerate(generated):
        path = folder / f"{n:02d}-{frame.condition}.png"
        Image.fromarray(frame.image).save(path)
        out[str(path)] = (path, frame.text)
    return out


def test_json_lines_match_the_decoder_and_read_at_least_the_plain_decoder(
    images: dict[str, tuple[Path, str | None]],
) -> None:
    result = _decode("--json", *images)
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["file"] for line in lines] == list(images)
    camera = CameraSourceSettings()
    ours_read = plain_read = 0
    for line in lines:
        path, expected = images[line["file"]]
        assert {"file", "texts", "ms"} <= set(line)
        assert isinstance(line["ms"], float) and line["ms"] >= 0
        assert line["frames"] == round(camera.max_fps)
        gray = load_gray(path)
        # The command is the daemon's decode path: the same scans as the cascade held in this process.
        held = hold(gray, camera.max_fps, Cascade(), Presence(camera.rearm_s, camera.confirm_reads))
        assert line["texts"] == held.scans
        assert (line["read_at_frame"] is None) == (line["step"] is None)
        texts = [t.rstrip("\r\n") for t in line["texts"]]
        if expected is None:
            assert texts == [], f"false positive in {path.name}"
            continue
        assert not texts or expected in texts, f"misread in {path}"
        ours_read += expected in texts
        plain_read += expected in [t.rstrip("\r\n") for t in plain_texts(gray)]
    assert ours_read > plain_read


def test_folders_are_expanded_and_bad_files_named_without_stopping(tmp_path: Path) -> None:
    frame = next(iter(camera_frames(1, seed=3)))
    Image.fromarray(frame.image).save(tmp_path / "a.png")
    (tmp_path / "b.png").write_bytes(b"\x89PNG broken")
    (tmp_path / "notes.txt").write_text("skipped: not an image suffix")
    result = _decode("--json", str(tmp_path), str(tmp_path / "missing.jpg"))
    assert result.returncode == 1
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [Path(line["file"]).name for line in lines] == ["a.png", "b.png", "missing.jpg"]
    assert lines[0]["texts"] == [frame.text]
    assert "not an image" in lines[1]["error"] and lines[1]["texts"] == []
    assert "no such file" in lines[2]["error"]


def test_plain_output_counts_codes_and_errors_go_to_stderr(tmp_path: Path) -> None:
    frame = next(iter(camera_frames(1, seed=3)))
    Image.fromarray(frame.image).save(tmp_path / "a.png")
    result = _decode(str(tmp_path / "a.png"), str(tmp_path / "gone.png"))
    assert result.returncode == 1
    assert f"{tmp_path / 'a.png'}: 1 code(s) in" in result.stdout
    assert repr(frame.text) in result.stdout
    assert "gone.png: no such file" in result.stderr


def test_a_bad_configuration_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "device.toml"
    config.write_text('[device]\nid = "d1"\n[location]\nid = "l1"\n[scanner.camera]\ndecode_budget_ms = -1\n')
    result = _decode("--config", str(config), str(tmp_path))
    assert result.returncode == 2
    assert "decode_budget_ms" in result.stderr
