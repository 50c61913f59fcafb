"""Benchmark arguments are checked before a benchmark spends its time: counts and durations must be
positive and output paths must be writable places (benchmarks/bench_args.py)."""

import argparse
import os
import subprocess
import sys
from pathlib import Path

import pytest


def _bench(*args, cwd):
    return subprocess.run([sys.executable, "-m", "glamor", "bench", *args], capture_output=True, text=True,
                          timeout=120, cwd=cwd)


@pytest.mark.parametrize("args,message", [
    (("planner", "--quick", "--threads", "0"), "argument --threads: must be at least 1, got 0"),
    (("planner", "--device", "cuda", "--compile"), "--compile is for the CPU benchmark; --device cuda"),
    (("planner", "--device", "cuda", "--threads", "4"), "--threads is for the CPU benchmark; --device cuda"),
    (("act", "--repeats", "-2"), "argument --repeats: must be at least 1, got -2"),
    (("envs", "--seconds", "-1"), "argument --seconds: must be > 0, got -1"),
    (("envs", "--quick", "--only", "zzz"), "--only zzz: no registered environment matches"),
    (("collect", "--envs", "bogus"), "argument --envs: must be an integer >= 1, got 'bogus'"),
    (("update", "--json", "afile/u.json"), "argument --json: afile is a file, not a folder"),
    (("update", "--json", "afile/sub/u.json"), "argument --json: afile is a file, not a folder, so afile/sub cannot"),
    (("envs", "--out", "afile"), "argument --out: afile is a file, not a folder"),
    (("collect", "--out", "afile/sub"), "argument --out: afile is a file, not a folder, so afile/sub cannot"),
    (("act", "--json", "."), "argument --json: . is a folder; name a file"),
    ((), "glamor bench: error: which benchmark? one of planner, act, envs, collect, update"),
])
def test_bad_benchmark_arguments_are_named_before_it_runs(tmp_path, args, message):
    (tmp_path / "afile").write_text("x")
    out = _bench(*args, cwd=tmp_path)
    assert out.returncode == 2 and message in out.stderr and "Traceback" not in out.stderr, out.stderr[-2000:]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]  # nothing written


@pytest.fixture
def bench_args(monkeypatch):
    import importlib

    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parent.parent / "benchmarks"))
    return importlib.import_module("bench_args")


PROC = pytest.mark.skipif(not Path("/proc/version").is_file(), reason="needs Linux's /proc (not writable, even by root)")


@PROC
@pytest.mark.parametrize("args,message", [
    (("planner", "--quick", "--json", "/proc/nope/x.json"),
     "argument --json: /proc is not a writable folder, so /proc/nope/x.json cannot be written"),
    (("act", "--json", "/proc/x.json"), "argument --json: /proc is not a writable folder, so /proc/x.json cannot be written"),
    (("update", "--json", "/proc/version"), "argument --json: /proc/version is not writable"),
    (("envs", "--quick", "--out", "/proc/nope/sub"), "argument --out: /proc is not a writable folder, so /proc/nope/sub "
                                                     "cannot be made"),
    (("envs", "--quick", "--out", "/proc"), "argument --out: /proc is not a writable folder"),
    (("act", "--json", "t.json"), "argument --json: t.md is a folder; name a file"),  # the table written beside it
])
def test_outputs_that_cannot_be_written_are_named_before_it_runs(tmp_path, args, message):
    (tmp_path / "t.md").mkdir()
    out = _bench(*args, cwd=tmp_path)
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr[-2000:]
    assert out.stderr.splitlines()[-1] == f"glamor bench {args[0]}: error: {message}"
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["t.md"]  # nothing written, no probe left


def test_a_read_only_folder_or_file_is_refused(tmp_path, bench_args, monkeypatch):
    output_file, output_folder = bench_args.output_file, bench_args.output_folder
    if os.geteuid() == 0:  # root writes in a folder of mode 0o555: os.access reads the owner's bits instead
        import stat

        real_access = os.access
        monkeypatch.setattr(os, "access", lambda path, mode: real_access(path, mode) and (
            not mode & os.W_OK or bool(os.stat(path).st_mode & stat.S_IWUSR)))
    ro = tmp_path / "ro"
    ro.mkdir()
    (ro / "r.json").write_text("{}")
    (tmp_path / "r.json").write_text("{}")
    (tmp_path / "r.json").chmod(0o444)
    ro.chmod(0o555)
    try:
        for call, text, message in (
                (output_file, ro / "x.json", f"{ro} is not a writable folder, so {ro / 'x.json'} cannot be written"),
                (output_folder, ro / "sub", f"{ro} is not a writable folder, so {ro / 'sub'} cannot be made"),
                (output_file, tmp_path / "r.json", f"{tmp_path / 'r.json'} is not writable")):
            with pytest.raises(argparse.ArgumentTypeError) as e:
                call(str(text))
            assert str(e.value) == message
    finally:
        ro.chmod(0o755)


def test_writable_outputs_pass_and_leave_nothing_behind(tmp_path, bench_args):
    output_file, output_folder = bench_args.output_file, bench_args.output_folder
    (tmp_path / "old.json").write_text("{}")
    assert output_file(str(tmp_path / "new" / "x.json")) == tmp_path / "new" / "x.json"
    assert output_file(str(tmp_path / "old.json")) == tmp_path / "old.json"
    assert output_folder(str(tmp_path / "a" / "b")) == tmp_path / "a" / "b"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old.json"] and (tmp_path / "old.json").read_text() == "{}"


def test_unknown_goal_set_ids_are_named_before_any_environment_is_timed(tmp_path):
    import glamor.envs

    out = _bench("envs", "--quick", "--only", "GridWorld", "--goal-sets", "GridWorld", "nope", "zz", cwd=tmp_path)
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr[-2000:]
    assert out.stderr.splitlines()[-1] == ("glamor bench envs: error: --goal-sets nope zz: no registered environment "
                                           f"matches; the ids: {', '.join(glamor.envs.registered())}")
    assert out.stdout == ""  # nothing was timed


def test_goal_set_ids_take_ids_names_and_words(bench_args, monkeypatch, tmp_path):
    import bench_envs

    ids = ["glamor/GridWorld-v0", "glamor/GridWorldBox-v0", "glamor/Pong-v0", "glamor/reacher-easy-v0",
           "glamor/reacher-hard-v0"]
    assert bench_envs.goal_set_ids(["glamor/GridWorld-v0", "gridworld", "GRIDWORLDBOX", "pong-v0"], ids) == (
        ["glamor/GridWorld-v0", "glamor/GridWorldBox-v0", "glamor/Pong-v0"], [])  # an id or its name: that one
    assert bench_envs.goal_set_ids(["reacher", "nope", "Pong"], ids) == (  # a word: every id containing it
        ["glamor/reacher-easy-v0", "glamor/reacher-hard-v0", "glamor/Pong-v0"], ["nope"])

    timed = []
    monkeypatch.setattr(bench_envs, "bench_env", lambda env_id, seconds, repeats: dict(
        env=env_id, actions=4, episode_length=12, steps_per_s=1.0, reset_ms=1.0, make_s=1.0))
    monkeypatch.setattr(bench_envs, "bench_goal_sets", lambda env_id, preset, quick: timed.append(
        (env_id, preset, quick)) or dict(
        env=env_id, episode_length=12, label_range_rollouts=1, goal_candidates=1, train_goals=1, eval_goals=1,
        ranges_s=0.0, train_s=0.0, eval_s=0.0, cached_load_s=0.0, label_names=[], label_ranges=[]))
    assert bench_envs.main(["--quick", "--only", "GridWorld-v0", "--goal-sets", "gridworld"]) == 0
    assert bench_envs.main(["--seconds", "0.01", "--repeats", "1", "--only", "GridWorld-v0", "--goal-sets",
                            "gridworld", "--out", str(tmp_path)]) == 0
    assert timed == [("glamor/GridWorld-v0", "gridworld", True), ("glamor/GridWorld-v0", "gridworld", False)]


def test_quick_goal_sets_are_built_at_the_quick_sizes(bench_args):
    """`--quick --goal-sets` built the presets' full goal sets (Pong: 2,000 candidates and 500
    label-range rollouts of 50 steps, minutes), not a smoke run's."""
    import bench_envs

    from glamor.config import preset

    quick = bench_envs.bench_goal_sets("glamor/GridWorld-v0", "gridworld", quick=True)
    sizes = bench_envs.QUICK_GOAL_SETS
    assert (quick["sizes"], quick["label_range_rollouts"], quick["goal_candidates"], quick["train_goals"],
            quick["eval_goals"]) == ("quick", sizes["label_range_rollouts"], sizes["goal_candidates"],
                                     sizes["num_train_goals"], sizes["eval_episodes"])
    full = preset("gridworld")
    assert full.goal_candidates > sizes["goal_candidates"] and full.eval_episodes > sizes["eval_episodes"]
    assert "quick sizes" in bench_envs.markdown(bench_envs.machine(), [], [quick])


def test_bench_envs_quick_writes_only_to_an_out_given(bench_args, monkeypatch, tmp_path):
    import json

    import bench_envs

    monkeypatch.setattr(bench_envs, "bench_env", lambda env_id, seconds, repeats: dict(
        env=env_id, actions=4, episode_length=12, steps_per_s=float(seconds), reset_ms=1.0, make_s=1.0))
    monkeypatch.setattr(bench_envs, "RESULTS", tmp_path / "default")
    assert bench_envs.main(["--quick", "--only", "GridWorld-v0"]) == 0
    assert not (tmp_path / "default").exists()  # a smoke run leaves the committed results alone
    assert bench_envs.main(["--quick", "--only", "GridWorld-v0", "--out", str(tmp_path / "x")]) == 0
    rows = json.loads((tmp_path / "x" / "envs.json").read_text())["steps"]
    assert [(r["env"], r["steps_per_s"]) for r in rows] == [("glamor/GridWorld-v0", 0.1)]
    assert "glamor/GridWorld-v0" in (tmp_path / "x" / "envs.md").read_text()
