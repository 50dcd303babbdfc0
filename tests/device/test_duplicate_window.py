"""The duplicate-window policy on its own, without a store."""

from __future__ import annotations

from device import duplicate_window
from device.clock import Stamp


def seen_at_100_in_boot_b1(now: Stamp) -> bool:
    """Whether a code accepted at wall 1_700_000_000, monotonic 100 in boot b1 is still in a 60 s window."""
    return duplicate_window.holds(now, 60, wall=1_700_000_000.0, mono=100.0, boot_id="b1")


def test_within_a_boot_the_monotonic_clock_decides_whatever_the_wall_clock_did() -> None:
    stepped = Stamp(wall=1_800_000_000.0, mono=130.0, boot_id="b1", synced=True)
    assert seen_at_100_in_boot_b1(stepped)
    later = Stamp(wall=1_700_000_010.0, mono=161.0, boot_id="b1", synced=True)
    assert not seen_at_100_in_boot_b1(later)


def test_across_a_reboot_the_wall_clock_decides() -> None:
    rebooted = Stamp(wall=1_700_000_030.0, mono=5.0, boot_id="b2", synced=True)
    assert seen_at_100_in_boot_b1(rebooted)
    # A wall clock that went back across the reboot is no proof of a repeat.
    behind = Stamp(wall=1_699_999_000.0, mono=5.0, boot_id="b2", synced=False)
    assert not seen_at_100_in_boot_b1(behind)


def test_entries_expire_on_the_clock_that_decides_for_them() -> None:
    now = Stamp(wall=1_700_000_500.0, mono=600.0, boot_id="b1", synced=True)
    assert duplicate_window.expired_before(now, 60) == (540.0, 1_700_000_440.0)
