"""The duplicate window's entries in the store, on real SQLite files (the policy on its own is in
test_duplicate_window.py)."""

from __future__ import annotations

from pathlib import Path

from device.store import Outbox
from tests.support.store import event, stamp


def test_duplicate_window_uses_monotonic_time_within_a_boot(tmp_path: Path) -> None:
    box = Outbox.open(tmp_path)
    assert box.append_unless_recent("who", stamp(mono=100), 60, event) is not None
    # The wall clock jumped (NTP sync) but only 10 s passed: still a duplicate.
    assert box.append_unless_recent("who", stamp(wall=1_800_000_000, mono=110), 60, event) is None
    assert box.append_unless_recent("who", stamp(mono=161), 60, event) is not None
    # After a reboot only the wall clock can tell.
    assert box.append_unless_recent("who", stamp(wall=1_700_000_030, mono=5, boot="b2"), 60, event) is None
    assert box.max_seq() == 2


def test_duplicate_window_entries_of_this_boot_expire_on_monotonic_time(tmp_path: Path) -> None:
    box = Outbox.open(tmp_path)
    box.append_unless_recent("who", stamp(wall=1000, mono=100), 60, event)
    # The wall clock leapt a day ahead, 10 s later: the entry must survive the purge.
    box.purge(stamp(wall=1000 + 86400, mono=110), delivered_grace_s=3600, max_age_s=1e9, window_s=60)
    assert box.append_unless_recent("who", stamp(wall=1000 + 86400, mono=111), 60, event) is None
