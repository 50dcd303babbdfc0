"""Camera-like 640x480 grey frames with QR codes, generated deterministically from a seed.

A frame is what the lores Y plane of a Pi camera looks like: a cluttered, unevenly lit scene, a card or
phone held at an angle (rotation, perspective), out of focus, noisy, sometimes small or washed out.
Each degradation is one `Condition`, so a test or the benchmark can say which kind of frame the
decoder reads and which it misses. Used by the vision tests and bench/decode.py.
"""

from __future__ import annotations

import functools
import glob
import json
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import segno
import zxingcpp
from PIL import Image, ImageDraw, ImageFilter

from tests.support.paths import PAYLOADS_JSON

WIDTH, HEIGHT = 640, 480
Box = tuple[float, float, float, float]
CONDITIONS = ("clean", "rotation", "perspective", "blur", "noise", "low_contrast", "small", "clutter")


@dataclass(frozen=True)
class Condition:
    """How one frame is degraded; every field has a neutral value."""

    module_px: float = 5.0
    angle_deg: float = 0.0
    # Fraction of the code's side by which one edge is shortened: a code tilted away from the camera.
    tilt: float = 0.0
    blur_sigma: float = 0.0
    noise_sigma: float = 3.0
    # Grey levels between the code's dark and light modules.
    contrast: float = 200.0
    clutter: int = 6


@dataclass(frozen=True)
class LabeledFrame:
    image: np.ndarray
    # None for an empty frame.
    text: str | None
    condition: str
    seed: int
    # Where the code was pasted (x0, y0, x1, y1), None for an empty frame.
    box: Box | None = None


def payloads() -> list[str]:
    """Card payloads (synthetic BHYT and CCCD people) plus short app-style codes."""
    data = json.loads(PAYLOADS_JSON.read_text(encoding="utf-8"))
    texts = [item["payload"] for item in data["bhyt"] + data["cccd"]]
    return texts + [f"EMP-{n:06d}" for n in (1, 4711, 90210)] + ["https://checkin.example/u/7f3a9c"]


def condition_for(kind: str, rng: random.Random) -> Condition:
    """A random condition of one kind; the ranges sit around where a plain decoder starts to fail."""
    angle = rng.uniform(-12, 12)
    if kind == "clean":
        return Condition(module_px=rng.uniform(4, 6), angle_deg=angle)
    if kind == "rotation":
        return Condition(module_px=rng.uniform(3.5, 5), angle_deg=rng.uniform(0, 360))
    if kind == "perspective":
        return Condition(module_px=rng.uniform(3.5, 5), angle_deg=angle, tilt=rng.uniform(0.25, 0.5))
    if kind == "blur":
        return Condition(module_px=rng.uniform(3, 4.5), angle_deg=angle, blur_sigma=rng.uniform(1.0, 2.2))
    if kind == "noise":
        return Condition(module_px=rng.uniform(3, 4.5), angle_deg=angle, noise_sigma=rng.uniform(18, 40))
    if kind == "low_contrast":
        return Condition(
            module_px=rng.uniform(3, 4.5), angle_deg=angle, contrast=rng.uniform(14, 40), noise_sigma=4
        )
    if kind == "small":
        return Condition(module_px=rng.uniform(1.4, 2.4), angle_deg=angle, blur_sigma=0.5)
    if kind == "clutter":
        return Condition(module_px=rng.uniform(3.5, 5), angle_deg=angle, clutter=40, blur_sigma=0.6)
    if kind == "camera":
        # Everything at once, each in a mild dose: what a door camera sees of a card held up by a hand.
        return Condition(
            module_px=rng.uniform(2, 6),
            angle_deg=rng.uniform(0, 360),
            tilt=rng.uniform(0, 0.35),
            blur_sigma=rng.uniform(0.3, 1.4),
            noise_sigma=rng.uniform(3, 16),
            contrast=rng.uniform(30, 200),
            clutter=rng.randrange(6, 40),
        )
    raise ValueError(f"unknown condition {kind!r}; known: {', '.join(CONDITIONS)}")


def scene(rng: random.Random, clutter: int) -> Image.Image:
    """An unevenly lit background with rectangles, lines and blobs (edges a decoder may trip on)."""
    nrng = np.random.default_rng(rng.getrandbits(32))
    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)
    cx, cy = rng.uniform(0, WIDTH), rng.uniform(0, HEIGHT)
    light = 1.0 - 0.45 * (((xx - cx) ** 2 + (yy - cy) ** 2) / (WIDTH**2 + HEIGHT**2))
    base = rng.uniform(70, 170) * light + nrng.normal(0, 4, (HEIGHT, WIDTH))
    img = Image.fromarray(np.clip(base, 0, 255).astype(np.uint8), "L")
    draw = ImageDraw.Draw(img)
    for _ in range(clutter):
        x, y = rng.uniform(-50, WIDTH), rng.uniform(-50, HEIGHT)
        w, h = rng.uniform(5, 160), rng.uniform(5, 160)
        shade = rng.randrange(0, 256)
        shape = rng.randrange(4)
        if shape == 0:
            draw.rectangle((x, y, x + w, y + h), fill=shade)
        elif shape == 1:
            draw.ellipse((x, y, x + w, y + h), fill=shade)
        elif shape == 2:
            draw.line((x, y, x + w, y + h), fill=shade, width=rng.randrange(1, 6))
        else:  # stripes: the 1:1:3:1:1 runs of a finder pattern can hide in these
            for i in range(rng.randrange(3, 9)):
                step = rng.uniform(3, 9)
                draw.rectangle((x + i * 2 * step, y, x + i * 2 * step + step, y + h), fill=shade)
    return img


@functools.cache
def code_matrix(text: str) -> np.ndarray:
    """The code's modules (1 = dark) with a 4-module quiet zone; cached, segno's mask search is slow."""
    return np.pad(np.array(segno.make(text, error="m", micro=False).matrix, dtype=np.uint8), 4)


def code_image(text: str, module_px: float, contrast: float, light: float) -> Image.Image:
    matrix = code_matrix(text)
    dark = light - contrast
    modules = np.where(matrix == 1, dark, light).astype(np.uint8)
    side = round(matrix.shape[0] * module_px)
    return Image.fromarray(modules, "L").resize((side, side), Image.Resampling.NEAREST)


def perspective_coeffs(src: list[tuple[float, float]], dst: list[tuple[float, float]]) -> list[float]:
    """PIL's 8 coefficients mapping output points `dst` back to input points `src`."""
    rows = []
    for (x, y), (u, v) in zip(dst, src, strict=True):
        rows.append([x, y, 1, 0, 0, 0, -u * x, -u * y])
        rows.append([0, 0, 0, x, y, 1, -v * x, -v * y])
    rhs = np.array([c for pair in src for c in pair], dtype=np.float64)
    return [float(c) for c in np.linalg.solve(np.array(rows, dtype=np.float64), rhs)]


def place(frame: Image.Image, code: Image.Image, cond: Condition, rng: random.Random) -> Box:
    side = code.width
    half = side / 2
    angle = np.deg2rad(cond.angle_deg)
    # Tilt: the top edge recedes (shorter), as when a card leans away from the camera.
    shrink = cond.tilt * half
    corners = [(-half + shrink, -half), (half - shrink, -half), (half, half), (-half, half)]
    cos, sin = np.cos(angle), np.sin(angle)
    rotated = [(x * cos - y * sin, x * sin + y * cos) for x, y in corners]
    xs = [p[0] for p in rotated]
    ys = [p[1] for p in rotated]
    span_x, span_y = max(xs) - min(xs), max(ys) - min(ys)
    cx = rng.uniform(span_x / 2, max(span_x / 2, WIDTH - span_x / 2))
    cy = rng.uniform(span_y / 2, max(span_y / 2, HEIGHT - span_y / 2))
    dst = [(x + cx, y + cy) for x, y in rotated]
    src = [(0.0, 0.0), (float(side), 0.0), (float(side), float(side)), (0.0, float(side))]
    coeffs = perspective_coeffs(src, dst)
    size = (WIDTH, HEIGHT)
    warped = code.transform(size, Image.Transform.PERSPECTIVE, coeffs, Image.Resampling.BICUBIC)
    mask = Image.new("L", code.size, 255).transform(
        size, Image.Transform.PERSPECTIVE, coeffs, Image.Resampling.BILINEAR
    )
    frame.paste(warped, (0, 0), mask)
    return min(x for x, _ in dst), min(y for _, y in dst), max(x for x, _ in dst), max(y for _, y in dst)


def render(text: str | None, cond: Condition, seed: int) -> tuple[np.ndarray, Box | None]:
    """The frame and where its code sits."""
    rng = random.Random(seed)
    frame = scene(rng, cond.clutter)
    box = None
    if text is not None:
        light = rng.uniform(150 + min(cond.contrast, 90), 250)
        box = place(frame, code_image(text, cond.module_px, cond.contrast, light), cond, rng)
    if cond.blur_sigma > 0:
        frame = frame.filter(ImageFilter.GaussianBlur(cond.blur_sigma))
    pixels = np.asarray(frame, dtype=np.float32)
    noise = np.random.default_rng(seed).normal(0, cond.noise_sigma, pixels.shape)
    return np.clip(pixels + noise, 0, 255).astype(np.uint8), box


def camera_frames(count: int, seed: int = 1, kinds: tuple[str, ...] = CONDITIONS) -> Iterator[LabeledFrame]:
    """`count` frames cycling through `kinds`, each with a code; the same seed gives the same frames."""
    texts = payloads()
    for i in range(count):
        frame_seed = seed * 100_003 + i
        rng = random.Random(frame_seed)
        kind = kinds[i % len(kinds)]
        text = texts[rng.randrange(len(texts))]
        image, box = render(text, condition_for(kind, rng), frame_seed)
        yield LabeledFrame(image, text, kind, frame_seed, box)


def empty_frames(count: int, seed: int = 2) -> Iterator[LabeledFrame]:
    """Frames with no code: plain scenes, busy scenes, noisy scenes, defocused scenes."""
    looks = (Condition(), Condition(clutter=40), Condition(noise_sigma=30), Condition(blur_sigma=2.0))
    for i in range(count):
        frame_seed = seed * 100_003 + i
        image, _ = render(None, looks[i % len(looks)], frame_seed)
        yield LabeledFrame(image, None, "empty", frame_seed)


@dataclass(frozen=True)
class PhotoCase:
    """One photograph of the ZXing sets and the text its code holds (trailing CR/LF stripped)."""

    name: str
    path: Path
    text: str
    # zxing-java/qrcode-2/13: its expected file says "photograph", the code says "photography" (see the
    # dataset README). A correct read of it does not match, so it cannot count as a misread.
    expected_is_wrong: bool = False


PHOTO_SETS = {"zxing-cpp": ".", "zxing-java": "zxing-java"}
KNOWN_WRONG_EXPECTED = frozenset({"zxing-java/qrcode-2/13.png"})


def photo_cases(photos_dir: Path, photo_set: str) -> list[PhotoCase]:
    """Every image with its own expected-text file. qrcode-7's structured-append parts have none (only
    the merged message has), so they are not single-image cases."""
    base = photos_dir / PHOTO_SETS[photo_set]
    cases = []
    for expected in sorted(base.glob("qrcode-*/*.txt")):
        if expected.name.endswith((".result.txt", ".metadata.txt")):
            continue
        images = [p for p in expected.parent.glob(f"{glob.escape(expected.stem)}.*") if p.suffix != ".txt"]
        if len(images) != 1:
            continue
        name = images[0].relative_to(photos_dir).as_posix()
        # Bytes, not read_text: universal newlines would turn the payloads' CR/LF into LF.
        text = expected.read_bytes().decode("utf-8").rstrip("\r\n")
        cases.append(PhotoCase(name, images[0], text, name in KNOWN_WRONG_EXPECTED))
    return cases


def photo_gray(case: PhotoCase) -> np.ndarray:
    with Image.open(case.path) as img:
        return np.asarray(img.convert("L"))


def plain_texts(gray: np.ndarray) -> list[str]:
    """The baseline every figure is measured against: zxing-cpp's plain call for QR codes."""
    barcodes = zxingcpp.read_barcodes(
        gray,
        formats=zxingcpp.BarcodeFormats(zxingcpp.BarcodeFormat.QRCode),
        text_mode=zxingcpp.TextMode.Plain,
    )
    return [b.text for b in barcodes]


class TickClock:
    """A decoder clock that advances `tick_ms` at every reading: every pass then costs the same few
    ticks whatever the machine's load, so budgets decide deterministically (no wall-clock in tests)."""

    def __init__(self, tick_ms: float = 0.5) -> None:
        self.now = 0.0
        self.tick = tick_ms / 1000

    def __call__(self) -> float:
        self.now += self.tick
        return self.now


@functools.cache
def door_frames(count: int = 120, seed: int = 15) -> tuple[LabeledFrame, ...]:
    """The issue's kind of frame: every degradation at once (condition "camera"); cached per process."""
    return tuple(camera_frames(count, seed=seed, kinds=("camera",)))
