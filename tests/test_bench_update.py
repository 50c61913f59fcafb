"""benchmarks/bench_update.py runs (also as `glamor bench update`) and its two LSTM forwards agree: the same loss and bitwise
the same gradients at the demo's sizes (the benchmark refuses to time them otherwise)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_bench_update_smoke(tmp_path):
    out = tmp_path / "update.json"
    r = subprocess.run(
        [sys.executable, "-m", "glamor", "bench", "update", "--presets", "gridworld", "--repeats", "1",
         "--json", str(out)],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,  # through the CLI, from anywhere
    )
    assert r.returncode == 0, r.stderr[-3000:]
    result = json.loads(out.read_text())
    (case,) = result["cases"]
    assert case["preset"] == "gridworld" and case["gradients_bitwise_equal"] is True
    assert case["batch"] == 256 and case["tokens"] <= 13
    assert all(v > 0 for v in case["median_s"].values())
    assert "| gridworld | 256 x" in out.with_suffix(".md").read_text()


def test_bench_update_rejects_bad_repeats(tmp_path):
    r = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_update.py"), "--repeats", "0",
         "--json", str(tmp_path / "u.json")],
        capture_output=True, text=True, timeout=120,
    )
    assert r.returncode != 0 and "argument --repeats: must be at least 1, got 0" in r.stderr
