"""What is in view over time: the presence debounce and the autofocus nudge.

A camera sees a held-up card in every frame for a second or more. `Presence` turns those frames into
one scan per appearance:
- A code becomes a scan once it has decoded in `confirm_reads` frames, each within `CONFIRM_S` of the
  previous read. A misread is one unlucky frame: the same wrong text does not come out of two
  different frames, so it never reaches the pipeline, while a real code shown for a blink (two
  frames at 15 fps, 70 ms) still does. This costs one frame of latency; `confirm_reads = 1` turns it
  off.
- It stays one scan while in view. It must be out of view for `rearm_s` before it can scan again.
  "In view" includes frames where the code was detected at the same place but did not decode (a hand
  tilting the card), so a flicker of unreadable frames does not re-arm it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from device.vision.decoder import Found, Region

# A code read once waits this long for its confirming read.
CONFIRM_S = 1.0
# Regions seen this recently are handed to the decoder as hints for the next frames.
HINT_S = 0.5


@dataclass(slots=True)
class _Track:
    region: Region
    last: float
    reads: int
    emitted: bool


class Presence:
    def __init__(self, rearm_s: float, confirm_reads: int = 2) -> None:
        if rearm_s < 0 or confirm_reads < 1:
            raise ValueError(f"need rearm_s >= 0 and confirm_reads >= 1, got {rearm_s}, {confirm_reads}")
        self.rearm_s = rearm_s
        self.confirm_reads = confirm_reads
        self._tracks: dict[str, _Track] = {}

    def observe(self, at: float, found: Sequence[Found], undecoded: Sequence[Region] = ()) -> list[str]:
        """Feeds one frame (time `at`, monotonic seconds); returns the texts that become scans now."""
        self._tracks = {
            text: t
            for text, t in self._tracks.items()
            if at - t.last <= (self.rearm_s if t.emitted else CONFIRM_S)
        }
        scans = []
        for f in found:
            track = self._tracks.get(f.text)
            if track is None:
                track = self._tracks[f.text] = _Track(f.region, at, 0, False)
            elif track.last == at:
                continue  # the same code twice in one frame is one read
            track.reads += 1
            track.last = at
            track.region = f.region
            if not track.emitted and track.reads >= self.confirm_reads:
                track.emitted = True
                scans.append(f.text)
        for region in undecoded:
            for track in self._tracks.values():
                if track.emitted and region.overlaps(track.region):
                    track.last = at
        return scans

    def hints(self, at: float) -> list[Region]:
        """Where codes were seen in the last moments: worth a closer look if this frame shows nothing."""
        return [t.region for t in self._tracks.values() if at - t.last <= HINT_S]


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
