"""scripts/system_packages.sh: what `make setup` and `make install` take from apt, per machine.

DEB_ARCH asks what another machine would get; what is installed here is never listed again."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from tests.support.daemon import ROOT

SCRIPT = ROOT / "scripts/system_packages.sh"
# PyPI has no 32-bit Arm wheels for these; apt's meet our floors (numpy>=1.24, pynacl>=1.5).
FROM_APT_ON_ARM32 = {"python3-numpy", "python3-nacl"}
# What still compiles there: zxing-cpp (C++, CMake), Pillow with the FreeType and WebP the tests use, cffi.
BUILD_ON_ARM32 = {"g++", "cmake", "libfreetype-dev", "libwebp-dev", "libjpeg-dev", "zlib1g-dev", "libffi-dev"}
FOR_THE_TESTS = {"systemd", "python3-setuptools", "python3-wheel", "e2fsprogs"}

pytestmark = pytest.mark.skipif(shutil.which("dpkg-query") is None, reason="not a Debian system")


def missing(*args: str, arch: str) -> set[str]:
    done = subprocess.run(
        ["bash", str(SCRIPT), *args],
        env={**os.environ, "DEB_ARCH": arch},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return set(done.stdout.split())


def installed(package: str) -> bool:
    done = subprocess.run(
        ["dpkg-query", "-W", "-f=${db:Status-Abbrev}", package], capture_output=True, text=True, check=False
    )
    return done.stdout.startswith("ii")


def test_32_bit_arm_takes_numpy_and_pynacl_from_apt_and_the_tools_for_what_compiles() -> None:
    wanted = FROM_APT_ON_ARM32 | BUILD_ON_ARM32
    listed = missing(arch="armhf")
    assert listed == {p for p in listed if not installed(p)}, "an installed package was listed"
    assert {p for p in wanted if not installed(p)} <= listed
    assert not listed & FOR_THE_TESTS, "the daemon's install does not need the test tools"


def test_64_bit_arm_takes_them_from_pypi() -> None:
    assert not missing("--test", arch="arm64") & (FROM_APT_ON_ARM32 | BUILD_ON_ARM32)


def test_an_unknown_option_is_refused() -> None:
    done = subprocess.run(["bash", str(SCRIPT), "--all"], capture_output=True, text=True, check=False)
    assert done.returncode == 2 and "unknown option '--all'" in done.stderr
