"""Unheard events (PUBACK 0x10: the broker gave them to nobody) age like undelivered ones, and within a
boot that is by the monotonic clock: a synchronised wall clock stepping past max_age_days must not drop
them (issue 12 item 7 fixed this for undelivered events; an unheard one was still aged by its wall time,
which `make chaos` can reach: a 0x10-broker episode whose events the collector has not yet confirmed,
then a clock-step)."""

from __future__ import annotations

from pathlib import Path

from device.clock import FakeClock, Stamp
from device.store import Outbox
from tests.support.harness import TRUE_NOW, Harness, run
from tests.support.mosquitto import Mosquitto
from tests.support.wait import until

EVENTS = 5


def test_a_wall_clock_step_drops_no_unheard_event_of_this_boot(tmp_path: Path, broker: Mosquitto) -> None:
    # Nobody subscribes to this broker: every PUBACK says 0x10.
    clock = FakeClock(wall=TRUE_NOW, synced=True, boot="boot-unheard-step")
    h = Harness(tmp_path, broker.port, clock)
    max_age_s = h.settings.storage.max_age_days * 86400

    async def scenario() -> None:
        await h.start()
        await until(lambda: h.parts.publisher.connected, "the daemon never reached the broker")
        for i in range(EVENTS):
            assert (await h.answer(f"WORKER-UNHEARD-{i}"))["feedback"] == "accepted"
        await until(lambda: h.parts.outbox.backlog().unheard == EVENTS, "the events never became unheard")

        clock.advance(120)
        clock.set_wall(clock.wall() + max_age_s + 86400)
        h.daemon.housekeeper.purge()
        assert len(h.stored()) == EVENTS and h.parts.outbox.backlog().unheard == EVENTS
        assert h.parts.outbox.counters().get("dropped", 0) == 0

        # Past max_age on the monotonic clock they go, counted, and the unheard count with them.
        clock.advance(max_age_s)
        h.daemon.housekeeper.purge()
        assert h.stored() == {} and h.parts.outbox.backlog().unheard == 0
        assert h.parts.outbox.counters()["dropped"] == EVENTS
        assert await h.stop() == 0

    run(scenario)


def test_an_unheard_event_of_an_earlier_boot_still_ages_by_its_wall_time(tmp_path: Path) -> None:
    """Across a reboot the monotonic clock restarts: only a synchronised wall clock can age it."""
    box = Outbox.open(tmp_path)
    old = Stamp(wall=TRUE_NOW, mono=500.0, boot_id="boot-before", synced=True)
    box.append_unless_recent("k", old, 0, lambda seq: {"event_id": f"id-{seq}", "seq": seq})
    box.mark_delivered([1], unheard=[1])
    later = Stamp(wall=TRUE_NOW + 2 * 86400, mono=10.0, boot_id="boot-after", synced=True)
    assert box.purge(later, delivered_grace_s=1e9, max_age_s=86400, window_s=0) == 1
    assert box.backlog().unheard == 0 and box.counters()["dropped"] == 1
