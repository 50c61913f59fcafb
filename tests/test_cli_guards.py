"""What the command line refuses or keeps, so that a mistaken command costs nothing: --overwrite
keeps the old run until the new one starts, --resume never shortens a run below its steps, an
evaluation cannot change the model's architecture or pretend to change training, and a plain
re-evaluation keeps what eval.json said about training."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from glamor import checkpoint
from glamor.config import preset
from glamor.nn.impala import ImpalaEncoder
from glamor.train import train

QUIET = dict(progress=False, total_env_steps=240, eval_episodes=4)  # updates from step 100


def _cli(*args, cwd):
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "glamor", *args], cwd=cwd, capture_output=True, text=True,
                          env=env, timeout=300)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    run = tmp_path_factory.mktemp("guards") / "run"
    train(preset("debug", **QUIET), run)
    return run


def test_a_failed_overwrite_keeps_the_run_it_would_have_replaced(tmp_path):
    run = tmp_path / "r"
    train(preset("debug", **QUIET), run)
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    with pytest.raises(ValueError, match="rejected env_kwargs"):
        train(preset("debug", **QUIET, env_kwargs={"sise": 7}), run, overwrite=True)
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()} == before
    assert [p.name for p in tmp_path.iterdir()] == ["r"], "nothing left aside"
    train(preset("debug", **QUIET, seed=1), run, overwrite=True)  # a successful overwrite replaces it
    assert json.loads((run / "config.json").read_text())["seed"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["r"]


def test_a_run_directory_that_is_a_file_is_named(tmp_path):
    (tmp_path / "afile").write_text("x")
    out = _cli("train", "--preset", "debug", "--run-dir", "afile", cwd=tmp_path)
    assert out.returncode == 2 and "afile is a file, not a directory" in out.stderr and "Traceback" not in out.stderr


@pytest.mark.parametrize("command", [("eval",), ("train", "--resume")])
def test_a_path_that_is_not_a_run_says_what_it_is_and_what_to_name(tmp_path, command, capsys):
    """A newcomer's wrong path for `glamor eval` / `--resume`: a checkpoint file (as `glamor plan`
    takes), a folder of runs, a folder that does not exist. Each was answered with "has no
    config.json", which named neither the mistake nor the folder to give."""
    from glamor.cli import main

    runs = tmp_path / "runs"
    (runs / "a").mkdir(parents=True)
    (runs / "a" / "config.json").write_text("{}")
    (runs / "a" / "checkpoint.pt").write_bytes(b"")
    cases = {
        runs / "a" / "checkpoint.pt": f"is a file, not a run directory: .* takes the run's folder, {runs / 'a'}$",
        runs: "has no config.json; it holds the runs a: name one of them$",
        tmp_path / "nope": "no run directory .*nope: .* takes the folder a run was trained in",
    }
    for path, message in cases.items():
        assert main([*command, str(path)]) == 2
        err = capsys.readouterr().err.strip()
        assert re.search(message, err), err
    with pytest.raises(FileNotFoundError, match="is a file, not a run directory"):  # the Python call alike
        from glamor.train import resume
        resume(runs / "a" / "checkpoint.pt")
    from glamor.agent import load_agent

    # Agent.load, load_agent and glamor plan said "runs holds no complete checkpoint"
    with pytest.raises(FileNotFoundError, match="runs has no config.json; it holds the runs a: name one of them"):
        load_agent(runs)


@pytest.mark.parametrize("config,message", [
    ("{bad", "config.json is not valid JSON"),
    ('{"future_field": 1}', r"config.json has fields this version of glamor does not know: \['future_field'\]"),
    ("[1, 2]", "config.json must hold a dict of config fields, got a list"),
])
@pytest.mark.parametrize("command", ["eval", "resume"])
def test_a_damaged_run_config_is_named(tmp_path, config, message, command):
    (tmp_path / "config.json").write_text(config)
    args = ("eval", str(tmp_path)) if command == "eval" else ("train", "--resume", str(tmp_path))
    out = _cli(*args, cwd=tmp_path)
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr[-2000:]
    assert re.search(message, out.stderr), out.stderr[-2000:]


def test_resume_refuses_to_end_a_run_before_its_steps_and_leaves_its_config(run, tmp_path):
    config = (run / "config.json").read_text()
    out = _cli("train", "--resume", str(run), "--total-env-steps", "120", cwd=tmp_path)
    assert out.returncode == 2 and "already at" in out.stderr and "Traceback" not in out.stderr, out.stderr
    assert (run / "config.json").read_text() == config
    out = _cli("train", "--resume", str(run), cwd=tmp_path)
    assert out.returncode == 0 and "is finished" in out.stderr and "larger --total-env-steps" in out.stderr
    assert "| eval | GLAMOR |" in out.stdout  # and its results


def _copy(run, tmp_path):
    import shutil

    return Path(shutil.copytree(run, tmp_path / "copy"))


def _files(run):
    return {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}


@pytest.mark.parametrize("args,message", [
    (("--set", "device=bogus", "--total-env-steps", "600"), "device='bogus' is not a torch device"),
    (("--total-env-steps", "-5"), "--total-env-steps must be at least 1, got -5"),
])
def test_a_resume_that_fails_leaves_the_run_as_it_was(run, tmp_path, args, message):
    copy = _copy(run, tmp_path)
    before = _files(copy)
    out = _cli("train", "--resume", str(copy), *args, cwd=tmp_path)
    assert out.returncode == 2 and message in out.stderr and "Traceback" not in out.stderr, out.stderr[-2000:]
    assert _files(copy) == before  # config.json included: the next resume is not handed the bad value


def test_a_hand_edited_config_is_not_resumed(run, tmp_path):
    copy = _copy(run, tmp_path)
    cfg = json.loads((copy / "config.json").read_text())
    (copy / "config.json").write_text(json.dumps({**cfg, "env_id": "glamor/GridWorldBox-v0"}))
    before = _files(copy)
    out = _cli("train", "--resume", str(copy), "--total-env-steps", "600", cwd=tmp_path)
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr[-2000:]
    assert ("config.json differs from the config its checkpoint was trained with (env_id: 'glamor/GridWorldBox-v0' "
            "in config.json, 'glamor/GridWorld-v0' in the checkpoint)") in out.stderr
    assert _files(copy) == before
    (copy / "config.json").write_text(json.dumps({**cfg, "planner": "sample", "plan_width": 1}))
    out = _cli("eval", str(copy), "--videos", "0", cwd=tmp_path)  # its results would pass for the run's own
    assert out.returncode == 2 and "plan_width: 1 in config.json" in out.stderr and "glamor eval" in out.stderr
    assert _files(copy) == {**before, "config.json": _files(copy)["config.json"]}


def test_damaged_results_and_replay_files_are_named(run, tmp_path):
    copy = _copy(run, tmp_path)
    (copy / "eval.json").write_text("")
    out = _cli("train", "--resume", str(copy), cwd=tmp_path)
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr[-2000:]
    assert re.search(r"eval.json is damaged \(.*\): delete it, and `glamor eval` writes it again", out.stderr)
    (copy / "eval.json").unlink()
    for replay in copy.glob("replay-*.npz"):
        replay.write_bytes(b"not a zip")
    out = _cli("train", "--resume", str(copy), "--total-env-steps", "600", cwd=tmp_path)
    assert out.returncode == 2 and re.search(r"its replay file replay-\d+.npz is unusable", out.stderr), \
        out.stderr[-2000:]


def test_a_file_system_error_is_one_line(run, tmp_path):
    copy = _copy(run, tmp_path)
    (copy / "config.json").unlink()
    (copy / "config.json").mkdir()  # reading it fails with IsADirectoryError, an OSError
    out = _cli("eval", str(copy), cwd=tmp_path)
    assert out.returncode == 2 and "Traceback" not in out.stderr and "Is a directory" in out.stderr, out.stderr


@pytest.mark.parametrize("setting,message", [
    ("lstm_hidden=8", "lstm_hidden=8 (the model has 16): fixed by the checkpoint"),
    ("encoder_channels=[4,4]", "fixed by the checkpoint"),
    ("algo='gcsl'", "algo='gcsl' (the model has 'glamor')"),
    ("lr=0.1", "lr: only training reads it"),
    ("use_prior=false", "with and without the prior either way"),
    ("eval_episodes=3", "--episodes 2 and --set eval_episodes=3 disagree: give one"),
    ("env_kwargs={'size': 9}", "but the model was trained on"),
])
def test_an_evaluation_refuses_what_cannot_apply_to_the_trained_model(run, tmp_path, setting, message):
    out = _cli("eval", str(run), "--set", setting, "--episodes", "2", cwd=tmp_path)
    assert out.returncode == 2 and message in out.stderr and "Traceback" not in out.stderr, out.stderr


@pytest.mark.parametrize("flag,setting,message", [
    (["--seed", "1"], "seed=2", "--seed 1 and --set seed=2 disagree: give one"),
    (["--algo", "gcsl"], "algo='glamor'", "--algo gcsl and --set algo=glamor disagree"),
    (["--total-env-steps", "100"], "total_env_steps=200", "--total-env-steps 100 and --set total_env_steps=200"),
    (["--env", "glamor/GridWorldBox-v0"], "env_id='glamor/GridWorld-v0'", "--env glamor/GridWorldBox-v0 and --set"),
])
def test_a_train_flag_and_a_set_that_disagree_are_refused(tmp_path, flag, setting, message):
    """--seed 1 --set seed=2 trained seed 1 without a word: the flag won silently."""
    out = _cli("train", "--preset", "debug", "--run-dir", str(tmp_path / "r"), *flag, "--set", setting, cwd=tmp_path)
    assert out.returncode == 2 and message in out.stderr and "Traceback" not in out.stderr, out.stderr
    assert not (tmp_path / "r").exists()


def test_a_re_evaluation_keeps_the_training_facts_and_progress_names_no_file(run, tmp_path):
    before = json.loads((run / "eval.json").read_text())
    out = _cli("eval", str(run), "--episodes", str(before["episodes"]), "--videos", "0", "--set", "progress=false",
               cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    after = json.loads((run / "eval.json").read_text())
    assert after["episodes"] == before["episodes"] and not list(run.glob("eval-*.json"))
    assert before["updates"] > 0
    for key in ("env_steps", "updates", "train_wall_time_s"):
        assert after[key] == before[key], key


def test_messages_say_what_applies():
    with pytest.raises(ValueError, match="6 Impala stages .*at least 127 pixels a side"):
        ImpalaEncoder(1, (14, 14), (4, 8, 8, 8, 8, 8))
    with pytest.raises(ValueError, match=r"3 Impala stages .*at least 15 pixels a side \(larger frames, or fewer stages"):
        ImpalaEncoder(1, (14, 14))


def test_a_run_without_updates_is_warned_about(tmp_path):
    from glamor.train import Trainer

    with pytest.warns(RuntimeWarning, match="no gradient updates.*learning_starts"):
        Trainer(preset("debug", progress=False, learning_starts=500, total_env_steps=96), tmp_path).close()
    with pytest.warns(RuntimeWarning, match="updates_per_episode is 0"):
        Trainer(preset("debug", progress=False, updates_per_episode=0), tmp_path).close()


def test_a_run_whose_only_checkpoint_is_damaged_is_refused_by_name(tmp_path):
    (tmp_path / checkpoint.CHECKPOINT).write_bytes(b"not a checkpoint")
    with pytest.raises(checkpoint.UnusableCheckpoints, match=r"checkpoint.pt is not a glamor checkpoint, or is damaged"):
        checkpoint.load_latest(tmp_path)


def test_damaged_checkpoints_are_named_once_and_never_called_missing(run, tmp_path):
    """Both checkpoint files damaged: resume and eval say so, each reason once (torch's long text
    cut to its first line), and neither calls the run one that stopped before its first checkpoint."""
    copy = _copy(run, tmp_path)
    data = (copy / checkpoint.CHECKPOINT).read_bytes()
    for name in (checkpoint.CHECKPOINT, checkpoint.PREVIOUS):
        (copy / name).write_bytes(data[: len(data) // 2])  # a truncated write
    for command in (["train", "--resume", str(copy)], ["eval", str(copy)]):
        out = _cli(*command, cwd=tmp_path)
        assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr[-2000:]
        assert "has checkpoints but none loads" in out.stderr and "before its first" not in out.stderr
        for name in (checkpoint.CHECKPOINT, checkpoint.PREVIOUS):
            assert out.stderr.count(f"{name} is not a glamor checkpoint") == 1, out.stderr
        assert "Could this error message be improved" not in out.stderr
        if command[0] == "train":
            assert "move them away, or train again with --overwrite" in out.stderr


def test_eval_reads_the_checkpoint_once_and_evaluates_the_one_it_checked(run, tmp_path, capsys):
    """checkpoint.pt damaged: `glamor eval` falls back to checkpoint.prev.pt and says so once (it
    read the checkpoint twice, once to check the config and once to evaluate, and warned twice)."""
    import shutil
    import warnings

    from glamor import cli

    copy = _copy(run, tmp_path)
    shutil.copy(copy / checkpoint.CHECKPOINT, copy / checkpoint.PREVIOUS)
    (copy / checkpoint.CHECKPOINT).write_bytes(b"not a checkpoint")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert cli.main(["eval", str(copy), "--episodes", "2", "--videos", "0"]) == 0
    fallbacks = [w for w in caught if "using checkpoint.prev.pt" in str(w.message)]
    assert len(fallbacks) == 1, [str(w.message) for w in caught]
    written = Path(re.search(r"^wrote (.+)$", capsys.readouterr().out, re.M).group(1))
    assert json.loads(written.read_text())["env_steps"] == checkpoint.load(copy / checkpoint.PREVIOUS)["env_step"]


def test_machine_settings_may_change_on_resume_and_evaluation(run, tmp_path):
    import shutil

    run = Path(shutil.copytree(run, tmp_path / "copy"))  # the module's run stays as trained
    config = (run / "config.json").read_text()
    out = _cli("train", "--resume", str(run), "--set", "lr=0.1", cwd=tmp_path)
    assert out.returncode == 2 and "got --set lr" in out.stderr
    assert (run / "config.json").read_text() == config, "a refused resume leaves config.json as it was"
    out = _cli("train", "--resume", str(run), "--set", "device=cpu", "--set", "torch_threads=1", cwd=tmp_path)
    assert out.returncode == 0 and "is finished" in out.stderr, out.stderr
    saved = json.loads((run / "config.json").read_text())
    assert (saved["device"], saved["torch_threads"]) == ("cpu", 1)
    (run / "eval.json").unlink()  # as after a final evaluation that ran out of memory
    out = _cli("eval", str(run), "--videos", "0", "--set", "backend=reference", "--set", "eval_batch=3", cwd=tmp_path)
    assert out.returncode == 0 and (run / "eval.json").exists(), out.stderr  # the run's own: the same draws
    assert not list(run.glob("eval-*.json"))
    out = _cli("train", "--resume", str(run), cwd=tmp_path)
    assert out.returncode == 0 and "is finished" in out.stderr, out.stderr


def test_overwrite_through_a_symlink_replaces_what_it_points_to(tmp_path):
    target = tmp_path / "disk" / "run"
    train(preset("debug", **QUIET), target)
    link = tmp_path / "link"
    link.symlink_to(target, target_is_directory=True)
    train(preset("debug", **QUIET, seed=1), link, overwrite=True)
    assert link.is_symlink() and json.loads((target / "config.json").read_text())["seed"] == 1
    assert sorted(p.name for p in (tmp_path / "disk").iterdir()) == ["run"], "nothing left aside"


def test_a_failed_start_through_a_symlink_empties_the_folder_it_points_to(tmp_path, monkeypatch, capsys):
    """A new run in an empty folder named through a link that failed before its first checkpoint
    was not undone (rmtree refuses a link): its config.json stayed, so the corrected command was
    refused as 'not empty; pass --overwrite', and the message said to delete the link."""
    from glamor import train as training

    target = tmp_path / "disk" / "run"
    target.mkdir(parents=True)
    link = tmp_path / "link"
    link.symlink_to(target, target_is_directory=True)

    def failing_update(self):
        raise RuntimeError("a failure in training")

    monkeypatch.setattr(training.Trainer, "update", failing_update)
    with pytest.raises(RuntimeError, match="a failure in training"):
        train(preset("debug", **QUIET), link)
    assert f"the new run failed before its first checkpoint; emptied {link}" in capsys.readouterr().err
    assert link.is_symlink() and list(target.iterdir()) == []


def test_a_failed_start_with_worker_processes_exits(tmp_path):
    """Workers ignore SIGTERM; an exception before the pool is closed must not leave the
    interpreter waiting for them at exit."""
    out = subprocess.run([sys.executable, "-m", "glamor", "train", "--preset", "debug", "--run-dir", "r",
                          "--set", "vector='async'", "--set", "num_envs=2", "--set", "replay_capacity=10000000000000"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"})
    assert out.returncode == 1 and "MemoryError" in out.stderr, out.stderr[-2000:]


def test_trainer_restores_the_random_states_of_the_gpus_it_has(tmp_path, monkeypatch):
    """A checkpoint from a machine with more GPUs than this one (or CUDA_VISIBLE_DEVICES fewer)."""
    import torch

    from glamor.train import Trainer

    cfg = preset("debug", progress=False, learning_starts=0)
    tr = Trainer(cfg, tmp_path / "a")
    (tmp_path / "a").mkdir()
    tr.collect_round()
    state = {**tr.state_dict(), "replay": tr.replay.state_dict()}
    state["rng"]["cuda"] = [torch.zeros(16, dtype=torch.uint8) + i for i in range(3)]  # saved by 3 GPUs
    restored = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "set_rng_state", lambda s, i: restored.append((i, int(s[0]))))
    tr.load_state_dict(state)
    assert restored == [(0, 0)]
    tr.close()


def test_periodic_evaluations_close_their_environments(tmp_path, monkeypatch):
    import glamor.train
    from glamor.train import Trainer

    made = []
    make_envs = glamor.train.make_envs

    def counting(cfg, count):
        envs = make_envs(cfg, count)
        made.extend(envs)
        for env in envs:
            env.closed = False
            env.close = lambda env=env: setattr(env, "closed", True)
        return envs

    monkeypatch.setattr(glamor.train, "make_envs", counting)
    tr = Trainer(preset("debug", progress=False, eval_episodes=4), tmp_path)
    tr.evaluate(4)
    assert made and all(env.closed for env in made)
    tr.close()


def test_the_results_table_is_printed_without_progress_bars(tmp_path):
    out = _cli("train", "--preset", "debug", "--run-dir", "r", "--set", "progress=False", "--set",
               "total_env_steps=240", "--set", "eval_episodes=4", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "| goals | policy | success |" in out.stdout and "| eval | GLAMOR |" in out.stdout
    assert "it/s" not in out.stderr  # no tqdm bar
    out = _cli("train", "--resume", "r", "--total-env-steps", "360", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("| eval | GLAMOR |") == 1  # once, for a resumed run too


def test_an_overwrite_keeps_the_old_run_until_the_new_one_has_a_checkpoint(tmp_path, monkeypatch):
    from glamor import train as training

    run = tmp_path / "r"
    train(preset("debug", **QUIET), run)
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    real_update = training.Trainer.update

    def failing_update(self):
        if self.env_step >= fail_at:
            raise RuntimeError("a failure in training")
        return real_update(self)

    monkeypatch.setattr(training.Trainer, "update", failing_update)
    fail_at = 0  # the first update, long before the first checkpoint
    with pytest.raises(RuntimeError, match="a failure in training"):
        train(preset("debug", **QUIET, seed=1), run, overwrite=True)
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()} == before
    assert [p.name for p in tmp_path.iterdir()] == ["r"], "nothing left aside"
    fail_at = 200  # after the checkpoint at 120 steps: the new run is resumable, the old one gone
    with pytest.raises(RuntimeError, match="a failure in training"):
        train(preset("debug", **QUIET, seed=1, snapshot_every=120), run, overwrite=True)
    assert json.loads((run / "config.json").read_text())["seed"] == 1 and (run / "checkpoint.pt").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["r"]


def test_a_run_left_aside_by_a_killed_overwrite_is_named(tmp_path):
    from glamor.run_dir import prepare_run_dir

    (tmp_path / "r").mkdir()
    left = tmp_path / ".r.replaced-999999999"  # no such process
    left.mkdir()
    (tmp_path / ".r.replaced-1").mkdir()  # init: alive, its overwrite may still be running
    with pytest.warns(RuntimeWarning, match=r"replaced-999999999 holds the run an interrupted `--overwrite`") as w:
        prepare_run_dir(tmp_path / "r", overwrite=True)
    assert len(w) == 1 and left.exists()
    with pytest.warns(RuntimeWarning, match=r"move .*/r \(the interrupted new run\) away, then mv"):
        assert checkpoint.load_latest(tmp_path / "r") is None  # resume, eval and plan read checkpoints so
    (tmp_path / "afile").write_text("x")
    with pytest.raises(FileExistsError, match="afile is a file"):
        prepare_run_dir(tmp_path / "afile" / "sub", overwrite=False)
    (tmp_path / "link").symlink_to(tmp_path / "gone")
    with pytest.raises(FileExistsError, match=r"link is a link to .*gone, which does not exist"):
        prepare_run_dir(tmp_path / "link", overwrite=True)


def test_a_checkpoint_beside_another_runs_config_is_named(run, tmp_path):
    import shutil

    mix = tmp_path / "mix"
    shutil.copytree(run, mix)
    config = json.loads((mix / "config.json").read_text())
    config["lstm_hidden"] += 4
    (mix / "config.json").write_text(json.dumps(config))
    for args in (("eval", "mix", "--episodes", "2"), ("train", "--resume", "mix", "--total-env-steps", "480")):
        out = _cli(*args, cwd=tmp_path)
        assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
        assert "mix/config.json differs from the config its checkpoint was trained with (lstm_hidden: 20" in out.stderr
    from glamor.config import Config
    from glamor.train import evaluate_checkpoint

    # given such a config in Python: the field that differs from the checkpoint's model is named
    # (it was "holds weights of another model ...; was it copied from another run?", and for
    # algo='gcsl' "Missing key(s) head.weight", which blamed the file for the caller's cfg)
    with pytest.raises(ValueError, match=r"lstm_hidden=20 \(the model has 16\): fixed by the checkpoint"):
        evaluate_checkpoint(mix, Config.load(mix / "config.json"), episodes=2)
    trained = Config.load(run / "config.json")
    with pytest.raises(ValueError, match=r"algo='gcsl' \(the model has 'glamor'\): fixed by the checkpoint"):
        evaluate_checkpoint(run, trained.replace(algo="gcsl"), episodes=2)
    with pytest.raises(ValueError, match=r"embed_dim=64 \(the model has 32\): fixed by the checkpoint"):
        evaluate_checkpoint(run, trained.replace(embed_dim=64), episodes=2)


def test_results_names_stay_short_enough_for_a_file_name():
    from glamor.results import results_name

    assert results_name({"plan_width": 4, "planner": "beam"}) == "eval-plan_width=4,planner=beam.json"
    many = {f"setting_{i}": "x" * 20 for i in range(12)}
    long_a, long_b = results_name(many), results_name({**many, "setting_11": "y" * 20})
    assert len(long_a) < 200 and long_a.startswith("eval-setting_0=") and long_a != long_b


def test_one_evaluation_has_one_results_name_however_its_values_are_written():
    """`glamor eval RUN --set plan_width=200.0` and `--set plan_width=200` evaluate alike (the
    config holds 200 either way) but wrote eval-plan_width=200.0.json and eval-plan_width=200.json."""
    from glamor.results import results_name

    assert results_name({"plan_width": 200.0}) == results_name({"plan_width": 200}) == "eval-plan_width=200.json"
    assert results_name({"gamma": 1}) == results_name({"gamma": 1.0}) == "eval-gamma=1.0.json"
    assert results_name({"clip_logq": -1}) == "eval-clip_logq=-1.0.json"
    assert results_name({"eval_episodes": 5e1}) == "eval-eval_episodes=50.json"
    assert results_name({"env_kwargs": {"size": (7,)}}) == results_name({"env_kwargs": {"size": [7]}})
    assert results_name({"plan_width": 4.5}) == "eval-plan_width=4.5.json"  # no int: Config refuses it
    assert results_name({"env_kwargs": {"size": 7, "walls": True}}) \
        == results_name({"env_kwargs": {"walls": True, "size": 7}})  # (its keys sorted)
    assert results_name({"env_kwargs": {"size": 7}}) == "eval-env_kwargs=size_7--c6a736b2fb.json"  # README's example


@pytest.mark.parametrize("a,b", [
    ({"env_kwargs": {"a b": 1}}, {"env_kwargs": {"a_b": 1}}),
    ({"env_kwargs": {"a:b": 1}}, {"env_kwargs": {"a_b": 1}}),
    ({"env_kwargs": {"mode": "a/b"}}, {"env_kwargs": {"mode": "a?b"}}),
    ({"env_kwargs": {"mode": "a,b"}}, {"env_kwargs": {"mode": "a", "b": 1}}),
    ({"env_id": "mod:Box-v0"}, {"env_id": "mod_Box-v0"}),
    ({"env_kwargs": {}}, {"env_kwargs": {"": 0}}),
])
def test_evaluations_that_differ_only_in_punctuation_have_their_own_results_files(a, b):
    """The name replaced every character other than letters, digits and =,._- with '_': `glamor eval
    RUN --set env_kwargs='{"a b": 1}'` and `--set env_kwargs='{"a_b": 1}'` (other environments'
    evaluations) both wrote eval-env_kwargs=__a_b___1_.json, the second replacing the first's numbers
    and reports. Such a name now ends in a digest of the overrides."""
    from glamor.results import results_name

    assert results_name(a) != results_name(b)
    name = results_name(a)
    assert re.fullmatch(r"eval-[A-Za-z0-9=,._-]+--[0-9a-f]{10}\.json", name), name
    assert results_name({"env_kwargs": {"size": 7}}).startswith("eval-env_kwargs=size_7--")  # readable
    assert results_name({"plan_width": 4, "env_id": "glamor/Pong-v0"}).startswith(
        "eval-env_id=glamor_Pong-v0,plan_width=4--")


@pytest.mark.parametrize("given", [["--preset", "debug"], ["--algo", "gcsl"]])
def test_resume_refuses_settings_the_runs_config_fixes(tmp_path, given, capsys):
    from glamor.cli import main

    assert main(["train", "--resume", str(tmp_path / "r"), *given]) == 2
    assert f"so {given[0]} has nothing to change" in capsys.readouterr().err


def test_the_command_line_starts_and_parses_without_torch():
    """`import glamor.cli` (the `glamor` script's first line) and build_parser (compare's arguments
    included) load no torch, so a Ctrl-C while torch loads reaches main()'s handler and argument
    errors and --help are immediate (glamor.results keeps what compare reads light); the package's
    public names still load on first use."""
    code = ("import sys, glamor.cli; assert 'torch' not in sys.modules, 'torch imported'\n"
            "glamor.cli.build_parser().parse_args(['envs']); assert 'torch' not in sys.modules, 'torch imported'\n"
            "from glamor import Agent, GlamorModel, preset; import glamor\n"
            "assert glamor.Config is glamor.config.Config and 'torch' in sys.modules and 'ops' in dir(glamor)\n"
            "try:\n    glamor.nope\nexcept AttributeError as e:\n    assert 'nope' in str(e)\n"
            "else:\n    raise SystemExit('no AttributeError')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]


def test_a_simulator_that_is_not_installed_is_one_line_naming_the_extra(tmp_path, monkeypatch, capsys):
    from glamor.cli import main

    monkeypatch.setitem(sys.modules, "ale_py", None)  # import ale_py now raises ImportError
    assert main(["train", "--preset", "atari_cpu", "--run-dir", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "Atari environments need ale-py" in err and "pip install 'glamor[envs]'" in err and "Traceback" not in err
    assert not (tmp_path / "r").exists()  # nothing left behind


def test_total_env_steps_takes_float_notation_as_set_does(capsys):
    """`--set total_env_steps=1e3` was accepted and `--total-env-steps 1e3` refused."""
    from glamor.cli import build_parser

    parser = build_parser()
    assert parser.parse_args(["train", "--total-env-steps", "1e3"]).total_env_steps == 1000
    assert parser.parse_args(["train", "--total-env-steps", "2500"]).total_env_steps == 2500
    for bad in ("1.5", "abc", "inf"):
        with pytest.raises(SystemExit):
            parser.parse_args(["train", "--total-env-steps", bad])
        assert f"--total-env-steps: must be a whole number of steps, got '{bad}'" in capsys.readouterr().err


def test_a_full_disk_names_the_run_and_its_resume_and_a_thread_error_is_one_line(tmp_path, monkeypatch, capsys):
    """A write to an open file on a full disk (metrics.csv, TensorBoard's thread) said only
    '[Errno 28] No space left on device': no file, no run, no resume; the thread's failure was a
    traceback in the middle of the output."""
    import threading

    from glamor import cli
    from glamor.logger import Logger

    log = Logger.log

    def full_at_the_end(self, env_step, metrics):  # the final evaluation's row, after the last checkpoint
        if any(name.startswith("eval/") for name in metrics) and env_step >= 48:
            raise OSError(28, "No space left on device")
        return log(self, env_step, metrics)

    monkeypatch.setattr(Logger, "log", full_at_the_end)
    run = tmp_path / "r"
    assert cli.main(["train", "--preset", "debug", "--run-dir", str(run), "--total-env-steps", "48",
                     "--set", "progress=false", "--set", "eval_episodes=2", "--set", "eval_episodes_during_training=2"]) == 2
    assert capsys.readouterr().err.splitlines()[-1].startswith(  # (then where this test raised it)
        f"glamor train: error: [Errno 28] No space left on device (writing the run in {run}); with room to write "
        f"(or write access) again, `glamor train --resume {run}` goes on from its last checkpoint")

    import glamor.reports

    def plot_on_a_full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")  # (a write to an open file: no name)

    with monkeypatch.context() as m:
        m.setattr(glamor.reports, "write_reports", plot_on_a_full_disk)
        assert cli.main(["eval", str(run), "--episodes", "2", "--videos", "0"]) == 2
    assert capsys.readouterr().err.splitlines()[-1].startswith(
        f"glamor eval: error: [Errno 28] No space left on device (writing the run in {run})")

    def background(args):
        worker = threading.Thread(target=lambda: (_ for _ in ()).throw(OSError(28, "No space left on device")),
                                  name="EventWriter")
        worker.start()
        worker.join()
        return 0

    monkeypatch.setattr(cli, "cmd_envs", background)
    assert cli.main(["envs"]) == 0
    assert capsys.readouterr().err == ("glamor envs: warning: background thread EventWriter stopped: [Errno 28] No "
                                       "space left on device\n")
    assert threading.excepthook is threading.__excepthook__ or threading.excepthook.__module__ != "glamor.cli"


def test_sigterm_outside_the_training_loop_stops_like_ctrl_c(tmp_path, monkeypatch, capsys):
    """SIGTERM during start-up left config.json and the lock behind (the same command was then
    refused: 'not empty'): it now stops as Ctrl-C does there, with status 143. During the final
    evaluation it ended the process silently (143, no resume named); it now gives the evaluation
    up at its next step, as during a periodic one, and says the training is saved and what
    evaluates it."""
    import os
    import signal

    from glamor import cli
    from glamor.train import Trainer

    argv = ["train", "--preset", "debug", "--total-env-steps", "48", "--set", "progress=false",
            "--set", "eval_episodes=2", "--set", "eval_episodes_during_training=2"]
    start = Trainer.__init__

    def terminated_at_start(self, *args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)  # handled at the next bytecode
        return start(self, *args, **kwargs)

    with monkeypatch.context() as m:
        m.setattr(Trainer, "__init__", terminated_at_start)
        assert cli.main([*argv, "--run-dir", str(tmp_path / "a")]) == 143
    assert capsys.readouterr().err.splitlines()[-1] == "glamor train: terminated (SIGTERM)"
    assert not (tmp_path / "a").exists(), "nothing left to block the same command"

    evaluate = Trainer.evaluate

    def terminated_in_the_final_evaluation(self, episodes, *args, **kwargs):
        if self.env_step >= 48 and episodes == 2 and self.next_eval > 48:
            os.kill(os.getpid(), signal.SIGTERM)
        return evaluate(self, episodes, *args, **kwargs)

    monkeypatch.setattr(Trainer, "evaluate", terminated_in_the_final_evaluation)
    run = tmp_path / "b"
    assert cli.main([*argv, "--run-dir", str(run)]) == 143
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"glamor train: SIGTERM received: gave up the final evaluation; the training is finished (48 environment "
        f"steps) and saved in {run}, and `glamor train --resume {run}` evaluates it")
    assert (run / "checkpoint.pt").exists() and not (run / "eval.json").exists()
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL  # given back


@pytest.mark.parametrize("name,env_id,cuda,suggested", [
    ("atari", "glamor/reacher-hard-v0", True, "--preset control has its suite's"),
    ("atari_cpu", "glamor/point_mass-easy-v0", True, "--preset control_cpu has"),
    ("control", "glamor/Pong-v0", True, "an atari environment but --preset control has control's settings "
                                        "(episode_length 100"),
    ("gridworld", "glamor/Seaquest-v0", True, "--preset atari has"),
    # Without CUDA the suite's CPU preset: --preset atari is the spec's GPU budget, many hours on a CPU
    ("gridworld", "glamor/Seaquest-v0", False, "--preset atari_cpu has"),
    ("debug", "glamor/reacher-hard-v0", False, "--preset control_cpu has"),
    ("atari", "glamor/reacher-hard-v0", False, "--preset control_cpu has"),
    ("atari_cpu", "glamor/MsPacman-v0", True, None),  # the preset's own suite
    ("gridworld", "glamor/GridWorldBox-v0", False, None),
    ("gridworld", "puck_env:Puck-v0", False, None),  # an environment of one's own: the preset is the user's choice
])
def test_an_environment_of_another_suite_than_the_presets_gets_a_note(capsys, monkeypatch, name, env_id, cuda,
                                                                      suggested):
    """--preset atari --env glamor/reacher-hard-v0 trained Control with Atari's k = 50 and one
    update per episode, without a word; on a machine without CUDA, --preset debug --env
    glamor/Seaquest-v0 was pointed to --preset atari, the spec's GPU budget, not atari_cpu."""
    import torch

    from glamor import cli

    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    cli._note_another_suites_preset(name, preset(name, env_id=env_id))
    err = capsys.readouterr().err
    assert (suggested in err) if suggested else err == "", err


@pytest.mark.parametrize("argv,said", [
    # the default runs/debug-seed0 of a GLAMOR run, then a GCSL one: --resume would have gone on with GLAMOR
    (["--algo", "gcsl"], "holds a run of another config (algo='glamor', not algo='gcsl'): `glamor train --resume"),
    (["--set", "plan_width=16"], "(plan_width=8, not plan_width=16)"),
    (["--total-env-steps", "900"], "--total-env-steps 900` trains it to 900 steps"),
    (["--set", "device=cpu"], "is not empty; pass --overwrite"),  # the same run: the folder's own refusal
])
def test_a_run_directory_of_another_config_is_named_not_offered_for_resume(tmp_path, capsys, argv, said):
    from glamor.cli import main

    run = tmp_path / "r"
    run.mkdir()
    preset("debug").save(run / "config.json")
    assert main(["train", "--preset", "debug", "--run-dir", str(run), *argv]) == 2
    err = capsys.readouterr().err
    assert said in err, err
    assert sorted(p.name for p in run.iterdir()) == ["config.json"]  # nothing written


def test_a_gpu_preset_with_another_suites_environment_on_the_cpu_is_pointed_to_that_suites_cpu_preset(
        monkeypatch, capsys, tmp_path):
    """--preset atari --env glamor/reacher-hard-v0 on the CPU got two notes that disagreed: the
    suite's (use control's settings) and the GPU budget's (--preset atari_cpu, Atari's)."""
    import glamor.train
    from glamor.cli import main

    monkeypatch.setattr(glamor.train, "train", lambda cfg, run_dir, overwrite=False, **kw: None)
    assert main(["train", "--preset", "atari", "--env", "glamor/reacher-hard-v0", "--set", "device=cpu",
                 "--run-dir", str(tmp_path / "a")]) == 0
    err = capsys.readouterr().err
    assert "--preset control_cpu has its suite's" in err and "atari_cpu" not in err, err


@pytest.mark.parametrize("argv,name", [
    (["--episodes", "16"], "eval.json"),  # the run's own goal count
    (["--set", "eval_episodes=16"], "eval.json"),
    (["--set", "eval_episodes=16.0", "--set", "plan_width=4"], "eval-plan_width=4.json"),
    (["--episodes", "16", "--set", "plan_width=4"], "eval-plan_width=4.json"),
    (["--set", "eval_episodes=5", "--set", "plan_width=4"], "eval-eval_episodes=5,plan_width=4.json"),
    (["--episodes", "5", "--set", "plan_width=4.0"], "eval-eval_episodes=5,plan_width=4.json"),
])
def test_eval_names_one_evaluation_alike_however_its_goal_count_is_given(tmp_path, monkeypatch, capsys, argv, name):
    """`glamor eval RUN --episodes 16 --set plan_width=4` (16: the run's own count) wrote
    eval-plan_width=4.json, and `--set eval_episodes=16 --set plan_width=4`, the same evaluation,
    eval-eval_episodes=16,plan_width=4.json."""
    import glamor.reports
    import glamor.train
    from glamor.cli import main

    run = tmp_path / "r"
    run.mkdir()
    preset("debug").save(run / "config.json")  # eval_episodes=16
    evaluated = []

    def evaluate_checkpoint(run_dir, cfg, **kw):
        evaluated.append(cfg)
        row = {"success_rate": 0.5, "ci95": [0.1, 0.9], "episodes": cfg.eval_episodes, "mean_steps": 3.0}
        return {"success_rate": 0.5, "env_steps": cfg.total_env_steps, "sets": {"eval": {"goal_digest": "d", "glamor": row}}}

    monkeypatch.setattr(glamor.train, "evaluate_checkpoint", evaluate_checkpoint)
    monkeypatch.setattr(glamor.reports, "write_reports", lambda run_dir, *a, out_dir=None, **kw: {
        "table": out_dir / "eval_goals.csv", "plot": out_dir / "success.png", "videos": []})
    assert main(["eval", str(run), *argv]) == 0, capsys.readouterr().err
    assert sorted(p.name for p in run.glob("eval*.json")) == [name]
    assert evaluated[0].eval_episodes == (5 if "5" in name else 16)


@pytest.mark.parametrize("argv,said", [
    (["--preset", "atari_cpu", "--set", "env_kwargs={'noop_max': 0}"],
     "--set env_kwargs replaces --preset atari_cpu's env_kwargs whole: frame_shape=[40, 52] now takes the "
     "environment's default; to keep it, --set \"env_kwargs={'frame_shape': [40, 52], 'noop_max': 0}\""),
    (["--preset", "atari_cpu", "--set", "env_kwargs={'frame_shape': [80, 104]}"], None),  # given again: nothing dropped
    (["--preset", "debug", "--env", "glamor/Seaquest-v0", "--set", "env_kwargs={}"], None),  # not for this suite
    (["--preset", "atari_cpu"], None),
])
def test_env_kwargs_that_drop_the_presets_own_are_noted(tmp_path, monkeypatch, capsys, argv, said):
    """`--preset atari_cpu --set env_kwargs={'noop_max': 0}` replaced the preset's env_kwargs
    whole: its 40x52 frame_shape went (updates 4x slower), without a word."""
    import glamor.train
    from glamor.cli import main

    monkeypatch.setattr(glamor.train, "train", lambda cfg, run_dir, overwrite=False, **kw: None)
    assert main(["train", *argv, "--set", "device='cpu'", "--run-dir", str(tmp_path / "a")]) == 0
    err = capsys.readouterr().err
    assert (said in err) if said else "replaces --preset" not in err, err


@pytest.mark.parametrize("command", [("eval",), ("train", "--resume")])
def test_a_compare_runs_dir_names_the_runs_it_holds_further_down(tmp_path, command, capsys):
    """`glamor compare` keeps its runs at RUNS_DIR/ENV/METHOD-SETTING/seedN: a user who names the
    --runs-dir or its environment's folder to evaluate a compare run was told "(is it a glamor run
    directory?)", which names no run; the error lists the runs below, as for a folder of runs."""
    from glamor.agent import load_agent
    from glamor.cli import main

    runs = tmp_path / "compare-small"
    for method in ("glamor-default", "gcsl-default"):
        (runs / "gridworld" / method / "seed0").mkdir(parents=True)
        (runs / "gridworld" / method / "seed0" / "config.json").write_text("{}")
    cases = {runs / "gridworld": "it holds the runs gcsl-default/seed0, glamor-default/seed0: name one of them$",
             runs: "it holds the runs gridworld/gcsl-default/seed0, gridworld/glamor-default/seed0: name one of them$"}
    for path, message in cases.items():
        assert main([*command, str(path)]) == 2
        err = capsys.readouterr().err.strip()
        assert re.search(message, err), err
        with pytest.raises(FileNotFoundError, match=message.rstrip("$")):  # load_agent said "no complete checkpoint"
            load_agent(path)


def test_an_error_in_the_final_evaluation_says_the_training_is_saved_and_names_the_resume(tmp_path, monkeypatch,
                                                                                         capsys):
    """An environment's error in the final evaluation (after minutes or hours of training) printed
    only the error, as if the run were lost: the training is saved, and its resume evaluates."""
    from glamor import cli
    from glamor import evaluate as evaluation

    def broken(*args):  # the random policy's draws: the final evaluation's last policy
        raise ValueError("the environment broke")

    monkeypatch.setattr(evaluation, "random_actions", broken)
    run = tmp_path / "r"
    assert cli.main(["train", "--preset", "debug", "--run-dir", str(run), "--total-env-steps", "48",
                     "--set", "progress=false", "--set", "eval_every=0", "--set", "eval_episodes=2"]) == 2
    said = capsys.readouterr().err.splitlines()[-1]
    assert said.startswith("glamor train: error: the environment broke"), said
    assert said.endswith(f"; the training is finished and saved in {run}; once that is mended, "
                         f"`glamor train --resume {run}` evaluates it"), said
    assert checkpoint.load_latest(run, with_replay=False)["env_step"] == 48


@pytest.mark.parametrize("argv,warned", [
    (["--preset", "debug", "--env", "dotenv:Dot-v0"], True),  # a `size` of its own took debug's size=7, unsaid
    (["--preset", "atari_cpu", "--env", "my_atari:Game-v0"], True),  # frame_shape=[40, 52]
    (["--preset", "debug", "--env", "dotenv:Dot-v0", "--set", "env_kwargs={}"], False),  # the user's choice
    (["--preset", "debug", "--env", "dotenv:Dot-v0", "--set", "env_kwargs={'size': 7}"], False),
    (["--preset", "gridworld", "--env", "dotenv:Dot-v0"], False),  # no env_kwargs to pass on
    (["--preset", "debug", "--env", "glamor/GridWorldBox-v0"], False),  # a built-in one: refused or meant
])
def test_a_presets_env_kwargs_passed_to_an_environment_of_ones_own_are_named(tmp_path, monkeypatch, capsys, argv,
                                                                             warned):
    """`--preset debug --env dotenv:Dot-v0` built the user's own environment with debug's
    env_kwargs (size=7, meant for the gridworld) without a word whenever it takes a `size`
    argument: a 16x16 environment trained at 7x7. An environment that rejected them said so;
    one that took them said nothing."""
    import warnings

    import glamor.train
    from glamor.cli import main

    trained = []
    monkeypatch.setattr(glamor.train, "train", lambda cfg, run_dir, overwrite=False, **kw: trained.append(cfg))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert main(["train", *argv, "--set", "device='cpu'", "--run-dir", str(tmp_path / "a")]) == 0
    said = [str(w.message) for w in caught if "env_kwargs" in str(w.message)]
    name = argv[1]
    want = (f"preset {name}'s env_kwargs {preset(name).env_kwargs} are set for its own environment "
            f"({preset(name).env_id}) and are passed to {argv[3]} too; give env_kwargs={{}} (--set env_kwargs={{}})")
    assert [want in s for s in said] == ([True] if warned else []), said
    if warned:  # they were passed on (the warning says what happens, not what should)
        assert trained[0].env_kwargs == preset(name).env_kwargs
        with pytest.warns(UserWarning, match=re.escape(want)):  # the same from Python
            preset(name, env_id=argv[3])


@pytest.mark.parametrize("argv,said", [
    (["train", "--preset", "atari_cpu", "--set", "noop_max=0"],
     "--set noop_max: an argument of the environment glamor/Seaquest-v0, not a config field: --set \"env_kwargs="
     "{'frame_shape': [40, 52], 'noop_max': 0}\" passes it (with the env_kwargs {'frame_shape': [40, 52]} it has)"),
    (["train", "--preset", "control_cpu", "--env", "glamor/reacher-hard-v0", "--set", "fast_render=false",
      "--set", "env_kwargs={}"],
     "--set fast_render: an argument of the environment glamor/reacher-hard-v0, not a config field: --set "
     "\"env_kwargs={'fast_render': False}\" passes it$"),
    (["train", "--preset", "debug", "--set", "size=9", "--set", "push=1"],
     "--set size: an argument of the environment glamor/GridWorld-v0, not a config field: --set \"env_kwargs="
     "{'size': 9}\" passes it (with the env_kwargs {'size': 7} it has); push: neither (see glamor.config.Config)$"),
    (["train", "--preset", "debug", "--set", "push=1"], "unknown config field(s) ['push']"),
    (["train", "--preset", "debug", "--set", "size=9"],
     "--set size: an argument of the environment glamor/GridWorld-v0, not a config field: --set \"env_kwargs="
     "{'size': 9}\" passes it (with the env_kwargs {'size': 7} it has)"),
    (["train", "--preset", "atari_cpu", "--set", "game='pong'"], "unknown config field(s) ['game']"),  # the id's
    (["compare", "--envs", "atari_cpu", "--set", "noop_max=0"],  # each run of a compare too
     "--set noop_max: an argument of the environment glamor/Seaquest-v0, not a config field: --set \"env_kwargs="
     "{'frame_shape': [40, 52], 'noop_max': 0}\" passes it (with the env_kwargs {'frame_shape': [40, 52]} it has)"),
    (["eval", "RUN", "--set", "size=9"],
     "--set size: an argument of the environment glamor/GridWorld-v0, not a config field: --set \"env_kwargs="
     "{'size': 9}\" passes it (with the env_kwargs {'size': 7} it has)"),
])
def test_an_environment_argument_given_as_a_config_field_is_pointed_to_env_kwargs(run, capsys, argv, said):
    """`glamor train --preset atari_cpu --set noop_max=0` (or frame_shape, or a size of one's own
    environment) said only "unknown config field(s) ['noop_max']; see glamor.config.Config": the
    Config has no such field, and nothing said that env_kwargs is how the environment gets it."""
    from glamor.cli import main

    argv = [str(run) if a == "RUN" else a for a in argv]
    if argv[0] == "train":
        argv += ["--run-dir", str(run.parent / "never")]
    if argv[0] == "compare":
        argv += ["--runs-dir", str(run.parent / "never"), "--out", str(run.parent / "never" / "out")]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert re.search(re.escape(said.rstrip("$")) + ("$" if said.endswith("$") else ""), err), err
    assert not (run.parent / "never").exists()


@pytest.mark.parametrize("setting,message", [
    ("plan_width=b'x'", "plan_width=b'x' (bytes) must be an integer"),
    ("gamma=1j", "gamma=1j (complex) must be a number"),
    ("plan_width={1}", "plan_width={1} (set) must be an integer"),
])
def test_an_evaluations_bad_value_is_named_by_the_config_not_by_its_results_name(run, capsys, setting, message):
    """The results file's name (a digest of the overrides' JSON) was made before the config
    checked the values, so a --set value JSON cannot hold stopped `glamor eval` with
    "Object of type bytes is not JSON serializable", naming neither the field nor what it takes."""
    from glamor import cli

    assert cli.main(["eval", str(run), "--set", setting, "--episodes", "2", "--videos", "0"]) == 2
    err = capsys.readouterr().err
    assert message in err and "JSON serializable" not in err and "Traceback" not in err, err
    assert not list(run.glob("eval-*"))


@pytest.mark.parametrize("value,taken", [
    ('{"size": 9, "box": false}', {"size": 9, "box": False}),  # JSON, as config.json writes it
    ("{'size': 9, 'box': False}", {"size": 9, "box": False}),  # a Python literal, as before
])
def test_set_takes_a_dict_written_as_json(tmp_path, monkeypatch, value, taken):
    """`--set 'env_kwargs={"size": 9, "box": false}'` (copied from config.json) was read as a
    string, Python's literal syntax taking false for a name, and refused: 'must be a dict'."""
    import glamor.train
    from glamor.cli import main

    given = []
    monkeypatch.setattr(glamor.train, "train", lambda cfg, run_dir, overwrite=False, **kw: given.append(cfg))
    assert main(["train", "--preset", "debug", "--set", f"env_kwargs={value}", "--set", "device='cpu'",
                 "--run-dir", str(tmp_path / "a")]) == 0
    assert given[0].env_kwargs == taken


def test_an_evaluation_with_set_records_its_overrides_whole(tmp_path, monkeypatch):
    """An evaluation's file name writes punctuation as '_' (and cuts a long one short): two
    evaluations with env_kwargs {"a b": 1} and {"a_b": 1} got files of their own, but neither
    said which it was; the results now hold the overrides as the config took them."""
    import glamor.reports
    import glamor.train
    from glamor.cli import main

    run = tmp_path / "r"
    run.mkdir()
    preset("debug").save(run / "config.json")

    def evaluate_checkpoint(run_dir, cfg, **kw):
        row = {"success_rate": 0.5, "ci95": [0.1, 0.9], "episodes": cfg.eval_episodes, "mean_steps": 3.0}
        return {"success_rate": 0.5, "env_steps": cfg.total_env_steps, "sets": {"eval": {"goal_digest": "d", "glamor": row}}}

    monkeypatch.setattr(glamor.train, "evaluate_checkpoint", evaluate_checkpoint)
    monkeypatch.setattr(glamor.reports, "write_reports", lambda run_dir, *a, out_dir=None, **kw: {
        "table": out_dir / "eval_goals.csv", "plot": out_dir / "success.png", "videos": []})
    monkeypatch.setattr("glamor.cli._check_env_arguments", lambda *a: None)  # (no such env argument to check)
    for kwargs in ("{'a b': 1}", "{'a_b': 1}"):
        assert main(["eval", str(run), "--set", f"env_kwargs={kwargs}", "--set", "plan_width=4.0",
                     "--episodes", "5"]) == 0
    found = [json.loads(p.read_text()).get("overrides") for p in run.glob("eval-*.json")]
    assert sorted(found, key=str) == [{"env_kwargs": {"a b": 1}, "eval_episodes": 5, "plan_width": 4},
                                      {"env_kwargs": {"a_b": 1}, "eval_episodes": 5, "plan_width": 4}]
