"""Retention on the synthetic site: day 22 leaves, day 21 stays, the half-hour counts outlive the
events; the run is logged and counted; over SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import json
import time

import pytest

from collector import tables as t
from collector.reports import retention
from collector.reports.config import RetentionSettings
from collector.reports.tables import location_counts, retention_runs
from tests.support.collector import cli_text
from tests.support.reports_site import TZ, Site


def test_retention_removes_day_22_keeps_day_21_and_the_counts(
    fresh_site: Site, caplog: pytest.LogCaptureFixture
) -> None:
    s = fresh_site
    store = s.store()
    e = t.events.c
    total = store.count(t.events)
    day22 = dt.datetime.combine(s.day - dt.timedelta(days=21), dt.time(), TZ)
    day21 = day22 + dt.timedelta(days=1)
    on = lambda day: (e.scanned_at >= day, e.scanned_at < day + dt.timedelta(days=1))  # noqa: E731
    assert (store.count(t.events, *on(day22)), store.count(t.events, *on(day21))) == (5, 3)

    caplog.set_level("INFO", "collector.reports.retention")
    run = retention.run(store, RetentionSettings(), TZ, now=time.time())
    assert (run.events_removed, run.cutoff) == (5, day21.astimezone(dt.UTC))
    assert store.count(t.events) == total - 5
    assert (store.count(t.events, *on(day22)), store.count(t.events, *on(day21))) == (0, 3)
    # The five canteen scans of 11:30-11:34 on day 22: one half-hour slot, five people.
    counts = store.rows(location_counts)
    assert [(c["location_id"], c["scans"], c["people"]) for c in counts] == [("door-canteen", 5, 5)]
    slot = counts[0]["slot_start"]
    slot = slot if slot.tzinfo else slot.replace(tzinfo=dt.UTC)
    assert slot.astimezone(TZ) == day22.replace(hour=11, minute=30)
    assert "removed 5 events" in caplog.text
    runs = store.rows(retention_runs)
    assert [(x["events_removed"], x["counts_written"]) for x in runs] == [(5, 1)]

    # Again: nothing more to remove; the counts stay; the run is still recorded.
    out = json.loads(cli_text("retention", "--config", str(s.settings_file()), "--json"))
    assert out["events_removed"] == 0
    assert [(c["scans"], c["people"]) for c in store.rows(location_counts)] == [(5, 5)]
    assert store.count(retention_runs) == 2


def test_counts_leave_after_their_year_and_count_every_removed_scan(fresh_site: Site) -> None:
    s = fresh_site
    store = s.store()
    retention.run(store, RetentionSettings(), TZ, now=time.time())
    day22_slot = store.rows(location_counts)[0]["slot_start"]
    remaining = store.count(t.events)
    # 346 days on: every scan is past 21 days (the unsynced ones by arrival too); the counts of day 22
    # and day 21 are past their year, yesterday's are not.
    run = retention.run(store, RetentionSettings(counts_days=366), TZ, now=time.time() + 346 * 86400)
    assert (run.events_removed, run.counts_removed) == (remaining, 2)
    counts = store.rows(location_counts)
    assert day22_slot not in [c["slot_start"] for c in counts]
    assert sum(c["scans"] for c in counts) == remaining - 3
    assert {c["location_id"] for c in counts} == {
        "98C12345",
        "98C67890",
        "gate-main",
        "door-canteen",
        "gate-back",
    }


def test_an_unsynced_scan_is_kept_by_its_arrival_not_its_stamp(
    fresh_site: Site,
) -> None:
    s = fresh_site
    store = s.store()
    e = t.events.c
    unsynced = store.count(t.events, e.clock == "unsynced")
    assert unsynced == 10
    # Received now: 22 days on by their stamp, but not by their arrival.
    run = retention.run(store, RetentionSettings(retention_days=1), TZ, now=time.time() + 86400)
    assert store.count(t.events, e.clock == "unsynced") == 10
    assert run.events_removed > 0
