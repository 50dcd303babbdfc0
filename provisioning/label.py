"""Printable labels: the device id, the plate or location, the broker, and a QR of the label code
(device/label_code.py).

segno and Pillow stay in the `label` extra: a device never prints, and a laptop that only runs
`qr-provision device` without --label should not need them. Asking for a label without them fails
before anything is written, with the command that installs them.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from device.errors import ProvisionError
from device.label_code import format_label_code

if TYPE_CHECKING:
    from PIL import Image, ImageFont

DPI = 300
LABEL_SIZE = (1050, 600)  # 89 x 51 mm at 300 dpi: a common address-label size
A4 = (2480, 3508)
SHEET_GRID = (2, 5)
# DejaVu has the Vietnamese letters (Cổng, Đ); Pillow's own default font does not have them all.
FONTS = ("DejaVuSans.ttf", "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")
FORMATS = {".png": "PNG", ".pdf": "PDF"}


@dataclass(frozen=True, slots=True)
class LabelInfo:
    device_id: str
    location_id: str
    location_name: str
    kind: str
    broker: str
    config_hash: str

    @property
    def code(self) -> str:
        return format_label_code(self.device_id, self.location_id, self.config_hash)


def require_label_support(path: Path | None = None) -> None:
    """Refuses early (before anything is written) what could not produce a label."""
    try:
        import PIL  # noqa: F401
        import segno  # noqa: F401
    except ImportError:
        raise ProvisionError(
            "labels need segno and Pillow, which are not installed: "
            "pip install 'qr-checkin[label]', or go without labels (no --label; batch --no-labels)"
        ) from None
    if path is not None and path.suffix.lower() not in FORMATS:
        raise ProvisionError(f"--label {path}: the file name must end in .png or .pdf")


def render(info: LabelInfo) -> Image.Image:
    import segno
    from PIL import Image, ImageDraw

    width, height = LABEL_SIZE
    img = Image.new("L", LABEL_SIZE, 255)
    qr_png = io.BytesIO()
    # Quiet zone of 4 modules: phone cameras and the device's own reader need it.
    segno.make(info.code, error="m").save(qr_png, kind="png", scale=1, border=4)
    qr = Image.open(qr_png).convert("L")
    side = height - 60
    qr = qr.resize((side - side % qr.width, side - side % qr.width), Image.Resampling.NEAREST)
    img.paste(qr, (30, (height - qr.height) // 2))
    draw = ImageDraw.Draw(img)
    draw.rectangle((0, 0, width - 1, height - 1), outline=190, width=2)
    left = 30 + qr.width + 30
    lines = [
        (info.location_name or info.location_id, 78),
        (f"{info.kind} · {info.location_id}", 40),
        (f"device {info.device_id}", 40),
        (info.broker, 30),
        (f"config {info.config_hash}", 30),
    ]
    y = 60
    for text, size in lines:
        font = _fitting_font(text, size, width - left - 30)
        draw.text((left, y), text, fill=0, font=font)
        y += int(size * 1.45)
    return img


def encode(images: Sequence[Image.Image], fmt: str) -> bytes:
    """One PNG (the first image) or one PDF with a page per image."""
    out = io.BytesIO()
    if fmt == "PDF":
        images[0].save(out, "PDF", resolution=DPI, save_all=True, append_images=list(images[1:]))
    else:
        images[0].save(out, "PNG", dpi=(DPI, DPI))
    return out.getvalue()


def label_file(info: LabelInfo, path: Path) -> bytes:
    return encode([render(info)], FORMATS[path.suffix.lower()])


def sheets(infos: Sequence[LabelInfo]) -> list[Image.Image]:
    """A4 pages at 300 dpi with a 2 x 5 grid of labels, in the order given."""
    from PIL import Image

    cols, rows = SHEET_GRID
    per_page = cols * rows
    margin_x = (A4[0] - cols * LABEL_SIZE[0]) // 2
    margin_y = (A4[1] - rows * LABEL_SIZE[1]) // 2
    pages = []
    for start in range(0, len(infos), per_page):
        page = Image.new("L", A4, 255)
        for i, info in enumerate(infos[start : start + per_page]):
            col, row = i % cols, i // cols
            page.paste(render(info), (margin_x + col * LABEL_SIZE[0], margin_y + row * LABEL_SIZE[1]))
        pages.append(page)
    return pages


def _fitting_font(text: str, size: int, max_width: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    # Long broker host names shrink rather than run off the label; bounded by the size halving.
    for candidate in (size, size * 3 // 4, size // 2):
        font = _font(candidate)
        if font.getlength(text) <= max_width:
            return font
    return font


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    from PIL import ImageFont

    for name in FONTS:
        try:
            return ImageFont.truetype(name, size)
        except OSError:
            continue
    return ImageFont.load_default(size=size)
