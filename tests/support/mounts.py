"""Real mounts for storage tests: a tmpfs to fill up, an image to turn read-only (root only)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest


def mount(*args: str) -> None:
    done = subprocess.run(["mount", *args], capture_output=True, text=True, timeout=10)
    if done.returncode != 0:
        raise AssertionError(f"mount {' '.join(args)}: {done.stderr.strip()}")


def unmount(path: Path) -> None:
    # Lazy: a daemon a failed test left behind must not keep the mount (and the test) stuck.
    subprocess.run(["umount", "-l", str(path)], capture_output=True, timeout=10)


def require_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("mounting a filesystem to fill up or turn read-only needs root (CI runs as root)")
