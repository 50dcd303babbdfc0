"""bench/arm.py's two halves without the emulation (what the root prints, and how it is compared), and the
CPU factor that scripts/test_arm.sh measures for the emulated runs (tests/support/slowdown.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from bench.arm import MARK, PHOTO_SETS, compare, main
from tests.support.daemon import ROOT
from tests.support.slowdown import ENV


def test_the_reads_inside_the_root_are_one_json_line_per_set_and_decoder(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["--reads", "--quick"]) == 0
    [line] = capsys.readouterr().out.splitlines()
    assert line.startswith(MARK)
    reads = json.loads(line[len(MARK) :])
    assert sorted(reads) == sorted(PHOTO_SETS)
    for decoders in reads.values():
        assert sorted(decoders) == ["ours", "plain"]
        assert len(decoders["ours"]) == len(decoders["plain"]) == 24
        assert set(decoders["ours"].values()) <= {"read", "misread", "none"}


def test_a_photo_read_differently_on_arm_is_counted_and_named() -> None:
    here = {"zxing-cpp": {"plain": {"a": "read", "b": "none"}, "ours": {"a": "read", "b": "read"}}}
    there = {"zxing-cpp": {"plain": {"a": "read", "b": "none"}, "ours": {"a": "read", "b": "misread"}}}
    rows = {r["metric"]: r for r in compare("arm64", here, there)}
    assert (rows["read, plain"]["value"], rows["read, plain"]["baseline"]) == (1, 1)
    assert rows["read, plain"]["note"] == "of 2; the same images as here"
    assert (rows["read, ours"]["value"], rows["read, ours"]["baseline"]) == (1, 2)
    assert rows["read, ours"]["note"] == "of 2; differ: b (here read, arm64 misread)"
    assert (rows["misreads, ours"]["value"], rows["misreads, ours"]["baseline"]) == (1, 0)
    assert {r["benchmark"] for r in rows.values()} == {"camera-decode-arm/arm64/zxing-cpp"}


def _factor(value: str | None) -> subprocess.CompletedProcess[str]:
    """tests/support/slowdown.py's factor and one scaled wait, as a fresh interpreter reads them."""
    env = {k: v for k, v in os.environ.items() if k != ENV}
    if value is not None:
        env[ENV] = value
    code = "from tests.support.slowdown import SLOWDOWN, scaled; print(SLOWDOWN, scaled(10.0))"
    return subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize(
    ("value", "printed"),
    [(None, "1.0 10.0"), ("", "1.0 10.0"), ("9.2", "9.2 92.0"), ("0.5", "1.0 10.0")],
)
def test_waits_are_as_written_natively_and_scaled_by_the_measured_factor(
    value: str | None, printed: str
) -> None:
    result = _factor(value)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == printed.split()


def test_a_factor_that_is_no_number_is_refused_by_name() -> None:
    result = _factor("fast")
    assert result.returncode != 0
    assert f"{ENV} must be a number" in result.stderr and "'fast'" in result.stderr
