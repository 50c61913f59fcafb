"""benchmarks/bench_malloc.py runs (also as `glamor bench malloc`): its two sides, each in processes
of its own, end with bitwise the same weights, and it refuses to report when they do not."""

from __future__ import annotations

import json
import platform
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's malloc only")
def test_bench_malloc_smoke(tmp_path):
    out = tmp_path / "malloc.json"
    r = subprocess.run(
        [sys.executable, "-m", "glamor", "bench", "malloc", "--presets", "gridworld", "--pairs", "1",
         "--updates", "1", "--warmup", "1", "--json", str(out)],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,  # through the CLI, from anywhere
    )
    assert r.returncode == 0, r.stderr[-3000:]
    (case,) = json.loads(out.read_text())["cases"]
    assert case["preset"] == "gridworld" and case["weights_bitwise_equal"] is True
    assert all(len(runs) == 1 for runs in case["runs"].values())
    assert all(v > 0 for v in [*case["median_s"].values(), *case["cpu_median_s"].values()])
    assert "| gridworld |" in out.with_suffix(".md").read_text()


@pytest.mark.parametrize("differ_from", [0, 2])
def test_bench_malloc_refuses_sides_whose_weights_differ_at_the_pair_that_shows_it(monkeypatch, differ_from):
    """The hashes were compared only once every pair had run (minutes of children on a real run):
    a mismatch is refused after the pair where it shows, the first or a later one."""
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    import bench_malloc

    sides = []

    def run_side(name, side, updates, warmup):
        sides.append(side)
        # from child `differ_from` on, each side its own weights
        digest = side if len(sides) > differ_from else "same"
        return {"wall_s": [1.0], "cpu_s": [1.0], "faults_per_update": 0.0, "peak_rss_mb": 1.0,
                "weights_sha256": digest}

    monkeypatch.setattr(bench_malloc, "run_side", run_side)
    pair = differ_from // 2 + 1
    with pytest.raises(AssertionError, match=f"weights differ .*after pair {pair} of 3"):
        bench_malloc.run_case("gridworld", 3, 1, 1)
    before, now = bench_malloc.SIDES
    assert sides == [before, now, now, before, before, now][:2 * pair]  # alternating which side goes first


def test_bench_malloc_help_says_what_it_times(monkeypatch, capsys):
    """`glamor bench malloc --help` gives the docstring's whole first sentence, which spans two
    lines (it showed "... (before) or those of" and stopped)."""
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    import bench_malloc

    with pytest.raises(SystemExit) as exit_:
        bench_malloc.main(["--help"])
    assert exit_.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "or those of `glamor.allocator.keep_freed_memory` (now), which `glamor train | eval | compare` set." in text
