"""A CPU quota for a benchmark's processes: each collector on a core share of its own.

On this two-core machine a collector, its broker nodes and PostgreSQL share two cores: a second
collector only takes CPU from the first and from the database, so the ratio to one collector says
more about the machine than about the collectors. Capped at a fixed share each (what one small host
per collector gives), the collector is the limit, not the machine, and adding one adds its share:
the ratio then measures whether the instances get in each other's way (locks, gaps, the broker's
dispatch), the thing that decides how they scale on machines of their own.

A Linux control group with a CFS quota: cgroup v2 (`cpu.max`, unified hierarchy with the cpu
controller) or v1 (`cpu.cfs_quota_us` under the cpu hierarchy). Root only; `unavailable()` says why
not where it cannot be made.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from pathlib import Path

V2 = Path("/sys/fs/cgroup")
V1 = Path("/sys/fs/cgroup/cpu")
PERIOD_US = 100_000


def _v2() -> bool:
    controllers = V2 / "cgroup.controllers"
    return controllers.exists() and "cpu" in controllers.read_text().split()


def unavailable() -> str | None:
    """Why no quota can be set here, or None."""
    if os.geteuid() != 0:
        return "needs root (a control group of its own)"
    if _v2() or (V1 / "cpu.cfs_quota_us").exists():
        return None
    return "no cgroup cpu controller (v2 cpu.max or v1 cpu.cfs_quota_us)"


class CpuCap:
    """A control group whose processes together get at most `cores` of CPU time."""

    def __init__(self, cores: float, name: str = "qr-bench") -> None:
        why = unavailable()
        if why is not None:
            raise RuntimeError(f"no CPU quota: {why}")
        self.cores = cores
        quota = max(int(cores * PERIOD_US), 1000)
        if _v2():
            # The root's subtree_control must hand the cpu controller down to its children.
            (V2 / "cgroup.subtree_control").write_text("+cpu")
            self.path = V2 / f"{name}-{uuid.uuid4().hex[:8]}"
            self.path.mkdir()
            (self.path / "cpu.max").write_text(f"{quota} {PERIOD_US}")
        else:
            self.path = V1 / f"{name}-{uuid.uuid4().hex[:8]}"
            self.path.mkdir()
            (self.path / "cpu.cfs_period_us").write_text(str(PERIOD_US))
            (self.path / "cpu.cfs_quota_us").write_text(str(quota))

    def add(self, pid: int) -> None:
        """Moves the process, every thread of it, into the group (its children are born there)."""
        (self.path / "cgroup.procs").write_text(str(pid))

    def close(self) -> None:
        """Removes the group once its processes have ended (a live one is moved out first)."""
        procs = self.path / "cgroup.procs"
        parent = self.path.parent / "cgroup.procs"
        for pid in procs.read_text().split():
            with contextlib.suppress(ProcessLookupError):  # ended meanwhile
                parent.write_text(pid)
        self.path.rmdir()
