"""`python -m bench --quick` runs every benchmark module and writes one results file with the machine."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from bench.__main__ import MODULES
from tests.support.daemon import ROOT
from tests.support.extras import require_collector
from tests.support.slowdown import scaled

ROW_KEYS = {"benchmark", "metric", "value", "baseline", "ratio", "unit", "note"}


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_quick_bench_runs_every_module_and_writes_results(tmp_path: Path) -> None:
    require_collector("the collector's benchmarks (ingest, reports, cluster)")
    out = tmp_path / "results.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--output", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=scaled(170),
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]

    report = json.loads(out.read_text())
    assert report["quick"] is True and report["errors"] == {}
    assert (
        set(report["results"])
        == set(MODULES)
        == {"spine", "scanner", "decode", "ready", "ingest", "reports", "cluster"}
    )
    for name, rows in report["results"].items():
        assert rows, f"{name} produced no rows"
        for r in rows:
            assert set(r) == ROW_KEYS, r
            assert isinstance(r["value"], int | float) and math.isfinite(r["value"]), r
            # A figure with no baseline has no ratio; one with a baseline has one (unless it is zero).
            assert (r["ratio"] is None) == (r["baseline"] in (None, 0)), r
    machine = report["machine"]
    assert machine["cores"] >= 1 and machine["python"] and machine["kernel"]
    assert machine["packages"]["paho-mqtt"] and machine["packages"]["zxing-cpp"]
    assert machine["mosquitto"], "mosquitto's version is part of the machine's description"
    # One table on stdout: every row of the file is in it.
    for rows in report["results"].values():
        for r in rows:
            assert r["benchmark"] in done.stdout
