"""Moments after 2038-01-19 03:14:07 UTC, the last second a 32-bit time_t holds.

32-bit Raspberry Pi OS Bookworm has a 32-bit time_t, and there datetime.fromtimestamp raised
OverflowError for every later moment: `qr-checkin history --since 2040-01-01` crashed writing its audit
record, and a scan stamped after 2038 could not be stored. Times now convert by arithmetic on the
epoch. On a 64-bit time_t the conversions below agree with the C library's; on armhf
(`make test-arm ARCH=armhf`) these tests are the ones that failed before.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from device.audit import AuditLog
from device.checkin import Checkin
from device.cli import main as cli_main
from device.clock import FakeClock
from device.commands.history import LATEST, parse_moment
from device.contract import iso_utc
from device.daemon import AUDIT_FILE
from device.privacy import Privacy
from device.scan import Scan
from device.settings import load_settings
from device.store import Outbox
from tests.support.daemon import write_config
from tests.support.payloads import vectors

TIME_T_32_MAX = 2**31 - 1


@pytest.mark.parametrize(
    ("ts", "iso"),
    [
        (0.0, "1970-01-01T00:00:00.000Z"),
        (TIME_T_32_MAX, "2038-01-19T03:14:07.000Z"),
        (TIME_T_32_MAX + 1, "2038-01-19T03:14:08.000Z"),
        (2_208_988_800.25, "2040-01-01T00:00:00.250Z"),
        (LATEST - 0.5, "9999-12-31T23:59:59.500Z"),
    ],
)
def test_moments_past_a_32_bit_time_t_are_written_like_any_other(ts: float, iso: str) -> None:
    assert iso_utc(ts) == iso
    assert parse_moment(iso, now=0.0) == ts


@given(st.floats(min_value=0, max_value=TIME_T_32_MAX, allow_nan=False))
def test_the_arithmetic_agrees_with_the_c_library_where_both_can_count(ts: float) -> None:
    expected = dt.datetime.fromtimestamp(ts, dt.UTC).isoformat(timespec="milliseconds")
    assert iso_utc(ts) == expected.replace("+00:00", "Z")


def test_a_checkin_in_2040_is_stamped_exported_and_the_export_audited(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path / "device.toml", port=1, storage=tmp_path / "state")
    settings = load_settings(config)
    settings.storage.dir.mkdir(parents=True)
    outbox = Outbox.open(settings.storage.dir)
    try:
        checkin = Checkin(settings, outbox, Privacy("hmac", b"k" * 32), FakeClock(wall=2_208_988_800.25))
        decision = checkin.decide(Scan(text=vectors()["bhyt"][0]["payload"], source="stdin"))
    finally:
        outbox.close()
    assert decision.outcome == "accepted", decision.reason

    code = cli_main(["history", "--config", str(config), "--since", "2039-12-31", "--until", "2040-01-02"])
    out, err = capsys.readouterr()
    assert code == 0, err
    [exported] = list(csv.DictReader(io.StringIO(out)))
    assert exported["event_id"] == decision.event_id
    assert exported["scanned_at"] == "2040-01-01T00:00:00.250Z"

    assert cli_main(["history", "--config", str(config), "--format", "json", "--since", "2041-01-01"]) == 0
    assert json.loads(capsys.readouterr().out) == []
    exports = [r for r in AuditLog(settings.storage.dir / AUDIT_FILE).read() if r["event"] == "export"]
    assert [(r["since"], r["until"], r["rows"]) for r in exports] == [
        ("2039-12-31T00:00:00.000Z", "2040-01-02T00:00:00.000Z", 1),
        ("2041-01-01T00:00:00.000Z", None, 0),
    ]
