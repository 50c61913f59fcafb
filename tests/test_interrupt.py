"""Ctrl-C and SIGTERM during training: the first signal finishes the round, writes a checkpoint
and exits with 128 + the signal's number; the resumed run ends exactly like an uninterrupted one."""

import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest
from test_resume import _assert_same_run, _final_state, subprocess_env

from glamor import checkpoint
from glamor.interrupt import StopRequest, TrainingInterrupted, stop_on_signal


def _wait_for(condition, timeout=5.0):
    end = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.01)


@pytest.fixture
def sigint_default():
    """SIGINT as in an interactive Python (a background job inherits it ignored)."""
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, before)


def test_the_first_signal_asks_and_a_later_one_interrupts(sigint_default):
    with stop_on_signal(same_within=0.2) as request:
        assert not request and signal.getsignal(signal.SIGINT) is not signal.default_int_handler
        os.kill(os.getpid(), signal.SIGINT)
        _wait_for(lambda: request)
        assert request.signum == signal.SIGINT
        os.kill(os.getpid(), signal.SIGINT)  # within same_within: the same stop, forwarded
        time.sleep(0.25)  # no KeyboardInterrupt, and now past the window
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(5)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_sigterm_is_a_stop_request_and_the_previous_handler_comes_back():
    seen = []
    before = signal.signal(signal.SIGTERM, lambda signum, frame: seen.append(signum))
    try:
        with stop_on_signal(same_within=0.0) as request:
            os.kill(os.getpid(), signal.SIGTERM)
            _wait_for(lambda: request)
            assert request.signum == signal.SIGTERM and seen == []
            os.kill(os.getpid(), signal.SIGTERM)  # the second: the previous handler's turn
            _wait_for(lambda: seen)
        assert seen == [signal.SIGTERM]
        os.kill(os.getpid(), signal.SIGTERM)
        _wait_for(lambda: len(seen) == 2)
    finally:
        signal.signal(signal.SIGTERM, before)


def test_a_later_signal_puts_back_only_the_handlers_it_replaced(sigint_default, monkeypatch):
    """A signal whose handler Python did not install (getsignal: None, e.g. one set by C code) is
    left alone; the second Ctrl-C put "back" None for it too, which signal.signal refuses: a
    TypeError in place of the KeyboardInterrupt."""
    real = signal.getsignal
    monkeypatch.setattr(signal, "getsignal", lambda s: None if s == signal.SIGTERM else real(s))
    with stop_on_signal(same_within=0.0) as request:
        os.kill(os.getpid(), signal.SIGINT)
        _wait_for(lambda: request)
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(5)


def test_an_ignored_signal_stays_ignored(sigint_default):
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    with stop_on_signal() as request:
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.1)
        assert not request
    assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN


@pytest.mark.parametrize("error", [OSError(5, "Input/output error"), BrokenPipeError(32, "Broken pipe"),
                                   ValueError("I/O operation on closed file.")])
def test_a_stop_request_is_taken_when_stderr_cannot_be_written(monkeypatch, error):
    """The handler's note went to stderr unguarded: with stderr gone (the terminal of a disowned
    run closed, `2>&1 | tee` whose tee a Ctrl-C ended) its error was raised wherever the loop was,
    ending training without the checkpoint the stop was to write."""
    class Gone:
        def write(self, text):
            raise error

        def flush(self):
            raise error

    monkeypatch.setattr(sys, "stderr", Gone())
    with stop_on_signal() as request:
        os.kill(os.getpid(), signal.SIGTERM)
        _wait_for(lambda: request)
    assert request.signum == signal.SIGTERM


def test_outside_the_main_thread_nothing_is_installed():
    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    got = []

    def run():
        with stop_on_signal() as request:
            got.append((request, {s: signal.getsignal(s) for s in handlers}))

    t = threading.Thread(target=run)
    t.start()
    t.join()
    request, inside = got[0]
    assert isinstance(request, StopRequest) and not request and inside == handlers


def test_interrupted_names_the_resume_command_and_the_exit_status(tmp_path):
    e = TrainingInterrupted(signal.SIGTERM, 12_345, tmp_path / "run")
    assert isinstance(e, KeyboardInterrupt) and e.exit_status == 143
    assert "SIGTERM" in str(e) and "12,345" in str(e) and f"glamor train --resume {tmp_path / 'run'}" in str(e)


def _train_args(run, total):
    return ["train", "--preset", "debug", "--run-dir", str(run), "--set", "deterministic=true",
            "--set", "progress=false", "--set", f"total_env_steps={total}", "--set", "snapshot_every=100000",
            "--set", "eval_episodes=4", "--set", "vector=async", "--set", "num_envs=2"]


def _glamor(*args, cwd):
    """A glamor process in its own process group, SIGINT at its default (a terminal's Ctrl-C
    reaches the whole group: the trainer and its environment workers)."""
    return subprocess.Popen([sys.executable, "-m", "glamor", *args], cwd=cwd, env=subprocess_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


# (Ctrl-C takes SIGTERM's path through stop_on_signal, whose handling of each signal the tests
# above check on their own; its whole run is in the slow set, to keep the default run short)
@pytest.mark.parametrize("signum", [pytest.param(signal.SIGINT, id="ctrl-c", marks=pytest.mark.slow),
                                    pytest.param(signal.SIGTERM, id="sigterm")])
def test_a_signal_saves_a_checkpoint_and_the_resumed_run_ends_like_an_uninterrupted_one(tmp_path, signum):
    total = 960
    ref = tmp_path / "reference"
    p = _glamor(*_train_args(ref, total), cwd=tmp_path)
    assert p.wait(timeout=300) == 0, p.stderr.read()

    run = tmp_path / "interrupted"
    p = _glamor(*_train_args(run, total), cwd=tmp_path)
    metrics = run / "metrics.csv"
    # mid-run: once the first rows are logged (no periodic checkpoint comes before the end)
    _wait_for(lambda: p.poll() is not None or (metrics.exists() and len(metrics.read_text().splitlines()) > 2),
              timeout=120)
    assert p.poll() is None, "the run ended before it could be interrupted"
    os.killpg(p.pid, signum)
    assert p.wait(timeout=120) == 128 + signum
    err = p.stderr.read()
    assert f"glamor train --resume {run}" in err and "Traceback" not in err, err
    saved = checkpoint.load_latest(run, with_replay=False)
    assert saved is not None and 0 < saved["env_step"] < total
    assert saved["trainer"]["worker_restarts"] == 0, "the workers ignore the group's signal; the trainer stops them"
    assert not (run / "eval.json").exists()

    p = _glamor("train", "--resume", str(run), cwd=tmp_path)
    assert p.wait(timeout=300) == 0, p.stderr.read()
    _assert_same_run(_final_state(run), _final_state(ref))
    steps = [[line.split(",")[0] for line in (r / "metrics.csv").read_text().splitlines()] for r in (run, ref)]
    assert steps[0] == steps[1], "the resumed run logs the same rows as the uninterrupted one"


def test_a_signal_during_the_last_checkpoint_skips_the_evaluation(tmp_path, sigint_default):
    from glamor.config import preset
    from glamor.train import Trainer

    cfg = preset("debug", progress=False, total_env_steps=48, learning_starts=0, snapshot_every=100_000, eval_every=0,
                 eval_episodes=4)
    tr = Trainer(cfg, tmp_path)
    save = tr.save

    def save_then_ctrl_c(logger=None):
        save(logger)
        if tr.env_step >= cfg.total_env_steps:  # the checkpoint after the last round
            os.kill(os.getpid(), signal.SIGINT)

    tr.save = save_then_ctrl_c
    with pytest.raises(TrainingInterrupted) as e:
        tr.run()
    assert e.value.env_step == 48 and checkpoint.load_latest(tmp_path, with_replay=False)["env_step"] == 48
    assert not (tmp_path / "eval.json").exists(), "the evaluation did not run after the Ctrl-C"


def test_a_signal_during_the_last_checkpoint_names_the_runs_own_resume_command(tmp_path, sigint_default):
    """The stop that came during the last checkpoint named `glamor train --resume` whatever the
    run: under torchrun that resumes in one process, from rank 0's part alone (a round's stop
    names the trainer's own command, `torchrun --nproc-per-node W ...`)."""
    from glamor.config import preset
    from glamor.train import Trainer

    cfg = preset("debug", progress=False, total_env_steps=48, learning_starts=0, snapshot_every=100_000, eval_every=0,
                 eval_episodes=4)
    tr = Trainer(cfg, tmp_path)
    save = tr.save
    tr.resume_command = lambda: f"torchrun --nproc-per-node 2 -m glamor train --resume {tmp_path}"

    def save_then_ctrl_c(logger=None):
        save(logger)
        if tr.env_step >= cfg.total_env_steps:  # the checkpoint after the last round
            os.kill(os.getpid(), signal.SIGINT)

    tr.save = save_then_ctrl_c
    with pytest.raises(TrainingInterrupted, match=f"`torchrun --nproc-per-node 2 -m glamor train --resume {tmp_path}`"):
        tr.run()



def _owed_evaluation_config(**changes):
    from glamor.config import preset

    return preset("debug", **{**dict(progress=False, total_env_steps=96, learning_starts=0, eval_every=48,
                                     snapshot_every=100_000, eval_episodes=4, eval_episodes_during_training=4,
                                     deterministic=True), **changes})


def _stopped_in_its_periodic_evaluation(cfg, run, monkeypatch) -> list:
    """Train `cfg` in `run` with a Ctrl-C at the first step of the random policy, which the
    periodic evaluation at step 48 runs last (GLAMOR's two policies are evaluated by then); returns
    the calls of that policy's draws (one: the evaluation was given up at its next step)."""
    calls, e = _ctrl_c_at_the_first_random_step(cfg, run, monkeypatch)
    assert e.env_step == 48
    return calls


def _ctrl_c_at_the_first_random_step(cfg, run, monkeypatch) -> tuple[list, TrainingInterrupted]:
    """Train `cfg` in `run` with a Ctrl-C at the first step of the random policy (an evaluation's
    last); returns the calls of that policy's draws and the TrainingInterrupted raised."""
    from glamor import evaluate as evaluation
    from glamor.train import train

    random_actions, calls = evaluation.random_actions, []

    def ctrl_c_at_the_first_random_step(*args):
        calls.append(len(calls))
        if len(calls) == 1:
            os.kill(os.getpid(), signal.SIGINT)
        return random_actions(*args)

    monkeypatch.setattr(evaluation, "random_actions", ctrl_c_at_the_first_random_step)
    try:
        with pytest.raises(KeyboardInterrupt) as e:  # (a bare one fails the test, not the session)
            train(cfg, run, table=False)
    finally:
        monkeypatch.setattr(evaluation, "random_actions", random_actions)
    assert isinstance(e.value, TrainingInterrupted), f"stopped at once: {e.value!r}"
    return calls, e.value


def _eval_rows(run) -> list[tuple]:
    """(env_step, the eval/ columns) of every metrics.csv row: which rows, in order, and their numbers."""
    import csv

    with open(run / "metrics.csv", newline="") as f:
        return [(row["env_step"], *(v for k, v in row.items() if k.startswith("eval/"))) for row in csv.DictReader(f)]


def test_a_signal_during_a_periodic_evaluation_gives_it_up_and_the_resumed_run_evaluates_first(
        tmp_path, sigint_default, monkeypatch):
    """A periodic evaluation takes minutes for Atari or control on a CPU, longer than torchrun or
    a scheduler waits after its signal: a stop during one gives it up at its next step and saves
    (its step's evaluation still owed); the resumed run evaluates first and ends like the
    uninterrupted one, with the same rows and numbers."""
    from glamor.train import resume, train

    cfg = _owed_evaluation_config()
    train(cfg, tmp_path / "reference", table=False)
    run = tmp_path / "interrupted"
    assert _stopped_in_its_periodic_evaluation(cfg, run, monkeypatch) == [0], \
        "the evaluation was given up at its next step, not finished"
    saved = checkpoint.load_latest(run, with_replay=False)
    assert saved["env_step"] == 48 and saved["trainer"]["next_eval"] == 48, "the evaluation is still owed"

    resume(run, table=False)
    _assert_same_run(_final_state(run), _final_state(tmp_path / "reference"))
    assert _eval_rows(run) == _eval_rows(tmp_path / "reference")
    assert any(step == "48" and any(v for v in rest) for step, *rest in _eval_rows(run)), \
        "step 48's evaluation is logged"


def test_an_owed_evaluation_done_by_a_resume_that_then_crashed_is_logged_once(tmp_path, sigint_default, monkeypatch):
    """A resume's owed evaluation logs its row after the checkpoint at its step. When that resume
    died before its next checkpoint (kill -9, out of memory) and the interrupted run was then
    evaluated (`glamor eval`: an eval.json of that step), the next resume took the run for one
    whose final evaluation is at that step (`Logger`'s evaluated), kept the dead process's row,
    and then did the owed evaluation again: two evaluation rows at one step. TensorBoard kept the
    dead process's points at that step (purged from the next one) beside the new ones."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from glamor import train as train_module
    from glamor.results import write_results
    from glamor.train import evaluate_checkpoint, resume, train

    cfg = _owed_evaluation_config()
    train(cfg, tmp_path / "reference", table=False)
    run = tmp_path / "interrupted"
    _stopped_in_its_periodic_evaluation(cfg, run, monkeypatch)

    def killed(self):  # the resume dies in its first round, after the owed evaluation
        raise MemoryError("killed")

    monkeypatch.setattr(train_module.Trainer, "collect_round", killed)
    with pytest.raises(MemoryError):
        resume(run, table=False)
    monkeypatch.undo()
    write_results(run, evaluate_checkpoint(run, cfg, episodes=4))  # `glamor eval` of the interrupted run
    time.sleep(1.01 - time.time() % 1)  # (TensorBoard reads event files in the order of their names: their second)
    resume(run, table=False)
    assert _eval_rows(run) == _eval_rows(tmp_path / "reference")
    # TensorBoard too: the dead resume's evaluation points at step 48 went with its row
    events = EventAccumulator(str(run / "tb")).Reload()
    assert [(str(e.step), f"{e.value:.6g}") for e in events.Scalars("eval/success_rate")] == \
        [(step, rate) for step, rate, *_ in _eval_rows(tmp_path / "reference") if rate]


def test_a_run_cut_to_the_step_of_its_owed_evaluation_and_then_extended_evaluates_that_step_once(
        tmp_path, sigint_default, monkeypatch):
    """A run stopped during its periodic evaluation at step 48 and resumed with --total-env-steps 48
    ends there with its final evaluation, which stands for that step's (as in a run of 48 steps):
    its checkpoint still owed the periodic one, so extending it evaluated step 48 again, logged
    beside the final evaluation's row."""
    from glamor.train import resume, train

    cfg = _owed_evaluation_config(eval_episodes=8)
    reference = tmp_path / "reference"
    train(cfg.replace(total_env_steps=48), reference, table=False)
    resume(reference, total_env_steps=96, table=False)
    run = tmp_path / "interrupted"
    _stopped_in_its_periodic_evaluation(cfg, run, monkeypatch)
    resume(run, total_env_steps=48, table=False)
    resume(run, total_env_steps=96, table=False)
    _assert_same_run(_final_state(run), _final_state(reference))
    assert _eval_rows(run) == _eval_rows(reference)


def test_a_signal_during_the_final_evaluation_gives_it_up_and_the_resume_evaluates(tmp_path, sigint_default,
                                                                                   monkeypatch, capsys):
    """The final evaluation ran outside the loop's stop_on_signal: a Ctrl-C there was a bare
    KeyboardInterrupt out of train() and a SIGTERM (a scheduler's preemption) killed a Python caller
    outright, minutes of Atari or control evaluation being longer than torchrun or a scheduler waits.
    It is now given up at its next step, as a periodic one: TrainingInterrupted says the training
    is saved and names the resume, which evaluates and ends like the uninterrupted run."""
    from glamor.train import resume, train

    cfg = _owed_evaluation_config(eval_every=0)  # (no periodic evaluation: the first random step is the final one's)
    train(cfg, tmp_path / "reference", table=False)
    run = tmp_path / "interrupted"
    calls, e = _ctrl_c_at_the_first_random_step(cfg, run, monkeypatch)
    assert calls == [0], "the final evaluation was given up at its next step, not finished"
    assert e.final_evaluation and e.env_step == 96 and e.exit_status == 130
    assert f"gave up the final evaluation; the training is finished (96 environment steps) and saved in {run}, and " \
           f"`glamor train --resume {run}` evaluates it" in str(e)
    assert checkpoint.load_latest(run, with_replay=False)["env_step"] == 96 and not (run / "eval.json").exists()
    said = capsys.readouterr().err  # (a second signal loses no steps here: the training was saved)
    assert "SIGINT received: giving up the final evaluation" in said
    assert "send it again to stop at once, the training stays saved)" in said

    def outcomes(results):  # (each policy's numbers but its planning speed, a timing)
        return results["env_steps"], {name: {policy: {k: v for k, v in numbers.items() if k != "plans_per_s"}
                                             for policy, numbers in row.items() if policy != "goal_digest"}
                                      for name, row in results["sets"].items()}

    results = resume(run, table=False)
    assert outcomes(results) == outcomes(json.loads((tmp_path / "reference" / "eval.json").read_text()))
    assert _eval_rows(run) == _eval_rows(tmp_path / "reference")
