"""benchmarks/bench_collect.py names the machine it ran on."""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_collect_names_the_cores_this_process_may_use(monkeypatch):
    """'cores available' are those the process may run on (its CPU affinity, as the other
    benchmarks count them), not every CPU of the host (os.cpu_count)."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import bench_collect
    finally:
        sys.path.pop(0)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0})
    monkeypatch.setattr(os, "cpu_count", lambda: 64)
    assert "1 cores available" in bench_collect.machine(0.0)
