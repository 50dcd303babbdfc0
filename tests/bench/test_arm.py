"""bench/arm.py's two halves without the emulation: what the root prints, and how it is compared."""

from __future__ import annotations

import json

import pytest

from bench.arm import MARK, PHOTO_SETS, compare, main


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
