"""benchmarks/bench_act.py runs (also as `glamor bench act`), checks that the cached and uncached
agents plan alike, and writes its table."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_bench_act_smoke(tmp_path):
    out = tmp_path / "act.json"
    r = subprocess.run(
        [sys.executable, "-m", "glamor", "bench", "act", "--cases", "gridworld demo, 1 env", "GCSL, gridworld, 200 envs",
         "--repeats", "2", "--json", str(out)],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    case, gcsl = json.loads(out.read_text())["cases"]
    assert gcsl["decisions_bitwise_equal"] is True and gcsl["algo"] == "gcsl" and gcsl["environments"] == 200
    assert case["decisions_bitwise_equal"] is True and case["planner"] == "beam" and case["environments"] == 1
    assert len(case["times_s"]["goal cached"]) == 2 and all(v > 0 for v in case["median_s"].values())
    assert "| gridworld demo, 1 env | beam 32, horizon 12 |" in out.with_suffix(".md").read_text()


def test_bench_act_rejects_bad_repeats(tmp_path):
    r = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_act.py"), "--repeats", "0", "--json", str(tmp_path / "a.json")],
        capture_output=True, text=True, timeout=120,
    )
    assert r.returncode != 0 and "argument --repeats: must be at least 1, got 0" in r.stderr
