"""The run directory: one training process at a time (glamor.run_lock), --overwrite replaces only
a run, and what a resume refuses to start over on top of."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest
import torch

from glamor import checkpoint
from glamor.config import preset
from glamor.run_dir import prepare_run_dir
from glamor.run_lock import LOCK_NAME, RunInUse, RunLock, holding
from glamor.train import resume, train

QUIET = dict(progress=False, total_env_steps=240, eval_episodes=4)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    run = tmp_path_factory.mktemp("rundir") / "run"
    train(preset("debug", **QUIET), run)
    return run


def _copy(run, tmp_path, name="copy"):
    return Path(shutil.copytree(run, tmp_path / name))


def _cli(*args, cwd):
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "glamor", *args], cwd=cwd, capture_output=True, text=True,
                          env=env, timeout=300)


def test_a_run_another_process_trains_is_refused_by_its_pid(run, tmp_path):
    """Two commands on one run interleaved their checkpoints, metrics and config (before: both
    ran, and the run kept one's checkpoints and the other's total_env_steps)."""
    copy = _copy(run, tmp_path)
    before = {p.name: p.read_bytes() for p in copy.iterdir() if p.is_file() and p.name != LOCK_NAME}
    holder = RunLock()
    holder.acquire(copy)  # this test's process trains it, as far as anyone else can tell
    try:
        for command in (["train", "--resume", str(copy), "--total-env-steps", "480"],
                        ["train", "--preset", "debug", "--run-dir", str(copy), "--overwrite"]):
            out = _cli(*command, cwd=tmp_path)
            assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr[-2000:]
            assert f"run directory {copy} is in use: process {os.getpid()} is training it" in out.stderr, out.stderr
        with pytest.raises(RunInUse, match="is in use"):  # in Python too (a second lock in one process)
            resume(copy, total_env_steps=480)
    finally:
        holder.release()
    after = {p.name: p.read_bytes() for p in copy.iterdir() if p.is_file() and p.name != LOCK_NAME}
    assert after == before, "a refused command changed nothing"
    assert not list(tmp_path.glob(".copy.replaced-*")), "the refused overwrite moved nothing aside"
    resume(copy, total_env_steps=240)  # released: the run is the user's again (finished: returns its results)


def test_a_finished_training_releases_its_run(tmp_path):
    run = tmp_path / "r"
    train(preset("debug", **QUIET), run)
    lock = RunLock()
    lock.acquire(run)  # would raise RunInUse if train() still held it
    lock.release()


def test_overwrite_replaces_only_a_run(run, tmp_path):
    """--overwrite of a folder of runs, or of a folder of other files, deleted all of it once
    the new run saved its first checkpoint."""
    runs = tmp_path / "runs"
    _copy(run, runs, "a")
    (runs / "notes.txt").write_text("important")
    with pytest.raises(FileExistsError, match=r"--overwrite would delete .*runs, which holds other runs \(a\)"):
        prepare_run_dir(runs, overwrite=True)
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("important")
    with pytest.raises(FileExistsError, match=r"is not a glamor run \(it holds notes.txt\): name a new or empty"):
        prepare_run_dir(other, overwrite=False)
    with pytest.raises(FileExistsError, match=r"--overwrite replaces a glamor run, and .*other is not one"):
        prepare_run_dir(other, overwrite=True)
    assert (runs / "notes.txt").read_text() == "important" and (runs / "a" / "config.json").exists()
    assert (other / "notes.txt").read_text() == "important"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other", "runs"], "nothing moved aside"
    with pytest.raises(FileExistsError, match=r"not empty; pass --overwrite to replace it"):
        prepare_run_dir(runs / "a", overwrite=False)  # a run: the advice to overwrite or resume stays
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / LOCK_NAME).touch()  # a lock file alone (a run removed by hand around it) is an empty folder
    assert prepare_run_dir(empty, overwrite=False) == (empty, None)


def test_empty_paths_are_refused_not_defaulted(tmp_path):
    """`--resume "$RUN"` with RUN unset started a fresh default run in runs/gridworld-seed0."""
    for args in (["train", "--resume", ""], ["train", "--preset", "debug", "--run-dir", ""], ["eval", ""]):
        out = _cli(*args, cwd=tmp_path)
        assert out.returncode == 2 and "empty path" in out.stderr, out.stderr[-1000:]
    assert list(tmp_path.iterdir()) == [], "nothing was written"
    with pytest.raises(ValueError, match="empty path"):
        prepare_run_dir("", overwrite=True)


def test_a_finished_run_without_its_checkpoints_is_not_started_over(run, tmp_path):
    """Its checkpoints deleted, a finished run's resume warned 'no checkpoint yet' and trained
    from scratch, replacing its metrics.csv and eval.json."""
    copy = _copy(run, tmp_path)
    for p in copy.glob("*.pt"):
        p.unlink()
    results = (copy / "eval.json").read_bytes()
    with pytest.raises(ValueError, match=r"has results \(eval.json\) but no checkpoint to resume from"):
        resume(copy)
    assert (copy / "eval.json").read_bytes() == results


def test_a_checkpoint_with_a_damaged_optimiser_state_falls_back_to_the_previous(run, tmp_path):
    """torch.load does not check the file's CRCs: flipped bytes in the optimiser's moments loaded,
    and the resumed run died updates later with 'non-finite loss (try a lower lr)'."""
    copy = _copy(run, tmp_path)
    shutil.copy(copy / checkpoint.CHECKPOINT, copy / checkpoint.PREVIOUS)
    state = torch.load(copy / checkpoint.CHECKPOINT, weights_only=False)
    moments = next(iter(state["optimizer"]["state"].values()))
    moments["exp_avg_sq"].view(-1)[0] = -1.0
    torch.save(state, copy / checkpoint.CHECKPOINT)
    with pytest.warns(UserWarning, match=r"checkpoint.pt is damaged: its optimiser state \(exp_avg_sq .*using "
                                         r"checkpoint.prev.pt"):
        got = checkpoint.load_latest(copy)
    assert got["path"].endswith(checkpoint.PREVIOUS)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert checkpoint.load_latest(copy, with_replay=False)["path"].endswith(checkpoint.CHECKPOINT)  # eval, plan


def test_an_unwritable_goal_cache_is_warned_about_and_training_goes_on(tmp_path, monkeypatch):
    (tmp_path / "afile").write_text("x")
    monkeypatch.setenv("GLAMOR_CACHE", str(tmp_path / "afile"))  # its goals/ folder cannot be made
    with pytest.warns(RuntimeWarning, match=r"cannot write the goal cache .*afile/goals/.*set GLAMOR_CACHE"):
        results = train(preset("debug", **QUIET), tmp_path / "r")
    assert results["episodes"] > 0


def test_an_image_too_large_to_open_is_named(run, tmp_path):
    from PIL import Image

    big = tmp_path / "big.png"
    Image.new("L", (1, 1)).save(big)
    small = tmp_path / "small.png"
    Image.new("L", (8, 8)).save(small)
    limit = Image.MAX_IMAGE_PIXELS
    try:
        from glamor.cli import load_gray

        Image.MAX_IMAGE_PIXELS = 0.4  # a 1-pixel image is over twice the limit: PIL refuses it
        with pytest.raises(ValueError, match=r"cannot read image .*big.png: .*exceeds limit"):
            load_gray(str(big), (8, 8))
    finally:
        Image.MAX_IMAGE_PIXELS = limit
    assert load_gray(str(small), (8, 8)).shape == (8, 8)


def test_eval_into_a_folder_it_cannot_write_is_refused_before_it_evaluates(run, tmp_path, monkeypatch, capsys):
    """A read-only run folder failed after the whole evaluation, naming a temporary file."""
    from glamor import cli, files

    assert files.can_write(tmp_path) and not files.can_write("/proc") and list(tmp_path.iterdir()) == []
    monkeypatch.setattr(files, "can_write", lambda path: Path(path) != run)  # run: as if read-only
    monkeypatch.setattr("glamor.train.evaluate_checkpoint", lambda *a, **k: pytest.fail("evaluated"))
    assert cli.main(["eval", str(run)]) == 2
    assert f"cannot write the evaluation's results in {run}: the folder is not writable" in capsys.readouterr().err


def test_a_ctrl_c_that_reaches_the_command_line_names_the_resume(run, tmp_path, monkeypatch, capsys):
    """The training loop's own stop (and the final evaluation's) names the resume; a Ctrl-C that
    reaches the command line (a second one, or one at start-up) printed only 'interrupted'."""
    from glamor import cli

    copy = _copy(run, tmp_path)

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("glamor.train.resume", interrupted)
    assert cli.main(["train", "--resume", str(copy)]) == 130
    assert f"interrupted; `glamor train --resume {copy}` goes on from its last checkpoint" in capsys.readouterr().err
    (copy / checkpoint.CHECKPOINT).replace(copy / checkpoint.PREVIOUS)  # a kill between a save's renames
    assert cli.main(["train", "--resume", str(copy)]) == 130  # resume falls back to checkpoint.prev.pt
    assert f"interrupted; `glamor train --resume {copy}` goes on from its last checkpoint" in capsys.readouterr().err
    (copy / checkpoint.PREVIOUS).unlink()  # nothing to go on from: no advice
    assert cli.main(["train", "--resume", str(copy)]) == 130
    assert capsys.readouterr().err.strip() == "glamor train: interrupted"


def test_a_ctrl_c_that_reaches_the_command_line_under_torchrun_names_the_torchrun_resume(tmp_path, monkeypatch):
    """The command line's hint named `glamor train --resume` under torchrun too, which goes on in one
    process from rank 0's part alone (the training loop's own stop names the torchrun command)."""
    from glamor import cli

    (tmp_path / checkpoint.CHECKPOINT).write_bytes(b"")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    with pytest.raises(KeyboardInterrupt) as e:
        with cli._resume_hints(str(tmp_path)):
            raise KeyboardInterrupt
    assert e.value.hint == (f"`torchrun --nproc-per-node 2 -m glamor train --resume {tmp_path}` goes on from its "
                            f"last checkpoint")


def test_a_total_below_one_collection_round_is_warned_about(tmp_path):
    """--total-env-steps 120 with 1,000 environments trained 6,000 steps without a word."""
    from glamor.train import Trainer

    cfg = preset("debug", progress=False, total_env_steps=10, learning_starts=0)
    with pytest.warns(RuntimeWarning, match=rf"total_env_steps=10 is less than one collection round \({cfg.num_envs} "
                                            rf"environments x episode_length {cfg.episode_length} = "):
        Trainer(cfg, tmp_path).close()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a total of whole rounds: no warning
        Trainer(preset("debug", progress=False), tmp_path).close()


def test_a_replay_larger_than_the_memory_left_is_warned_about_at_the_start(tmp_path, monkeypatch):
    """numpy's zeros take memory only as the replay fills, so a replay_capacity beyond the
    machine's memory ran for hours and was then killed; the start now says so."""
    from glamor import sysinfo
    from glamor.train import Trainer

    cfg = preset("debug", progress=False)  # 4,000 frames of 14x14 (about 0.9 MB with the bookkeeping)
    monkeypatch.setattr(sysinfo, "available_memory", lambda: 500_000)
    with pytest.warns(RuntimeWarning, match=r"the replay takes 0\.0 GiB when full \(replay_capacity=4,000 frames of "
                                            r"14x14\) but this machine has 0\.0 GiB available: the run would be killed"):
        Trainer(cfg, tmp_path).close()
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")  # each process on this machine holds its own replay
    with pytest.warns(RuntimeWarning, match=r"frames of 14x14 each, x 2 processes\)"):
        Trainer(cfg, tmp_path).close()
    monkeypatch.delenv("LOCAL_WORLD_SIZE")
    for available in (10**9, None):  # enough, or not known: no warning
        monkeypatch.setattr(sysinfo, "available_memory", lambda available=available: available)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            Trainer(cfg, tmp_path).close()


def test_a_full_disk_at_the_start_of_an_overwrite_puts_the_old_run_back(run, tmp_path, monkeypatch, capsys):
    """--overwrite moved the old run aside, then writing config.json failed (a full disk): the run
    folder was left empty and the old run hidden in .RUN.replaced-PID, named nowhere."""
    from glamor.config import Config

    copy = _copy(run, tmp_path)
    before = {p.name: p.read_bytes() for p in copy.iterdir() if p.is_file()}

    def full(self, path):
        Path(path).write_bytes(b"{")  # a partial write, then the disk is full
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Config, "save", full)
    with pytest.raises(OSError, match="No space left"):
        train(preset("debug", **QUIET), copy, overwrite=True)
    assert f"the new run could not start; {copy} holds the run it was replacing again" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in copy.iterdir() if p.is_file()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["copy"], "nothing left aside"
    fresh = tmp_path / "fresh"
    with pytest.raises(OSError, match="No space left"):
        train(preset("debug", **QUIET), fresh)
    assert not fresh.exists(), "a new run that could not start leaves no folder to block the next try"


@pytest.mark.parametrize("failing", ["the new folder", "its lock file"])
def test_a_full_disk_making_the_new_folder_of_an_overwrite_puts_the_old_run_back(run, tmp_path, monkeypatch, failing):
    """--overwrite moved the old run aside, then making the new folder or its lock file failed (a
    full disk: both need room): the old run was left hidden in .RUN.replaced-PID and RUN was gone."""
    import errno

    copy = _copy(run, tmp_path)
    before = {p.name: p.read_bytes() for p in copy.iterdir() if p.is_file()}
    real_mkdir, real_acquire = Path.mkdir, RunLock.acquire

    def mkdir(self, *args, **kwargs):
        if self == copy or self.name.startswith(".copy.replaced-"):  # (made beside it, then swapped in)
            raise OSError(errno.ENOSPC, "No space left on device", str(self))
        return real_mkdir(self, *args, **kwargs)

    def acquire(self, run_dir):
        if not (Path(run_dir) / "config.json").exists():  # the new, empty folder's
            raise OSError(errno.ENOSPC, "No space left on device", str(Path(run_dir) / LOCK_NAME))
        return real_acquire(self, run_dir)

    if failing == "the new folder":
        monkeypatch.setattr(Path, "mkdir", mkdir)
    else:
        monkeypatch.setattr(RunLock, "acquire", acquire)
    with pytest.raises(OSError, match="No space left"):
        train(preset("debug", **QUIET), copy, overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["copy"], "nothing left aside"
    assert {p.name: p.read_bytes() for p in copy.iterdir() if p.is_file()} == before


def test_a_lock_file_that_cannot_be_removed_is_released_without_an_error(tmp_path, monkeypatch):
    """Releasing the lock of a run folder made read-only raised PermissionError from the final
    clean-up, which replaced the error that had ended the run."""
    lock = RunLock()
    lock.acquire(tmp_path)

    def refused(self, missing_ok=False):
        raise PermissionError(13, "Permission denied", str(self))

    with monkeypatch.context() as m:
        m.setattr(Path, "unlink", refused)
        lock.release()
    assert not lock.held and (tmp_path / LOCK_NAME).exists()  # left behind, locking nothing:
    again = RunLock()
    again.acquire(tmp_path)
    again.release()
    assert not (tmp_path / LOCK_NAME).exists()


def test_a_first_checkpoint_that_cannot_be_written_does_not_promise_a_resume(tmp_path, monkeypatch, capsys):
    """Its message said 'the previous checkpoint is kept and glamor train --resume continues from
    it' for a new run that had none, whose folder was then removed."""
    import numpy as np

    def full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "savez_compressed", full)
    run_dir = tmp_path / "new"
    with pytest.raises(OSError, match=r"writing the first checkpoint in .*new failed \(.*No space left on device\); "
                                      r"there is no checkpoint to resume from$"):
        train(preset("debug", **QUIET), run_dir)
    assert f"the new run failed before its first checkpoint; removed {run_dir}" in capsys.readouterr().err
    assert not run_dir.exists()


def test_an_overwrite_past_an_aside_left_by_an_earlier_process_of_the_same_pid(tmp_path):
    """In a container glamor may be PID 1 every time: an aside a killed --overwrite left, named by
    that PID, made the next --overwrite fail ('Directory not empty') and was never warned about,
    since its PID (ours) is alive."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text("{}")
    stale = tmp_path / f".run.replaced-{os.getpid()}"
    stale.mkdir()
    (stale / "config.json").write_text('{"old": 1}')
    with pytest.warns(RuntimeWarning, match=rf"replaced-{os.getpid()} holds the run an interrupted `--overwrite`"):
        made, aside = prepare_run_dir(run, overwrite=True)
    assert made == run and aside == tmp_path / f".run.replaced-1-{os.getpid()}"
    assert (aside / "config.json").read_text() == "{}" and (stale / "config.json").read_text() == '{"old": 1}'


def test_a_deletion_of_the_replaced_run_cut_short_is_not_offered_for_restoring(tmp_path, monkeypatch):
    """A second Ctrl-C (or a kill) while settle_start deleted the replaced run left it half-deleted
    under .NAME.replaced-PID, and the next command offered to restore it (`mv ... RUN`)."""
    import glamor.run_dir as run_dir_module

    run = tmp_path / "run"
    run.mkdir()
    for name in ("config.json", "checkpoint.pt", "replay-10.npz"):
        (run / name).write_text(name)
    made, aside = prepare_run_dir(run, overwrite=True)

    def cut_short(path, ignore_errors=False):  # deletes one file, then the second Ctrl-C arrives
        next(Path(path).iterdir()).unlink()
        raise KeyboardInterrupt

    monkeypatch.setattr(run_dir_module.shutil, "rmtree", cut_short)
    with pytest.raises(KeyboardInterrupt):
        run_dir_module.settle_start(aside)
    assert not aside.exists(), "the half-deleted run kept the name of a run to restore"
    with pytest.warns(RuntimeWarning) as caught:
        checkpoint.note_left_aside(made, ours_are_stale=True)  # as the next command on the run does
    said = [str(w.message) for w in caught]
    assert len(said) == 1 and "deletion was interrupted" in said[0] and "restore" not in said[0], said
    monkeypatch.undo()
    shutil.rmtree(run_dir_module.deleting_name(aside))  # as the warning asks
    (made / "config.json").write_text("{}")
    made, aside = prepare_run_dir(made, overwrite=True)
    run_dir_module.settle_start(aside)  # a whole deletion leaves nothing behind
    assert not list(tmp_path.glob(".run.*")), list(tmp_path.iterdir())


def _intruding_at_every_step(monkeypatch, folder: Path) -> list:
    """After each folder, rename and lock step of this process (an --overwrite's), another start of
    a new run in `folder` (`glamor train --run-dir folder`, no --overwrite) tries to take it; returns
    the list of those that took it (each one's lock is let go at once)."""
    import glamor.run_dir as run_dir_module

    taken, busy = [], []

    def intrude():
        if busy or taken:
            return
        busy.append(True)
        try:
            other = RunLock()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                try:
                    prepare_run_dir(folder, overwrite=False, lock=other)
                except (FileExistsError, RunInUse):
                    return  # refused, as it must be
            taken.append(sorted(p.name for p in folder.parent.iterdir()))
        finally:
            other.release()  # (as a refused `glamor train` does)
            busy.clear()

    def after(real):
        def call(*args, **kwargs):
            try:
                return real(*args, **kwargs)
            finally:
                intrude()
        return call

    for owner, name in ((Path, "rename"), (Path, "mkdir"), (RunLock, "acquire"), (RunLock, "release"),
                        (RunLock, "moved"), (run_dir_module.shutil, "rmtree")):
        monkeypatch.setattr(owner, name, after(getattr(owner, name)))
    if hasattr(run_dir_module, "_swap"):
        monkeypatch.setattr(run_dir_module, "_swap", after(run_dir_module._swap))
    return taken


@pytest.mark.parametrize("swap", ["renameat2", "unsupported"])
def test_no_other_start_takes_the_folder_while_an_overwrite_replaces_its_run(tmp_path, monkeypatch, swap):
    """--overwrite moved the old run aside, let go of its lock, then made the new folder and locked
    it: a new run started in the same folder in between found no folder, made it and took it, and
    the overwrite was refused (RunInUse) with the old run hidden in .RUN.replaced-PID. The new
    folder is now made and locked beside the old run first, and the two swapped in one rename
    (renameat2 RENAME_EXCHANGE); where the system cannot swap, the folder is taken as before."""
    import errno

    import glamor.run_dir as run_dir_module

    if swap == "unsupported":  # (a file system without RENAME_EXCHANGE answers EINVAL)
        def unsupported(a, b):
            raise OSError(errno.EINVAL, "Invalid argument")

        monkeypatch.setattr(run_dir_module, "_renameat2_exchange", unsupported, raising=False)
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text('{"old": 1}')
    taken = _intruding_at_every_step(monkeypatch, run)
    lock = RunLock()
    try:
        made, aside = prepare_run_dir(run, overwrite=True, lock=lock)
    finally:
        monkeypatch.undo()
    try:
        if swap == "renameat2":  # (without it the moment stays: the overwrite still replaces the run)
            assert taken == [], f"another start took the folder amid the overwrite (the parent then held {taken})"
        assert made == run and sorted(p.name for p in run.iterdir()) == [LOCK_NAME]
        assert (aside / "config.json").read_text() == '{"old": 1}' and not (aside / LOCK_NAME).exists()
        assert sorted(p.name for p in tmp_path.iterdir()) == sorted([aside.name, "run"]), "nothing else beside"
        with pytest.raises(RunInUse, match="is training it"):
            RunLock().acquire(run)
    finally:
        lock.release()
    assert not (run / LOCK_NAME).exists()



def _a_failing_overwrite(tmp_path):
    """A run at tmp_path/run (config {"old": 1}) that --overwrite moved aside for a new run (config
    {"new": 1}, which then fails): (run folder, its lock, the new run's folder, the aside)."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text('{"old": 1}')
    lock = RunLock()
    made, aside = prepare_run_dir(run, overwrite=True, lock=lock)
    (run / "config.json").write_text('{"new": 1}')
    return run, lock, made, aside


def test_no_other_start_takes_the_folder_while_a_failed_overwrite_puts_the_old_run_back(tmp_path, monkeypatch):
    """A new run that failed before its first checkpoint had its files deleted, then the run it
    replaced renamed back: in between the folder was missing, a new run started there took it, and
    the replaced run stayed hidden aside ('moving it back failed'). It is swapped back in one
    rename and the new run's files deleted from beside it."""
    from glamor.run_dir import undo_start

    run, lock, made, aside = _a_failing_overwrite(tmp_path)
    taken = _intruding_at_every_step(monkeypatch, run)
    try:
        undone, what = undo_start(made, aside, made=False)
    finally:
        monkeypatch.undo()
        lock.release()
    assert taken == [], f"another start took the folder as the old run went back (the parent then held {taken})"
    assert (undone, what) == (True, f"{run} holds the run it was replacing again")
    assert sorted(p.name for p in run.iterdir()) == ["config.json"]
    assert (run / "config.json").read_text() == '{"old": 1}'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"], "nothing left beside it"


def test_the_new_folder_of_an_overwrite_killed_before_its_swap_is_not_offered_as_the_old_run(tmp_path):
    """An --overwrite makes and locks its new folder at .NAME.replaced-PID, then swaps it in for the
    old run: one killed in between left that empty folder, and the next command said it held the
    replaced run and to restore it by moving the run folder (the old run, still in place) away.
    Such a folder, holding nothing but its lock file, is removed without a word."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text('{"old": 1}')
    staged = tmp_path / f".run.replaced-{os.getpid()}"  # (this process's PID: taken for an earlier one's)
    staged.mkdir()
    (staged / LOCK_NAME).write_text("training")
    with holding(staged), warnings.catch_warnings():  # one a process still holds (the same PID elsewhere)
        warnings.simplefilter("ignore")
        checkpoint.note_left_aside(run, ours_are_stale=True)
    assert staged.exists()
    (staged / LOCK_NAME).write_text("training")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        checkpoint.note_left_aside(run, ours_are_stale=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]
    kept = tmp_path / f".run.replaced-{os.getpid()}"  # one that holds a run is still named
    kept.mkdir()
    (kept / "config.json").write_text("{}")
    with pytest.warns(RuntimeWarning, match="holds the run an interrupted `--overwrite`"):
        checkpoint.note_left_aside(run, ours_are_stale=True)
    assert (kept / "config.json").exists()


def test_a_run_renamed_into_the_folder_before_its_lock_is_taken_is_not_trained_over(tmp_path, monkeypatch):
    """A new run's folder was looked at before it was locked, not after: a run another process
    renamed there in between (an --overwrite putting its old run back) was taken for the new, empty
    folder, and the new run wrote its config.json and checkpoints over it."""
    run, other = tmp_path / "run", tmp_path / ".run.replaced-1"
    other.mkdir()
    (other / "config.json").write_text('{"old": 1}')
    real_acquire = RunLock.acquire

    def acquire(self, run_dir, *args, **kwargs):  # the other process's rename lands just before the lock
        if Path(run_dir) == run and other.exists():
            run.rmdir()
            other.rename(run)
        return real_acquire(self, run_dir, *args, **kwargs)

    monkeypatch.setattr(RunLock, "acquire", acquire)
    with pytest.raises(FileExistsError, match=r"was filled by another process as this one took it \(it now holds "
                                              r"config.json\): run the command again"):
        prepare_run_dir(run, overwrite=False)
    assert sorted(p.name for p in run.iterdir()) == ["config.json"], "its lock let go, its files untouched"
    assert (run / "config.json").read_text() == '{"old": 1}'


def test_results_and_configs_reach_the_disk_before_they_replace_the_old_file(tmp_path, monkeypatch):
    """write_atomically renamed a file it had not fsynced: after a power cut the rename can be on
    disk before the data (XFS, btrfs), leaving config.json or eval.json empty; the run then could
    not be resumed, evaluated or compared. Its data is fsynced before the rename, and the folder
    after it."""
    import glamor.files as files
    from glamor.results import write_results

    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        return real_fsync(fd)

    def replace(src, dst):
        events.append(("replace", str(dst)))
        return real_replace(src, dst)

    monkeypatch.setattr(files.os, "fsync", fsync)
    monkeypatch.setattr(files.os, "replace", replace)
    for write, name in ((lambda: preset("debug").save(tmp_path / "config.json"), "config.json"),
                        (lambda: write_results(tmp_path, {"success_rate": 0.5}), "eval.json")):
        events.clear()
        write()
        target = str(tmp_path / name)
        assert [kind for kind, _ in events] == ["fsync", "replace", "fsync"], events
        assert events[0][1].startswith(str(tmp_path / f".{name}.")), "the data, before the rename"
        assert events[1][1] == target and events[2][1] == str(tmp_path), "the folder's entry, after it"


def test_an_evaluation_is_refused_while_another_process_writes_the_run(run, tmp_path, capsys):
    """`glamor eval` took no lock: one that ended after a training run's final evaluation replaced
    that eval.json with its older checkpoint's (and a resume then evaluated again, compare resumed
    a finished run), and two at once deleted each other's videos. It holds the run's lock, and says
    so to a command refused meanwhile."""
    from glamor.cli import main

    copy = _copy(run, tmp_path)
    before = {p.name: p.read_bytes() for p in copy.iterdir() if p.is_file() and p.name != LOCK_NAME}
    holder = RunLock()
    holder.acquire(copy)  # training it, as far as anyone else can tell
    try:
        assert main(["eval", str(copy), "--videos", "0"]) == 2
        err = capsys.readouterr().err
        assert f"run directory {copy} is in use: process {os.getpid()} is training it" in err, err
        assert "copy the run folder and evaluate the copy" in err, err
    finally:
        holder.release()
    assert {p.name: p.read_bytes() for p in copy.iterdir() if p.is_file()} == before, "the refused eval wrote nothing"

    holder.acquire(copy, doing="evaluating")
    try:
        with pytest.raises(RunInUse, match=f"process {os.getpid()} is evaluating it; wait for it to end$"):
            resume(copy, total_env_steps=480)
    finally:
        holder.release()
    assert main(["eval", str(copy), "--videos", "0"]) == 0  # released: evaluated
    assert not (copy / LOCK_NAME).exists(), "and released again"


def test_an_evaluation_of_an_unfinished_run_says_so(run, tmp_path, capsys):
    """`glamor eval` of an interrupted run printed its table and wrote eval.json like a finished
    run's: nothing said that the numbers were of a checkpoint part of the way."""
    import json

    from glamor.cli import main

    copy = _copy(run, tmp_path)
    config = json.loads((copy / "config.json").read_text())
    assert main(["eval", str(copy), "--videos", "0"]) == 0
    assert "unfinished" not in capsys.readouterr().err
    (copy / "config.json").write_text(json.dumps({**config, "total_env_steps": 480}))  # as an extension cut short
    assert main(["eval", str(copy), "--videos", "0"]) == 0
    assert (f"note: {copy} is unfinished: these are the results of its newest checkpoint, of environment step "
            f"240 of 480; `glamor train --resume {copy}` trains it on") in capsys.readouterr().err


def test_a_file_system_that_cannot_fsync_a_folder_still_takes_the_results(tmp_path, monkeypatch):
    """The folder's fsync comes after the rename: a file system that answers EINVAL to it (some
    network and FUSE ones) had the write reported as failed though the new file was in place."""
    import errno

    import glamor.files as files
    from glamor.results import write_results

    real_fsync = os.fsync

    def fsync(fd):
        if os.path.isdir(os.readlink(f"/proc/self/fd/{fd}")):
            raise OSError(errno.EINVAL, "Invalid argument")
        return real_fsync(fd)

    monkeypatch.setattr(files.os, "fsync", fsync)
    assert write_results(tmp_path, {"success_rate": 0.5}) == tmp_path / "eval.json"
    assert (tmp_path / "eval.json").read_text() == '{\n  "success_rate": 0.5\n}\n'


def _video_events(run) -> list[tuple[str, int]]:
    """(tag, step) of every GIF in the run's TensorBoard event files."""
    from tensorboard.backend.event_processing.event_file_loader import LegacyEventFileLoader

    found = []
    for path in sorted((run / "tb").glob("events.out.tfevents.*")):
        for event in LegacyEventFileLoader(str(path)).Load():
            found += [(v.tag, event.step) for v in event.summary.value if v.HasField("image")]
    return found


def test_an_evaluation_again_replaces_the_gifs_of_the_one_before_in_tensorboard(run, tmp_path):
    """Each `glamor eval` added its GIFs to TensorBoard in a new event file at the same step:
    after two, every goal showed two GIFs of that step, and nothing said which was the newer.
    The GIFs have an event file of their own, which the next evaluation replaces, as videos/."""
    from glamor.cli import main

    copy = _copy(run, tmp_path)
    assert main(["eval", str(copy), "--videos", "2"]) == 0
    first = _video_events(copy)
    assert sorted(first) == [("eval/video/eval/goal_000", 240), ("eval/video/eval/goal_001", 240)], first
    assert main(["eval", str(copy), "--videos", "2"]) == 0
    assert sorted(_video_events(copy)) == sorted(first), "one GIF of each goal at the step, not one per evaluation"
    assert any(p.name.startswith("events.out.tfevents") for p in (copy / "tb").iterdir()
               if not p.name.endswith(".eval_videos")), "training's scalars are kept"


def test_an_evaluation_writes_its_results_file_after_its_reports(run, tmp_path, monkeypatch, capsys):
    """eval.json was written before the reports: a kill or a full disk between them left a new
    eval.json claiming a finished evaluation beside an older evaluation's success.png and no
    videos (the old ones are removed first). The results file goes last, so a failed report
    leaves the one it was to replace, whose training time the next evaluation keeps (it was
    removed first for a while, which lost train_wall_time_s for good)."""
    import glamor.reports as reports
    from glamor.cli import main

    copy = _copy(run, tmp_path)
    before = (copy / "eval.json").read_bytes()
    assert "train_wall_time_s" in json.loads(before)

    def fail(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(reports, "write_reports", fail)
    assert main(["eval", str(copy), "--videos", "1"]) != 0
    capsys.readouterr()
    assert (copy / "eval.json").read_bytes() == before, "no new results file claims the missing reports"
    monkeypatch.undo()
    assert main(["eval", str(copy), "--videos", "1"]) == 0
    after = json.loads((copy / "eval.json").read_text())
    assert (copy / "success.png").exists() and after["train_wall_time_s"] == json.loads(before)["train_wall_time_s"]


def test_an_evaluation_removes_what_a_killed_one_left_half_written(run, tmp_path):
    """write_atomically's temporaries of an evaluation killed (kill -9, power cut) before their
    renames (.success.png.PID.tmp, videos/.NAME.gif.PID.tmp, .eval.json.PID.tmp) stayed in the
    run for good: nothing named or removed them. The next process to hold the run removes them."""
    from glamor.cli import main

    copy = _copy(run, tmp_path)
    (copy / "videos").mkdir(exist_ok=True)
    (copy / "eval-planner=sample").mkdir()
    left = [copy / ".success.png.999999.tmp", copy / ".eval.json.999999.tmp", copy / "videos" /
            ".eval_goal000.gif.999999.tmp", copy / "eval-planner=sample" / ".eval_goals.csv.999999.tmp"]
    for path in left:
        path.write_bytes(b"half")
    mine = [copy / ".notes.tmp", copy / "notes.999999.tmp"]  # not write_atomically's: kept
    for path in mine:
        path.write_bytes(b"keep")
    assert main(["eval", str(copy), "--videos", "0"]) == 0
    assert [p for p in left if p.exists()] == []
    assert all(p.exists() for p in mine)


def test_readers_of_a_run_share_its_lock_and_a_writer_is_refused_while_any_reads(tmp_path):
    """compare took a run's lock exclusively just to read its eval.json: two compares reading the
    same finished runs refused each other. Readers share the lock (flock LOCK_SH); a writer
    (training, evaluation) is refused while any one reads, and a reader while one writes, by name.
    The first reader to let go leaves the file to the others: removing it would let a writer lock
    a new file at its path while one still reads."""
    first, second, writer = RunLock(), RunLock(), RunLock()
    first.acquire(tmp_path, doing="reading", shared=True)
    second.acquire(tmp_path, doing="reading", shared=True)
    try:
        with pytest.raises(RunInUse, match=f"process {os.getpid()} is reading it; wait for it to end$"):
            writer.acquire(tmp_path)
        first.release()
        assert (tmp_path / LOCK_NAME).exists()
        with pytest.raises(RunInUse, match=f"process {os.getpid()} is reading it"):
            writer.acquire(tmp_path)
    finally:
        first.release()
        second.release()
    assert not (tmp_path / LOCK_NAME).exists(), "the last reader removes it"
    writer.acquire(tmp_path)
    try:
        with pytest.raises(RunInUse, match=f"process {os.getpid()} is training it"):
            RunLock().acquire(tmp_path, doing="reading", shared=True)
    finally:
        writer.release()
    with holding(tmp_path, doing="reading", shared=True), holding(tmp_path, doing="reading", shared=True):
        pass
    assert not (tmp_path / LOCK_NAME).exists()


def test_a_writer_waits_out_a_read_of_a_moment_and_is_refused_only_by_a_longer_one(tmp_path):
    """Readers (compare reading a run's eval.json) hold the lock for milliseconds, and a writer
    (glamor eval, a resume) that came in one of them was refused at once ('is reading it'), while
    a reader coming as another let go waited that moment out. A writer now waits for readers up to
    about a second, then is refused: no process ever waits longer, so none is starved in a queue."""
    import threading

    reader = RunLock()
    reader.acquire(tmp_path, shared=True)
    read = threading.Timer(0.2, reader.release)  # a read of a moment
    read.start()
    writer = RunLock()
    writer.acquire(tmp_path, doing="evaluating")
    read.join()
    try:
        assert writer.held and not reader.held
    finally:
        writer.release()
    reader.acquire(tmp_path, shared=True)  # a read that goes on
    try:
        with pytest.raises(RunInUse, match=f"process {os.getpid()} is reading it; wait for it to end$"):
            RunLock().acquire(tmp_path)
    finally:
        reader.release()


_WRITER_MEANWHILE = """
import sys, time
from pathlib import Path
from glamor.files import write_atomically

target, go = Path(sys.argv[1]), Path(sys.argv[2])

def slow(tmp):
    tmp.write_text("goals")
    print("writing", flush=True)
    while not go.exists():
        time.sleep(0.01)

write_atomically(target, slow)
"""


def test_the_sweep_of_temporaries_keeps_those_of_a_process_still_writing(tmp_path):
    """checkpoint.remove_temporaries (a resume, `glamor eval`, a compare sweep) deleted every
    .NAME.PID.tmp under the run, also those of a process writing there without the run's lock
    (GLAMOR_CACHE inside the run: another run writing a goal set), whose rename then failed. A
    running process's are kept; a dead one's and this process's own are removed."""
    from glamor import checkpoint

    run = tmp_path / "run"
    cache = run / "cache" / "goals"
    cache.mkdir(parents=True)
    go = tmp_path / "go"
    writer = subprocess.Popen([sys.executable, "-c", _WRITER_MEANWHILE, str(cache / "eval.npz"), str(go)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])})
    try:
        assert writer.stdout.readline() == "writing\n", writer.stderr.read()
        dead = [run / ".eval.json.4194305.tmp", run / f".success.png.{os.getpid()}.tmp.png"]
        for path in dead:
            path.write_text("half")
        checkpoint.remove_temporaries(run)
        assert [p for p in dead if p.exists()] == []
        assert (cache / f".eval.npz.{writer.pid}.tmp").exists(), "a running writer's is kept"
    finally:
        go.touch()
        _, err = writer.communicate(timeout=60)
    assert writer.returncode == 0, err
    assert (cache / "eval.npz").read_text() == "goals" and not list(cache.glob(".*tmp*"))


def test_an_overwrite_of_a_mount_point_is_refused_by_name_before_anything_moves(tmp_path, monkeypatch):
    """A run folder that is a mount point (a container's volume, `docker run -v /data/run:/runs/run`)
    cannot be renamed aside: --overwrite failed with the kernel's bare '[Errno 16] Device or
    resource busy' (or 'Invalid cross-device link'), naming a .run.replaced-PID folder the user
    never made. It is refused by name, with what to do, before anything moves."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text('{"old": 1}')
    real_ismount = os.path.ismount
    monkeypatch.setattr(os.path, "ismount", lambda p: Path(p) == run or real_ismount(p))
    for fallback in (False, True):
        if fallback:  # (where the system cannot swap two folders)
            import glamor.run_dir as run_dir_module

            monkeypatch.setattr(run_dir_module, "_swap", lambda a, b: False)
        with pytest.raises(FileExistsError, match=r"--overwrite cannot replace .*run: it is a mount point \(a "
                                                  r"volume\), .*empty it yourself, or name a folder inside it"):
            prepare_run_dir(run, overwrite=True)
        assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]
        assert sorted(p.name for p in run.iterdir()) == ["config.json"], "its lock let go, its files untouched"


def test_files_are_fsynced_through_a_descriptor_windows_can_flush(tmp_path, monkeypatch):
    """Files fsynced by name (write_atomically's temporary: config.json, eval.json; TensorBoard's
    event file in Logger.sync) were opened read-only, and Windows' fsync (FlushFileBuffers) refuses
    a handle without write access with EBADF: there every run failed as it saved its config.json.
    Here Windows' rule stands in for its fsync, and the files are opened as files.FSYNC_OPEN says
    (on Windows, for writing)."""
    import errno
    import fcntl

    from glamor import files
    from glamor.config import Config
    from glamor.logger import Logger

    real_fsync, synced = os.fsync, []

    def windows_fsync(fd):
        if fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_ACCMODE == os.O_RDONLY and not os.path.isdir(f"/proc/self/fd/{fd}"):
            raise OSError(errno.EBADF, os.strerror(errno.EBADF))
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        return real_fsync(fd)

    monkeypatch.setattr(files, "FSYNC_OPEN", os.O_WRONLY, raising=False)  # (as on Windows)
    monkeypatch.setattr(os, "fsync", windows_fsync)
    Config().save(tmp_path / "config.json")
    assert Config.load(tmp_path / "config.json") == Config()
    logger = Logger(tmp_path)
    try:
        logger.log(24, {"losses/total": 1.0})
        logger.sync()
    finally:
        logger.close()
    (events,) = (tmp_path / "tb").glob("events.out.tfevents.*")
    assert str(events) in synced and str(tmp_path / "metrics.csv") in synced, synced


@pytest.mark.parametrize("swap", ["renameat2", "unsupported", "renameat2, Ctrl-C as it swaps"])
def test_a_start_of_an_overwrite_stopped_once_its_new_folder_is_locked_puts_the_old_run_back(tmp_path, monkeypatch,
                                                                                            swap):
    """A start of an --overwrite that failed (a Ctrl-C) once its new, empty folder was locked in
    place of the old run tried to put the old run back by removing that folder, which its own lock
    file kept from being empty, or (a Ctrl-C during the swap itself, seen as it returned) not at
    all: the old run stayed hidden in .RUN.replaced-PID and nothing said so. The folder, holding
    this process's lock file alone, now trades places with the old run again."""
    import glamor.run_dir as run_dir_module

    if swap == "unsupported":
        monkeypatch.setattr(run_dir_module, "_swap", lambda a, b: False)
    elif swap != "renameat2":
        real_exchange, swaps = run_dir_module._renameat2_exchange, []

        def interrupted(a, b):  # (the first swap only: the one putting the old run back goes through)
            real_exchange(a, b)
            swaps.append((a, b))
            if len(swaps) == 1:
                raise KeyboardInterrupt

        monkeypatch.setattr(run_dir_module, "_renameat2_exchange", interrupted)
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text('{"old": 1}')
    real_acquire, real_mkdir = RunLock.acquire, Path.mkdir

    def locked_in_place():  # the new, empty folder, locked, where the old run was
        return (run / LOCK_NAME).exists() and not (run / "config.json").exists()

    def acquire(self, run_dir, *args, **kwargs):  # a Ctrl-C right after the fallback locks the new folder
        real_acquire(self, run_dir, *args, **kwargs)
        if Path(run_dir) == run and locked_in_place():
            raise KeyboardInterrupt

    def mkdir(self, *args, **kwargs):  # or right after the swap (the next step makes sure it is there)
        if self == run and locked_in_place():
            raise KeyboardInterrupt
        return real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(RunLock, "acquire", acquire)
    monkeypatch.setattr(Path, "mkdir", mkdir)
    lock = RunLock()
    try:
        with pytest.raises(KeyboardInterrupt):
            prepare_run_dir(run, overwrite=True, lock=lock)
    finally:
        lock.release()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"], "nothing left aside"
    assert sorted(p.name for p in run.iterdir()) == ["config.json"] and (run / "config.json").read_text() == '{"old": 1}'


def test_an_overwrite_whose_folder_another_start_took_names_where_the_old_run_is_kept(tmp_path, monkeypatch):
    """Where the system cannot swap two folders, a new run started in the folder while the
    --overwrite had moved the old run aside refused the overwrite (RunInUse) with the old run
    hidden in .RUN.replaced-PID and named nowhere: the error now says where it is kept."""
    import glamor.run_dir as run_dir_module

    monkeypatch.setattr(run_dir_module, "_swap", lambda a, b: False)
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text('{"old": 1}')
    other, real_release = RunLock(), RunLock.release

    def release(self):  # the fallback lets go of the old run's lock: another start takes the folder
        real_release(self)
        if not run.exists() and not other.held:
            run.mkdir()
            other.acquire(run)

    monkeypatch.setattr(RunLock, "release", release)
    try:
        with pytest.raises(RunInUse, match="is in use") as raised:
            prepare_run_dir(run, overwrite=True)
    finally:
        monkeypatch.undo()
        other.release()
    (aside,) = tmp_path.glob(".run.replaced-*")
    assert (aside / "config.json").read_text() == '{"old": 1}'
    assert raised.value.hint == f"the run it was replacing is kept at {aside}"


def test_runs_left_aside_are_named_whatever_characters_the_run_folders_name_holds(tmp_path):
    """note_left_aside found the runs an --overwrite left aside with a glob of the run folder's
    name, read as a pattern: the old run of `lr[0.1]` (.lr[0.1].replaced-PID) was never named,
    and a run `a*` was told of the old run of `ab`, another run."""
    dead = 2**22 + 1  # (above any PID the system gives: no such process)
    for name, other in (("lr[0.1]", None), ("a*", "ab"), ("b?", "bc")):
        run = tmp_path / name
        run.mkdir()
        (run / "config.json").write_text("{}")
        kept = tmp_path / f".{other or name}.replaced-{dead}"
        kept.mkdir()
        (kept / "config.json").write_text('{"old": 1}')
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            checkpoint.note_left_aside(run)
        said = [str(w.message) for w in caught]
        if other is None:
            assert len(said) == 1 and said[0].startswith(f"{kept} holds the run an interrupted `--overwrite` of "
                                                          f"{run}"), said
        else:
            assert said == [], f"{name} was told of {other}'s: {said}"


def test_a_writer_is_not_refused_by_a_reader_that_has_not_yet_said_it_reads(tmp_path):
    """A reader makes the run's lock file as it takes it and writes 'reading' into it just after:
    a writer (glamor eval, a resume) that came in between found the file empty and was refused at
    once, as if a process were writing the run ('another process is writing it ... stop it (Ctrl-C
    saves a checkpoint) and resume'), for a read of milliseconds. A holder that has not said what
    it does is now waited for as a reader is: the writer takes the run once the read ends."""
    import fcntl
    import threading

    path = tmp_path / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)  # a reader, the moment after its flock
    fcntl.flock(fd, fcntl.LOCK_SH)

    def read():
        time.sleep(0.05)
        os.pwrite(fd, b"reading", 0)  # says what it does
        time.sleep(0.1)
        path.unlink()  # and lets go, as RunLock.release does
        os.close(fd)

    reading = threading.Thread(target=read)
    reading.start()
    writer = RunLock()
    try:
        writer.acquire(tmp_path, doing="evaluating")
        reading.join()
        assert writer.held and (tmp_path / LOCK_NAME).read_text() == "evaluating"
    finally:
        reading.join()
        writer.release()


@pytest.mark.parametrize("stop", ["after the swap back", "before the swap back"])
def test_a_failed_overwrite_stopped_as_it_puts_the_old_run_back_is_named_for_what_is_left(tmp_path, monkeypatch,
                                                                                          stop):
    """undo_start swaps the replaced run back, then renames the failed new run's files (now at
    .NAME.replaced-PID) to .NAME.deleting-PID and deletes them. A Ctrl-C or a kill between the two
    left the new run's files under the replaced run's name, and the next command told the user to
    restore them over the run folder, which held the old run again: following that put the failed
    run in its place. They are now named for what they are; stopped before the swap, the old run is
    still the one to restore."""
    import glamor.run_dir as run_dir_module

    run, lock, made, aside = _a_failing_overwrite(tmp_path)
    lock.release()

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    if stop == "after the swap back":
        monkeypatch.setattr(run_dir_module, "_delete_named_deleting", interrupted)
    else:
        monkeypatch.setattr(run_dir_module, "_swap", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_dir_module.undo_start(made, aside, made=False)
    monkeypatch.undo()
    old_is_back = stop == "after the swap back"
    assert json.loads((run / "config.json").read_text()) == ({"old": 1} if old_is_back else {"new": 1})
    with pytest.warns(RuntimeWarning) as caught:
        checkpoint.note_left_aside(made, ours_are_stale=True)  # as the next command on the run does
    said = [str(w.message) for w in caught]
    assert len(said) == 1, said
    if old_is_back:
        assert "restore" not in said[0] and f"{run} holds the run it was replacing again" in said[0], said
        assert f"delete {aside}" in said[0], said
    else:
        assert f"then mv {aside} {run}" in said[0], said
    assert sorted(p.name for p in run.iterdir()) == ["config.json"], "nothing of the undoing left in the run"
