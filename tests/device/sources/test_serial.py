"""The serial-mode source through real pyserial on a real pty pair, with unplugs and replugs."""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from device.settings import SerialSourceSettings
from device.sources.inventory import Inventory
from device.sources.serial import LineFramer, Received, SerialSource
from tests.support.paths import PAYLOADS_JSON
from tests.support.pty_scanner import PtyScanner
from tests.support.reading import Reading, run
from tests.support.wait import until

VIETNAMESE = "Phường Bến Nghé, Quận 1, TP. Hồ Chí Minh"


@pytest.fixture
def samples() -> dict[str, list[dict[str, str]]]:
    data: dict[str, list[dict[str, str]]] = json.loads((PAYLOADS_JSON).read_text())
    return data


def make_source(port: str, tmp_path: Path, **options: Any) -> SerialSource:
    options.setdefault("rescan_s", 0.05)
    return SerialSource(SerialSourceSettings(port=port, **options), inventory=Inventory(tmp_path))


def test_utf8_payloads_with_mixed_terminators(
    scanner: PtyScanner,
    tmp_path: Path,
    samples: dict[str, list[dict[str, str]]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    name = str(scanner.link)
    source = make_source(name, tmp_path, direction="out")
    cccd = [s["payload"] for s in samples["cccd"]]
    bhyt = samples["bhyt"][0]["payload"]

    async def body() -> None:
        async with Reading(source) as reading:
            await reading.connected(name)
            scanner.write(cccd[0].encode() + b"\r\n" + cccd[1].encode() + b"\r")
            scanner.write(cccd[2].encode() + b"\n" + bhyt.encode() + b"\r\n")
            got = await reading.next(4)
        assert [s.text for s in got] == [*cccd, bhyt]
        assert all(s.source == "serial" and s.direction == "out" and s.reader == name for s in got)
        assert all(s.damage is None for s in got)

    run(body)
    assert "Nguy" not in caplog.text and cccd[0][:12] not in caplog.text


def test_a_character_split_across_writes(scanner: PtyScanner, tmp_path: Path) -> None:
    name = str(scanner.link)
    source = make_source(name, tmp_path)
    raw = VIETNAMESE.encode()
    cut = raw.index("ờ".encode()) + 1  # inside the three bytes of ờ

    async def body() -> None:
        async with Reading(source) as reading:
            await reading.connected(name)
            scanner.write(raw[:cut])
            await asyncio.sleep(0.05)  # the source reads the first half on its own
            scanner.write(raw[cut:] + b"\r")
            (scan,) = await reading.next()
        assert scan.text == VIETNAMESE and scan.damage is None

    run(body)


def test_garbage_is_a_damaged_scan_and_the_next_code_is_fine(scanner: PtyScanner, tmp_path: Path) -> None:
    name = str(scanner.link)
    source = make_source(name, tmp_path)

    async def body() -> None:
        async with Reading(source) as reading:
            await reading.connected(name)
            scanner.write(b"\xff\xfe\x80\x00garbage\r\n")
            scanner.write(b"VISITOR-42\r\n")
            got = await reading.next(2)
        assert got[0].damage is not None and "not UTF-8" in got[0].damage
        assert (got[1].text, got[1].damage) == ("VISITOR-42", None)

    run(body)


def test_unplug_mid_code_then_reconnect_on_a_new_pty(
    scanner: PtyScanner, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    name = str(scanner.link)
    source = make_source(name, tmp_path, rescan_s=1.0)

    async def body() -> None:
        async with Reading(source) as reading:
            await reading.connected(name)
            scanner.write("001090999901||Nguyễn".encode())  # half a code
            await asyncio.sleep(0.05)
            scanner.unplug()
            await until(lambda: source.state[name] == "disconnected")
            assert reading.scans == [], "half a code must never become a scan"
            scanner.plug()
            await reading.connected(name, timeout=3.0)
            scanner.write(b"AFTER-REPLUG\r")
            (scan,) = await reading.next()
        assert scan.text == "AFTER-REPLUG"

    run(body)
    assert "went away mid-code" in caplog.text and "Nguy" not in caplog.text


def test_exclusive_open_makes_a_second_reader_busy(
    scanner: PtyScanner, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    name = str(scanner.link)
    first = make_source(name, tmp_path)
    second = make_source(name, tmp_path, retry_s=0.2)

    async def body() -> None:
        async with Reading(first) as reading:
            await reading.connected(name)
            async with Reading(second):
                await until(lambda: second.state.get(name) == "busy")
            errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
            assert len(errors) == 1 and name in errors[0] and "held by another process" in errors[0]
            scanner.write(b"ONLY-ONE-READER\r")
            (scan,) = await reading.next()
            assert scan.text == "ONLY-ONE-READER"

    run(body)


def test_a_glob_matching_several_ports_reads_the_first(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    by_id = tmp_path / "dev/serial/by-id"
    a = PtyScanner(by_id / "usb-A_Scanner-if00").plug()
    b = PtyScanner(by_id / "usb-B_Modem-if00").plug()
    source = make_source(str(by_id / "usb-*"), tmp_path)
    try:

        async def body() -> None:
            async with Reading(source) as reading:
                await reading.connected(str(a.link))
                a.write(b"FROM-A\r")
                (scan,) = await reading.next()
                assert scan.reader == str(a.link)
            assert set(source.state) == {str(a.link)}

        run(body)
    finally:
        a.unplug()
        b.unplug()
    assert "matches 2 ports" in caplog.text


def test_missing_port_is_disconnected_under_its_config_name(tmp_path: Path) -> None:
    source = make_source("/dev/serial/by-id/usb-Nothing-*", tmp_path)
    assert source.state == {"/dev/serial/by-id/usb-Nothing-*": "disconnected"}

    async def body() -> None:
        scans = source.scans()
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.2):
                await scans.__anext__()
        await scans.aclose()
        assert source.state == {"/dev/serial/by-id/usb-Nothing-*": "disconnected"}

    run(body)


def test_bad_port_line_is_refused_by_the_settings() -> None:
    with pytest.raises(ValidationError, match="vendor:product"):
        SerialSourceSettings(port="1eab:xyz")


def test_framer_rejects_an_endless_line_once() -> None:
    framer = LineFramer(max_bytes=64)
    frames = framer.feed(b"x" * 100) + framer.feed(b"y" * 100) + framer.feed(b"tail\rOK\n")
    assert len(frames) == 2
    assert frames[0].damage is not None and "no CR/LF terminator" in frames[0].damage
    assert frames[1] == Received("OK")


CODE = st.text(alphabet=st.characters(codec="utf-8", blacklist_characters="\r\n"), min_size=1, max_size=60)


@settings(max_examples=150, deadline=None)
@given(
    codes=st.lists(CODE, min_size=1, max_size=6),
    terminators=st.lists(
        st.sampled_from([b"\r", b"\n", b"\r\n", b"\n\r", b"\r\n\r\n"]), min_size=6, max_size=6
    ),
    cuts=st.lists(st.integers(min_value=0, max_value=2000), max_size=8),
)
def test_framer_reassembles_any_split(codes: list[str], terminators: list[bytes], cuts: list[int]) -> None:
    stream = b"".join(code.encode() + term for code, term in zip(codes, terminators, strict=False))
    bounds = sorted({0, len(stream), *(c % (len(stream) + 1) for c in cuts)})
    framer = LineFramer()
    frames = [f for lo, hi in itertools.pairwise(bounds) for f in framer.feed(stream[lo:hi])]
    assert frames == [Received(code) for code in codes]
    assert not framer.pending


def test_a_scanner_without_suffix_is_framed_by_silence(scanner: PtyScanner, tmp_path: Path) -> None:
    name = str(scanner.link)
    source = make_source(name, tmp_path, terminator="gap", gap_ms=50)

    async def body() -> None:
        async with Reading(source) as reading:
            await reading.connected(name)
            scanner.write(VIETNAMESE.encode()[:9])
            scanner.write(VIETNAMESE.encode()[9:])
            (first,) = await reading.next()
            scanner.write(b"SECOND")
            (second,) = await reading.next()
        assert (first.text, first.damage) == (VIETNAMESE, None)
        assert (second.text, second.damage) == ("SECOND", None)

    run(body)


def test_an_unterminated_code_is_rejected_after_a_second_of_silence(
    scanner: PtyScanner, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="device.sources.serial")
    name = str(scanner.link)
    source = make_source(name, tmp_path)

    async def body() -> None:
        async with Reading(source) as reading:
            await reading.connected(name)
            scanner.write(b"NO-SUFFIX-1")
            (first,) = await reading.next(timeout=5)
            scanner.write(b"NO-SUFFIX-2")
            (second,) = await reading.next(timeout=5)
            scanner.write(b"TERMINATED\r\n")
            (third,) = await reading.next()
        assert first.text == "NO-SUFFIX-1" and first.damage is not None
        assert 'terminator = "gap"' in first.damage and second.damage == first.damage
        assert (third.text, third.damage) == ("TERMINATED", None)

    run(body)
    told = [r for r in caplog.records if "without the CR/LF" in r.getMessage()]
    assert len(told) == 1, "one log line per reader, not one per scan"
    assert "NO-SUFFIX" not in caplog.text


def test_several_ports_each_with_its_own_direction(tmp_path: Path) -> None:
    entry = PtyScanner(tmp_path / "dev/serial/by-id/usb-Entry-if00").plug()
    exit_ = PtyScanner(tmp_path / "dev/serial/by-id/usb-Exit-if00").plug()
    ports: list[Any] = [str(entry.link), {"device": str(exit_.link), "direction": "out"}]
    settings = SerialSourceSettings(ports=ports, direction="in", rescan_s=0.05)
    source = SerialSource(settings, inventory=Inventory(tmp_path))

    async def body() -> None:
        async with Reading(source) as reading:
            await reading.connected(str(entry.link))
            await reading.connected(str(exit_.link))
            entry.write(b"ENTRY\r")
            (first,) = await reading.next()
            exit_.write(b"EXIT\r")
            (second,) = await reading.next()
        assert (first.text, first.reader, first.direction) == ("ENTRY", str(entry.link), "in")
        assert (second.text, second.reader, second.direction) == ("EXIT", str(exit_.link), "out")

    try:
        run(body)
    finally:
        entry.unplug()
        exit_.unplug()


def test_port_and_ports_are_one_or_the_other() -> None:
    with pytest.raises(ValidationError, match=r"either scanner\.serial\.port or scanner\.serial\.ports"):
        SerialSourceSettings(port="/dev/ttyACM0", ports=["/dev/ttyACM1"])
