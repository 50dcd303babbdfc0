"""The camera's reads on Arm: the ZXing photo sets decoded here and in an emulated Raspberry Pi root.

    sudo python -m bench.arm [--quick]      # ARM_ARCHES="arm64 armhf" for both (default arm64)

zxing-cpp, numpy and Pillow are other builds on Arm (aarch64 wheels, armhf compiled from source), so a
photo one reads and the other misses would show here: per photo set, the images read by the plain
zxing-cpp call and by the cascade (each photo held in view for a second), and its misreads, on the
emulated CPU (value) against this machine (baseline), with the photos read differently named.
Counts only: emulation says nothing about a Pi's speed, so both sides decode on a tick clock (which
passes fit a frame's budget never depends on the CPU), and a difference is one of the libraries', not
of the CPU's.

The root is scripts/test_arm.sh's (it needs root and binfmt; `make setup` runs there first, so a cold
run takes minutes). Not part of `make bench`. Inside the root this module runs with --reads, which
prints what it read as one JSON line.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np

from bench.common import Row, main_for, row
from bench.decode import Item, _judge
from device.settings import CameraSourceSettings
from device.vision.cascade import Cascade, hold
from device.vision.presence import Presence
from tests.support.daemon import ROOT
from tests.support.frames import TickClock, photo_cases, photo_gray, plain_texts
from tests.support.paths import PHOTOS

NAME = "camera-decode-arm"
PHOTO_SETS = ("zxing-cpp", "zxing-java")
MARK = "bench.arm reads: "
# Per set, per decoder: each image's outcome (read, misread, none).
Reads = dict[str, dict[str, dict[str, str]]]


def reads(quick: bool) -> Reads:
    s = CameraSourceSettings()

    def ours(gray: np.ndarray) -> list[str]:
        cascade = Cascade(s.escalation_share, s.probe_share, s.decode_budget_ms, clock=TickClock())
        return hold(gray, s.max_fps, cascade, Presence(s.rearm_s, s.confirm_reads), until_scan=True).scans

    decoders = {"plain": plain_texts, "ours": ours}
    out: Reads = {}
    for photo_set in PHOTO_SETS:
        cases = photo_cases(PHOTOS, photo_set)[: 24 if quick else None]
        items = [Item(c.name, photo_gray(c), c.text, c.expected_is_wrong) for c in cases]
        out[photo_set] = {
            name: {item.name: _judge(item, decode(item.gray)) for item in items}
            for name, decode in decoders.items()
        }
    return out


def emulated_reads(arch: str, quick: bool) -> Reads:
    """`reads` run in scripts/test_arm.sh's root for `arch`, after its `make setup` (its output goes to
    stderr as it comes: minutes of it)."""
    command = f".venv/bin/python -m bench.arm --reads{' --quick' * quick}"
    result: Reads | None = None
    with subprocess.Popen(
        ["bash", str(ROOT / "scripts/test_arm.sh")],
        env={**os.environ, "ARCH": arch, "ARM_RUN": command},
        stdout=subprocess.PIPE,
        text=True,
    ) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith(MARK):
                result = json.loads(line[len(MARK) :])
            else:
                sys.stderr.write(line)
    if result is None:
        raise RuntimeError(f"no reads came from the {arch} root (scripts/test_arm.sh exit {proc.returncode})")
    return result


def _read(outcomes: dict[str, str], what: str = "read") -> int:
    return sum(1 for o in outcomes.values() if o == what)


def differences(arch: str, here: dict[str, str], there: dict[str, str]) -> str:
    """The images whose outcome differs between this machine and `arch`, named, or that none does."""
    differ = sorted(n for n in here.keys() | there.keys() if here.get(n) != there.get(n))
    if not differ:
        return "the same images as here"
    return "differ: " + ", ".join(f"{n} (here {here.get(n)}, {arch} {there.get(n)})" for n in differ)


def compare(arch: str, here: Reads, there: Reads) -> list[Row]:
    """Rows per photo set: `arch`'s counts as the value, this machine's as the baseline."""
    rows = []
    for photo_set, decoders in here.items():
        bench = f"{NAME}/{arch}/{photo_set}"
        for decoder, outcomes in decoders.items():
            other = there[photo_set][decoder]
            note = f"of {len(outcomes)}; {differences(arch, outcomes, other)}"
            rows.append(row(bench, f"read, {decoder}", _read(other), "images", _read(outcomes), note))
        misreads = [_read(d[photo_set]["ours"], "misread") for d in (there, here)]
        rows.append(row(bench, "misreads, ours", misreads[0], "images", misreads[1], "target 0"))
    return rows


def run(quick: bool = False) -> list[Row]:
    here = reads(quick)
    rows = []
    for arch in os.environ.get("ARM_ARCHES", "arm64").split():
        rows += compare(arch, here, emulated_reads(arch, quick))
    return rows


def main(argv: list[str]) -> int:
    if "--reads" in argv:
        print(MARK + json.dumps(reads("--quick" in argv), sort_keys=True), flush=True)
        return 0
    main_for(run)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
