"""What the decode passes share: where a symbol is (`Region`), what decoded (`Found`, `Decoded`), how
zxing-cpp's result maps back to the frame, and the image operations on a crop (`crop`, `sharpen`,
`upscale`). The passes themselves, and the order they run in, are the cascade's (cascade.py).

`QR_FORMATS` is QR Model 1 and 2 only: `BarcodeFormat.QRCode` in zxing-cpp 3.x also means Micro QR and
rMQR, which no card or phone app here carries and which only add detector work and false-positive
surface. Only symbols that decode with valid Reed-Solomon check codes count as found.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
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


def distinct(regions: Sequence[Region]) -> list[Region]:
    kept: list[Region] = []
    for r in regions:
        if not any(r.center_inside(k) or k.center_inside(r) for k in kept):
            kept.append(r)
    return kept
