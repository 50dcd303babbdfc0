"""Clock truth: the daemon in-process with an injected clock, a test scan source and a real broker.

A bus Pi has no real-time clock: until NTP synchronises it may say 1970. Events scanned then must say
`unsynced`; once the clock synchronises, the ones not yet published get their time re-derived from
monotonic time. The duplicate window follows monotonic time, whatever the wall clock does.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from device.audit import AUDIT_FILE, AuditLog
from device.clock import FakeClock
from device.contract import iso_utc
from tests.support.harness import EPOCH_HOUR, TRUE_NOW, WAIT_S, Harness, run
from tests.support.mosquitto import Mosquitto, free_port
from tests.support.proxy import Proxy
from tests.support.schema import validate_event
from tests.support.subscriber import Subscriber
from tests.support.wait import until


@pytest.fixture
def proxy(broker: Mosquitto) -> Iterator[Proxy]:
    p = Proxy(broker.port)
    yield p
    p.close()


def test_unsynced_events_say_so_and_are_corrected_before_publishing_once_the_clock_syncs(
    tmp_path: Path, broker: Mosquitto, proxy: Proxy, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    clock = FakeClock(wall=EPOCH_HOUR, synced=False, boot="boot-clock-test")
    h = Harness(tmp_path, proxy.port, clock)
    subs = [Subscriber(broker.port)]

    async def scenario() -> None:
        await h.start()
        await until(lambda: h.parts.publisher.connected, "the daemon never reached the broker")
        first = await h.answer("VISITOR-DELIVERED")
        assert first["feedback"] == "accepted"
        # Delivered while unsynced: published as unsynced and never rewritten afterwards.
        await until(lambda: h.stored()[first["event_id"]]["delivered"], "first event never delivered")

        # The broker goes away; the proxy keeps the daemon out until a subscriber is back on the new one.
        proxy.blackhole()
        broker.kill()
        await until(lambda: not h.parts.publisher.connected, "the daemon never noticed the cut")
        clock.advance(5)
        held = [await h.answer("VISITOR-HELD-1")]
        clock.advance(7)
        held.append(await h.answer("VISITOR-HELD-2"))
        assert [a["feedback"] for a in held] == ["accepted", "accepted"]
        monos = {a["event_id"]: h.stored()[a["event_id"]]["monotonic_s"] for a in held}
        for answer in held:
            event = h.stored()[answer["event_id"]]
            assert event["clock"] == "unsynced" and event["scanned_at"].startswith("1970-01-01T01:00:")

        # NTP steps the wall clock 55 years forward, three seconds (monotonic) after the last scan.
        clock.advance(3)
        clock.set_wall(TRUE_NOW)
        clock.is_synced = True
        await until(
            lambda: all(h.stored()[a["event_id"]].get("clock_corrected") for a in held),
            "undelivered events were not corrected within a maintenance round",
        )
        for answer in held:
            event = h.stored()[answer["event_id"]]
            expected = TRUE_NOW - (clock.monotonic() - monos[answer["event_id"]])
            assert event["clock"] == "synced"
            assert event["scanned_at"] == iso_utc(expected)
        assert h.stored()[first["event_id"]]["clock"] == "unsynced"
        after = await h.answer("VISITOR-AFTER-SYNC")

        broker.start()
        subs.append(await asyncio.to_thread(Subscriber, broker.port))
        proxy.blackhole(False)
        wanted = {after["event_id"]} | {a["event_id"] for a in held}
        await asyncio.to_thread(subs[1].wait_event_ids, wanted, WAIT_S)
        assert await h.stop() == 0

        events = {e["event_id"]: e for sub in subs for e in sub.events()}
        for event in events.values():
            validate_event(event)
            if event["scanned_at"].startswith("1970"):
                assert event["clock"] == "unsynced", f"a {event['scanned_at']} time published as true"
        assert events[first["event_id"]]["scanned_at"] == iso_utc(EPOCH_HOUR)
        assert "clock_corrected" not in events[first["event_id"]]
        assert [events[a["event_id"]]["scanned_at"] for a in held] == [
            iso_utc(TRUE_NOW - 10),
            iso_utc(TRUE_NOW - 3),
        ]
        assert all(events[a["event_id"]]["clock_corrected"] is True for a in held)
        assert events[after["event_id"]]["scanned_at"] == iso_utc(TRUE_NOW)
        assert events[after["event_id"]]["clock"] == "synced"
        assert "clock_corrected" not in events[after["event_id"]]

    try:
        run(scenario)
    finally:
        for sub in subs:
            sub.close()
    assert "corrected the time of 2 undelivered events" in caplog.text
    audit = AuditLog(tmp_path / "state" / AUDIT_FILE).read()
    synced = [r for r in audit if r["event"] == "clock_synchronised"]
    assert len(synced) == 1 and synced[0]["corrected"] == 2 and synced[0]["clock"] == "synced"


def test_the_duplicate_window_follows_monotonic_time_across_wall_clock_jumps(tmp_path: Path) -> None:
    clock = FakeClock(wall=EPOCH_HOUR, synced=False, boot="boot-window-test")
    # No broker: the window is the decision's alone.
    h = Harness(tmp_path, free_port(), clock)
    window = h.settings.checkin.duplicate_window_s
    assert window == 300

    async def scenario() -> None:
        await h.start()
        assert (await h.answer("WORKER-1"))["feedback"] == "accepted"
        # The clock synchronises: 55 years forward on the wall, 10 s on the monotonic clock.
        clock.advance(10)
        clock.set_wall(TRUE_NOW)
        clock.is_synced = True
        assert (await h.answer("WORKER-1"))["feedback"] == "duplicate"
        # NTP steps the wall clock back an hour: still 20 s since the scan, still a duplicate.
        clock.advance(10)
        clock.set_wall(TRUE_NOW - 3600)
        assert (await h.answer("WORKER-1"))["feedback"] == "duplicate"

        assert (await h.answer("WORKER-2"))["feedback"] == "accepted"
        # The window passes on the monotonic clock while the wall clock is stepped back to 1 s later.
        wall = clock.wall()
        clock.advance(window + 1)
        clock.set_wall(wall + 1)
        assert (await h.answer("WORKER-2"))["feedback"] == "accepted"
        assert await h.stop() == 0

    run(scenario)


def test_a_synchronised_clock_stepping_past_max_age_drops_no_backlog(tmp_path: Path) -> None:
    """Issue 12 item 7: a synced clock stepping 22 days forward dropped every undelivered event."""
    clock = FakeClock(wall=TRUE_NOW, synced=True, boot="boot-step-test")
    # No broker: the backlog stays.
    h = Harness(tmp_path, free_port(), clock)
    max_age_s = h.settings.storage.max_age_days * 86400

    async def scenario() -> None:
        await h.start()
        for i in range(50):
            assert (await h.answer(f"WORKER-STEP-{i}"))["feedback"] == "accepted"
        clock.advance(120)
        clock.set_wall(clock.wall() + max_age_s + 86400)
        h.daemon.housekeeper.purge()
        assert len(h.stored()) == 50
        # Past max_age on the monotonic clock they go, alarmed and counted.
        clock.advance(max_age_s)
        h.daemon.housekeeper.purge()
        assert h.stored() == {}
        assert h.parts.outbox.counters()["dropped"] == 50
        assert await h.stop() == 0

    run(scenario)
