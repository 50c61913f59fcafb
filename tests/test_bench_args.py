"""Benchmark arguments are checked before a benchmark spends its time: counts and durations must be
positive and output paths must be writable places (benchmarks/bench_args.py)."""

import subprocess
import sys

import pytest


def _bench(*args, cwd):
    return subprocess.run([sys.executable, "-m", "glamor", "bench", *args], capture_output=True, text=True,
                          timeout=120, cwd=cwd)


@pytest.mark.parametrize("args,message", [
    (("planner", "--quick", "--threads", "0"), "argument --threads: must be at least 1, got 0"),
    (("act", "--repeats", "-2"), "argument --repeats: must be at least 1, got -2"),
    (("envs", "--seconds", "-1"), "argument --seconds: must be > 0, got -1"),
    (("envs", "--quick", "--only", "zzz"), "--only zzz: no registered environment matches"),
    (("collect", "--envs", "bogus"), "argument --envs: must be an integer >= 1, got 'bogus'"),
    (("update", "--json", "afile/u.json"), "argument --json: afile is a file, not a folder"),
    (("update", "--json", "afile/sub/u.json"), "argument --json: afile is a file, not a folder, so afile/sub cannot"),
    (("envs", "--out", "afile"), "argument --out: afile is a file, not a folder"),
    (("act", "--json", "."), "argument --json: . is a folder; name a file"),
    ((), "glamor bench: error: which benchmark? one of planner, act, envs, collect, update"),
])
def test_bad_benchmark_arguments_are_named_before_it_runs(tmp_path, args, message):
    (tmp_path / "afile").write_text("x")
    out = _bench(*args, cwd=tmp_path)
    assert out.returncode == 2 and message in out.stderr and "Traceback" not in out.stderr, out.stderr[-2000:]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]  # nothing written
