"""The duplicate window: a code accepted again within `window_s` is the same check-in, answered
"duplicate" and stored once.

Within one boot the monotonic clock is the truth (the wall clock may jump at NTP sync); across a
reboot only the wall clock is left. The store keeps each key's last acceptance and asks this policy.
"""

from __future__ import annotations

from device.clock import Stamp


def holds(now: Stamp, window_s: float, *, wall: float, mono: float, boot_id: str) -> bool:
    """Whether an acceptance at (wall, mono, boot_id) is still within the window at `now`."""
    elapsed = now.mono - mono if boot_id == now.boot_id else now.wall - wall
    return 0 <= elapsed < window_s


def expired_before(now: Stamp, window_s: float) -> tuple[float, float]:
    """The moments before which an entry has left the window: monotonic for an entry of this boot,
    wall for one of an earlier boot."""
    return now.mono - window_s, now.wall - window_s
