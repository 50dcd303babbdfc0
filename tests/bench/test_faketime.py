"""libfaketime built for this CPU from the source its wheel ships (bench/faketime.py)."""

from __future__ import annotations

import sys
from pathlib import Path

from bench.faketime import LIBFAKETIME, build_libfaketime, elf_machine, faketime, libfaketime_source


def test_libfaketime_builds_from_the_source_its_wheel_ships_and_moves_only_the_wall_clock(
    tmp_path: Path,
) -> None:
    """What the harness does on a CPU the wheel's library is not for (any Arm), done here too."""
    source = libfaketime_source()
    assert source is not None, "libfaketime is a test dependency: make setup"
    lib = tmp_path / "built" / LIBFAKETIME
    assert build_libfaketime(source, lib) is None
    assert elf_machine(lib) == elf_machine(Path(sys.executable).resolve())
    assert sorted(p.name for p in lib.parent.iterdir()) == [LIBFAKETIME], "no build tree left behind"
    env, reason = faketime(tmp_path / "clock-offset", lib)
    assert reason is None and env is not None and env["LD_PRELOAD"] == str(lib)


def test_a_library_for_another_cpu_is_told_apart(tmp_path: Path) -> None:
    ours = elf_machine(Path(sys.executable).resolve())
    assert ours is not None
    word, cpu = ours
    other = bytearray((Path(sys.executable).resolve()).read_bytes()[:64])
    other[18:20] = (cpu ^ 0xFF).to_bytes(2, "little" if other[5] == 1 else "big")
    (tmp_path / "other.so").write_bytes(bytes(other))
    assert elf_machine(tmp_path / "other.so") == (word, cpu ^ 0xFF)
    (tmp_path / "script").write_text("#!/bin/sh\n")
    assert elf_machine(tmp_path / "script") is None
