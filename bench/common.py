"""Shared pieces of the benchmarks: rows, percentiles, a broker, a daemon."""

from __future__ import annotations

import json
import os
import statistics
import sys
from collections.abc import Iterable
from pathlib import Path
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


def cpu_seconds(roots: Iterable[int]) -> float:
    """CPU seconds (user + system) the processes `roots` and all their descendants have used so far.

    A process's own times plus its reaped children's (cutime/cstime), summed over every living
    descendant: a child that exits between two readings moves from its own line into its parent's
    children's times, so a difference of two readings counts it once. A root that is gone counts 0.
    """
    stats = _proc_stats()
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in stats.items():
        children.setdefault(ppid, []).append(pid)
    seen: set[int] = set()
    todo = [pid for pid in roots if pid in stats]
    while todo:
        pid = todo.pop()
        if pid not in seen:
            seen.add(pid)
            todo += children.get(pid, [])
    return sum(stats[pid][1] for pid in seen) / os.sysconf("SC_CLK_TCK")


def _proc_stats() -> dict[int, tuple[int, int]]:
    """pid -> (parent pid, ticks of its own and its reaped children's CPU) for every process."""
    out = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            text = Path(entry.path, "stat").read_text()
        except OSError:
            continue  # exited while we looked
        # The command name (field 2) may hold spaces and parentheses: split after its last ")".
        fields = text[text.rindex(")") + 2 :].split()
        out[int(entry.name)] = (int(fields[1]), sum(int(f) for f in fields[11:15]))
    return out


def machine_cpu_seconds() -> float:
    """CPU seconds every core of the machine has spent busy (not idle, not waiting) since boot."""
    ticks = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle, iowait = ticks[3], ticks[4]
    # guest times are already inside user and nice
    return (sum(ticks[:8]) - idle - iowait) / os.sysconf("SC_CLK_TCK")
