"""Log lines carry only printable characters (issue 12 item 17): a bidi override or a line separator
in a scanned code reached the journal as it was."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from device.printable import printable
from device.settings import StdinSourceSettings
from device.sources.stdin import MAX_LINE_BYTES, StdinSource
from tests.support.daemon import DaemonProcess, write_config
from tests.support.mosquitto import free_port
from tests.support.reading import Reading, run

HOSTILE = "\u202e\u2028VISITOR-\u2029-\x1b[2J"


def test_only_printable_characters_pass_as_they_are() -> None:
    assert printable("Nguyễn Văn A, 0010******01") == "Nguyễn Văn A, 0010******01"
    assert printable(HOSTILE) == "\\u202e\\u2028VISITOR-\\u2029-\\x1b[2J"
    assert printable("\t\n\u00a0\U000e0001\ud800") == "\\x09\\x0a\\xa0\\U000e0001\\ud800"


def test_the_daemon_logs_no_bidi_override_or_line_separator(tmp_path: Path) -> None:
    config = write_config(tmp_path / "device.toml", port=free_port(), storage=tmp_path / "state")
    daemon = DaemonProcess(config).start()
    try:
        assert daemon.scan("\u202e\u2028VISITOR-1")["feedback"] == "accepted"
        assert daemon.scan("\u2029\u202eVISITOR-2")["feedback"] == "accepted"
        assert daemon.terminate() == 0
    finally:
        daemon.stop()
    log = daemon.stderr
    assert not {"\u202e", "\u2028", "\u2029"} & set(log), log
    assert "accepted seq=1 other \\u202e\\u2028****** from stdin" in log


def test_the_stdin_source_bounds_a_line() -> None:
    """64 MB on one line took 46 s and 230 MB of memory: now one rejection, and the next line reads."""
    read_fd, write_fd = os.pipe()
    source = StdinSource(StdinSourceSettings(), stream=os.fdopen(read_fd, "rb"))

    def feed() -> None:
        with os.fdopen(write_fd, "wb") as out:
            for _ in range(16 * 16):  # 16 MB, no newline
                out.write(b"7" * 65536)
            out.write(b"\nVISITOR-AFTER\n")

    threading.Thread(target=feed, daemon=True).start()

    async def body() -> None:
        async with Reading(source) as reading:
            too_long, after = await reading.next(2, timeout=30)
        assert too_long.damage == f"line longer than {MAX_LINE_BYTES} bytes"
        assert len(too_long.text) == MAX_LINE_BYTES
        assert (after.text, after.damage) == ("VISITOR-AFTER", None)

    run(body, timeout=60)
