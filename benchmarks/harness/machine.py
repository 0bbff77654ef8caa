"""The machine and the software a benchmark ran on, for the results section.

``machine_facts()`` reads core count, CPU model, memory and kernel from ``/proc`` and
``os``; ``package_versions()`` reads installed distributions' versions. ``CpuWatch`` tells how
much CPU other processes on the machine used while a benchmark ran (on a shared machine they
take cores from what is measured). Used by the runners under ``benchmarks/``; not runnable by
itself.
"""

from __future__ import annotations

import os
import platform
from importlib import metadata
from pathlib import Path

PROC_STAT = Path("/proc/stat")
CPUINFO = Path("/proc/cpuinfo")
MEMINFO = Path("/proc/meminfo")
KIB_PER_GIB = 1024 * 1024


def cpu_model() -> str:
    for line in CPUINFO.read_text().splitlines():
        if line.startswith("model name"):
            return line.partition(":")[2].strip()
    return platform.processor() or "unknown"


def memory_gib() -> float:
    for line in MEMINFO.read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) / KIB_PER_GIB
    return 0.0


def machine_facts() -> dict[str, str]:
    return {
        "cores": str(os.cpu_count() or 0),
        "cpu": cpu_model(),
        "memory": f"{memory_gib():.1f} GiB",
        "kernel": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
    }


def package_versions(packages: tuple[str, ...]) -> dict[str, str]:
    versions = {}
    for package in packages:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "(not installed)"
    return versions


def busy_cpu_seconds() -> float:
    """CPU time all tasks used since boot (``/proc/stat``: user, nice, system, irq, softirq;
    a task's own system time includes the interrupt work done while it ran)."""
    fields = PROC_STAT.read_text().splitlines()[0].split()
    user, nice, system, _idle, _iowait, irq, softirq = (int(v) for v in fields[1:8])
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds() -> float:
    """CPU time of this process and of every child it has waited for (their children too,
    when they waited for them)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


class CpuWatch:
    """CPU seconds used by processes this one did not start, between start and ``foreign()``.

    Start it before the first child and read it after the last one was waited for; a child
    still running when it is read counts as foreign."""

    def __init__(self) -> None:
        self._busy = busy_cpu_seconds()
        self._own = own_cpu_seconds()

    def foreign(self) -> tuple[float, float]:
        """(CPU seconds used by others, this process tree's own CPU seconds). Tick-based
        /proc/stat and exact rusage disagree by about 2% of the own figure, so that is the
        precision."""
        own = own_cpu_seconds() - self._own
        used = (busy_cpu_seconds() - self._busy) - own
        return max(used, 0.0), own
