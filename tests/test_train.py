"""Training end to end on the debug preset, and every command-line entry point as a subprocess."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from glamor.config import preset
from glamor.train import Trainer, train


def test_debug_training_loss_falls(tmp_path):
    cfg = preset("debug", progress=False, learning_starts=0)
    tr = Trainer(cfg, tmp_path)
    while tr.env_step < 200:
        tr.collect_round()
    torch.manual_seed(0)
    first = np.mean([tr.update()["loss"] for _ in range(5)])
    for _ in range(150):
        tr.update()
    last = np.mean([tr.update()["loss"] for _ in range(5)])
    assert last < first - 0.3, (first, last)


def test_train_writes_the_run_directory(tmp_path):
    run = tmp_path / "run"
    results = train(preset("debug", progress=False, total_env_steps=300, eval_episodes=8), run)
    for name in ("config.json", "metrics.csv", "checkpoint.pt", "eval.json"):
        assert (run / name).exists(), name
    assert any((run / "tb").iterdir())
    saved = json.loads((run / "eval.json").read_text())
    for key in ("success_rate", "ci95", "episodes", "success_rate_no_prior", "random_success_rate"):
        assert key in saved
    assert saved["episodes"] == 8 == results["episodes"]
    header = (run / "metrics.csv").read_text().splitlines()[0].split(",")
    for col in ("losses/idm", "losses/prior", "eval/success_rate", "charts/env_steps_per_s", "planner/plans_per_s"):
        assert col in header
    with pytest.raises(FileExistsError, match=r"pass --overwrite to replace it \(train\(..., overwrite=True\) in Python\)"):
        train(preset("debug", progress=False), run)


def test_non_finite_loss_stops_with_a_clear_message(tmp_path):
    cfg = preset("debug", progress=False, learning_starts=0)
    tr = Trainer(cfg, tmp_path)
    tr.collect_round()
    with torch.no_grad():
        tr.model.idm.head.bias.fill_(float("nan"))
    with pytest.raises(FloatingPointError, match="non-finite loss"):
        tr.update()


def test_moved_sample_fraction_trains_on_box_moves_and_needs_an_env_that_sees_them(tmp_path, monkeypatch):
    cfg = preset("debug", env_id="glamor/GridWorldBox-v0", env_kwargs={}, episode_length=12, progress=False,
                 eps_start=1.0, eps_end=1.0, moved_sample_fraction=0.5)  # random collection: fast
    tr = Trainer(cfg, tmp_path)
    while tr.env_step < 4000:
        tr.collect_round()
    obs, goal, _, _ = tr.replay.sample(64, cfg.episode_length, tr.rng, prefer=tr.prefer, prefer_fraction=0.5)
    assert tr.env.objects_moved(obs[:, -1], goal[:, 0]).sum() == 32
    assert np.isfinite(tr.update()["loss"])
    from glamor.envs.gridworld import GridWorld

    plain = cfg.replace(env_id="glamor/GridWorld-v0")  # nothing but the agent moves: nothing to prefer
    with pytest.raises(ValueError, match=r"moved_sample_fraction=0.5 but glamor/GridWorld-v0 .* no objects that move"):
        Trainer(plain, tmp_path / "plain")
    monkeypatch.delattr(GridWorld, "objects_moved")
    with pytest.raises(ValueError, match="moved_sample_fraction"):
        Trainer(cfg, tmp_path / "other")


@pytest.mark.parametrize("train_start", ["fresh", "goal"])
def test_training_episodes_start_fresh_or_where_their_goal_started(tmp_path, train_start):
    cfg = preset("debug", progress=False, eps_start=1.0, eps_end=1.0, train_start=train_start)
    tr = Trainer(cfg, tmp_path)
    resets = []
    real_reset = tr.pool.reset
    tr.pool.reset = lambda seeds, goals: resets.extend(zip(seeds, goals)) or real_reset(seeds, goals)
    for _ in range(5):
        tr.collect_round()
    tr.close()
    assert len(resets) == 5 * cfg.num_envs
    at_goal_start = [seed == goal.seed for seed, goal in resets]
    if train_start == "goal":
        assert all(at_goal_start)
    else:  # fresh seeds, none a training goal's
        assert not {seed for seed, _ in resets} & {int(s) for s in tr.train_goals.seeds}


def _cli(*args, cwd):
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    return subprocess.run([sys.executable, "-m", "glamor", *args], cwd=cwd, capture_output=True, text=True,
                          env=env, timeout=300)


def test_cli_end_to_end(tmp_path):
    run = tmp_path / "cli_run"
    out = _cli("train", "--preset", "debug", "--run-dir", str(run), "--set", "total_env_steps=200",
               "--set", "eval_episodes=4", "--set", "progress=False", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    out = _cli("eval", str(run), cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "GLAMOR, no prior" in out.stdout and "random" in out.stdout
    assert json.loads((run / "eval.json").read_text())["episodes"] == 4
    assert len(list((run / "videos").glob("*.gif"))) == 4  # --videos defaults to 4
    own_table = (run / "eval_goals.csv").read_text()
    out = _cli("eval", str(run), "--episodes", "4", "--set", "plan_width=3", "--videos", "2", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert json.loads((run / "eval-plan_width=3.json").read_text())["planner"]["width"] == 3
    assert json.loads((run / "eval.json").read_text())["planner"]["width"] != 3  # the run's own results stay
    assert (run / "eval_goals.csv").read_text() == own_table  # and its own reports
    assert len(list((run / "eval-plan_width=3" / "videos").glob("*.gif"))) == 2
    assert f"2 video(s) in {run / 'eval-plan_width=3' / 'videos'}" in out.stdout
    assert (run / "eval-plan_width=3" / "success.png").exists()
    out = _cli("eval", str(run), "--episodes", "4", "--videos", "1", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert len(list((run / "videos").glob("*.gif"))) == 1  # no GIFs left from the earlier evaluation
    out = _cli("eval", str(run), "--episodes", "6", "--videos", "0", cwd=tmp_path)  # another goal count: its own file
    assert out.returncode == 0, out.stderr
    assert json.loads((run / "eval-eval_episodes=6.json").read_text())["episodes"] == 6
    assert out.stdout.rstrip().endswith("and no videos")  # (not '0 video(s) in' a folder it did not make)
    assert not (run / "eval-eval_episodes=6" / "videos").exists()
    assert json.loads((run / "eval.json").read_text())["episodes"] == 4
    out = _cli("envs", cwd=tmp_path)
    assert "glamor/GridWorld-v0" in out.stdout.split() and "glamor/GridWorldBox-v0" in out.stdout.split()


def test_cli_errors_name_the_problem(tmp_path):
    out = _cli("eval", str(tmp_path / "missing"), cwd=tmp_path)
    assert out.returncode != 0 and "no run directory" in out.stderr and "missing" in out.stderr
    out = _cli("train", "--preset", "debug", "--set", "bogus=1", "--run-dir", str(tmp_path / "r"), cwd=tmp_path)
    assert out.returncode == 2 and "bogus" in out.stderr


def test_non_finite_loss_in_a_run_keeps_the_last_good_checkpoint(tmp_path):
    from glamor import checkpoint

    cfg = preset("debug", progress=False, learning_starts=0, snapshot_every=24, eval_episodes=4)
    tr = Trainer(cfg, tmp_path)
    update = tr.update

    def poisoned():
        if tr.updates == 20:
            with torch.no_grad():
                tr.model.idm.head.bias.fill_(float("nan"))
        return update()

    tr.update = poisoned
    with pytest.raises(FloatingPointError, match="last good checkpoint"):
        tr.run()
    state = checkpoint.load_latest(tmp_path)
    assert 0 < state["updates"] <= 20 and state["env_step"] < tr.env_step
    assert all(torch.isfinite(t).all() for t in state["model"].values())


def test_cli_notes_a_gpu_sized_preset_on_the_cpu(monkeypatch, capsys, tmp_path):
    import glamor.train
    from glamor.cli import main

    started = []
    monkeypatch.setattr(glamor.train, "train", lambda cfg, run_dir, overwrite=False, **kw: started.append(cfg))
    assert main(["train", "--preset", "atari", "--set", "device=cpu", "--run-dir", str(tmp_path / "a")]) == 0
    err = capsys.readouterr().err
    assert "GPU budget" in err and "20,000 updates" in err and "--preset atari_cpu" in err
    assert len(started) == 1  # a note, not a refusal
    assert main(["train", "--preset", "atari_cpu", "--set", "device=cpu", "--run-dir", str(tmp_path / "b")]) == 0
    assert "GPU budget" not in capsys.readouterr().err


def test_a_run_that_fails_before_training_leaves_no_directory(tmp_path):
    """A bad environment setting fails while the trainer is built: the corrected command must
    not then meet 'run directory is not empty'."""
    run = tmp_path / "r"
    with pytest.raises(ValueError, match="rejected env_kwargs"):
        train(preset("debug", progress=False, env_kwargs={"size": 7, "colour": 3}), run)
    assert not run.exists()
    existing = tmp_path / "keep"
    existing.mkdir()
    (existing / "notes.txt").write_text("mine")
    (existing / "config.json").write_text("{}")  # a run (--overwrite replaces only a run)
    with pytest.raises(ValueError, match="rejected env_kwargs"):
        train(preset("debug", progress=False, env_kwargs={"colour": 3}), existing, overwrite=True)
    assert (existing / "notes.txt").read_text() == "mine"  # not ours to remove: it was there before
    with pytest.raises(ValueError, match=r"rejected env_kwargs \{'size': 8\} \(size must be odd"):
        train(preset("debug", progress=False, env_kwargs={"size": 8}), run)  # a value it refuses, not a name
    assert not run.exists()


def test_cli_refuses_zero_episodes_a_missing_device_and_unreadable_images(tmp_path):
    out = _cli("eval", str(tmp_path), "--episodes", "0", cwd=tmp_path)
    assert out.returncode == 2 and "--episodes: must be at least 1" in out.stderr
    out = _cli("eval", str(tmp_path), "--videos", "-1", cwd=tmp_path)
    assert out.returncode == 2 and "--videos: must be at least 0" in out.stderr
    if not torch.cuda.is_available():
        out = _cli("train", "--preset", "debug", "--set", "device=cuda", "--run-dir", str(tmp_path / "c"), cwd=tmp_path)
        assert out.returncode == 2 and "CUDA is not available" in out.stderr and "Traceback" not in out.stderr
    out = _cli("train", "--preset", "debug", "--set", "lr", cwd=tmp_path)
    assert out.returncode == 2 and "glamor train: error: --set takes NAME=VALUE" in out.stderr


@pytest.mark.parametrize("existed", [False, True])
def test_a_new_run_that_fails_before_its_first_checkpoint_leaves_room_for_the_corrected_one(tmp_path, existed):
    """A NaN loss in the first round: nothing to resume, so the run directory is as before (an
    empty folder the user made stays) and the corrected command needs no --overwrite."""
    run = tmp_path / "run"
    if existed:
        run.mkdir()
    bad = preset("debug", progress=False, learning_starts=0, lr=1e12, grad_clip=1e30)
    with pytest.raises(FloatingPointError, match="non-finite loss"):
        train(bad, run)
    assert run.exists() == existed and (not existed or not any(run.iterdir()))
    assert train(preset("debug", progress=False, total_env_steps=48, eval_episodes=2), run)["env_steps"] == 48


def test_cublas_config_set_after_cuda_started_is_warned_of(monkeypatch):
    """set_determinism set CUBLAS_WORKSPACE_CONFIG silently after CUDA had started (a notebook that
    used the GPU first), when cuBLAS, which reads it once, may already have chosen its workspace:
    torch then stops refusing the nondeterministic products it still makes."""
    import os
    import warnings

    from glamor.train import set_determinism

    cfg = preset("debug", deterministic=True)
    # (recorded first: monkeypatch.delenv of an unset variable records nothing, and the value kept
    # below, when CUDA started after it was set, outlived the test)
    monkeypatch.setenv("CUBLAS_WORKSPACE_CONFIG", "")
    for started_before, started_after, warned, kept in [(True, True, True, False), (False, True, False, True),
                                                        (False, False, False, False)]:
        monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
        monkeypatch.setattr(torch.cuda, "is_initialized", lambda s=started_before: s)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            put_back = set_determinism(cfg)
        monkeypatch.setattr(torch.cuda, "is_initialized", lambda s=started_after: s)
        put_back()
        said = [str(w.message) for w in caught if "CUBLAS_WORKSPACE_CONFIG" in str(w.message)]
        assert bool(said) == warned, (started_before, said)
        assert not said or "CUDA started in this process before CUBLAS_WORKSPACE_CONFIG was set" in said[0]
        # started with it set here: cuBLAS may be using it, and a later run in the process is not warned of it
        assert os.environ.get("CUBLAS_WORKSPACE_CONFIG") == (":4096:8" if kept else None), (started_before, started_after)
    monkeypatch.setenv("CUBLAS_WORKSPACE_CONFIG", ":16:8")  # the user's own, set before: nothing to warn of
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        set_determinism(cfg)()
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":16:8"


def test_training_and_evaluating_put_back_the_processes_torch_settings(tmp_path, monkeypatch):
    """train() and evaluate_checkpoint() with torch_threads / deterministic left the process on
    their thread count with deterministic algorithms on: a notebook that trained went on so (and
    with CUBLAS_WORKSPACE_CONFIG set, which the processes it starts later inherit)."""
    import os

    from glamor.train import evaluate_checkpoint

    cfg = preset("debug", progress=False, total_env_steps=48, learning_starts=24, eval_episodes=2,
                 eval_episodes_during_training=2, torch_threads=1, deterministic=True)
    seen = []

    def settings():
        return (torch.get_num_threads(), torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.benchmark,
                os.environ.get("CUBLAS_WORKSPACE_CONFIG"))

    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    outside = settings()  # (another test's leftovers, whatever they are, are put back after)
    torch.set_num_threads(3)
    torch.use_deterministic_algorithms(False)
    torch.backends.cudnn.benchmark = True
    try:
        train(cfg, tmp_path / "run", table=False)
        seen.append(settings())
        evaluate_checkpoint(tmp_path / "run", cfg, episodes=2)
        seen.append(settings())
        monkeypatch.setenv("CUBLAS_WORKSPACE_CONFIG", ":16:8")  # the user's own is kept (not past the test)
        train(cfg, tmp_path / "run2", table=False)
        seen.append(settings())
    finally:
        torch.set_num_threads(outside[0])
        torch.use_deterministic_algorithms(outside[1])
        torch.backends.cudnn.benchmark = outside[2]
    assert seen == [(3, False, True, None), (3, False, True, None), (3, False, True, ":16:8")]


def test_evaluate_checkpoint_refuses_fewer_than_one_episode_by_name(tmp_path):
    """evaluate_checkpoint(..., episodes=0) failed with a bare IndexError (no environment to
    build the model on); the command line's --episodes says it must be at least 1, and so does this."""
    from glamor.train import evaluate_checkpoint

    cfg = preset("debug", progress=False, total_env_steps=48, learning_starts=24, eval_episodes=2)
    train(cfg, tmp_path / "run", table=False)
    for episodes in (0, -3):
        with pytest.raises(ValueError, match=f"episodes must be at least 1, got {episodes}"):
            evaluate_checkpoint(tmp_path / "run", cfg, episodes=episodes)


def test_an_evaluation_due_on_the_last_round_is_the_final_one(tmp_path):
    """eval_every=48 over 192 steps evaluated at step 192 twice: a periodic evaluation, then the
    final one, two rows (and two TensorBoard points) at one step."""
    import csv

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cfg = preset("debug", progress=False, total_env_steps=192, learning_starts=24, eval_every=48, eval_episodes=4,
                 eval_episodes_during_training=2, torch_threads=1)
    train(cfg, tmp_path / "run", table=False)
    with open(tmp_path / "run" / "metrics.csv", newline="") as f:
        rows = [row for row in csv.DictReader(f) if row["eval/success_rate"]]
    assert [int(row["env_step"]) for row in rows] == [48, 96, 144, 192]
    events = EventAccumulator(str(tmp_path / "run" / "tb")).Reload()
    assert [e.step for e in events.Scalars("eval/success_rate")] == [48, 96, 144, 192]


def test_evaluations_and_snapshots_come_at_the_first_step_past_each_multiple_of_their_interval(tmp_path):
    """next_eval and next_snapshot advanced by one interval per round: rounds longer than the
    interval (full episodes) left them further and further behind, so when rounds got shorter
    (episodes ending early) they fired at every round until they caught up."""
    from tqdm.auto import tqdm

    from glamor.interrupt import StopRequest
    from glamor.logger import Logger

    cfg = preset("debug", progress=False, total_env_steps=120, learning_starts=10_000, eval_every=10,
                 snapshot_every=10, torch_threads=1)
    tr = Trainer(cfg, tmp_path)
    lengths = iter([24, 24, 24] + [4] * 12)  # full rounds, then rounds of episodes that end early
    evaluated, saved = [], []

    def collect_round():
        taken = next(lengths)
        tr.env_step += taken
        return taken

    tr.collect_round = collect_round
    tr.evaluate = lambda episodes, **kwargs: evaluated.append(tr.env_step) or {"success_rate": 0.0}
    tr.save = lambda logger=None: saved.append(tr.env_step)
    logger = Logger(tmp_path, tensorboard=False)
    try:
        tr._train_loop(logger, tqdm(total=cfg.total_env_steps, disable=True), StopRequest())
    finally:
        logger.close()
        tr.close()
    assert evaluated == [24, 48, 72, 80, 92, 100, 112]  # a multiple of 10 reached (120: the final evaluation's)
    assert saved == [24, 48, 72, 80, 92, 100, 112, 120]


def test_periodic_evaluations_of_more_goals_than_the_held_out_sets_hold_are_named(tmp_path):
    """eval_episodes_during_training above eval_episodes was clipped to eval_episodes without a
    word. A warning, not a config error: an evaluation changes eval_episodes alone (`glamor eval
    --episodes 4` of a run that evaluated 8 goals while training)."""
    import warnings

    cfg = preset("debug", progress=False, eval_every=24, eval_episodes=4, eval_episodes_during_training=8)
    with pytest.warns(RuntimeWarning, match=r"eval_episodes_during_training=8 .* eval_episodes=4"):
        tr = Trainer(cfg, tmp_path / "a")
    assert tr.evaluate(cfg.eval_episodes_during_training)["episodes"] == 4
    tr.close()
    with warnings.catch_warnings():  # no periodic evaluations: nothing to say
        warnings.simplefilter("error")
        Trainer(cfg.replace(eval_every=0), tmp_path / "b").close()


def test_evaluate_checkpoint_leaves_the_callers_random_states_as_they_were(tmp_path, monkeypatch):
    """evaluate_checkpoint() seeded torch with the run's seed and left it so: a notebook's next
    draws were the run's, not its own (also after an evaluation that failed)."""
    import random

    import glamor.train as train_module
    from glamor.train import evaluate_checkpoint

    cfg = preset("debug", progress=False, total_env_steps=48, learning_starts=24, eval_episodes=2, torch_threads=1)
    train(cfg, tmp_path / "run", table=False)

    def states():
        return torch.get_rng_state(), np.random.get_state(), random.getstate()

    def assert_unchanged(before):
        after = states()
        assert torch.equal(after[0], before[0])
        assert all(np.array_equal(a, b) for a, b in zip(after[1], before[1], strict=True))
        assert after[2] == before[2]

    torch.manual_seed(1234), np.random.seed(1234), random.seed(1234)
    before = states()
    evaluate_checkpoint(tmp_path / "run", cfg, episodes=2)
    assert_unchanged(before)

    def fails(*args, **kwargs):
        raise RuntimeError("evaluation failed")

    monkeypatch.setattr(train_module, "evaluate", fails)
    with pytest.raises(RuntimeError, match="evaluation failed"):
        evaluate_checkpoint(tmp_path / "run", cfg, episodes=2)
    assert_unchanged(before)


_CUDA_DRAWS = """
import sys, torch
from glamor.config import Config
from glamor.train import evaluate_checkpoint
torch.manual_seed(1234)  # before CUDA starts: torch holds the GPUs' seeds back until then
if sys.argv[1] == "evaluate":
    evaluate_checkpoint(sys.argv[2], Config.load(sys.argv[2] + "/config.json").replace(device="cuda"), episodes=2)
else:
    torch.cuda.init()
print(torch.rand(4, device="cuda").tolist())
"""


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_evaluate_checkpoint_that_starts_cuda_leaves_the_callers_gpu_draws(tmp_path):
    """The GPUs' random states were kept only when CUDA had started before the call: a
    notebook that seeded torch and evaluated first (the model's move starts CUDA) went on
    with GPU draws of the run's seed, not its own."""
    import subprocess
    import sys

    cfg = preset("debug", progress=False, total_env_steps=48, learning_starts=24, eval_episodes=2, device="cpu")
    train(cfg, tmp_path / "run", table=False)
    draws = [subprocess.run([sys.executable, "-c", _CUDA_DRAWS, how, str(tmp_path / "run")], capture_output=True,
                            text=True, check=True, timeout=300).stdout.splitlines()[-1] for how in ("evaluate", "init")]
    assert draws[0] == draws[1]


def test_the_logged_epsilon_is_the_one_the_round_before_the_log_acted_with(tmp_path):
    """charts/epsilon was the schedule's value at the step after the round, logged at that step,
    while the round had acted with the value at its start: one round's decay ahead."""
    import csv

    cfg = preset("debug", progress=False, total_env_steps=96, learning_starts=24, eps_decay_steps=400,
                 eval_episodes=2, torch_threads=1)
    tr = Trainer(cfg, tmp_path)
    used, epsilon_greedy = [], tr.agent.epsilon_greedy
    tr.agent.epsilon_greedy = lambda actions, epsilon: used.append(epsilon) or epsilon_greedy(actions, epsilon)
    tr.run()
    round_steps = cfg.num_envs * cfg.episode_length
    with open(tmp_path / "metrics.csv", newline="") as f:
        logged = {int(row["env_step"]): float(row["charts/epsilon"]) for row in csv.DictReader(f)
                  if row["charts/epsilon"]}
    assert list(logged) == [24, 48, 72, 96] and len(used) == 4  # after each round
    assert list(logged.values()) == pytest.approx([used[step // round_steps - 1] for step in logged], rel=1e-5)


@pytest.fixture
def made_envs(monkeypatch):
    """Every environment envs.make builds from here on, each with `closed` counting its closes."""
    from glamor import envs

    made, real_make = [], envs.make

    def make(*args, **kwargs):
        env = real_make(*args, **kwargs)
        env.closed, close = 0, env.close

        def counted():
            env.closed += 1
            close()

        env.close = counted
        made.append(env)
        return env

    monkeypatch.setattr(envs, "make", make)
    return made


def test_trainer_close_closes_every_environment_it_made_once(tmp_path, made_envs):
    """close() closed the pool but not `env` (the goals' and shapes'): a control task's MuJoCo
    model and GL context stayed held, one more per run in a process that trains several
    (glamor compare, a notebook)."""
    tr = Trainer(preset("debug", progress=False, num_envs=2), tmp_path)
    assert len(made_envs) == 3  # env + the pool's 2
    tr.close()
    tr.close()
    assert [e.closed for e in made_envs] == [1, 1, 1]


def test_a_trainer_that_fails_to_start_closes_every_environment_it_made(tmp_path, made_envs):
    bad = preset("debug", progress=False, num_envs=2, moved_sample_fraction=0.5)  # no box: refused once built
    with pytest.raises(ValueError, match="no objects that move"):
        Trainer(bad, tmp_path)
    assert len(made_envs) == 3 and [e.closed for e in made_envs] == [1, 1, 1]


def test_a_run_whose_logs_cannot_be_opened_closes_its_environments_and_torch_settings(tmp_path, made_envs):
    """run() opened the logs before the block that closes the trainer: a metrics.csv that cannot
    be written left the environments open and the process on the run's torch settings."""
    threads = torch.get_num_threads()
    tr = Trainer(preset("debug", progress=False, num_envs=2, torch_threads=threads + 1), tmp_path)
    (tmp_path / "metrics.csv").mkdir()  # cannot be replaced by a file
    with pytest.raises(OSError):
        tr.run()
    assert [e.closed for e in made_envs] == [1, 1, 1]
    assert torch.get_num_threads() == threads


def test_a_resume_that_fails_before_training_closes_its_environments(tmp_path, made_envs, monkeypatch):
    """A resume whose config.json could not be written (a full disk) after the trainer was built
    left its environments open."""
    from glamor.config import Config
    from glamor.train import resume

    run = tmp_path / "run"
    train(preset("debug", progress=False, total_env_steps=48, learning_starts=24, eval_episodes=2), run, table=False)
    made_envs.clear()

    def full_disk(self, path):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Config, "save", full_disk)
    with pytest.raises(OSError, match="No space left"):
        resume(run, total_env_steps=96, table=False)
    assert made_envs and [e.closed for e in made_envs] == [1] * len(made_envs)


def test_a_logger_whose_csv_cannot_be_opened_closes_its_tensorboard_writer(tmp_path):
    """The SummaryWriter was made first and left running (its thread and its event file open)
    when metrics.csv could not be written."""
    import threading

    from glamor.logger import Logger

    def event_files():
        return [f for f in os.listdir("/proc/self/fd")
                if "tfevents" in os.path.realpath(f"/proc/self/fd/{f}")]

    threads = threading.active_count()
    (tmp_path / "metrics.csv").mkdir()
    with pytest.raises(OSError):
        Logger(tmp_path)
    assert list((tmp_path / "tb").iterdir())  # it was made
    assert event_files() == [] and threading.active_count() == threads


def test_evaluation_environments_that_fail_to_build_close_the_ones_built(tmp_path, made_envs, monkeypatch):
    """make_envs (an evaluation's environments) built them in a list comprehension: when the
    i-th failed (a control task out of GL contexts), those before it stayed open."""
    from glamor import envs
    from glamor.train import eval_environments

    counting = envs.make

    def third_fails(*args, **kwargs):
        if len(made_envs) == 2:
            raise RuntimeError("cannot create a GL context")
        return counting(*args, **kwargs)

    monkeypatch.setattr(envs, "make", third_fails)
    with pytest.raises(RuntimeError, match="GL context"):
        with eval_environments(preset("debug", progress=False, eval_batch=4), 4):
            pass
    assert len(made_envs) == 2 and [e.closed for e in made_envs] == [1, 1]


def test_a_run_that_fails_reports_its_own_error_when_closing_an_environment_fails_too(tmp_path, made_envs):
    """An environment whose close raised in run()'s cleanup replaced the error that ended the
    run (here a non-finite loss) with its own."""
    tr = Trainer(preset("debug", progress=False, learning_starts=0, lr=1e12, grad_clip=1e30), tmp_path)

    def broken_close():
        raise RuntimeError("EGL context lost")

    made_envs[0].close = broken_close
    with pytest.warns(RuntimeWarning, match="closing the run's environments failed too.*EGL context lost"):
        with pytest.raises(FloatingPointError, match="non-finite loss"):
            tr.run()
    assert [e.closed for e in made_envs[1:]] == [1] * (len(made_envs) - 1)


def test_evaluate_checkpoint_without_cuda_leaves_the_seed_torch_holds_back_for_the_gpus(tmp_path):
    """A CPU evaluation (CUDA not started) seeded torch with torch.manual_seed, which also holds
    the run's seed back for the GPUs until CUDA starts: a notebook that had seeded torch, evaluated
    on the CPU and then drew on a GPU drew from the run's seed, not its own. Seen here through
    torch's queue of held-back seeds, on a machine without a GPU too."""
    import inspect

    from glamor.train import evaluate_checkpoint

    tracker = getattr(torch.cuda, "_lazy_seed_tracker", None)
    if tracker is None or not hasattr(tracker, "manual_seed_all_cb") or torch.cuda.is_initialized():
        pytest.skip("torch's held-back CUDA seeds are not observable here")
    cfg = preset("debug", progress=False, total_env_steps=48, learning_starts=24, eval_episodes=2, torch_threads=1,
                 device="cpu", seed=7)
    train(cfg, tmp_path / "run", table=False)

    def held_back_seed():
        return inspect.getclosurevars(tracker.manual_seed_all_cb[0]).nonlocals["seed"]

    torch.manual_seed(1234)
    evaluate_checkpoint(tmp_path / "run", cfg, episodes=2)
    assert held_back_seed() == 1234


@pytest.mark.parametrize("sets", [["total_env_steps=400"], ["embed_dim=32", "lstm_hidden=16"]])
def test_the_gpu_budget_note_is_left_out_for_a_run_made_small(monkeypatch, capsys, tmp_path, sets):
    """`--preset atari --set total_env_steps=400` (a smoke test) was told it was '400 environment
    steps and 8 updates of the full-size model ... (many hours in all)', and a run with a smaller
    model that its updates were the full-size model's: the note is for a run that takes hours."""
    import glamor.train
    from glamor.cli import main

    monkeypatch.setattr(glamor.train, "train", lambda cfg, run_dir, overwrite=False, **kw: None)
    argv = [a for s in sets for a in ("--set", s)]
    assert main(["train", "--preset", "atari", *argv, "--set", "device=cpu", "--run-dir", str(tmp_path / "a")]) == 0
    assert "GPU budget" not in capsys.readouterr().err
