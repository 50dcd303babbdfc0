"""libfaketime for the CPU this interpreter runs on, and the environment that preloads it.

The chaos harness's clock classes and the device's clock-step tests move the daemon's wall clock
through a preloaded libfaketime (monotonic time left alone, as a real NTP step does). The PyPI wheel
ships an x86-64 library and its source: on any other CPU (every Raspberry Pi) the library is built
from that source, once, with gcc and make. Device-side only: no collector imports, so 32-bit Arm,
where the collector's extra is not installed, builds and uses it too.

    python -m bench.faketime     finds or builds it and prints its path (`make setup` runs this)
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# libfaketime re-reads its offset file at most this often: a jump is in force after it.
CLOCK_CACHE_S = 1
LIBFAKETIME = "libfaketime.so.1"
# As the wheel's own build (its exported symbols say so): clocks and timers faked, file times and sleeps not.
FAKETIME_CFLAGS = "-UFAKE_STAT -UFAKE_UTIME -UFAKE_SLEEP"
# The daemon's default storage.max_age_days, and a day more: a step the old ageing dropped a backlog at.
STEP_S = (21 + 1) * 86400.0


def elf_machine(path: Path) -> tuple[int, int] | None:
    """The (word size, CPU) an ELF file was built for, from its header; None if it is not ELF."""
    try:
        with path.open("rb") as fh:
            head = fh.read(20)
    except OSError:
        return None
    if len(head) < 20 or head[:4] != b"\x7fELF":
        return None
    return head[4], int.from_bytes(head[18:20], "little" if head[5] == 1 else "big")


def libfaketime_source() -> Path | None:
    """The libfaketime source tree the wheel ships (its x86-64 library beside it), if installed."""
    spec = importlib.util.find_spec("libfaketime")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "vendor/libfaketime/src"


def build_libfaketime(source: Path, dest: Path) -> str | None:
    """Builds the library from `source` (flags as the wheel's) into `dest`; returns why not."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest.parent) as work:
        tree = Path(work) / "src"
        shutil.copytree(source, tree, ignore=shutil.ignore_patterns("*.so*", "*.o"))
        try:
            done = subprocess.run(
                ["make", "-C", str(tree), LIBFAKETIME, f"FAKETIME_COMPILE_CFLAGS={FAKETIME_CFLAGS}"],
                capture_output=True,
                text=True,
                timeout=600,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"building libfaketime failed (needs gcc and make): {exc}"
        if done.returncode != 0:
            tail = (done.stderr.strip() or done.stdout.strip())[-200:]
            return f"building libfaketime failed (needs gcc and make): {tail}"
        # A rename, so that a concurrent run never loads a half-written library.
        (tree / LIBFAKETIME).rename(dest)
    return None


def faketime_library() -> tuple[Path | None, str | None]:
    """libfaketime for the CPU this interpreter runs on: the wheel's own library where it was built for
    it (x86-64), else one built from the source the wheel ships, once, into the user's cache; else why
    not. Debian's libfaketime is not used: it also fakes file times and sleeps, the wheel's build only
    clocks and timers, and the two must behave alike."""
    source = libfaketime_source()
    if source is None:
        return None, "libfaketime is not installed (make setup installs it)"
    here = elf_machine(Path(sys.executable).resolve())
    if here is None or elf_machine(source / LIBFAKETIME) == here:
        return source / LIBFAKETIME, None
    version = importlib.metadata.version("libfaketime")
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "qr-checkin"
    built = cache / f"libfaketime-{version}-elf{here[0]}-{here[1]}" / LIBFAKETIME
    if elf_machine(built) != here and (reason := build_libfaketime(source, built)):
        return None, f"the wheel's libfaketime is for another CPU and {reason}"
    return built, None


def faketime(clock_file: Path, lib: Path) -> tuple[dict[str, str] | None, str | None]:
    """The environment that preloads `lib` (offset read from `clock_file`), once it proved it moves the
    wall clock of a Python child and leaves monotonic time alone; else why not."""
    env = {
        "LD_PRELOAD": str(lib),
        "FAKETIME_TIMESTAMP_FILE": str(clock_file),
        "FAKETIME_CACHE_DURATION": str(CLOCK_CACHE_S),
        "DONT_FAKE_MONOTONIC": "1",
        "FAKETIME_FORCE_MONOTONIC_FIX": "0",
    }
    clock_file.write_text("+86400\n")
    try:
        probe = subprocess.run(
            [sys.executable, "-c", "import time; print(time.time(), time.monotonic())"],
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            timeout=30,
        )
        wall, mono = (float(v) for v in probe.stdout.split())
    except (OSError, ValueError, subprocess.TimeoutExpired) as exc:
        return None, f"libfaketime probe failed: {exc}"
    finally:
        clock_file.write_text("+0\n")
    if abs(wall - time.time() - 86400) > 60 or abs(mono - time.monotonic()) > 60:
        return None, f"libfaketime does not work here: {probe.stderr.strip()[:120] or 'no clock moved'}"
    return env, None


def main() -> int:
    lib, reason = faketime_library()
    print(f"libfaketime: {lib or reason}", flush=True)
    return 0 if lib else 1


if __name__ == "__main__":
    sys.exit(main())
