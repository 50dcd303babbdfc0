"""The decode path of every camera frame: one cheap pass, then escalation only where a code hides.

The cheap pass is zxing-cpp's own reader, restricted to QR Model 1 and 2 (`BarcodeFormat.QRCode` in
zxing-cpp 3.x also means Micro QR and rMQR, which no card or phone app here carries and which only
add detector work and false-positive surface). It runs with `return_errors=True`: a symbol whose
finder patterns were found but whose data did not decode comes back with its position and version.
That, or a region where a code was seen in the last frames (a hint from the caller), is the evidence
that pays for escalation; an empty frame has neither and costs exactly the cheap pass.

Escalation works on a crop around the evidence, cheapest step first, until one decodes or the
per-frame budget is spent. Each step was kept because it reads codes the others miss (see
bench/decode.py, which measures every step's gain and cost):
- `histogram`: zxing's global-histogram binarizer. Reads evenly lit codes whose local-average
  binarization broke up (some of the shared photographs).
- `upscale`: a light sharpen and a bilinear upscale to about 4 px per module. zxing samples one pixel
  per module, so codes under ~2.5 px per module (a card held far away, a BHYT payload of version 13
  in a 640x480 frame) detect but do not decode; interpolated pixels put the sampling grid back on the
  modules.

Only symbols that decode with valid Reed-Solomon check codes are returned: no step ever guesses.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import zxingcpp

QR_FORMATS = zxingcpp.BarcodeFormats(
    [zxingcpp.BarcodeFormat.QRCodeModel1, zxingcpp.BarcodeFormat.QRCodeModel2]
)
# Crops are grown by this share of the code's size (plus a few pixels) so the quiet zone is inside.
CROP_MARGIN = 0.2
# Pixels per module that zxing samples reliably once the crop is interpolated.
TARGET_MODULE_PX = 4.0
MAX_UPSCALE = 4
# The longest side of an upscaled crop: bounds one step to about three full frames' decode. A crop
# over half of it is not upscaled at all (its modules are big enough already).
MAX_UPSCALED_SIDE = 1024
# At most this many regions escalate per frame: more evidence than that is clutter, not codes.
MAX_REGIONS = 3


@dataclass(frozen=True, slots=True)
class Region:
    """Where a code is or was, in frame pixels; `module_px` when the symbol's version was read."""

    x0: float
    y0: float
    x1: float
    y1: float
    module_px: float | None = None

    def overlaps(self, other: Region) -> bool:
        return self.x0 < other.x1 and other.x0 < self.x1 and self.y0 < other.y1 and other.y0 < self.y1

    def center_inside(self, other: Region) -> bool:
        cx, cy = (self.x0 + self.x1) / 2, (self.y0 + self.y1) / 2
        return other.x0 <= cx <= other.x1 and other.y0 <= cy <= other.y1


@dataclass(frozen=True, slots=True)
class Found:
    """One decoded code. `text` is personal data."""

    text: str
    region: Region

    def __repr__(self) -> str:
        return f"Found(chars={len(self.text)}, region={self.region!r})"


@dataclass(frozen=True, slots=True)
class Decoded:
    """What one frame held: decoded codes, codes seen but not decoded, and how it was read."""

    found: tuple[Found, ...]
    undecoded: tuple[Region, ...]
    # "cheap", or the escalation step that read the first code; None when nothing decoded.
    step: str | None
    ms: float

    @property
    def texts(self) -> list[str]:
        return [f.text for f in self.found]


def _read(
    image: np.ndarray,
    binarizer: zxingcpp.Binarizer = zxingcpp.Binarizer.LocalAverage,
    return_errors: bool = False,
) -> list[zxingcpp.Barcode]:
    return zxingcpp.read_barcodes(
        image,
        formats=QR_FORMATS,
        text_mode=zxingcpp.TextMode.Plain,
        binarizer=binarizer,
        return_errors=return_errors,
    )


def region_of(barcode: zxingcpp.Barcode, scale: float = 1.0, dx: float = 0.0, dy: float = 0.0) -> Region:
    """The bounding box of a symbol, mapped from crop to frame coordinates."""
    p = barcode.position
    corners = (p.top_left, p.top_right, p.bottom_right, p.bottom_left)
    xs = [c.x / scale + dx for c in corners]
    ys = [c.y / scale + dy for c in corners]
    side = (math.dist((xs[0], ys[0]), (xs[1], ys[1])) + math.dist((xs[0], ys[0]), (xs[3], ys[3]))) / 2
    version = str(barcode.extra.get("Version", "")) if isinstance(barcode.extra, dict) else ""
    # Model 1 and 2 symbols are 17 + 4 * version modules wide.
    module_px = side / (17 + 4 * int(version)) if version.isdigit() and side > 0 else None
    return Region(min(xs), min(ys), max(xs), max(ys), module_px)


def located(barcode: zxingcpp.Barcode) -> bool:
    p = barcode.position
    return (p.bottom_right.x - p.top_left.x) != 0 or (p.bottom_right.y - p.top_left.y) != 0


def sharpen(gray: np.ndarray, amount: int = 2) -> np.ndarray:
    """Unsharp mask against a 3x3 box: restores module edges a defocused lens softened."""
    img = gray.astype(np.int16)
    h, w = img.shape
    if h < 3 or w < 3:
        return gray
    box = sum(img[1 + dy : h - 1 + dy, 1 + dx : w - 1 + dx] for dy in (-1, 0, 1) for dx in (-1, 0, 1))
    out = img.copy()
    out[1:-1, 1:-1] = img[1:-1, 1:-1] * (1 + amount) - (box * amount) // 9
    return np.clip(out, 0, 255).astype(np.uint8)


def upscale(gray: np.ndarray, factor: int) -> np.ndarray:
    """Bilinear upscale by an integer factor (pixel i lands at i * factor), separable, integer maths."""
    # The repeated edge row and column let the last pixels interpolate towards themselves.
    img = np.pad(gray, ((0, 1), (0, 1)), mode="edge").astype(np.uint16)
    w = np.arange(factor, dtype=np.uint16)
    rows = img[:-1, None, :] * (factor - w)[:, None] + img[1:, None, :] * w[:, None]
    rows = rows.reshape(-1, img.shape[1])
    cols = rows[:, :-1, None] * (factor - w) + rows[:, 1:, None] * w
    return (cols.reshape(rows.shape[0], -1) // (factor * factor)).astype(np.uint8)


@dataclass(frozen=True, slots=True)
class Crop:
    image: np.ndarray
    x0: int
    y0: int
    region: Region


def crop(gray: np.ndarray, region: Region) -> Crop:
    h, w = gray.shape
    mx = (region.x1 - region.x0) * CROP_MARGIN + 6
    my = (region.y1 - region.y0) * CROP_MARGIN + 6
    x0, y0 = max(0, int(region.x0 - mx)), max(0, int(region.y0 - my))
    x1, y1 = min(w, int(region.x1 + mx) + 1), min(h, int(region.y1 + my) + 1)
    return Crop(gray[y0:y1, x0:x1], x0, y0, region)


# A step turns a crop into symbols in frame coordinates; [] when it cannot help or did not read.
Step = Callable[[Crop], list[tuple[zxingcpp.Barcode, Region]]]


def histogram_step(c: Crop) -> list[tuple[zxingcpp.Barcode, Region]]:
    found = _read(c.image, binarizer=zxingcpp.Binarizer.GlobalHistogram)
    return [(b, region_of(b, 1.0, c.x0, c.y0)) for b in found if b.valid]


def upscale_step(c: Crop) -> list[tuple[zxingcpp.Barcode, Region]]:
    module_px = c.region.module_px
    if module_px is not None and module_px >= TARGET_MODULE_PX:
        return []  # large modules: interpolation adds nothing but cost
    factor = MAX_UPSCALE if module_px is None else math.ceil(TARGET_MODULE_PX / max(module_px, 0.5))
    factor = min(max(factor, 2), MAX_UPSCALE, MAX_UPSCALED_SIDE // max(c.image.shape))
    if factor < 2 or min(c.image.shape) < 8:
        return []
    big = upscale(sharpen(c.image), factor)
    found = _read(big)
    return [(b, region_of(b, factor, c.x0, c.y0)) for b in found if b.valid]


STEPS: dict[str, Step] = {"histogram": histogram_step, "upscale": upscale_step}


def distinct(regions: Sequence[Region]) -> list[Region]:
    kept: list[Region] = []
    for r in regions:
        if not any(r.center_inside(k) or k.center_inside(r) for k in kept):
            kept.append(r)
    return kept


class Decoder:
    """Decodes grey frames (2-D uint8 arrays, strided views allowed). Stateless and thread-safe:
    what earlier frames saw comes in as `hints`."""

    def __init__(
        self,
        budget_ms: float,
        steps: Sequence[str] = tuple(STEPS),
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        unknown = [s for s in steps if s not in STEPS]
        if unknown:
            raise ValueError(f"unknown escalation step(s) {unknown}; known: {', '.join(STEPS)}")
        self.budget_ms = budget_ms
        self.steps = tuple(steps)
        self._clock = clock

    def decode(self, gray: np.ndarray, hints: Sequence[Region] = ()) -> Decoded:
        if gray.ndim != 2 or gray.dtype != np.uint8:
            raise ValueError(f"a frame must be a 2-D uint8 grey image, not {gray.ndim}-D {gray.dtype}")
        start = self._clock()
        symbols = _read(gray, return_errors=True)
        if not symbols and not hints:  # the common case, an empty frame: nothing more to do
            return Decoded((), (), None, (self._clock() - start) * 1000)
        found = [Found(b.text, region_of(b)) for b in symbols if b.valid]
        undecoded = [region_of(b) for b in symbols if not b.valid and located(b)]
        undecoded = [r for r in distinct(undecoded) if not any(r.overlaps(f.region) for f in found)]
        step = "cheap" if found else None
        if not found and self.steps:
            # Evidence in this frame first: it is where the code is now; hints say where it was.
            candidates = distinct([*undecoded, *hints])[:MAX_REGIONS]
            found, step, undecoded = self._escalate(gray, candidates, undecoded, start)
        ms = (self._clock() - start) * 1000
        return Decoded(tuple(found), tuple(undecoded), step, ms)

    def _escalate(
        self, gray: np.ndarray, candidates: list[Region], undecoded: list[Region], start: float
    ) -> tuple[list[Found], str | None, list[Region]]:
        for region in candidates:
            c = crop(gray, region)
            for name in self.steps:
                if (self._clock() - start) * 1000 >= self.budget_ms:
                    return [], None, undecoded
                hits = STEPS[name](c)
                if hits:
                    found = [Found(b.text, r) for b, r in hits]
                    rest = [u for u in undecoded if not any(u.overlaps(f.region) for f in found)]
                    return found, name, rest
        return [], None, undecoded
