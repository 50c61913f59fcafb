"""`glamor compare`: every method on the identical goal list, finished runs reused (never
retrained), unfinished ones resumed, and the table, plot and numbers written."""

import json
import math
import os
import re
import shlex
import subprocess
import sys

import numpy as np
import pytest

import glamor.evaluate as evaluate_module
import glamor.train as train_module
from glamor import compare
from glamor.config import apply_budget, preset
from glamor.train import Trainer

TINY = dict(total_env_steps=96, learning_starts=48, eval_episodes=4, eval_episodes_during_training=4,
            snapshot_every=48, torch_threads=1)


def test_every_method_is_evaluated_on_the_identical_goal_list(tmp_path, monkeypatch):
    seen = []
    real = evaluate_module.run_episodes

    def spy(envs, goals, agent, **kw):
        seen.append((kw.get("desc"), goals.seeds.copy(), goals.labels.copy(), goals.frames.copy()))
        return real(envs, goals, agent, **kw)

    monkeypatch.setattr(evaluate_module, "run_episodes", spy)
    digests = []
    for algo, seed in (("glamor", 0), ("gcsl", 1)):
        cfg = preset("debug", progress=False, learning_starts=0, algo=algo, seed=seed, eval_episodes=6)
        tr = Trainer(cfg, tmp_path / algo)
        tr.collect_round()
        res = tr.evaluate(6)
        tr.close()
        digests.append(res["sets"]["eval"]["goal_digest"])
    descs = [d for d, *_ in seen]
    assert descs == ["eval eval glamor", "eval eval glamor_no_prior", "eval eval random",
                     "eval eval gcsl", "eval eval random"]
    for _, seeds, labels, frames in seen[1:]:
        np.testing.assert_array_equal(seeds, seen[0][1])
        np.testing.assert_array_equal(labels, seen[0][2])
        np.testing.assert_array_equal(frames, seen[0][3])
    assert digests[0] == digests[1]


def test_seed_interval_is_student_t_and_clipped():
    mean, lo, hi = compare.seed_interval([0.2, 0.4, 0.6])
    assert mean == pytest.approx(0.4)
    assert (lo, hi) == (0.0, pytest.approx(0.4 + 4.303 * 0.2 / np.sqrt(3)))
    assert compare.seed_interval([0.5])[0] == 0.5 and np.isnan(compare.seed_interval([0.5])[1])


def test_t_quantile_continues_past_the_table():
    # exact values: df 31 -> 2.0395, 40 -> 2.0211, 120 -> 1.9799
    assert compare.t975(30) == 2.042
    for df, exact in ((31, 2.0395), (40, 2.0211), (120, 1.9799)):
        assert compare.t975(df) == pytest.approx(exact, abs=2e-4)


def test_small_budget_scales_the_schedule():
    cfg = apply_budget(preset("gridworld"), "small")
    assert (cfg.total_env_steps, cfg.eps_decay_steps, cfg.eval_every, cfg.torch_threads) == (12_000, 4_000, 4_000, 1)
    assert apply_budget(preset("gridworld"), "full") == preset("gridworld")
    with pytest.raises(ValueError, match="small"):
        apply_budget(preset("gridworld"), "huge")


def _compare(tmp_path, **kw):
    args = dict(envs=["debug"], seeds=[0, 1], methods=["glamor", "gcsl"], budget="full", runs_dir=tmp_path / "runs",
                out=tmp_path / "results" / "table", widths=[1, 3], overrides=TINY,
                log=lambda *a: None)
    return compare.run_compare(**{**args, **kw})


def test_compare_writes_the_table_then_resumes_instead_of_retraining(tmp_path, monkeypatch):
    real_resume = train_module.resume
    summaries = _compare(tmp_path)
    out = tmp_path / "results" / "table"
    text = out.with_suffix(".md").read_text()
    for label in ("| eval | GLAMOR |", "| eval | GLAMOR, no prior |", "| eval | GCSL |", "| eval | random |",
                  "| beam | 1 |", "| sample | 3 |"):
        assert label in text, label
    assert out.with_suffix(".png").stat().st_size > 0
    saved = json.loads(out.with_suffix(".json").read_text())
    assert saved["summaries"][0]["methods"]["eval/GCSL"]["per_seed"] == summaries[0]["methods"]["eval/GCSL"]["per_seed"]
    assert len(saved["summaries"][0]["goal_digests"]) == 1  # one goal list for every run and sweep
    runs = tmp_path / "runs" / "debug"
    digests = {json.loads(p.read_text())["sets"]["eval"]["goal_digest"] for p in runs.rglob("*.json")
               if p.name == "eval.json" or p.name.startswith("sweep-")}
    assert len(digests) == 1

    # Second call: everything is finished, nothing is trained or evaluated again.
    def forbidden(*a, **k):
        raise AssertionError("a finished run was trained or evaluated again")

    monkeypatch.setattr(train_module, "train", forbidden)
    monkeypatch.setattr(train_module, "resume", forbidden)
    monkeypatch.setattr(train_module, "evaluate_checkpoint", forbidden)
    assert _compare(tmp_path) == summaries
    assert out.with_suffix(".md").read_text() == text

    # A sweep asked on another number of goals is evaluated again (and only the sweeps).
    evaluated = []
    monkeypatch.setattr(train_module, "evaluate_checkpoint",
                        lambda run_dir, cfg, episodes, policies, set_names, **kw: evaluated.append(episodes) or
                        {**json.loads((run_dir / "sweep-beam-w1.json").read_text()), "episodes": episodes})
    _compare(tmp_path, sweep_episodes=2)
    assert evaluated == [2] * 8

    # An unfinished run (checkpoint, no eval.json) continues with the resume machinery.
    unfinished = runs / "gcsl-default" / "seed1"
    (unfinished / "eval.json").unlink()
    resumed = []

    def spy_resume(run_dir, total_env_steps=None, machine=None, **kwargs):
        resumed.append((run_dir, machine))
        assert "compare" in kwargs["retrain_hint"]  # not `glamor train --overwrite`: compare has no such flag
        return real_resume(run_dir, total_env_steps, machine, **kwargs)

    monkeypatch.setattr(train_module, "resume", spy_resume)
    # another eval_batch (a machine field: the draws are keyed by goal and step) reuses the
    # finished runs and reaches the resumed one
    _compare(tmp_path, overrides={**TINY, "eval_batch": 3})
    assert resumed == [(unfinished, {"progress": False, "torch_threads": 1, "device": "auto", "backend": "auto",
                                     "eval_batch": 3})]
    assert (unfinished / "eval.json").exists()

    # An interrupted run that `glamor eval` evaluated (an eval.json short of the run's steps) is
    # resumed, not reused; a sweep of another checkpoint than the run's evaluated one is evaluated again.
    resumed.clear()
    partial = json.loads((unfinished / "eval.json").read_text())
    (unfinished / "eval.json").write_text(json.dumps({**partial, "env_steps": TINY["total_env_steps"] - 24}))
    _compare(tmp_path, seeds=[1], methods=["gcsl"], widths=[])
    assert [r for r, _ in resumed] == [unfinished]
    glamor_run = runs / "glamor-default" / "seed0"
    older = json.loads((glamor_run / "sweep-beam-w1.json").read_text())  # a sweep of the checkpoint before
    (glamor_run / "sweep-beam-w1.json").write_text(json.dumps({**older, "env_steps": older["env_steps"] - 48}))
    evaluated.clear()
    _compare(tmp_path, seeds=[0], methods=["glamor"], widths=[1], planners=["beam"])
    assert evaluated == [TINY["eval_episodes"]]


def test_compare_refuses_what_it_would_throw_away_and_bad_arguments_up_front(tmp_path, monkeypatch):
    def forbidden(*a, **k):
        raise AssertionError("trained before the arguments were checked")

    short = {**TINY, "total_env_steps": 48, "learning_starts": 24}
    _compare(tmp_path, seeds=[0], methods=["gcsl"], widths=[], overrides=short)
    run = tmp_path / "runs" / "debug" / "gcsl-default" / "seed0"
    (run / "eval.json").unlink()  # unfinished now
    with pytest.raises(ValueError, match=r"is an unfinished run with another config \(fields \['lr'\]\)"):
        _compare(tmp_path, seeds=[0], methods=["gcsl"], widths=[], overrides={**short, "lr": 1e-4})
    assert (run / "config.json").exists() and (run / "checkpoint.pt").exists()  # nothing deleted
    notes = tmp_path / "runs" / "debug" / "gcsl-default" / "seed1" / "notes.txt"
    notes.parent.mkdir(parents=True)
    notes.write_text("mine")
    with pytest.raises(ValueError, match="holds files but no glamor run"):
        _compare(tmp_path, seeds=[1], methods=["gcsl"], widths=[])
    assert notes.read_text() == "mine"

    monkeypatch.setattr(train_module, "train", forbidden)
    (tmp_path / "afile").write_text("x")
    for kw, message in ((dict(out=tmp_path / "afile" / "t"), r"--out .*afile/t: cannot write there"),
                        (dict(out=""), "--out must name a path"),
                        (dict(seeds=[0, 0, 1]), r"--seeds 0: each value once"),
                        (dict(envs=["debug", "debug"]), r"--envs debug: each value once"),
                        (dict(envs=["debug", "glamor/Pong-v0"]), r"--envs glamor/Pong-v0: not a preset; --envs takes "
                                                                  r"presets: \['atari', "),
                        (dict(overrides={"plan_width": 0}), r"plan_width=0 \(must be in \[1, 2\*\*31 - 1\]")):
        with pytest.raises(ValueError, match=message):
            _compare(tmp_path / "other", **kw)
    assert not (tmp_path / "other").exists()  # refused before any folder was made


def test_compare_keeps_dots_in_out_and_names_itself_when_interrupted(tmp_path, monkeypatch):
    from glamor.interrupt import TrainingInterrupted

    _compare(tmp_path, seeds=[0], methods=["gcsl"], widths=[], out=tmp_path / "res dir" / "table_lr0.001")
    assert sorted(p.name for p in (tmp_path / "res dir").iterdir()) == [
        "table_lr0.001.json", "table_lr0.001.md", "table_lr0.001.png"]
    text = (tmp_path / "res dir" / "table_lr0.001.md").read_text()
    command = re.search(r"Written by `(.*?)`", text).group(1)
    assert shlex.split(command)[-1] == str(tmp_path / "res dir" / "table_lr0.001")  # quoted: a space in it

    def interrupted(cfg, run_dir, **kw):
        raise TrainingInterrupted(2, 24, run_dir)

    monkeypatch.setattr(train_module, "train", interrupted)
    with pytest.raises(TrainingInterrupted, match=r"`glamor compare --envs debug --seeds 1 .*` continues the run"):
        _compare(tmp_path, seeds=[1], methods=["gcsl"], widths=[])

    def stopped_in_the_final_evaluation(cfg, run_dir, **kw):
        raise TrainingInterrupted(2, 24, run_dir, final_evaluation=True)

    monkeypatch.setattr(train_module, "train", stopped_in_the_final_evaluation)
    with pytest.raises(TrainingInterrupted, match=r"gave up the final evaluation; .* `glamor compare --envs debug "
                                                  r"--seeds 1 .*` evaluates it"):
        _compare(tmp_path, seeds=[1], methods=["gcsl"], widths=[])

    def ctrl_c_at_once(cfg, run_dir, **kw):  # a second Ctrl-C: no checkpoint written by the stop, a plain one
        raise KeyboardInterrupt

    monkeypatch.setattr(train_module, "train", ctrl_c_at_once)
    with pytest.raises(KeyboardInterrupt) as e:
        _compare(tmp_path, seeds=[1], methods=["gcsl"], widths=[])
    assert re.fullmatch(r"`glamor compare --envs debug --seeds 1 .*` goes on from there \(finished runs and sweeps "
                        r"are reused\)", e.value.hint), e.value.hint


def test_a_finished_run_with_another_config_is_not_silently_reused(tmp_path):
    _compare(tmp_path, seeds=[0], methods=["gcsl"], widths=[])
    with pytest.raises(ValueError, match="lr"):
        _compare(tmp_path, seeds=[0], methods=["gcsl"], widths=[], overrides={**TINY, "lr": 1e-4})


def test_cli_compare_end_to_end(tmp_path):
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    sets = [a for k, v in TINY.items() for a in ("--set", f"{k}={v}")]
    out = subprocess.run([sys.executable, "-m", "glamor", "compare", "--envs", "debug", "--seeds", "0",
                          "--budget", "full", "--widths", "2", "--planners", "beam", "--runs-dir", "runs",
                          "--out", "results/debug", *sets], cwd=tmp_path, capture_output=True, text=True,
                         env=env, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "wrote results/debug.md" in out.stdout
    table = (tmp_path / "results" / "debug.md").read_text()
    assert "| eval | GCSL |" in table and "| eval | GCSL, time-conditioned |" in table  # the default methods
    # The command the table names writes it again, from the same runs.
    command = table.split("Written by `", 1)[1].split("`", 1)[0]
    assert command.startswith("glamor compare ") and "--widths 2" in command and "--set total_env_steps=96" in command
    again = subprocess.run([sys.executable, "-m", "glamor", *shlex.split(command)[1:]], cwd=tmp_path,
                           capture_output=True, text=True, env=env, timeout=300)
    assert again.returncode == 0, again.stderr
    assert "'reused': 3" in again.stdout and (tmp_path / "results" / "debug.md").read_text() == table
    # --set may not override what the comparison sets per run
    refused = subprocess.run([sys.executable, "-m", "glamor", "compare", "--envs", "debug", "--seeds", "0", "1",
                              "--set", "seed=5", "--runs-dir", "runs"], cwd=tmp_path, capture_output=True,
                             text=True, env=env, timeout=300)
    assert refused.returncode == 2 and "--set seed" in refused.stderr and "--seeds" in refused.stderr


def test_benchmarks_results_table_is_the_same_command(tmp_path):
    import runpy
    from pathlib import Path

    script = Path(__file__).resolve().parent.parent / "benchmarks" / "results_table.py"
    sets = [a for k, v in TINY.items() for a in ("--set", f"{k}={v}")]
    main = runpy.run_path(str(script))["main"]
    assert main(["--envs", "debug", "--seeds", "0", "--methods", "gcsl", "--budget", "full", "--widths",
                 "--runs-dir", str(tmp_path / "runs"), "--out", str(tmp_path / "t"), *sets]) == 0
    assert "| eval | GCSL |" in (tmp_path / "t.md").read_text()


def test_one_seed_reports_the_runs_own_wilson_interval(tmp_path):
    def row(rate, ci):
        return {"success_rate": rate, "ci95": ci, "episodes": 200, "mean_steps": 10.0}

    res = {"sets": {"eval": {"goal_digest": "d", "glamor": row(0.8, [0.74, 0.85]),
                             "glamor_no_prior": row(0.5, [0.43, 0.57]), "random": row(0.1, [0.07, 0.15])}},
           "env_steps": 100}
    one = compare.summarize("env", {("glamor", 0): (tmp_path, res)}, {})
    assert one["one_seed"] and one["methods"]["eval/GLAMOR"]["ci95"] == [0.74, 0.85]
    assert "Wilson, over goals" in compare.markdown([one], "# t")
    two = compare.summarize("env", {("glamor", 0): (tmp_path, res), ("glamor", 1): (tmp_path, res)}, {})
    assert not two["one_seed"] and two["methods"]["eval/GLAMOR"]["ci95"] == [0.8, 0.8]  # t-interval, no spread
    assert "95% CI over seeds" in compare.markdown([two], "# t")


def test_one_seeds_sweep_reports_the_sweeps_own_wilson_interval(tmp_path):
    """With one seed the methods' rows give the run's Wilson interval over its goals, but the
    sweep's rows gave n/a (an interval over one seed) though each sweep file holds its own."""
    def sweep(rate, ci):
        return {"sets": {"eval": {"goal_digest": "d", "glamor": {
            "success_rate": rate, "ci95": ci, "episodes": 200, "mean_steps": 9.0, "plans_per_s": 100.0}}}}

    row = {"success_rate": 0.8, "ci95": [0.74, 0.85], "episodes": 200, "mean_steps": 10.0}
    res = {"sets": {"eval": {"goal_digest": "d", "glamor": row, "glamor_no_prior": row, "random": row}},
           "env_steps": 100}
    one = compare.summarize("env", {("glamor", 0): (tmp_path, res)},
                            {("beam", 1, 0): sweep(0.6, [0.531, 0.665]), ("beam", 10, 0): sweep(0.9, [0.851, 0.934])})
    assert [(r["width"], r["ci95"]) for r in one["sweep"]] == [(1, [0.531, 0.665]), (10, [0.851, 0.934])]
    table = compare.markdown([one], "# t")
    assert "| beam | 1 | 0.600 | [0.531, 0.665] |" in table and "n/a" not in table
    assert table.count("95% CI (Wilson, over goals: one seed)") == 2  # the methods' header and the sweep's
    # two seeds: the Student-t interval over the seeds' rates, 0.75 +- 12.706 * 0.15 / sqrt(2) clipped
    two = compare.summarize("env", {("glamor", 0): (tmp_path, res), ("glamor", 1): (tmp_path, res)},
                            {("beam", 1, 0): sweep(0.6, [0.531, 0.665]), ("beam", 1, 1): sweep(0.9, [0.851, 0.934])})
    assert two["sweep"][0]["ci95"] == [0.0, 1.0] and two["sweep"][0]["success_rate"] == pytest.approx(0.75)
    assert "| width | success | 95% CI over seeds |" in compare.markdown([two], "# t")


def test_runs_evaluated_on_different_goal_sets_are_named(tmp_path):
    """One run with eval_moved and one without: a KeyError from deep in the table (before)."""
    def row(rate):
        return {"success_rate": rate, "ci95": [0.0, 1.0], "episodes": 4, "mean_steps": 1.0}

    def result(*sets):
        return {"sets": {name: {"goal_digest": name, "glamor": row(0.5), "glamor_no_prior": row(0.5),
                                "random": row(0.1)} for name in sets}, "env_steps": 100}

    runs = {("glamor", 0): (tmp_path, result("eval", "eval_moved")), ("glamor", 1): (tmp_path, result("eval"))}
    with pytest.raises(ValueError, match=r"env: runs were evaluated on different goal sets \(glamor seed 0: eval, "
                                         r"eval_moved; glamor seed 1: eval\)"):
        compare.summarize("env", runs, {})
    runs[("glamor", 1)] = (tmp_path, result("eval", "eval_moved"))
    assert set(compare.summarize("env", runs, {})["methods"]) >= {"eval/GLAMOR", "eval_moved/GLAMOR"}


@pytest.mark.parametrize("kwargs,message", [
    (dict(widths=[0]), "--widths 0"), (dict(sweep_episodes=0), "--sweep-episodes 0"), (dict(seeds=[-1]), "--seeds -1"),
    (dict(overrides={**TINY, "lr": -1.0}), "lr"),
    # (more goals than the runs' held-out sets hold: warned about and cut at the sweep, after the training)
    (dict(sweep_episodes=5), "--sweep-episodes 5: the runs' held-out goal sets hold eval_episodes=4 goals each"),
])
def test_bad_arguments_are_refused_before_anything_is_trained(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        _compare(tmp_path, **{"seeds": [0], "methods": ["glamor"], **kwargs})
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").rglob("config.json"))


def test_vector_async_puts_the_glamor_runs_environments_in_workers_and_leaves_gcsls_in_process():
    """--set vector=async (worker processes, a speed setting that changes no result) applies to
    the GLAMOR runs; GCSL, whose policy acts at every step and cannot collect from workers
    (Config refuses the pair), keeps its environments in process: a compare of every method with
    it trained the GLAMOR runs, then died at the first GCSL run, and then was refused whole."""
    overrides = {**TINY, "vector": "async", "num_envs": 2}
    assert compare.RunSpec("glamor", "default", "debug", 0).config("full", overrides).vector == "async"
    for method in ("gcsl", "gcsl_time"):
        assert compare.RunSpec(method, "default", "debug", 0).config("full", overrides).vector == "sync"


def test_each_environments_table_is_written_before_the_next_one_runs(tmp_path, monkeypatch):
    real = compare.ensure_trained

    def second_env_fails(cfg, run_dir, log=print):
        if "gridworld" in str(run_dir):
            raise RuntimeError("the machine went away")
        return real(cfg, run_dir, log)

    monkeypatch.setattr(compare, "ensure_trained", second_env_fails)
    with pytest.raises(RuntimeError, match="went away"):
        _compare(tmp_path, envs=["debug", "gridworld"], seeds=[0], methods=["gcsl"], widths=[])
    out = tmp_path / "results" / "table"
    text = out.with_suffix(".md").read_text()
    assert "## Results: debug, budget `full`, seeds 0 so far (1 of 2 environments; to run: gridworld)" in text
    assert "| eval | GCSL |" in text and out.with_suffix(".png").stat().st_size > 0
    saved = json.loads(out.with_suffix(".json").read_text())
    assert saved["done"] == ["debug"] and saved["envs"] == ["debug", "gridworld"]
    with pytest.raises(ValueError, match="--seeds: give at least one value"):
        _compare(tmp_path, seeds=[])


def test_time_conditioned_gcsl_is_a_method_of_its_own(tmp_path):
    summaries = _compare(tmp_path, seeds=[0], methods=["gcsl", "gcsl_time"], widths=[])
    runs = tmp_path / "runs" / "debug"
    plain, timed = (json.loads((runs / f"{m}-default" / "seed0" / "config.json").read_text())
                    for m in ("gcsl", "gcsl_time"))
    assert (plain["algo"], plain["gcsl_time"], timed["algo"], timed["gcsl_time"]) == ("gcsl", False, "gcsl", True)
    methods = summaries[0]["methods"]
    assert list(methods) == ["eval/GCSL", "eval/GCSL, time-conditioned", "eval/random"]  # random from a GCSL run
    table = (tmp_path / "results" / "table.md").read_text()
    assert "| eval | GCSL, time-conditioned |" in table and "--methods gcsl gcsl_time" in table
    assert "GCSL, time-conditioned" in summaries[0]["curves"]
    # the random policy's curve comes from the runs its table row comes from, as in the table
    assert summaries[0]["curves"]["random"] and "| random |" in table.split("Success against environment steps")[1]
    with pytest.raises(ValueError, match="--methods"):
        _compare(tmp_path, seeds=[0], methods=["gcsl"], widths=[], overrides={**TINY, "gcsl_time": True})


def test_the_plot_has_a_legend_entry_for_every_method(tmp_path):
    from PIL import Image

    curves = {label: [(100 * i, 0.1 * k + 0.05 * i, float("nan"), float("nan")) for i in range(3)]
              for k, (label, *_) in enumerate(compare.CURVES)}
    compare.plot([{"env": "debug", "curves": curves, "sweep": [], "one_seed": True}], tmp_path / "p.png")
    png = Image.open(tmp_path / "p.png").convert("RGB")
    legend = png.crop((0, png.height - 40, png.width, png.height))  # under the axis labels
    colours = {c for _, c in legend.getcolors(1 << 16)}
    assert [label for label, _, _, color in compare.CURVES if color not in colours] == []
    assert legend.crop((png.width - 4, 0, png.width, 40)).getcolors() == [(160, (255, 255, 255))]  # nothing cut off


def test_the_last_steps_tick_label_is_written_whole(tmp_path):
    """A tick label started 12 px left of its tick: the last one, at the panel's right edge, ran
    past it (cut by the image without a sweep panel: 60,000 steps read 60,00)."""
    from PIL import Image, ImageDraw, ImageFont

    curves = {"GLAMOR": [(20_000 * i, 0.2 * i, float("nan"), float("nan")) for i in range(1, 4)]}
    compare.plot([{"env": "debug", "curves": curves, "sweep": [], "one_seed": True}], tmp_path / "p.png")
    img = np.asarray(Image.open(tmp_path / "p.png").convert("L")).astype(int)
    bottom = np.flatnonzero((img == 0).sum(axis=1) > img.shape[1] // 2)[-1]  # the axes' lowest edge
    ink = np.flatnonzero((img[bottom + 5:bottom + 22] < 128).any(axis=0))
    last = ink[ink > ink.max() - 60]  # ("40,000" ends over 60 px to the left)
    width = ImageDraw.Draw(Image.new("L", (1, 1))).textlength("60,000", font=ImageFont.load_default())
    assert last.max() - last.min() + 1 >= width - 4  # the whole label
    assert img.shape[1] - 25 < ink.max() < img.shape[1] - 1  # inside the image, at its right


def test_a_finished_run_asked_for_more_steps_is_called_finished(tmp_path):
    """Whether a refused run is finished is judged by its own config's steps, not the asked-for
    config's: a finished run of 72 steps asked for 96 was called 'an unfinished run'."""
    short = {**TINY, "total_env_steps": 72}
    _compare(tmp_path, seeds=[0], methods=["gcsl"], widths=[], overrides=short)
    with pytest.raises(ValueError, match=r"is a finished run with another config \(fields \['total_env_steps'\]\)"):
        _compare(tmp_path, seeds=[0], methods=["gcsl"], widths=[], overrides=TINY)


def test_one_seeds_out_json_is_json(tmp_path):
    """One seed has no interval over seeds (NaN in the curves): OUT.json wrote NaN, which is not
    JSON (JSON.parse and jq refuse the file); it writes null."""
    summaries = _compare(tmp_path, seeds=[0], methods=["glamor"], widths=[1], planners=["beam"])
    assert math.isnan(summaries[0]["curves"]["GLAMOR"][0][2])

    def refuse(name):
        raise ValueError(f"{name} in OUT.json")

    saved = json.loads((tmp_path / "results" / "table.json").read_text(), parse_constant=refuse)
    assert saved["summaries"][0]["sweep"][0]["ci95"] == summaries[0]["sweep"][0]["ci95"]  # (its own Wilson's)
    assert all(lo is None for _, _, lo, _ in saved["summaries"][0]["curves"]["GLAMOR"])


def test_a_sweep_evaluates_the_checkpoint_the_run_was_evaluated_at(tmp_path):
    """A damaged checkpoint.pt: the sweep evaluated checkpoint.prev.pt (an earlier step) and the
    table showed it beside the run's final numbers, with only load_latest's warning."""
    _compare(tmp_path, seeds=[0], methods=["glamor"], widths=[])
    run = tmp_path / "runs" / "debug" / "glamor-default" / "seed0"
    (run / "checkpoint.pt").write_bytes(b"damaged")
    with pytest.warns(UserWarning, match="using checkpoint.prev.pt"), \
            pytest.raises(ValueError, match=r"newest readable checkpoint is of environment step 48, its eval.json "
                                            r"of step 96: a sweep would evaluate another model"):
        _compare(tmp_path, seeds=[0], methods=["glamor"], widths=[2], planners=["beam"])
    assert not list(run.glob("sweep-*"))


def test_a_sweep_of_a_run_another_process_writes_is_refused_by_name(tmp_path):
    """ensure_sweep read the checkpoint and wrote its sweep without the run's lock: a compare
    started while `glamor train --resume` extended one of its runs evaluated whichever checkpoint
    that run had just saved, and then told the user to delete the run directory the other process
    was training. It holds the lock as `glamor eval` does, and a run in use is refused by name."""
    from glamor.run_lock import RunInUse, RunLock

    _compare(tmp_path, seeds=[0], methods=["glamor"], widths=[])
    run = tmp_path / "runs" / "debug" / "glamor-default" / "seed0"
    (run / ".sweep-beam-w2.json.999999.tmp").write_text("{")  # a killed sweep's
    holder = RunLock()
    holder.acquire(run)  # training it, as far as anyone else can tell
    try:
        with pytest.raises(RunInUse, match=f"run directory {run} is in use: process {os.getpid()} is training it"):
            _compare(tmp_path, seeds=[0], methods=["glamor"], widths=[2], planners=["beam"])
    finally:
        holder.release()
    assert not list(run.glob("sweep-*"))
    _compare(tmp_path, seeds=[0], methods=["glamor"], widths=[2], planners=["beam"])  # released: swept
    assert [p.name for p in run.glob("*sweep-*")] == ["sweep-beam-w2.json"]
    assert not (run / ".glamor.lock").exists()


def test_the_results_of_a_run_another_process_writes_are_not_read_while_they_change(tmp_path):
    """compare read a finished run's eval.json without its lock: a `glamor eval` (which replaces
    eval.json) or a resume extending the run meanwhile was raced, not named."""
    from glamor.run_lock import RunInUse, RunLock

    _compare(tmp_path, seeds=[0], methods=["glamor"], widths=[])
    run = tmp_path / "runs" / "debug" / "glamor-default" / "seed0"
    holder = RunLock()
    holder.acquire(run, doing="evaluating")
    try:
        with pytest.raises(RunInUse, match=f"run directory {run} is in use: process {os.getpid()} is evaluating it"):
            _compare(tmp_path, seeds=[0], methods=["glamor"], widths=[])
    finally:
        holder.release()
    _compare(tmp_path, seeds=[0], methods=["glamor"], widths=[])  # released: reused


def test_a_run_folder_holding_only_a_lock_file_is_trained_in(tmp_path):
    """A run started and killed before its config.json (or one another process has just
    started) holds only .glamor.lock: compare called it 'files but no glamor run' and told the
    user to move them away. The lock file is no run's file: train takes the folder (or names the
    process that holds it)."""
    run = tmp_path / "runs" / "debug" / "glamor-default" / "seed0"
    run.mkdir(parents=True)
    (run / ".glamor.lock").write_text("training")  # its holder was killed: it locks nothing
    _compare(tmp_path, seeds=[0], methods=["glamor"], widths=[])
    assert (run / "eval.json").exists()


def test_a_failed_write_leaves_the_last_tables_table_plot_and_numbers_together(tmp_path, monkeypatch):
    """OUT.md was replaced before the plot was drawn and OUT.json after it: a plot or write that
    failed (a full disk) left a new table beside the old numbers."""
    _compare(tmp_path, seeds=[0], methods=["gcsl"], widths=[])
    out = tmp_path / "results" / "table"
    before = {suffix: out.with_suffix(suffix).read_bytes() for suffix in (".md", ".png", ".json")}

    def full_disk(summaries, path):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(compare, "plot", full_disk)
    with pytest.raises(OSError, match="No space left"):
        _compare(tmp_path, seeds=[0], methods=["gcsl", "gcsl_time"], widths=[])
    assert {suffix: out.with_suffix(suffix).read_bytes() for suffix in before} == before
    assert sorted(p.name for p in out.parent.iterdir()) == ["table.json", "table.md", "table.png"]  # no temporaries


def test_the_curves_end_at_the_evaluation_the_table_reports(tmp_path):
    """The final evaluation's metrics.csv row is written after eval.json: a run killed between the
    two is finished (eval.json of its last step) without that row, and the curves over seeds,
    which keep the steps every seed logged, lost their last step for all seeds; a `glamor eval`
    of the step had the table and the curve disagree. The curve's point at eval.json's step is
    eval.json's."""
    header = "env_step,wall_time,eval/success_rate,eval/success_rate_no_prior,eval/random_success_rate\n"

    def row(rate):
        return {"success_rate": rate, "ci95": [0.0, 1.0], "episodes": 4, "mean_steps": 1.0}

    runs = {}
    for seed, csv_rows, rate in ((0, "48,1,0.25,0.25,0.0\n96,2,0.5,0.25,0.0\n", 0.75),  # re-evaluated: 0.75
                                 (1, "48,1,0.5,0.25,0.0\n", 0.25)):  # killed before its final row
        run = tmp_path / f"seed{seed}"
        run.mkdir()
        (run / "metrics.csv").write_text(header + csv_rows)
        runs[("glamor", seed)] = (run, {"sets": {"eval": {"goal_digest": "d", "glamor": row(rate),
                                                          "glamor_no_prior": row(0.25), "random": row(0.0)}},
                                        "success_rate": rate, "success_rate_no_prior": 0.25,
                                        "random_success_rate": 0.0, "env_steps": 96})
    s = compare.summarize("env", runs, {})
    assert [(step, mean) for step, mean, _, _ in s["curves"]["GLAMOR"]] == [(48, 0.375), (96, 0.5)]
    assert s["curves"]["GLAMOR"][-1][1] == s["methods"]["eval/GLAMOR"]["success_rate"]
    assert [step for step, *_ in s["curves"]["random"]] == [48, 96]


def test_set_env_id_names_the_environment_the_runs_trained_on(tmp_path):
    """`--set env_id=...` trained every run on that environment, but OUT.md's sections, OUT.png's
    titles and OUT.json named only the preset (its env_id another environment): the table said
    'debug' (GridWorld) for results of GridWorldBox."""
    box = "glamor/GridWorldBox-v0"
    summaries = _compare(tmp_path, seeds=[0], methods=["gcsl"], widths=[], overrides={**TINY, "env_id": box})
    run = tmp_path / "runs" / "debug" / "gcsl-default" / "seed0"
    assert json.loads((run / "config.json").read_text())["env_id"] == box
    md = (tmp_path / "results" / "table.md").read_text()
    assert f"### debug with env_id={box}\n" in md and md.startswith(f"## Results: debug with env_id={box}, budget")
    saved = json.loads((tmp_path / "results" / "table.json").read_text())
    assert saved["summaries"][0]["env_id"] == summaries[0]["env_id"] == box
    assert compare.env_label({"env": "debug", "env_id": "glamor/GridWorld-v0"}) == "debug"  # the preset's own


def test_the_results_of_runs_in_a_folder_it_cannot_write_are_read_without_the_lock(tmp_path, monkeypatch):
    """compare of finished runs on a read-only mount (or another user's), its table written with
    --out elsewhere, read their eval.json files; since it took the run's lock to read one, it
    failed creating .glamor.lock there (EROFS, EACCES) before reading anything."""
    import errno

    import glamor.run_lock as run_lock

    run = tmp_path / "runs" / "seed0"
    run.mkdir(parents=True)
    policy = dict(success_rate=0.5, ci95=[0.1, 0.9], episodes=4, mean_steps=3.0)
    results = dict(policy, env_steps=96, algo="glamor",
                   sets={"eval": {"goal_digest": "0" * 16, "glamor": policy, "glamor_no_prior": policy,
                                  "random": policy}})
    (run / "eval.json").write_text(json.dumps(results))
    real_open = os.open

    def read_only(path, flags, *args, **kw):  # the folder's mount is read-only
        if str(path).endswith(run_lock.LOCK_NAME) and flags & os.O_CREAT:
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))
        return real_open(path, flags, *args, **kw)

    monkeypatch.setattr(run_lock.os, "open", read_only)
    assert compare.read_run_results(run, "glamor")["success_rate"] == 0.5
    assert not (run / run_lock.LOCK_NAME).exists()


def test_two_compares_read_the_same_finished_run_at_once(tmp_path, monkeypatch):
    """compare read a run's eval.json holding the run's lock exclusively: a second compare of the
    same runs reading it meanwhile was refused (RunInUse, 'is evaluating it'). Readers share it,
    and a training run is still refused while one reads."""
    from glamor.run_lock import RunInUse, RunLock

    _compare(tmp_path, seeds=[0], methods=["glamor"], widths=[])
    run = tmp_path / "runs" / "debug" / "glamor-default" / "seed0"
    read, seen = compare.read_results, []

    def another_compare_reads_it_meanwhile(path, **kw):
        if not seen:
            seen.append(None)  # (the other compare's own read goes through here too)
            seen[0] = compare.read_run_results(run, "glamor")["env_steps"]
            with pytest.raises(RunInUse, match=f"process {os.getpid()} is reading it"):
                RunLock().acquire(run)
        return read(path, **kw)

    monkeypatch.setattr(compare, "read_results", another_compare_reads_it_meanwhile)
    assert compare.read_run_results(run, "glamor")["env_steps"] == seen[0] > 0
    assert not (run / ".glamor.lock").exists()


def test_compare_names_a_presets_env_kwargs_passed_to_an_environment_of_ones_own():
    """`glamor compare --envs debug --set env_id=mymod:Dot-v0` built the user's environment with
    debug's env_kwargs (size=7, meant for the gridworld) without a word: preset() warns of it, but
    the compare gave it the env_id only after, as one more override."""
    import warnings

    spec = compare.RunSpec("glamor", "default", "debug", 0)
    with pytest.warns(UserWarning, match=r"preset debug's env_kwargs \{'size': 7\} are set for its own environment "
                                         r"\(glamor/GridWorld-v0\) and are passed to dotenv:Dot-v0 too"):
        cfg = spec.config("small", {"env_id": "dotenv:Dot-v0"})
    assert (cfg.env_id, cfg.env_kwargs) == ("dotenv:Dot-v0", {"size": 7})  # passed on, as the warning says
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the user's own choice, or the preset's own environment: unsaid
        assert spec.config("small", {"env_id": "dotenv:Dot-v0", "env_kwargs": {}}).env_kwargs == {}
        assert spec.config("small", {}).env_id == "glamor/GridWorld-v0"


def test_out_json_says_the_random_rows_zero_width_interval_is_by_construction(tmp_path):
    """Every run draws the random policy's actions from eval_seed, so its rates repeat across seeds
    and their interval over seeds is zero-width: OUT.md said so under the table, OUT.json gave the
    bare [0.04, 0.04], which a reader of the JSON alone took for a measured certainty."""
    def res(random_rate):
        def row(rate, ci):
            return {"success_rate": rate, "ci95": ci, "episodes": 200, "mean_steps": 10.0}
        return {"sets": {"eval": {"goal_digest": "d", "glamor": row(0.8, [0.74, 0.85]),
                                  "glamor_no_prior": row(0.5, [0.43, 0.57]),
                                  "random": row(random_rate, [0.02, 0.077])}}, "env_steps": 100}

    for seed in (0, 1):
        (tmp_path / f"s{seed}").mkdir()
        (tmp_path / f"s{seed}" / "metrics.csv").write_text(
            "env_step,eval/success_rate,eval/success_rate_no_prior,eval/random_success_rate\n50,0.5,0.4,0.02\n")
    runs = {("glamor", s): (tmp_path / f"s{s}", res(0.04)) for s in (0, 1)}
    summary = compare.summarize("env", runs, {})
    out = tmp_path / "out"
    compare.write_outputs(out, [summary], ["env"], [0, 1], "full", "glamor compare")
    saved = json.loads((tmp_path / "out.json").read_text())["summaries"][0]
    random_row, glamor_row = saved["methods"]["eval/random"], saved["methods"]["eval/GLAMOR"]
    assert random_row["ci95"] == [0.04, 0.04]  # (the field keeps its meaning: the interval over seeds)
    assert "zero-width by construction" in random_row["ci95_note"] and "eval_seed" in random_row["ci95_note"]
    assert random_row["ci95_over_goals"] == [0.02, 0.077]
    assert "ci95_note" not in glamor_row and "ci95_over_goals" not in glamor_row
    assert "zero-width by construction" in saved["curve_notes"]["random"] and list(saved["curve_notes"]) == ["random"]
    assert compare.SAME_DRAWS in (tmp_path / "out.md").read_text()
    # rates that differ across seeds (an older glamor's draws) have an interval of their own: no note
    runs[("glamor", 1)] = (tmp_path / "s1", res(0.05))
    differing = compare.summarize("env", runs, {})
    assert "ci95_note" not in differing["methods"]["eval/random"]
    assert compare.SAME_DRAWS not in compare.markdown([differing], "# t")
    # one seed: the run's own Wilson interval in ci95 already, no note
    one = compare.summarize("env", {("glamor", 0): runs[("glamor", 0)]}, {})
    assert "ci95_note" not in one["methods"]["eval/random"] and "curve_notes" not in one


@pytest.mark.parametrize("argv,named", [
    (["--widths", "5"], "--widths 5"), (["--planners", "beam"], "--planners beam"),
    (["--sweep-episodes", "3"], "--sweep-episodes 3"),
    (["--widths", "1", "10", "--planners", "sample"], "--widths 1 10, --planners sample"),
])
def test_sweep_options_without_a_glamor_method_are_refused_not_dropped(tmp_path, monkeypatch, capsys, argv, named):
    """The planner sweep evaluates GLAMOR runs: `--methods gcsl --widths 5` trained the GCSL runs and
    wrote a table with no sweep, dropping what was asked without a word. Refused before any training."""
    from glamor import cli

    monkeypatch.chdir(tmp_path)
    sets = [a for k, v in TINY.items() for a in ("--set", f"{k}={v}")]
    assert cli.main(["compare", "--envs", "debug", "--seeds", "0", "--methods", "gcsl", "gcsl_time", "--budget",
                     "full", *argv, "--runs-dir", "runs", "--out", "res", *sets]) == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"glamor compare: error: {named}: the planner sweep evaluates GLAMOR runs, and --methods gcsl gcsl_time "
        f"has none; add glamor to --methods, or leave {'them' if ',' in named else 'it'} out")
    assert list(tmp_path.iterdir()) == []  # nothing trained, nothing written


@pytest.mark.parametrize("kwargs,named", [(dict(planners=["sample"]), "--planners sample"),
                                          (dict(sweep_episodes=2), "--sweep-episodes 2")])
@pytest.mark.parametrize("widths", [[], ()])
def test_sweep_options_with_no_sweep_widths_are_refused_not_dropped(tmp_path, kwargs, named, widths):
    """`--widths` with no value runs no sweep: a --planners or --sweep-episodes beside it was dropped unsaid
    (and from Python, with widths=() rather than [], it still was)."""
    with pytest.raises(ValueError) as e:
        _compare(tmp_path, seeds=[0], methods=["glamor"], widths=widths, **kwargs)
    assert str(e.value) == f"{named}: --widths with no value runs no sweep; give it widths, or leave it out"
    assert not (tmp_path / "runs").exists()


def test_a_compare_without_glamor_needs_no_sweep_options(tmp_path):
    """No GLAMOR method and no sweep option (or an empty --widths): no sweep, no refusal, and the
    command the table names leaves the sweep out."""
    _compare(tmp_path, seeds=[0], methods=["gcsl"], widths=None)
    command = (tmp_path / "results" / "table.md").read_text().split("Written by `", 1)[1].split("`", 1)[0]
    assert "--widths" not in command and "--planners" not in command
    assert compare._command(["debug"], [0], ["glamor"], "full", "r", "o", [1], ["beam"], None, "default", {}) \
        .startswith("glamor compare --envs debug --seeds 0 --methods glamor --budget full --widths 1 --planners beam")


@pytest.mark.parametrize("planners,width,message", [
    (["sample"], 2**31, "--widths 2147483648: invalid config value(s): plan_width=2147483648 (must be in "
                        "[1, 2**31 - 1] (the planners index candidates with int32))"),
    # 4 actions at horizon 20: 4**20 plans, so the beam's width is the one given, over the ops' int32 bound
    (["beam"], 600_000_000, "--widths 600,000,000 with --planners beam on debug: width (plan_width) "
                            "must be at most 536,870,911 for beam search over 4 actions at horizon 20"),
])
def test_a_sweep_width_over_the_planners_bound_is_refused_before_any_training(tmp_path, monkeypatch, planners, width,
                                                                              message):
    """A width over the planning ops' int32 bound stopped the command at the sweep, after every run's training."""
    def sweep(*args, **kwargs):  # (not a sampling sweep of 600M candidates, were the check missing)
        raise AssertionError("a sweep ran: the width was not checked before the training")

    monkeypatch.setattr(compare, "ensure_sweep", sweep)
    with pytest.raises(ValueError) as e:
        _compare(tmp_path, seeds=[0], methods=["glamor", "gcsl"], widths=[1, width], planners=planners,
                 overrides={**TINY, "episode_length": 20})
    assert str(e.value).startswith(message)
    assert not (tmp_path / "runs").exists()


def test_sweep_widths_within_the_bound_pass_the_check():
    cfg = compare.RunSpec("glamor", "default", "debug", 0).config("full", {**TINY, "episode_length": 20})
    compare._check_sweep_widths("debug", cfg, ["beam", "sample"], [1, 536_870_911])  # the beam's limit itself
    compare._check_sweep_widths("debug", cfg.replace(episode_length=6), ["beam"], [2**31 - 1])  # 4**6 plans cap it


def test_the_width_check_needs_no_environment_where_none_can_be_built(monkeypatch):
    """Finished runs and their sweeps make a table with no environment (runs trained on another
    machine, its environment's package not installed here): the width check does not stop it."""
    import glamor.envs

    def make(*args, **kwargs):
        raise ValueError("cannot import module 'ale_py'")

    monkeypatch.setattr(glamor.envs, "make", make)
    cfg = compare.RunSpec("glamor", "default", "debug", 0).config("full", {**TINY, "episode_length": 20})
    compare._check_sweep_widths("debug", cfg, ["beam"], [600_000_000])  # (the sweep itself would refuse it)


def test_a_resumed_run_that_keeps_its_own_vector_says_so(tmp_path):
    """`--set vector=async` applies to the runs compare starts; a run it resumes keeps its own
    (resume takes the machine fields only), and said nothing: the user who asked for worker
    processes got none without a word."""
    _compare(tmp_path, seeds=[0], methods=["glamor"], widths=[])
    run = tmp_path / "runs" / "debug" / "glamor-default" / "seed0"
    (run / "eval.json").unlink()  # unfinished now: compare resumes it
    lines = []
    _compare(tmp_path, seeds=[0], methods=["glamor"], widths=[], overrides={**TINY, "vector": "async"},
             log=lines.append)
    notes = [line for line in lines if "note:" in line]
    assert notes == [f"  note: {run} resumes with its own vector='sync', not 'async': a resumed run keeps its "
                     f"vector (--set of progress, torch_threads, device, backend, eval_batch applies)"]
    assert json.loads((run / "config.json").read_text())["vector"] == "sync"
    (run / "eval.json").unlink()
    lines.clear()
    _compare(tmp_path, seeds=[0], methods=["glamor"], widths=[], log=lines.append)  # the run's own: no note
    assert any("resuming" in line for line in lines) and not any("note:" in line for line in lines)


def test_random_rows_repeated_over_three_seeds_are_noted_whatever_their_rate(tmp_path):
    """The random notes look for a zero-width interval over seeds; the float mean of three equal
    rates is off in the last bit for many rates (3 * 0.025 / 3 != 0.025), so the curve of
    results/gridworld_box_small_balanced.json came out [0.02499..., 0.02500...1], unnoted, and the
    rows' rate and interval were not the rate every seed had."""
    def res(rate):
        row = {"success_rate": rate, "ci95": [0.01, 0.06], "episodes": 200, "mean_steps": 10.0}
        return {"sets": {"eval": {"goal_digest": "d", "glamor": dict(row, success_rate=0.8),
                                  "glamor_no_prior": dict(row, success_rate=0.5), "random": row}}, "env_steps": 100}

    for seed in (0, 1, 2):
        (tmp_path / f"s{seed}").mkdir()
        (tmp_path / f"s{seed}" / "metrics.csv").write_text(
            "env_step,eval/success_rate,eval/success_rate_no_prior,eval/random_success_rate\n50,0.5,0.4,0.025\n")
    for rate in (0.025, 0.045, 0.09):
        summary = compare.summarize("env", {("glamor", s): (tmp_path / f"s{s}", res(rate)) for s in (0, 1, 2)}, {})
        row = summary["methods"]["eval/random"]
        assert (row["success_rate"], row["ci95"]) == (rate, [rate, rate]) and "ci95_note" in row
        assert "random" in summary.get("curve_notes", {})
        assert summary["curves"]["random"] == [(50, 0.025, 0.025, 0.025)]
        assert compare.SAME_DRAWS in compare.markdown([summary], "# t")
    assert compare.seed_interval([0.025] * 3) == (0.025, 0.025, 0.025)
