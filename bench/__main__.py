"""`make bench`: every benchmark of the project in one run, one table, and bench/results.json.

    python -m bench [--quick] [--output PATH] [MODULE ...]

Each figure stands next to its baseline, measured in the same run on the same machine, and their
ratio: these machines are shared and noisy, so ratios are what to compare between runs, and the
results file says which machine produced them. A module that fails is reported and the others
still run; the exit status is then 1.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import json
import os
import platform
import re
import shutil
import sqlite3
import subprocess
import sys
import time
import traceback
from importlib import metadata
from pathlib import Path
from typing import Any

from bench.common import Row, print_rows

MODULES = ("spine", "scanner", "decode", "ready", "ingest", "reports", "cluster")
RESULTS = Path(__file__).with_name("results.json")
PACKAGES = (
    "qr-checkin",
    "paho-mqtt",
    "zxing-cpp",
    "numpy",
    "pydantic",
    "pydantic-settings",
    "pyserial",
    "evdev",
    "gpiozero",
    "pynacl",
    "uuid6",
    "opencv-python-headless",
    "libfaketime",
    "sqlalchemy",
    "alembic",
    "psycopg",
    "jsonschema-rs",
    "prometheus-client",
    "openpyxl",
)


def machine() -> dict[str, Any]:
    """What produced the figures: enough to tell two results files' machines apart."""
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "memory_mb": _memory_mb(),
        "kernel": platform.release(),
        "os": _os_name(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "mosquitto": _mosquitto_version(),
        "packages": {name: _version(name) for name in PACKAGES},
        "commit": _git("rev-parse", "--short", "HEAD"),
        "dirty": bool(_git("status", "--porcelain", "--untracked-files=no")),
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            # x86 says "model name"; a Raspberry Pi's arm64 kernel only says "Model" (the board).
            key, _, value = line.partition(":")
            if key.strip() in ("model name", "Model"):
                return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_mb() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) // 1024
    except (OSError, ValueError):
        pass
    return None


def _os_name() -> str | None:
    try:
        return platform.freedesktop_os_release().get("PRETTY_NAME")
    except OSError:
        return None


def _mosquitto_version() -> str | None:
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    try:
        # `mosquitto -h` prints its version on the first line and exits non-zero.
        out = subprocess.run([binary, "-h"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(r"version (\S+)", out)
    return match[1] if match else None


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", *args], capture_output=True, text=True, timeout=10, cwd=Path(__file__).parent
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def run_module(name: str, quick: bool) -> list[Row]:
    module = importlib.import_module(f"bench.{name}")
    rows: list[Row] = module.run(quick=quick)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run: few samples, a few seconds each")
    parser.add_argument("--output", type=Path, default=RESULTS, help=f"results file (default {RESULTS})")
    parser.add_argument(
        "modules", nargs="*", metavar="MODULE", help=f"some of {', '.join(MODULES)} (default all)"
    )
    args = parser.parse_args(argv)
    if unknown := sorted(set(args.modules) - set(MODULES)):
        parser.error(f"no benchmark module {', '.join(unknown)}: choose from {', '.join(MODULES)}")
    names = args.modules or list(MODULES)

    results: dict[str, list[Row]] = {}
    errors: dict[str, str] = {}
    seconds: dict[str, float] = {}
    for name in names:
        print(f"bench: {name} ...", file=sys.stderr, flush=True)
        started = time.monotonic()
        try:
            results[name] = run_module(name, args.quick)
        except Exception as exc:
            traceback.print_exc()
            errors[name] = f"{type(exc).__name__}: {exc}"
        seconds[name] = round(time.monotonic() - started, 1)

    print_rows([r for name in names for r in results.get(name, [])])
    for name, error in errors.items():
        print(f"FAILED {name}: {error}")
    report = {
        "machine": machine(),
        "quick": args.quick,
        "seconds": seconds,
        "results": results,
        "errors": errors,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=1, ensure_ascii=False) + "\n")
    print(f"written to {args.output}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
