"""What machine this is: the CPU a benchmark ran on (named beside every number), and the memory
a run may still take (checked against its replay at the start)."""

from __future__ import annotations

import platform
from pathlib import Path


def cpu_name() -> str:
    """The CPU's model name from /proc/cpuinfo, else what `platform` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


MEMINFO = Path("/proc/meminfo")
CGROUP = Path("/sys/fs/cgroup")  # this process's cgroup (v2), as its namespace shows it


def available_memory() -> int | None:
    """Bytes this process could still allocate: Linux's MemAvailable, or less where a cgroup
    (v2) limit leaves less; None where neither can be read. A cgroup's usage (memory.current)
    counts its page cache, which the kernel reclaims when the cgroup needs room (MemAvailable
    counts it as available too): its file pages (memory.stat's active_file and inactive_file)
    are taken back from the usage. Without that, a container whose files filled its cache (a
    run's checkpoints, written or read) had next to nothing "available"."""
    found = []
    try:
        for line in MEMINFO.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                found.append(int(line.split()[1]) * 1024)
    except (OSError, ValueError, IndexError):
        pass
    try:
        limit = (CGROUP / "memory.max").read_text().strip()
        if limit != "max":
            used = int((CGROUP / "memory.current").read_text())
            found.append(int(limit) - max(used - _cgroup_page_cache(), 0))
    except (OSError, ValueError):
        pass
    return max(0, min(found)) if found else None


def _cgroup_page_cache() -> int:
    """Bytes of the cgroup's usage that are page cache (reclaimable file pages; shmem is not
    among them), 0 where memory.stat cannot be read."""
    try:
        fields = dict(line.split()[:2] for line in (CGROUP / "memory.stat").read_text().splitlines()
                      if len(line.split()) >= 2)
        return int(fields.get("active_file", 0)) + int(fields.get("inactive_file", 0))
    except (OSError, ValueError):
        return 0
