"""The benchmarks write their results files whole or not at all: a write that fails half-way (a
full disk, a run killed mid-write) leaves the earlier .json and .md as they were, not a truncated
file that README cites and that random_baseline.py would fail to read on its next run."""

from __future__ import annotations

import errno
import importlib
import json
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
OLD = {".json": '{"machine": {}, "rows": []}\n', ".md": "| an earlier table |\n"}


@pytest.fixture
def scripts(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    return importlib.import_module


def _disk_full_half_way(monkeypatch):
    """Path.write_text writes half of its text, then fails as a full disk does."""
    def write_text(self, data, *args, **kwargs):
        with open(self, "w") as f:
            f.write(data[: len(data) // 2])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Path, "write_text", write_text)


def _old_files(folder: Path, *names: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).write_text(OLD[Path(name).suffix])


def _assert_untouched(folder: Path, *names: str) -> None:
    assert {n: (folder / n).read_text() for n in names} == {n: OLD[Path(n).suffix] for n in names}
    assert sorted(p.name for p in folder.iterdir()) == sorted(names)  # no temporary file left


def _planner_write(scripts, tmp_path):
    scripts("bench_planner").write_results(tmp_path / "planner.json", {"cases": []}, "| table |")


def _ab_cases(scripts, tmp_path):  # bench_act's and bench_update's writer
    scripts("bench_planner").run_ab_cases(["a"], lambda name, repeats: {"speedup": 1.0}, 1, 1,
                                          lambda result: "| table |", tmp_path / "planner.json")


def _collect(scripts, tmp_path, monkeypatch):
    bench_collect = scripts("bench_collect")
    monkeypatch.setattr(bench_collect, "RESULTS", tmp_path)
    monkeypatch.setattr(bench_collect, "time_collection", lambda cfg, n, vector, steps, repeats: 100.0)
    bench_collect.main(["--envs", "1", "--steps", "10", "--repeats", "1"])


def _envs(scripts, tmp_path, monkeypatch):
    bench_envs = scripts("bench_envs")
    monkeypatch.setattr(bench_envs, "bench_env", lambda env_id, seconds, repeats: dict(
        env=env_id, actions=4, episode_length=12, steps_per_s=1.0, reset_ms=1.0, make_s=1.0))
    bench_envs.main(["--quick", "--only", "GridWorld-v0", "--out", str(tmp_path)])


def _random_baseline(scripts, tmp_path, monkeypatch):
    random_baseline = scripts("random_baseline")
    monkeypatch.setattr(random_baseline, "random_success", lambda env_id, episodes: {
        "env": env_id, "k": 12, "labels": ["x"], "episodes": 3, "success_rate": 0.0, "ci95": [0.0, 0.5],
        "median_label_distance": 0.5, "seconds": 1.0})
    random_baseline.main(["--only", "GridWorld-v0", "--episodes", "3", "--out", str(tmp_path)])


@pytest.mark.parametrize("write,names", [
    (lambda s, p, m: _planner_write(s, p), ("planner.json", "planner.md")),
    (lambda s, p, m: _ab_cases(s, p), ("planner.json", "planner.md")),
    (_collect, ("collect.json", "collect.md")),
    (_envs, ("envs.json", "envs.md")),
    (_random_baseline, ("random_baseline.json", "random_baseline.md")),
], ids=["bench_planner", "bench_act/update", "bench_collect", "bench_envs", "random_baseline"])
def test_a_failed_write_leaves_the_earlier_results_whole(scripts, tmp_path, monkeypatch, write, names):
    _old_files(tmp_path, *names)
    _disk_full_half_way(monkeypatch)
    with pytest.raises(OSError, match="No space left"):
        write(scripts, tmp_path, monkeypatch)
    monkeypatch.undo()
    _assert_untouched(tmp_path, *names)


def test_random_baseline_reads_back_what_it_wrote(scripts, tmp_path, monkeypatch):
    """The next environment's row joins the written ones (the file read back is whole)."""
    _random_baseline(scripts, tmp_path, monkeypatch)
    rows = json.loads((tmp_path / "random_baseline.json").read_text())["rows"]
    assert [r["env"] for r in rows] == ["glamor/GridWorld-v0"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["random_baseline.json", "random_baseline.md"]
