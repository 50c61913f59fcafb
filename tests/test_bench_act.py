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


def test_bench_act_records_the_command_that_ran(monkeypatch):
    """The table's 'Written by' line names the benchmark's own arguments, quoted so that it can be
    run again: `glamor bench act` with none named sys.argv's ('bench act'), as if bench_act.py
    took those, and a case name's spaces split it in words."""
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    import bench_act

    seen = []
    monkeypatch.setattr(bench_act, "run_ab_cases", lambda *args, **extra: seen.append(extra["command"]))
    monkeypatch.setattr(sys, "argv", ["glamor", "bench", "act"])
    assert bench_act.main([]) == 0
    assert bench_act.main(["--repeats", "3", "--cases", "paper, 1 env"]) == 0
    monkeypatch.setattr(sys, "argv", ["bench_act.py", "--repeats", "5"])
    assert bench_act.main() == 0
    assert seen == ["python benchmarks/bench_act.py",  # a command to paste: quoted where it must be
                    "python benchmarks/bench_act.py --repeats 3 --cases 'paper, 1 env'",
                    "python benchmarks/bench_act.py --repeats 5"]
