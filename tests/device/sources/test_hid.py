"""The keyboard-mode source through evdev's real read loop (pipe-backed InputDevice), with hot-plug."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from evdev import ecodes

from device.errors import ConfigError
from device.settings import HidSourceSettings, load_settings
from device.sources.hid import HidSource, strip_affixes
from device.sources.inventory import Inventory
from tests.support.evdev_pipe import PipeBus, PipeScanner, alt_code, chord, keystrokes, tap
from tests.support.paths import PAYLOADS_JSON
from tests.support.reading import Reading, run
from tests.support.wait import until

K = ecodes.ecodes
ENTER = tap(ecodes.KEY_ENTER)


@pytest.fixture
def bus(tmp_path: Path) -> Iterator[PipeBus]:
    b = PipeBus(tmp_path / "root")
    yield b
    b.close()


@pytest.fixture
def samples() -> dict[str, list[dict[str, str]]]:
    data: dict[str, list[dict[str, str]]] = json.loads((PAYLOADS_JSON).read_text())
    return data


def make_source(bus: PipeBus, devices: list[str], **options: Any) -> HidSource:
    options.setdefault("rescan_s", 0.05)
    settings = HidSourceSettings(devices=devices, **options)
    return HidSource(settings, open_device=bus.open_device, inventory=Inventory(bus.root))


def test_codes_through_the_real_evdev_read_loop(
    bus: PipeBus, samples: dict[str, list[dict[str, str]]], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    scanner = bus.add().plug()
    bhyt = samples["bhyt"][0]["payload"]
    source = make_source(bus, [str(scanner.link)], direction="in")

    async def body() -> None:
        async with Reading(source) as reading:
            await reading.connected(str(scanner.link))
            assert scanner.grabbed_by is not None, "the scanner must be grabbed exclusively"
            scanner.send(
                chord(ecodes.KEY_LEFTSHIFT, K["KEY_BACKSLASH"]) + chord(ecodes.KEY_LEFTSHIFT, K["KEY_4"])
            )
            scanner.send(tap(K["KEY_SLASH"]) + ENTER)
            scanner.type(bhyt)
            ngu = keystrokes("Nguy") + alt_code("7877") + tap(K["KEY_N"]) + ENTER
            scanner.send(ngu)
            got = await reading.next(3)
        assert [s.text for s in got] == ["|$/", bhyt, "Nguyễn"]
        assert all(s.source == "hid" and s.direction == "in" and s.damage is None for s in got)
        assert {s.reader for s in got} == {str(scanner.link)}
        assert got[0].at_monotonic <= got[1].at_monotonic <= got[2].at_monotonic
        assert scanner.grabbed_by is None, "close() releases the grab"

    run(body)
    assert bhyt[:10] not in caplog.text and "Nguy" not in caplog.text


def test_german_layout_caps_lock_and_tab_terminator(
    bus: PipeBus, samples: dict[str, list[dict[str, str]]]
) -> None:
    scanner = bus.add().plug()
    scanner.layout = "de"
    bhyt = samples["bhyt"][1]["payload"]
    source = make_source(bus, [str(scanner.link)], layout="de", terminator="tab")

    async def body() -> None:
        async with Reading(source) as reading:
            scanner.type(bhyt, terminator="tab")
            scanner.type("Caps1", terminator="tab", caps=True)
            scanner.type("ENTER", terminator="enter")
            got = await reading.next(3)
        assert [s.text for s in got] == [bhyt, "Caps1", "ENTER"]
        assert all(s.damage is None for s in got)

    run(body)


def test_wrong_layout_is_a_damaged_scan(bus: PipeBus, samples: dict[str, list[dict[str, str]]]) -> None:
    scanner = bus.add().plug()
    scanner.layout = "de"  # the scanner types German, the config says US
    source = make_source(bus, [str(scanner.link)])

    async def body() -> None:
        async with Reading(source) as reading:
            scanner.type(samples["bhyt"][0]["payload"])
            (scan,) = await reading.next()
        assert scan.damage is not None and "keyboard layout" in scan.damage

    run(body)


def test_gap_framing_for_scanners_without_a_suffix(bus: PipeBus) -> None:
    scanner = bus.add().plug()
    source = make_source(bus, [str(scanner.link)], terminator="gap", gap_ms=40)

    async def body() -> None:
        async with Reading(source) as reading:
            scanner.type("FIRST-1", terminator="")
            scanner.pause(0.5)  # the kernel stamps the next keys half a second later
            scanner.type("SECOND-2", terminator="")
            got = await reading.next(2)  # the second ends when the line stays silent
        assert [s.text for s in got] == ["FIRST-1", "SECOND-2"]

    run(body)


def test_a_scanner_without_enter_gets_every_scan_rejected_with_a_reason_and_one_log_line(
    bus: PipeBus, caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 12 item 9: with terminator "enter" and a scanner sending none, every scan was swallowed."""
    caplog.set_level(logging.WARNING, logger="device.sources.hid")
    scanner = bus.add().plug()
    source = make_source(bus, [str(scanner.link)])

    async def body() -> None:
        async with Reading(source) as reading:
            got = []
            for text in ("FIRST-1", "SECOND-2"):
                scanner.type(text, terminator="")
                got += await reading.next(1, timeout=5)
        assert [s.text for s in got] == ["FIRST-1", "SECOND-2"]
        assert all((s.damage or "").startswith("no terminator") and '"gap"' in (s.damage or "") for s in got)

    run(body)
    told = [r for r in caplog.records if "without the Enter" in r.getMessage()]
    assert len(told) == 1 and 'terminator = "gap"' in told[0].getMessage()


def test_prefix_and_suffix_are_stripped(bus: PipeBus) -> None:
    scanner = bus.add().plug()
    source = make_source(bus, [str(scanner.link)], prefix="]Q1", suffix="#")

    async def body() -> None:
        async with Reading(source) as reading:
            scanner.type("]Q1VISITOR-7#")
            scanner.type("NOAFFIX")
            got = await reading.next(2)
        assert [s.text for s in got] == ["VISITOR-7", "NOAFFIX"]

    run(body)


def test_strip_affixes_only_where_present() -> None:
    assert strip_affixes("]Q1ABC#", "]Q1", "#") == "ABC"
    assert strip_affixes("ABC", "]Q1", "#") == "ABC"
    assert strip_affixes("ABC", "", "") == "ABC"


def test_unplug_mid_code_drops_the_half_and_a_replug_resumes(
    bus: PipeBus, samples: dict[str, list[dict[str, str]]], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    scanner = bus.add().plug()
    bhyt = samples["bhyt"][0]["payload"]
    name = str(scanner.link)
    # Default rescan period: the replug must resume within the 3 s the issue allows.
    source = make_source(bus, [name], rescan_s=1.0)

    async def body() -> None:
        async with Reading(source) as reading:
            await reading.connected(name)
            scanner.send(keystrokes(bhyt[:40]))  # half a code, no terminator
            scanner.unplug()  # the device is gone: the read fails with ENODEV
            await until(lambda: source.state[name] == "disconnected")
            assert reading.scans == [], "half a code must never become a scan"
            scanner.plug()
            await reading.connected(name, timeout=3.0)
            scanner.type(bhyt)
            (scan,) = await reading.next()
        assert scan.text == bhyt and scan.damage is None
        assert scanner.opened == 2

    run(body)
    assert "went away mid-code" in caplog.text
    assert f"hid scanner {name} disconnected" in caplog.text
    assert bhyt[:10] not in caplog.text


def test_device_held_by_another_process_is_busy_then_recovers(
    bus: PipeBus, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    scanner = bus.add().plug()
    scanner.held_by_other = True
    name = str(scanner.link)
    source = make_source(bus, [name], retry_s=0.2)

    async def body() -> None:
        async with Reading(source) as reading:
            await until(lambda: source.state.get(name) == "busy")
            busy_errors = [r for r in caplog.records if r.levelno == logging.ERROR and name in r.getMessage()]
            assert len(busy_errors) == 1 and "grabbed by another process" in busy_errors[0].getMessage()
            scanner.held_by_other = False
            await reading.connected(name)
            scanner.type("AFTER-BUSY")
            (scan,) = await reading.next()
            assert scan.text == "AFTER-BUSY"
        # One ERROR line for the busy spell, not one per retry.
        assert len([r for r in caplog.records if r.levelno == logging.ERROR]) == 1

    run(body)


def test_several_scanners_by_vendor_product_and_name(bus: PipeBus) -> None:
    door = bus.add("Door Scanner", vendor=0x0C2E, product=0x0B61).plug()
    gate = bus.add("Gate Reader", vendor=0x1EAB, product=0x0013).plug()
    bus.add("Keyboard", vendor=0x046D, product=0xC31C).plug()
    source = make_source(bus, ["0c2e:0B61", "gate*"])

    async def body() -> None:
        async with Reading(source) as reading:
            await reading.connected(str(door.link))
            await reading.connected(str(gate.link))
            door.type("FROM-DOOR")
            (first,) = await reading.next()
            gate.type("FROM-GATE")
            (second,) = await reading.next()
        assert (first.text, first.reader) == ("FROM-DOOR", str(door.link))
        assert (second.text, second.reader) == ("FROM-GATE", str(gate.link))
        assert set(source.state) == {str(door.link), str(gate.link)}, "the plain keyboard is left alone"

    run(body)


def test_a_scanner_absent_at_start_shows_and_then_connects(bus: PipeBus) -> None:
    scanner = bus.add()
    source = make_source(bus, [str(scanner.link)])
    assert source.state == {str(scanner.link): "disconnected"}

    async def body() -> None:
        async with Reading(source) as reading:
            await asyncio.sleep(0.1)
            assert source.state == {str(scanner.link): "disconnected"}
            scanner.plug()
            await reading.connected(str(scanner.link))
            scanner.type("LATE")
            (scan,) = await reading.next()
            assert scan.text == "LATE"

    run(body)


def test_a_hid_source_without_devices_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="empty"):
        HidSource(HidSourceSettings(devices=[]))


BAD_LINES = [("[]", "hid.devices is empty"), ('["0c2e:zz61"]', "vendor:product"), ('[" "]', "empty")]


@pytest.mark.parametrize(("devices", "needle"), BAD_LINES)
def test_bad_device_lines_are_refused_by_check_config(tmp_path: Path, devices: str, needle: str) -> None:
    config = tmp_path / "device.toml"
    config.write_text(
        '[device]\nid = "d1"\n[location]\nid = "l1"\n'
        f'[scanner]\nsources = ["hid"]\n[scanner.hid]\ndevices = {devices}\n'
    )
    with pytest.raises(ConfigError, match=needle) as err:
        load_settings(config)
    assert "scanner" in str(err.value) and str(config) in str(err.value)


def test_scanner_helper_rejects_an_open_while_unplugged(bus: PipeBus) -> None:
    scanner: PipeScanner = bus.add()
    with pytest.raises(FileNotFoundError):
        bus.open_device(str(scanner.link))


def test_each_device_line_may_carry_its_own_direction(bus: PipeBus) -> None:
    entry = bus.add("Entry Scanner", product=0x0001).plug()
    exit_ = bus.add("Exit Scanner", product=0x0002).plug()
    devices: list[Any] = [str(entry.link), {"device": str(exit_.link), "direction": "out"}]
    source = make_source(bus, devices, direction="in")

    async def body() -> None:
        async with Reading(source) as reading:
            await reading.connected(str(entry.link))
            await reading.connected(str(exit_.link))
            entry.send(keystrokes("ENTRY") + ENTER)
            (first,) = await reading.next()
            exit_.send(keystrokes("EXIT") + ENTER)
            (second,) = await reading.next()
        assert (first.text, first.reader, first.direction) == ("ENTRY", str(entry.link), "in")
        assert (second.text, second.reader, second.direction) == ("EXIT", str(exit_.link), "out")

    run(body)
