"""Listing and matching devices from sysfs and udev links, the hot-plug pool, `qr-checkin scanners`."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from device.commands import scanners
from device.scan import Scan
from device.selectors import selector_problem
from device.sources.hotplug import Hotplug
from device.sources.inventory import Inventory, match
from tests.support.evdev_pipe import PipeBus
from tests.support.paths import ROOT
from tests.support.pty_scanner import fake_usb_tty


@pytest.fixture
def bus(tmp_path: Path) -> Iterator[PipeBus]:
    b = PipeBus(tmp_path)
    yield b
    b.close()


def test_input_devices_from_sysfs_and_by_id_links(bus: PipeBus, tmp_path: Path) -> None:
    scanner = bus.add("Honeywell Scanner", vendor=0x0C2E, product=0x0B61).plug()
    by_path = tmp_path / "dev/input/by-path/platform-usb-0:1.2:1.0-event-kbd"
    by_path.parent.mkdir(parents=True)
    by_path.symlink_to(scanner.node)
    (entry,) = Inventory(tmp_path).input_devices()
    assert entry.kind == "input" and entry.path == str(scanner.node)
    assert entry.links == (str(scanner.link), str(by_path)), "by-id first"
    assert (entry.name, entry.usb_id, entry.reader, entry.keyboard) == (
        "Honeywell Scanner",
        "0c2e:0b61",
        str(scanner.link),
        True,
    )


def test_serial_devices_are_usb_ttys_only(tmp_path: Path) -> None:
    node = fake_usb_tty(tmp_path, "ttyACM0", vendor="0c2e", product="0b61", model="Xenon", serial="X9")
    link = tmp_path / "dev/serial/by-id/usb-Honeywell_Xenon_X9-if00"
    link.parent.mkdir(parents=True)
    link.symlink_to("../../ttyACM0")
    (tmp_path / "sys/class/tty/tty1").mkdir(parents=True)  # a virtual console: no device behind it
    platform = tmp_path / "sys/devices/platform/serial8250/tty/ttyS0"
    platform.mkdir(parents=True)
    (tmp_path / "sys/class/tty/ttyS0").mkdir()
    (tmp_path / "sys/class/tty/ttyS0/device").symlink_to(platform)  # the Pi's UART: not a USB scanner
    (entry,) = Inventory(tmp_path).serial_devices()
    assert (entry.path, entry.links, entry.usb_id, entry.serial) == (
        str(node),
        (str(link),),
        "0c2e:0b61",
        "X9",
    )
    assert entry.name == "Test Xenon" and entry.reader == str(link) and not entry.keyboard


def test_listing_an_empty_or_missing_tree(tmp_path: Path) -> None:
    assert Inventory(tmp_path).input_devices() == [] and Inventory(tmp_path).serial_devices() == []


def test_match_by_path_glob_usb_id_and_name(bus: PipeBus, tmp_path: Path) -> None:
    door = bus.add("Door Scanner", vendor=0x0C2E, product=0x0B61).plug()
    gate = bus.add("GATE reader", vendor=0x1EAB, product=0x0013).plug()
    listing = Inventory(tmp_path).input_devices
    assert match([str(door.link)], listing) == {str(door.link): [str(door.link)]}
    assert match([str(tmp_path / "dev/input/by-id/nothing")], listing) == {
        str(tmp_path / "dev/input/by-id/nothing"): []
    }
    pattern = str(tmp_path / "dev/input/by-id/usb-*")
    assert match([pattern], listing) == {pattern: sorted([str(door.link), str(gate.link)])}
    assert match(["0C2E:0b61"], listing) == {"0C2E:0b61": [str(door.link)]}
    assert match(["gate*"], listing) == {"gate*": [str(gate.link)]}
    assert match(["Gate"], listing) == {"Gate": []}, "a name pattern matches the whole name"


def test_a_device_named_twice_is_read_once(bus: PipeBus, tmp_path: Path) -> None:
    door = bus.add("Door Scanner").plug()
    listing = Inventory(tmp_path).input_devices
    found = match([str(door.link), "0c2e:0b61", str(door.node)], listing)
    assert found == {str(door.link): [str(door.link)], "0c2e:0b61": [], str(door.node): []}


def test_listing_is_only_read_when_a_selector_needs_it(tmp_path: Path) -> None:
    def fail() -> list:
        raise AssertionError("listed without need")

    assert match([str(tmp_path / "x")], fail) == {str(tmp_path / "x"): []}


@pytest.mark.parametrize(
    ("selector", "problem"),
    [("", "empty"), ("0c2e:0b6", "vendor:product"), ("usb:thing", "vendor:product"), ("0c2e:0b61", None)],
)
def test_selector_problems(selector: str, problem: str | None) -> None:
    found = selector_problem(selector)
    assert found is None if problem is None else (found is not None and problem in found)


class FlakyReader:
    """A reader that fails with an unexpected error on its first open, then yields one scan."""

    def __init__(self, attempt: int) -> None:
        self.attempt = attempt
        self.closed = False

    async def scans(self) -> AsyncIterator[Scan]:
        if self.attempt == 1:
            raise RuntimeError("driver bug")
        yield Scan(text="OK", source="hid", reader="r")
        await asyncio.Event().wait()

    def close(self) -> None:
        self.closed = True


def test_hotplug_retries_a_failing_reader_and_reports_fault(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    opened: list[FlakyReader] = []

    def open_reader(name: str) -> FlakyReader:
        opened.append(FlakyReader(len(opened) + 1))
        return opened[-1]

    pool = Hotplug("hid", ["sel"], lambda: {"sel": ["r"]}, open_reader, rescan_s=0.02, retry_s=0.1)

    async def body() -> Scan:
        scans = pool.scans()
        async with asyncio.timeout(5):
            scan = await scans.__anext__()
        assert pool.state == {"r": "connected"}
        await scans.aclose()
        return scan

    assert asyncio.run(body()).text == "OK"
    assert len(opened) == 2 and all(r.closed for r in opened)
    assert "reader r failed" in caplog.text and "hid scanner r fault" in caplog.text


def test_hotplug_state_names_config_lines_that_never_matched() -> None:
    pool = Hotplug("serial", ["/dev/ttyACM*"], dict, lambda name: FlakyReader(2), rescan_s=1, retry_s=1)
    assert pool.state == {"/dev/ttyACM*": "disconnected"}


def test_scanners_command_lists_devices_with_config_lines(
    bus: PipeBus, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    scanner = bus.add("Honeywell Scanner").plug()
    fake_usb_tty(tmp_path, "ttyACM0", vendor="1eab", product="1d06")
    assert scanners.main(argparse.Namespace(json=True, root=str(tmp_path))) == 0
    listed = json.loads(capsys.readouterr().out)
    (hid,) = listed["input"]
    (port,) = listed["serial"]
    assert hid["config"] == f'[scanner.hid] devices = ["{scanner.link}"]' and hid["keyboard"] is True
    assert port["config"] == '[scanner.serial] port = "1eab:1d06"', "no by-id link: the USB ids"
    assert scanners.main(argparse.Namespace(json=False, root=str(tmp_path))) == 0
    text = capsys.readouterr().out
    assert str(scanner.link) in text and "usb 0c2e:0b61" in text and "keyboard" in text
    assert '[scanner.serial] port = "1eab:1d06"' in text


def test_scanners_command_runs_on_a_machine_without_devices() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "device.cli", "scanners"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert done.returncode == 0, done.stderr
    assert "Input devices" in done.stdout and "USB serial ports" in done.stdout
