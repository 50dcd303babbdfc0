"""Shared pieces of the benchmarks: rows, percentiles, a broker, a daemon."""

from __future__ import annotations

import json
import statistics
import sys
from typing import Any

Row = dict[str, Any]


def row(
    benchmark: str,
    metric: str,
    value: float,
    unit: str,
    baseline: float | None = None,
    note: str = "",
) -> Row:
    ratio = None if not baseline else round(value / baseline, 3)
    return {
        "benchmark": benchmark,
        "metric": metric,
        "value": round(value, 3),
        "baseline": None if baseline is None else round(baseline, 3),
        "ratio": ratio,
        "unit": unit,
        "note": note,
    }


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(p) - 1]


def print_rows(rows: list[Row], out: Any = sys.stdout) -> None:
    headers = ["benchmark", "metric", "value", "unit", "baseline", "ratio", "note"]
    cells = [[_fmt(r.get(h)) for h in headers] for r in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) if cells else len(h) for i, h in enumerate(headers)]
    line = "| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)) + " |"
    out.write(line + "\n" + "|" + "|".join("-" * (w + 2) for w in widths) + "|\n")
    for c in cells:
        out.write("| " + " | ".join(v.ljust(w) for v, w in zip(c, widths, strict=True)) + " |\n")


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}".rstrip("0").rstrip(".") if abs(value) < 1e6 else f"{value:.0f}"
    return str(value)


def main_for(run: Any) -> None:
    """`python -m bench.<name> [--quick]`: runs one module and prints its rows."""
    rows = run(quick="--quick" in sys.argv)
    print_rows(rows)
    print(json.dumps(rows, indent=1))
