"""`qr-checkin decode [--json] FILE...`: the camera's decode path on image files.

Each image goes through the same Decoder the camera source uses (cheap pass, escalation within the
configured per-frame budget), one image at a time with no hints from earlier frames. Folders are
expanded to the images inside them. Reading image files needs Pillow (the `label` extra): the daemon
itself never reads image files, so the core install does not carry it.

The texts printed are what the codes hold, personal data included: this is a technician's tool whose
output is the operator's terminal, never a log.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from device.errors import ConfigError, ImageUnreadable
from device.settings import CameraSourceSettings, load_settings
from device.vision.decoder import Decoder
from device.vision.frames import image_files, load_gray


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="+", type=Path, metavar="FILE", help="images or folders of images")
    parser.add_argument("--json", action="store_true", help='one JSON line per file: {"file", "texts", "ms"}')
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
    decoder = Decoder(budget_ms=camera.decode_budget_ms)
    try:
        return _decode_all(decoder, expand(args.files), args.json)
    except BrokenPipeError:
        # The reader went away (`| head`): stop quietly, and keep the interpreter's final flush quiet too.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def _decode_all(decoder: Decoder, paths: list[Path], as_json: bool) -> int:
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
        decoded = decoder.decode(gray)
        if as_json:
            line = {"file": str(path), "texts": decoded.texts, "ms": round(decoded.ms, 3)}
            print(json.dumps(line, ensure_ascii=False), flush=True)
        else:
            print(f"{path}: {len(decoded.texts)} code(s) in {decoded.ms:.2f} ms ({decoded.step or 'none'})")
            for text in decoded.texts:
                print(f"  {text!r}")
    return 1 if failed else 0
