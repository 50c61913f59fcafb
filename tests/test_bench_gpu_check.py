"""benchmarks/gpu_check.sh on a machine where nothing runs (no time budget: every stage skips):
an earlier run's planner_cuda.{json,md} is not shown, nor copied to $OUT, as this run's."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "gpu_check.sh"


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_an_earlier_runs_benchmark_table_is_not_reported_as_this_runs(tmp_path):
    root = tmp_path / "repo"
    (root / "benchmarks" / "results").mkdir(parents=True)
    shutil.copy(SCRIPT, root / "benchmarks" / "gpu_check.sh")
    for name in ("planner_cuda.md", "planner_cuda.json"):  # committed from an earlier GPU run
        (root / "benchmarks" / "results" / name).write_text("| an earlier run's table |\n")
    r, out = _check(root, tmp_path / "out")
    assert "SKIP: benchmark" in r.stdout
    assert "an earlier run's table" not in r.stdout
    assert "planner_cuda.md: not written by this run" in r.stdout
    assert sorted(p.name for p in out.iterdir()) == ["summary.txt"]  # nothing of the earlier run

    future = time.time() + 3600  # as if this run's benchmark had written them
    for name in ("planner_cuda.md", "planner_cuda.json"):
        os.utime(root / "benchmarks" / "results" / name, (future, future))
    r, out = _check(root, tmp_path / "out2")
    assert "an earlier run's table" in r.stdout and "not written by this run" not in r.stdout
    assert sorted(p.name for p in out.iterdir()) == ["planner_cuda.json", "planner_cuda.md", "summary.txt"]


def _check(root: Path, out: Path):
    out.mkdir()
    r = subprocess.run(["bash", str(root / "benchmarks" / "gpu_check.sh")], capture_output=True, text=True,
                       timeout=60, env={"PATH": "/usr/bin:/bin", "BUDGET": "0", "PYTHON": "true", "OUT": str(out),
                                        "CUDA_HOME": str(root / "no-cuda")})
    assert r.returncode == 0, r.stderr[-2000:]
    return r, out
