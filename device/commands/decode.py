"""`qr-checkin decode [--json] FILE...`: the camera's decode path on image files.

Each image is read as the camera path reads that frame held in view for one second at the configured
`max_fps`: every frame through the same cascade (device/vision/cascade.py) and presence debounce, so a
code only a late escalation pass reads is found as it would be at the door. `texts` are the scans that
second makes; `ms` is the mean decode time per frame. Each file starts afresh, with no hints from the
file before. Folders are expanded to the images inside them. Reading image files needs Pillow (the
`label` extra): the daemon itself never reads image files, so the core install does not carry it.

The texts printed are what the codes hold, personal data included: this is a technician's tool whose
output is the operator's terminal, never a log.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from device.cli import stdout_gone
from device.errors import ConfigError, ImageUnreadable
from device.settings import CameraSourceSettings, load_settings
from device.sources.camera import cascade_for
from device.sources.camera.files import image_files, load_gray
from device.vision.cascade import hold
from device.vision.presence import Presence


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="+", type=Path, metavar="FILE", help="images or folders of images")
    parser.add_argument(
        "--json",
        action="store_true",
        help='one JSON line per file: {"file", "texts", "ms", "frames", "read_at_frame", "step"}',
    )
    parser.add_argument(
        "--config",
        metavar="PATH",
        help="take the decode budget from this device configuration (default: the built-in defaults)",
    )


def expand(paths: list[Path]) -> list[Path]:
    out: list[Path] = []
    for path in paths:
        out.extend(image_files(path) if path.is_dir() else [path])
    return out


def main(args: argparse.Namespace) -> int:
    try:
        camera = load_settings(args.config).scanner.camera if args.config else CameraSourceSettings()
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    try:
        return _decode_all(camera, expand(args.files), args.json)
    except BrokenPipeError:
        stdout_gone()  # the reader left (`| head`): stop quietly
        return 0


def _decode_all(camera: CameraSourceSettings, paths: list[Path], as_json: bool) -> int:
    failed = 0
    for path in paths:
        try:
            gray = load_gray(path)
        except ImageUnreadable as exc:
            failed += 1
            if as_json:
                print(json.dumps({"file": str(path), "texts": [], "ms": None, "error": str(exc)}))
            else:
                print(f"error: {exc}", file=sys.stderr)
            continue
        held = hold(gray, camera.max_fps, cascade_for(camera), Presence(camera.rearm_s, camera.confirm_reads))
        first = next((n for n, d in enumerate(held.frames) if d.found), None)
        if as_json:
            line = {
                "file": str(path),
                "texts": held.scans,
                "ms": round(held.ms, 3),
                "frames": len(held.frames),
                "read_at_frame": first,
                "step": held.step,
            }
            print(json.dumps(line, ensure_ascii=False), flush=True)
        else:
            print(
                f"{path}: {len(held.scans)} code(s) in {held.ms:.2f} ms per frame over {len(held.frames)}"
                f" frames ({held.step or 'none'})"
            )
            for text in held.scans:
                print(f"  {text!r}")
    return 1 if failed else 0
