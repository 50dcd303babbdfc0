"""What is in view over time: the presence debounce and the autofocus nudge.

A camera sees a held-up card in every frame for a second or more. `Presence` turns those frames into
one scan per appearance:
- A code becomes a scan once it has decoded in `confirm_reads` frames, each within `CONFIRM_S` of the
  previous read. A misread is one unlucky frame: the same wrong text does not come out of two
  different frames, so it never reaches the pipeline, while a real code shown for a blink (two
  frames at 15 fps, 70 ms) still does. This costs one frame of latency; `confirm_reads = 1` turns it
  off.
- It stays one scan while in view. It must be out of view for `rearm_s` before it can scan again
  (absent from the frames, or no frames at all, as while the camera is reopened).
  "In view" includes frames where the code was detected at the same place but did not decode (a hand
  tilting the card), so a flicker of unreadable frames does not re-arm it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from device.vision.symbols import Found, Region

# Longer than this without any frame, the camera was not looking: a code is not "still in view".
FRAME_GAP_S = 0.5
# A code read once waits this long for its confirming read.
CONFIRM_S = 1.0
# A first read's region is a hint this long (4-5 frames at 15 fps: a motion-blurred frame or an
# autofocus hunt between the read and its confirmation).
HINT_S = 0.3


@dataclass(slots=True)
class _Track:
    region: Region
    # When it was last read; for a scanned code also refreshed by undecoded sightings at its place.
    last: float
    reads: int
    emitted: bool
    # The first frame of the current absence; None while in view.
    absent_since: float | None = None


class Presence:
    def __init__(self, rearm_s: float, confirm_reads: int = 2) -> None:
        if rearm_s < 0 or confirm_reads < 1:
            raise ValueError(f"need rearm_s >= 0 and confirm_reads >= 1, got {rearm_s}, {confirm_reads}")
        self.rearm_s = rearm_s
        self.confirm_reads = confirm_reads
        self._tracks: dict[str, _Track] = {}

    def observe(self, at: float, found: Sequence[Found], undecoded: Sequence[Region] = ()) -> list[str]:
        """Feeds one frame (time `at`, monotonic seconds); returns the texts that become scans now."""
        texts = {f.text for f in found}
        for text, track in self._tracks.items():
            if text in texts or (track.emitted and any(r.overlaps(track.region) for r in undecoded)):
                track.absent_since = None
                track.last = at
            elif track.absent_since is None:
                track.absent_since = at
        self._tracks = {text: t for text, t in self._tracks.items() if not self._gone(t, at)}
        scans = []
        for f in found:
            if f.text not in texts:
                continue  # the same code twice in one frame is one read
            texts.discard(f.text)
            track = self._tracks.setdefault(f.text, _Track(f.region, at, 0, False))
            track.reads += 1
            track.region = f.region
            if not track.emitted and track.reads >= self.confirm_reads:
                track.emitted = True
                scans.append(f.text)
        return scans

    def _gone(self, track: _Track, at: float) -> bool:
        if not track.emitted:
            return at - track.last > CONFIRM_S
        if track.absent_since is not None:
            return at - track.absent_since >= self.rearm_s
        # No frame at all for a while (the camera was reopened): that counts as out of view too.
        return at - track.last > max(self.rearm_s, FRAME_GAP_S)

    def hints(self, at: float) -> list[Region]:
        """Where a code read once awaits its confirming read: worth a closer look if this frame shows
        nothing there. Codes already scanned give no hints, so the frames after a card is taken away
        cost no more than any empty frame."""
        return [t.region for t in self._tracks.values() if not t.emitted and at - t.last <= HINT_S]


class Refocus:
    """Says when to restart autofocus: a code has been in view, undecoded, for `after_s`; then at most
    once per `after_s` while that lasts."""

    def __init__(self, after_s: float) -> None:
        self.after_s = after_s
        self._since: float | None = None

    def due(self, at: float, undecoded_in_view: bool) -> bool:
        if not undecoded_in_view:
            self._since = None
            return False
        if self._since is None:
            self._since = at
        if at - self._since >= self.after_s:
            self._since = at
            return True
        return False
