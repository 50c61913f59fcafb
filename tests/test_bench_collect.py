"""benchmarks/bench_collect.py names the machine it ran on."""

from __future__ import annotations

import json
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


def test_collect_ratio_column_names_its_baseline(monkeypatch, tmp_path):
    """The ratio column divides by sync with the first of --envs: with --envs 2 4 it is 'vs sync x2'."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import bench_collect
    finally:
        sys.path.pop(0)
    monkeypatch.setattr(bench_collect, "RESULTS", tmp_path)
    monkeypatch.setattr(bench_collect, "time_collection", lambda cfg, n, vector, steps, repeats: 100.0 * n)
    assert bench_collect.main(["--envs", "2", "4", "--steps", "10", "--repeats", "1"]) == 0
    text = (tmp_path / "collect.md").read_text()
    assert "| vs sync x2 |" in text and "vs sync x1" not in text
    assert "| glamor/GridWorld-v0 | 12 | sync | 4 | 400 | 2.00 |" in text


def test_collect_writes_to_the_out_folder_and_quick_only_there(monkeypatch, tmp_path):
    """--out keeps a run apart from the committed results (the docstring's smaller run included);
    --quick writes only to an --out given, as bench_envs does."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import bench_collect
    finally:
        sys.path.pop(0)
    monkeypatch.setattr(bench_collect, "RESULTS", tmp_path / "default")
    monkeypatch.setattr(bench_collect, "time_collection", lambda cfg, n, vector, steps, repeats: 100.0 * n)
    assert bench_collect.main(["--envs", "1", "--steps", "10", "--repeats", "1", "--out", str(tmp_path / "a")]) == 0
    assert bench_collect.main(["--quick", "--envs", "1"]) == 0
    assert not (tmp_path / "default").exists()  # the committed results left alone
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["collect.json", "collect.md"]
    assert bench_collect.main(["--quick", "--envs", "2", "--out", str(tmp_path / "q")]) == 0
    assert "| glamor/GridWorld-v0 | 12 | async | 2 | 200 | 1.00 |" in (tmp_path / "q" / "collect.md").read_text()


def test_collect_says_how_many_steps_each_row_timed(monkeypatch, tmp_path):
    """Atari runs time a fifth of --steps but at least one round (k steps of every environment):
    with --steps 400 and 4 environments that is 200, not the 80 the table used to state alone;
    each row now carries the steps it timed."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import bench_collect
    finally:
        sys.path.pop(0)
    timed = []
    monkeypatch.setattr(bench_collect, "time_collection",
                        lambda cfg, n, vector, steps, repeats: timed.append(steps) or 100.0)
    assert bench_collect.main(["--envs", "1", "4", "--steps", "400", "--repeats", "1", "--out", str(tmp_path)]) == 0
    rows = json.loads((tmp_path / "collect.json").read_text())["rows"]
    assert [r["steps_per_run"] for r in rows] == timed == [400, 400, 400, 400, 80, 200, 80, 200]
    assert "at least one round" in (tmp_path / "collect.md").read_text()
