"""The camera's decode path: a cascade of zxing-cpp passes spread over the frames a code is held in view.

No single pass reads every code (bench/decode.py measures each), and running all of them on every frame
would cost ten times the plain call while almost every frame is empty. A card is held up for many frames
in a row, so the cascade spends them:

- Every frame gets the cheap pass: zxing-cpp for QR Model 1 and 2, `return_errors=True` (a symbol whose
  finder patterns were found but whose data did not decode comes back with its position), without
  zxing's second, inverted search (a third of the plain call's time; inversion is a probe below).
- While there is evidence of a code, each further frame also gets the next escalation pass of `PASSES`
  on crops around it, within a per-frame budget, cycling, so a code held still for a second has met
  every pass. Evidence is a symbol seen but not decoded, a code read in the last frames (by the cheap
  pass, a pass, or a hint of the presence debounce), kept for `EVIDENCE_S`. The pass that read a code
  goes first on the next frames, so a code only it reads is read in every frame it is in view.
- A frame without evidence spends what the cheap pass saved on probes, paid from a bank that gains
  `probe_share` of the cheap pass's time per frame, so an empty stream costs at most that much more on
  average. The probes take turns: `locate`, a texture cue that finds the most code-like patch (codes
  too small or faint for zxing's finder search have no other evidence), followed by the
  `CANDIDATE_PASSES` on that patch; then blur-denoised, inverted and global-histogram reads of the
  whole frame. What a probe reads becomes a read like any other, what it sees but cannot decode
  becomes evidence for the passes.

Budgets are measured in the cheap pass's own time on this machine (an exponential average), so the
same setting holds on a Pi and on a laptop; `budget_ms` caps them in milliseconds. Only symbols that
decode with valid Reed-Solomon check codes are returned: no pass ever guesses.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import zxingcpp

from device.vision.presence import Presence
from device.vision.symbols import (
    MAX_REGIONS,
    MAX_UPSCALE,
    MAX_UPSCALED_SIDE,
    QR_FORMATS,
    TARGET_MODULE_PX,
    Decoded,
    Found,
    Region,
    crop,
    distinct,
    located,
    region_of,
    sharpen,
    upscale,
)

# Evidence (a sighting, a read) is worth escalating for this long: a card tilting through an
# unreadable angle, a motion-blurred frame or a probe that ran four frames ago.
EVIDENCE_S = 0.5
# Banked probe time (and debt) is capped at this many cheap passes: a long empty spell buys no burst.
PROBE_BANK = 2.0
# How fast the measured costs follow the machine (weight of the newest frame).
EMA = 0.1

Binarizer = zxingcpp.Binarizer


def blur(gray: np.ndarray) -> np.ndarray:
    """3x3 binomial (Gaussian) blur, separable, integer maths: noise out, module edges kept."""
    p = np.pad(gray, 1, mode="edge").astype(np.uint16)
    h, w = gray.shape
    rows = p[:, :w] + 2 * p[:, 1 : w + 1] + p[:, 2 : w + 2]
    return ((rows[:h] + 2 * rows[1 : h + 1] + rows[2 : h + 2] + 8) // 16).astype(np.uint8)


def invert(gray: np.ndarray) -> np.ndarray:
    return 255 - gray


@dataclass(frozen=True)
class Pass:
    """One way of looking again: transform the image, maybe upscale it, read it with one binarizer."""

    name: str
    transform: Callable[[np.ndarray], np.ndarray] | None = None
    binarizer: zxingcpp.Binarizer = Binarizer.LocalAverage
    # Upscale small modules towards TARGET_MODULE_PX (crops only).
    upscaled: bool = False
    # Not a read: `locate` finds the most code-like patch for the candidate passes (probes only).
    locates: bool = False


def _upscale_factor(image: np.ndarray, region: Region) -> int:
    """1 when the modules are big enough already or the crop is too large to grow."""
    module_px = region.module_px
    if module_px is not None and module_px >= TARGET_MODULE_PX:
        return 1
    factor = 2 if module_px is None else math.ceil(TARGET_MODULE_PX / max(module_px, 0.5))
    factor = min(factor, MAX_UPSCALE, MAX_UPSCALED_SIDE // max(image.shape))
    return factor if factor >= 2 and min(image.shape) >= 8 else 1


def read(image: np.ndarray, binarizer: zxingcpp.Binarizer, invert_too: bool) -> list[zxingcpp.Barcode]:
    return zxingcpp.read_barcodes(
        image,
        formats=QR_FORMATS,
        text_mode=zxingcpp.TextMode.Plain,
        binarizer=binarizer,
        try_invert=invert_too,
        return_errors=True,
    )


def run_pass(p: Pass, gray: np.ndarray, region: Region | None) -> tuple[list[Found], list[Region], int]:
    """Runs a pass on the whole frame (region None) or a crop around a region: the codes it decoded and
    the symbols it saw, in frame coordinates, and how many pixels it read (for its cost)."""
    image, dx, dy, factor = gray, 0, 0, 1
    if region is not None:
        c = crop(gray, region)
        image, dx, dy = c.image, c.x0, c.y0
        if p.upscaled:
            factor = _upscale_factor(image, region)
            if factor == 1:
                return [], [], 0  # large modules: interpolation adds nothing but cost
    if p.transform is not None:
        image = p.transform(image)
    if factor > 1:
        image = upscale(image, factor)
    symbols = read(image, p.binarizer, invert_too=False)
    found = [Found(b.text, region_of(b, factor, dx, dy)) for b in symbols if b.valid]
    seen = [region_of(b, factor, dx, dy) for b in symbols if not b.valid and located(b)]
    return found, seen, image.size


# The texture cue: blocks of 16x16 frame pixels (8x8 at half resolution).
CUE_BLOCK = 8
# Blocks at least this share of the peak's texture belong to the patch around it.
CUE_SHARE = 0.5
# The patch is grown by this share of its size (plus a few pixels): the cue finds a code's busy
# middle, the decoder needs its finder patterns and quiet zone.
CUE_GROW = 0.25


def locate(gray: np.ndarray) -> Region | None:
    """The most code-like patch of a frame: where the module edges run densely in both directions.

    A code too small, blurred or faint for zxing's finder-pattern search still has that texture; stripes
    and edges of the background have it in one direction only. Measured on the issue-like frames the
    patch overlaps the code in 110 of 120; on a frame without a code it is a busy piece of background,
    which is why only the bank-paid candidate passes look at it, never the escalation budget."""
    b = CUE_BLOCK
    half = gray[::2, ::2]
    hb, wb = (half.shape[0] - 1) // b, (half.shape[1] - 1) // b
    if hb < 1 or wb < 1:
        return None
    h, w = hb * b, wb * b
    ex = np.abs(np.subtract(half[:h, 1 : w + 1], half[:h, :w], dtype=np.int16))
    ey = np.abs(np.subtract(half[1 : h + 1, :w], half[:h, :w], dtype=np.int16))
    score = np.minimum(
        ex.reshape(hb, b, wb, b).sum((1, 3), dtype=np.int32),
        ey.reshape(hb, b, wb, b).sum((1, 3), dtype=np.int32),
    )
    py, px = np.unravel_index(int(np.argmax(score)), score.shape)
    if score[py, px] == 0:
        return None
    hot = score >= CUE_SHARE * score[py, px]
    # The run of hot rows (columns) through the peak, in the band of three blocks around it.
    y0, y1 = _run(hot[:, max(px - 1, 0) : px + 2].any(axis=1), int(py))
    x0, x1 = _run(hot[max(py - 1, 0) : py + 2].any(axis=0), int(px))
    f = 2 * b
    grow = max(x1 + 1 - x0, y1 + 1 - y0) * f * CUE_GROW + 16
    fh, fw = gray.shape
    return Region(
        max(0.0, x0 * f - grow),
        max(0.0, y0 * f - grow),
        min(fw, (x1 + 1) * f + grow),
        min(fh, (y1 + 1) * f + grow),
    )


def _run(mask: np.ndarray, i: int) -> tuple[int, int]:
    a = b = i
    while a > 0 and mask[a - 1]:
        a -= 1
    while b < len(mask) - 1 and mask[b + 1]:
        b += 1
    return a, b


# In the order the cascade meets them; bench/decode.py measures what each adds and costs.
PASSES: tuple[Pass, ...] = (
    Pass("blur", blur),
    Pass("blur-upscale", blur, upscaled=True),
    Pass("upscale", upscaled=True),
    Pass("histogram", binarizer=Binarizer.GlobalHistogram),
    Pass("sharpen-upscale", sharpen, upscaled=True),
)
# Whole-frame looks for frames with no evidence, in turn.
PROBES: tuple[Pass, ...] = (
    Pass("blur", blur),
    Pass("locate", locates=True),
    Pass("invert", invert),
    Pass("histogram", binarizer=Binarizer.GlobalHistogram),
)
# The passes (by name) the probes run on the patch `locate` found, in this order.
CANDIDATE_PASSES = ("blur-upscale", "upscale", "sharpen-upscale")


@dataclass
class _Evidence:
    region: Region
    at: float


@dataclass
class Stats:
    """The last minute of frames, for the status: frames/s, decode time p99, share escalated."""

    window_s: float = 60.0
    _frames: deque[tuple[float, float, bool]] = field(default_factory=deque)
    # Frames are added by the decode thread, the snapshot is read by the event loop.
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, at: float, ms: float, escalated: bool) -> None:
        with self._lock:
            self._frames.append((at, ms, escalated))
            while self._frames and self._frames[0][0] < at - self.window_s:
                self._frames.popleft()

    def snapshot(self) -> dict[str, float]:
        with self._lock:
            frames = list(self._frames)
        if not frames:
            return {"frames_per_s": 0.0, "decode_p99_ms": 0.0, "escalated_share": 0.0}
        span = frames[-1][0] - frames[0][0]
        ms = sorted(f[1] for f in frames)
        return {
            "frames_per_s": round((len(frames) - 1) / span, 1) if span > 0 else 0.0,
            "decode_p99_ms": round(ms[min(len(ms) - 1, math.ceil(0.99 * len(ms)) - 1)], 2),
            "escalated_share": round(sum(f[2] for f in frames) / len(frames), 3),
        }


class Cascade:
    """The decode state of one camera stream: call `decode` once per frame, in time order. Not
    thread-safe (one worker thread decodes a camera's frames)."""

    def __init__(
        self,
        escalation_share: float = 1.0,
        probe_share: float = 0.75,
        budget_ms: float = 40.0,
        passes: Sequence[Pass] = PASSES,
        probes: Sequence[Pass] = PROBES,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        if escalation_share < 0 or probe_share < 0 or budget_ms < 0:
            raise ValueError("shares and budget must be >= 0")
        self.escalation_share = escalation_share
        self.probe_share = probe_share
        self.budget_ms = budget_ms
        self.passes = tuple(passes)
        self.probes = tuple(probes)
        self.stats = Stats()
        self._clock = clock
        self._cheap_ms: float | None = None
        # Milliseconds per megapixel read, per pass (crops differ in size; this predicts a pass's cost).
        self._ms_per_mpx: dict[str, float] = {}
        self._evidence: list[_Evidence] = []
        self._next = 0
        self._winner: Pass | None = None
        # The winner was a whole-frame probe (run again on the whole frame), not a pass on crops.
        self._winner_whole = False
        self._winner_region: Region | None = None
        # Bank-paid looks still to come: a probe on the whole frame (region None) or a candidate pass.
        self._jobs: deque[tuple[Pass, Region | None]] = deque()
        self._probe_bank = 0.0

    def decode(self, gray: np.ndarray, at: float, hints: Sequence[Region] = ()) -> Decoded:
        if gray.ndim != 2 or gray.dtype != np.uint8:
            raise ValueError(f"a frame must be a 2-D uint8 grey image, not {gray.ndim}-D {gray.dtype}")
        start = self._clock()
        symbols = read(gray, Binarizer.LocalAverage, invert_too=False)
        cheap_ms = (self._clock() - start) * 1000
        self._cheap_ms = cheap_ms if self._cheap_ms is None else (1 - EMA) * self._cheap_ms + EMA * cheap_ms
        found = [Found(b.text, region_of(b)) for b in symbols if b.valid]
        seen = [region_of(b) for b in symbols if not b.valid and located(b)]
        self._evidence = [e for e in self._evidence if at - e.at <= EVIDENCE_S]
        self._evidence += [_Evidence(r, at) for r in [*seen, *hints]]
        step = "cheap" if found else None
        escalated = False
        if not found and self._evidence:
            escalated = True
            found, more = self._escalate(gray, start)
            step = self._winner.name if found and self._winner else None
            seen += more
        elif not found:
            self._next, self._winner = 0, None
            found, more, step = self._probe(gray, cheap_ms)
            seen += more
            self._evidence += [_Evidence(r, at) for r in more]
        if found:
            self._evidence += [_Evidence(f.region, at) for f in found]
        undecoded = [r for r in distinct(seen) if not any(r.overlaps(f.region) for f in found)]
        ms = (self._clock() - start) * 1000
        self.stats.add(at, ms, escalated)
        return Decoded(tuple(found), tuple(undecoded), step, ms)

    def _predicted_ms(self, p: Pass, pixels: int) -> float:
        return self._ms_per_mpx.get(p.name, 0.0) * pixels / 1e6

    def _timed(
        self, p: Pass, gray: np.ndarray, region: Region | None
    ) -> tuple[list[Found], list[Region], float]:
        """Runs a pass and learns its cost; also returns the milliseconds it took."""
        t0 = self._clock()
        found, seen, pixels = run_pass(p, gray, region)
        return found, seen, self._learn(p, t0, pixels)

    def _learn(self, p: Pass, t0: float, pixels: int) -> float:
        ms = (self._clock() - t0) * 1000
        if pixels:
            rate = ms / (pixels / 1e6)
            old = self._ms_per_mpx.get(p.name)
            self._ms_per_mpx[p.name] = rate if old is None else (1 - EMA) * old + EMA * rate
        return ms

    def _escalate(self, gray: np.ndarray, start: float) -> tuple[list[Found], list[Region]]:
        """At least the next pass on every evidence region; more while the budget lasts."""
        if not self.passes:
            return [], []
        budget = min(self.budget_ms, self.escalation_share * (self._cheap_ms or 0.0))
        regions = distinct([e.region for e in reversed(self._evidence)])[:MAX_REGIONS]
        if self._winner is not None and self._winner_region is not None:
            # The crop the winner read from first: a crop around the read code differs a little.
            regions = [self._winner_region, *regions[: MAX_REGIONS - 1]]
        crop_px = sum(crop(gray, r).image.size for r in regions)
        order = [self.passes[(self._next + i) % len(self.passes)] for i in range(len(self.passes))]
        if self._winner is not None:
            order = [self._winner, *(p for p in order if p is not self._winner)]
        seen: list[Region] = []
        for n, p in enumerate(order):
            whole = p is self._winner and self._winner_whole
            spent = (self._clock() - start) * 1000
            # An upscaled pass reads about four times the crop (2x, the usual factor).
            pixels = gray.size if whole else crop_px * (4 if p.upscaled else 1)
            if n > 0 and spent + self._predicted_ms(p, pixels) > budget:
                break
            if p is not self._winner:
                self._next = (self.passes.index(p) + 1) % len(self.passes)
            for region in [None] if whole else regions:
                found, more, _ = self._timed(p, gray, region)
                seen += more
                if found:
                    self._winner, self._winner_whole, self._winner_region = p, whole, region
                    return found, seen
            if p is self._winner:
                self._winner = None  # it no longer reads this code: back to the cycle
        return [], seen

    def _probe(self, gray: np.ndarray, cheap_ms: float) -> tuple[list[Found], list[Region], str | None]:
        bank_cap = PROBE_BANK * (self._cheap_ms or cheap_ms)
        self._probe_bank = min(bank_cap, self._probe_bank + self.probe_share * cheap_ms)
        if not self.probes or self.probe_share == 0:
            return [], [], None
        if not self._jobs:
            self._jobs.extend((p, None) for p in self.probes)
        p, region = self._jobs[0]
        pixels = gray.size if region is None else crop(gray, region).image.size * (4 if p.upscaled else 1)
        if self._predicted_ms(p, pixels) > self._probe_bank:
            return [], [], None
        self._jobs.popleft()
        found: list[Found] = []
        seen: list[Region] = []
        if p.locates:
            t0 = self._clock()
            patch = locate(gray)
            ms = self._learn(p, t0, gray.size)
            if patch is not None:
                candidates = [q for name in CANDIDATE_PASSES for q in self.passes if q.name == name]
                self._jobs.extendleft(reversed([(q, patch) for q in candidates]))
        else:
            found, seen, ms = self._timed(p, gray, region)
        # The debt is capped too: one slow first run (cold caches) must not starve the probes.
        self._probe_bank = max(-bank_cap, self._probe_bank - ms)
        if found:
            # The same look goes first on the next frames, for the confirming read.
            self._winner, self._winner_whole, self._winner_region = p, region is None, region
            self._jobs.clear()
        return found, seen, p.name if found else None


@dataclass(frozen=True)
class Held:
    """What the camera path made of one image held in view: the scans and every frame's decode."""

    scans: list[str]
    frames: list[Decoded]

    @property
    def ms(self) -> float:
        return sum(d.ms for d in self.frames) / len(self.frames)

    @property
    def step(self) -> str | None:
        return next((d.step for d in self.frames if d.step), None)


def hold(
    gray: np.ndarray,
    fps: float,
    cascade: Cascade,
    presence: Presence,
    seconds: float = 1.0,
    until_scan: bool = False,
) -> Held:
    """Feeds the same image as every frame of `seconds` at `fps`, through decode and debounce;
    `until_scan`: stop at the first scan (when only whether it reads matters)."""
    scans: list[str] = []
    frames: list[Decoded] = []
    for n in range(max(1, round(seconds * fps))):
        at = n / fps
        decoded = cascade.decode(gray, at, presence.hints(at))
        frames.append(decoded)
        scans += presence.observe(at, decoded.found, decoded.undecoded)
        if until_scan and scans:
            break
    return Held(scans, frames)
