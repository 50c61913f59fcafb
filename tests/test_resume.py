"""Exact resume: atomic checkpoints that keep the previous one, and runs killed with SIGKILL at
random moments that, resumed, end exactly like an uninterrupted run (deterministic mode)."""

import json
import os
import random
import signal
import subprocess
import sys
import time
import zipfile

import numpy as np
import pytest
import torch

from glamor import checkpoint
from glamor.config import preset
from glamor.train import Trainer


def subprocess_env() -> dict:
    """The environment of the processes these tests start: read when one starts, so that it has
    the session's fresh GLAMOR_CACHE (conftest; at import it would be the user's own cache)."""
    return {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"}


def _train_args(run, total):
    return ["train", "--preset", "debug", "--run-dir", str(run), "--set", "deterministic=true",
            "--set", "progress=false", "--set", f"total_env_steps={total}", "--set", "snapshot_every=24",
            "--set", "eval_episodes=4"]


def _glamor(*args, cwd):
    return subprocess.Popen([sys.executable, "-m", "glamor", *args], cwd=cwd, env=subprocess_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _final_state(run):
    state = checkpoint.load_latest(run)
    assert state is not None and state["path"].endswith("checkpoint.pt")
    return state


def _assert_same_run(a, b):
    assert (a["env_step"], a["updates"]) == (b["env_step"], b["updates"])
    for name in ("frames", "actions", "step", "length", "valid"):
        np.testing.assert_array_equal(a["replay"][name], b["replay"][name], err_msg=name)
    for name in ("cursor", "episodes_added", "transitions_added"):
        assert int(a["replay"][name]) == int(b["replay"][name]), name
    for name, t in a["model"].items():
        assert torch.equal(t, b["model"][name]), f"weights differ: {name}"
    for key, sa in a["optimizer"]["state"].items():
        for k, v in sa.items():
            assert torch.equal(v, b["optimizer"]["state"][key][k]), f"optimiser state {key}/{k}"
    assert a["trainer"]["rng"] == b["trainer"]["rng"] and a["agent"]["rng"] == b["agent"]["rng"]


def _kill_and_resume(tmp_path, kills: int, total: int, seed: int):
    ref = tmp_path / "reference"
    t0 = time.time()
    p = _glamor(*_train_args(ref, total), cwd=tmp_path)
    assert p.wait(timeout=600) == 0, p.stderr.read()
    duration = time.time() - t0

    run = tmp_path / "killed"
    moments = random.Random(seed)
    args, done = _train_args(run, total), 0
    while True:
        p = _glamor(*args, cwd=tmp_path)
        if done < kills:
            # a random moment of this process's life (start-up, collection, updates, saves), scaled
            # to the steps left so that every kill lands before the run ends
            saved = checkpoint.load_latest(run, with_replay=False) if run.exists() else None
            left = 1.0 - (saved["env_step"] / total if saved else 0.0)
            delay = moments.uniform(0.15, 0.6) * duration * max(left, 0.25)
            try:
                p.wait(timeout=delay)
            except subprocess.TimeoutExpired:
                os.kill(p.pid, signal.SIGKILL)
                p.wait()
                done += 1
                if (run / "config.json").exists():
                    args = ["train", "--resume", str(run)]
                continue
        assert p.wait(timeout=600) == 0, p.stderr.read()
        break
    assert done == kills, f"only {done} of {kills} kills landed before the run ended"
    _assert_same_run(_final_state(run), _final_state(ref))
    import json

    a, b = (json.loads((r / "eval.json").read_text()) for r in (run, ref))
    assert a["success_rate"] == b["success_rate"] and a["env_steps"] == b["env_steps"]
    # every row once, in order, whole, with the uninterrupted run's values (a step logged twice, or
    # left out, or a torn row, was passed by a check of the order alone); and so in TensorBoard
    from glamor.logger import read_rows

    columns = ("env_step", "losses/idm", "losses/prior", "losses/total", "charts/epsilon", "eval/success_rate")
    rows = {r: [[row[c] for c in columns] for row in read_rows(r / "metrics.csv")] for r in (run, ref)}
    assert rows[run] == rows[ref], "a resumed run logs every step once, in order"
    assert len((run / "metrics.csv").read_text().splitlines()) == len(rows[run]) + 1, "no row cut short"
    for tag in ("losses/total", "eval/success_rate"):
        assert _scalars(run, tag) == _scalars(ref, tag) != [], tag
    return done


def test_killed_twice_and_resumed_ends_like_an_uninterrupted_run(tmp_path):
    _kill_and_resume(tmp_path, kills=2, total=480, seed=1)


@pytest.mark.slow
def test_killed_five_times_and_resumed_ends_like_an_uninterrupted_run(tmp_path):
    _kill_and_resume(tmp_path, kills=5, total=960, seed=5)


def test_in_process_resume_matches(tmp_path):
    """Save mid-run, continue in a fresh Trainer from the checkpoint: same weights as going on."""
    cfg = preset("debug", progress=False, learning_starts=0, deterministic=True, eval_episodes=4)
    a = Trainer(cfg, tmp_path / "a")
    (tmp_path / "a").mkdir()
    for _ in range(3):
        a.collect_round()
        a.update()
    a.save()
    b = Trainer(cfg, tmp_path / "a")
    b.load_state_dict(checkpoint.load_latest(tmp_path / "a"))
    for tr in (a, b):
        for _ in range(2):
            tr.collect_round()
            tr.update()
    for name, t in a.model.state_dict().items():
        assert torch.equal(t, b.model.state_dict()[name]), name
    np.testing.assert_array_equal(a.replay.frames, b.replay.frames)
    a.close(), b.close()


def test_a_checkpoint_of_a_cpu_run_does_not_start_cuda(tmp_path, monkeypatch):
    """Saving read every GPU's random state whenever CUDA was available, which starts CUDA: a
    device='cpu' run on a GPU machine made a context on GPU 0 at its first checkpoint (each
    torchrun rank its own), and failed there when another process held that GPU in exclusive
    mode. Only a process that started CUDA has GPU states that matter."""
    cfg = preset("debug", progress=False, learning_starts=0, deterministic=True, eval_episodes=4, device="cpu")
    tr = Trainer(cfg, tmp_path)
    try:
        tr.collect_round()

        def started(*args, **kwargs):
            raise AssertionError("the checkpoint started CUDA")

        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
        monkeypatch.setattr(torch.cuda, "is_initialized", lambda: False)
        monkeypatch.setattr(torch.cuda, "get_rng_state_all", started)
        tr.save()
    finally:
        tr.close()
    assert "cuda" not in checkpoint.load_latest(tmp_path, with_replay=False)["rng"]


def test_checkpoint_keeps_the_previous_one_and_falls_back(tmp_path):
    replay = {"frames": np.arange(12, dtype=np.uint8).reshape(3, 2, 2)}
    checkpoint.save_run(tmp_path, {"env_step": 1, "x": 1}, replay)
    checkpoint.save_run(tmp_path, {"env_step": 2, "x": 2}, replay)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "checkpoint.prev.pt", "checkpoint.pt", "replay-1.npz", "replay-2.npz"]
    assert checkpoint.load_latest(tmp_path)["x"] == 2
    (tmp_path / "checkpoint.pt").write_bytes(b"half a checkpo")  # damaged
    with pytest.warns(UserWarning, match="checkpoint.pt is not a glamor checkpoint.*; using checkpoint.prev.pt"):
        state = checkpoint.load_latest(tmp_path)
    assert state["x"] == 1 and state["path"].endswith("checkpoint.prev.pt")
    np.testing.assert_array_equal(state["replay"]["frames"], replay["frames"])
    checkpoint.save_run(tmp_path, {"env_step": 3, "x": 3}, replay)
    assert not (tmp_path / "replay-2.npz").exists()  # the damaged checkpoint's: no checkpoint names it


@pytest.mark.parametrize("damage", ["checkpoint", "replay", "optimizer"])
def test_a_save_after_falling_back_keeps_the_checkpoint_it_fell_back_to(tmp_path, damage):
    """A damaged checkpoint.pt (or one whose replay file is gone, or whose optimiser state is
    damaged) is not rotated onto the good checkpoint.prev.pt a resume fell back to: the next
    save replaces it and keeps prev."""
    replay = {"frames": np.arange(12, dtype=np.uint8).reshape(3, 2, 2)}
    checkpoint.save_run(tmp_path, {"env_step": 1, "x": 1}, replay)
    optimizer = {"state": {0: {"exp_avg": torch.tensor([float("nan") if damage == "optimizer" else 0.0])}}}
    checkpoint.save_run(tmp_path, {"env_step": 2, "x": 2, "optimizer": optimizer}, replay)
    if damage == "checkpoint":
        (tmp_path / "checkpoint.pt").write_bytes(b"half a checkpo")
    elif damage == "replay":
        (tmp_path / "replay-2.npz").unlink()
    with pytest.warns(UserWarning, match="using checkpoint.prev.pt"):
        assert checkpoint.load_latest(tmp_path)["x"] == 1
    checkpoint.save_run(tmp_path, {"env_step": 3, "x": 3}, replay)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "checkpoint.prev.pt", "checkpoint.pt", "replay-1.npz", "replay-3.npz"]
    assert checkpoint.load(tmp_path / "checkpoint.prev.pt")["x"] == 1
    assert checkpoint.load_latest(tmp_path)["x"] == 3


def test_a_failed_save_after_falling_back_leaves_no_unusable_checkpoint_beside_a_new_replay(tmp_path, monkeypatch):
    """After a resume that fell back past checkpoint.pt (its replay file gone or failing its CRC)
    the run reaches that checkpoint's step again and writes its replay file under the same name.
    A save that failed after that (a full disk, a kill) left the unusable checkpoint.pt beside a
    replay file it never saw, and load_latest took that pair: the old state on the new replay."""
    replay = {"frames": np.arange(12, dtype=np.uint8).reshape(3, 2, 2)}
    checkpoint.save_run(tmp_path, {"env_step": 1, "x": 1}, replay)
    checkpoint.save_run(tmp_path, {"env_step": 2, "x": 2}, replay)
    (tmp_path / "replay-2.npz").unlink()
    with pytest.warns(UserWarning, match="using checkpoint.prev.pt"):
        assert checkpoint.load_latest(tmp_path)["x"] == 1

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    with monkeypatch.context() as m:
        m.setattr(checkpoint.torch, "save", full_disk)  # the checkpoint's write, after its replay file's
        with pytest.raises(OSError, match="No space left"):
            checkpoint.save_run(tmp_path, {"env_step": 2, "x": 22}, {"frames": replay["frames"] + 1},
                                keep_previous=True)
    assert checkpoint.load_latest(tmp_path)["x"] == 1


def test_the_parts_of_other_ranks_are_named_kept_and_required_by_their_checkpoint(tmp_path):
    """Under torchrun rank r > 0 writes its part (state and replay) before rank 0's checkpoint
    names it: parts no checkpoint names go at the next save, and a checkpoint whose part is
    missing is not complete (load_latest falls back to the one before)."""
    replay = {"frames": np.arange(12, dtype=np.uint8).reshape(3, 2, 2)}

    def save(step):
        checkpoint.save_rank(tmp_path, 1, {"env_step": step, "agent": {"plan_seed": step}}, {"frames": replay["frames"] + step})
        files = {1: list(checkpoint.rank_file_names(1, step))}
        checkpoint.save_run(tmp_path, {"env_step": step, "world_size": 2, "rank_files": files, "agent": {}}, replay)

    checkpoint.save_rank(tmp_path, 1, {"env_step": 7}, replay)  # a save killed before rank 0's checkpoint
    save(1)
    save(2)
    save(3)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "checkpoint.prev.pt", "checkpoint.pt", "rank1-2.pt", "rank1-3.pt", "replay-2-rank1.npz", "replay-2.npz",
        "replay-3-rank1.npz", "replay-3.npz"]
    state = checkpoint.load_rank(tmp_path, checkpoint.load_latest(tmp_path), 1)
    assert state["env_step"] == 3 and state["agent"] == {"plan_seed": 3} and state["world_size"] == 2
    np.testing.assert_array_equal(state["replay"]["frames"], replay["frames"] + 3)
    (tmp_path / "replay-3-rank1.npz").unlink()
    with pytest.warns(UserWarning, match="replay-3-rank1.npz missing; using checkpoint.prev.pt"):
        assert checkpoint.load_latest(tmp_path)["env_step"] == 2
    with pytest.raises(ValueError, match="has no part for rank 2"):
        checkpoint.load_rank(tmp_path, state, 2)


def test_a_damaged_replay_of_another_rank_is_named_as_a_value_error(tmp_path):
    """A rank's replay file that fails to decompress (a damaged disk) raised zlib.error or
    BadZipFile naming no file: neither a ValueError nor an OSError, so the resume's agreement
    between ranks (which catches those) was skipped and the rank ended with a bare traceback."""
    replay = {"frames": np.arange(4000, dtype=np.uint8)}
    checkpoint.save_rank(tmp_path, 1, {"env_step": 3}, replay)
    checkpoint.save_run(tmp_path, {"env_step": 3, "world_size": 2,
                                   "rank_files": {1: list(checkpoint.rank_file_names(1, 3))}}, replay)
    path = tmp_path / "replay-3-rank1.npz"
    damaged = bytearray(path.read_bytes())
    damaged[100] ^= 0xFF
    path.write_bytes(bytes(damaged))
    with pytest.raises(ValueError, match=r"rank1-3.pt is unusable: its replay file replay-3-rank1.npz is unusable"):
        checkpoint.load_rank(tmp_path, checkpoint.load_latest(tmp_path), 1)


def test_a_run_directory_removed_while_training_is_made_again_at_the_next_save(tmp_path):
    run = tmp_path / "runs" / "gone"  # never made, as after an `rm -r` during training
    tr = Trainer(preset("debug", progress=False, learning_starts=0), run)
    tr.collect_round()
    tr.save()
    tr.close()
    assert checkpoint.load_latest(run)["env_step"] == tr.env_step > 0


def test_a_full_disk_leaves_the_previous_checkpoint(tmp_path, monkeypatch):
    replay = {"frames": np.zeros((3, 2, 2), np.uint8)}
    checkpoint.save_run(tmp_path, {"env_step": 1, "x": 1}, replay)
    before = sorted(p.name for p in tmp_path.iterdir())

    def full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    for target in ("numpy.savez_compressed", "torch.save"):
        with monkeypatch.context() as m:
            m.setattr(target, full)
            with pytest.raises(OSError, match="No space"):
                checkpoint.save_run(tmp_path, {"env_step": 2, "x": 2}, replay)
        assert sorted(p.name for p in tmp_path.iterdir()) == before
        assert checkpoint.load_latest(tmp_path)["x"] == 1


def test_checkpoints_that_cannot_resume_are_refused_with_a_reason(tmp_path):
    """A checkpoint from before resumable checkpoints (weights only), one of another format and
    one without its replay are refused by name; none resumes into an empty replay."""
    cfg = preset("debug", progress=False, learning_starts=0, eval_episodes=4)
    run = tmp_path / "run"
    run.mkdir()
    tr = Trainer(cfg, run)
    tr.collect_round()
    tr.save()
    state = checkpoint.load_latest(run)
    assert tr.replay.transitions_added > 0
    old = {"model": state["model"], "path": "old.pt"}  # what the first versions wrote
    with pytest.raises(ValueError, match="old.pt was written before resumable checkpoints"):
        tr.load_state_dict(old)
    with pytest.raises(ValueError, match="format 1 and cannot be resumed"):
        tr.load_state_dict({**state, "format": 1})
    no_replay = checkpoint.load_latest(run, with_replay=False)
    with pytest.raises(ValueError, match="names no replay file"):
        tr.load_state_dict(no_replay)
    fresh = Trainer(cfg, run)
    fresh.load_state_dict(state)  # the complete one still resumes
    assert fresh.replay.transitions_added == tr.replay.transitions_added
    tr.close(), fresh.close()


def test_cli_resume_of_a_weights_only_checkpoint_is_a_clear_error(tmp_path, capsys):
    from glamor.cli import main

    cfg = preset("debug", progress=False)
    run = tmp_path / "run"
    run.mkdir()
    cfg.save(run / "config.json")
    tr = Trainer(cfg, run)
    torch.save({"model": tr.model.state_dict()}, run / "checkpoint.pt")  # no format, no replay
    tr.close()
    assert main(["train", "--resume", str(run)]) != 0
    err = capsys.readouterr().err
    assert "before resumable checkpoints" in err and "glamor.Agent.load" in err


def test_resume_refuses_to_start_over_on_top_of_checkpoints_it_cannot_read(tmp_path):
    """Checkpoints there but none usable (damaged, or the replay file gone): a refusal with the
    reasons, and the files stay; only a run with no checkpoint yet starts from the beginning."""
    from glamor.train import resume

    cfg = preset("debug", progress=False, learning_starts=0, eval_episodes=4)
    run = tmp_path / "run"
    run.mkdir()
    cfg.save(run / "config.json")
    tr = Trainer(cfg, run)
    tr.collect_round()
    tr.save()
    tr.close()
    replay = next(run.glob("replay-*.npz"))
    replay.rename(run / "moved-away.npz")
    before = sorted(p.name for p in run.iterdir())
    with pytest.raises(ValueError, match="has checkpoints but none loads.*refusing to start over") as e:
        resume(run)
    assert replay.name in str(e.value) and sorted(p.name for p in run.iterdir()) == before


def test_resume_without_a_checkpoint_starts_its_logs_afresh_and_restarts_are_counted_over_the_run(tmp_path):
    """A run killed before its first checkpoint starts over: the killed start's metrics rows and
    TensorBoard events would otherwise repeat its steps. A checkpoint keeps the count of worker
    restarts, a number over the whole run."""
    from glamor.train import resume

    cfg = preset("debug", progress=False, total_env_steps=48, learning_starts=24, eval_episodes=2,
                 eval_episodes_during_training=2, torch_threads=1)
    run = tmp_path / "run"
    run.mkdir()
    cfg.save(run / "config.json")
    (run / "metrics.csv").write_text("env_step,wall_time,losses/idm\n24,1.0,12345.678\n")
    (run / "tb").mkdir()
    (run / "tb" / "events.out.tfevents.killed").write_bytes(b"")
    with pytest.warns(RuntimeWarning, match="no checkpoint yet"):
        resume(run)
    assert not (run / "tb" / "events.out.tfevents.killed").exists()
    assert "12345.678" not in (run / "metrics.csv").read_text()
    # Resuming the finished run changes nothing (no second final evaluation); extending it trains on.
    metrics, results = (run / "metrics.csv").read_text(), json.loads((run / "eval.json").read_text())
    assert resume(run) == results and (run / "metrics.csv").read_text() == metrics
    assert resume(run, total_env_steps=96)["env_steps"] >= 96

    (tmp_path / "counted").mkdir()
    tr = Trainer(cfg, tmp_path / "counted")
    tr.pool.restarts = 3
    tr.save()
    again = Trainer(cfg, tmp_path / "counted")
    again.load_state_dict(checkpoint.load_latest(tmp_path / "counted"))
    assert again.pool.restarts == 3
    tr.close(), again.close()


def test_a_final_evaluation_cut_short_is_run_at_the_next_resume(tmp_path, monkeypatch):
    """Extending a finished run, interrupted during its final evaluation (after the last
    checkpoint): eval.json still holds the shorter run's results, so the next resume evaluates
    the checkpoint instead of reporting those as the run's."""
    from glamor.train import resume, train

    cfg = preset("debug", progress=False, total_env_steps=48, learning_starts=24, eval_episodes=2,
                 eval_episodes_during_training=2, torch_threads=1)
    run = tmp_path / "run"
    assert train(cfg, run, table=False)["env_steps"] == 48
    evaluate = Trainer.evaluate

    def interrupted(self, *args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(Trainer, "evaluate", interrupted)
    with pytest.raises(KeyboardInterrupt):
        resume(run, total_env_steps=96, table=False)
    monkeypatch.setattr(Trainer, "evaluate", evaluate)
    steps = {name: checkpoint.load(run / name)["env_step"] for name in ("checkpoint.pt", "checkpoint.prev.pt")}
    assert steps == {"checkpoint.pt": 96, "checkpoint.prev.pt": 48}
    assert json.loads((run / "eval.json").read_text())["env_steps"] == 48
    newest = (run / "checkpoint.pt").stat().st_mtime_ns
    assert resume(run, table=False)["env_steps"] == 96
    assert json.loads((run / "eval.json").read_text())["env_steps"] == 96
    # The resume only evaluated: the checkpoint it loaded is not written again (which made
    # checkpoint.prev.pt a second copy of step 96 and lost step 48's).
    assert {name: checkpoint.load(run / name)["env_step"] for name in steps} == steps
    assert (run / "checkpoint.pt").stat().st_mtime_ns == newest


def _logged_three_rows(run):
    """A run folder whose metrics.csv holds rows at steps 10, 20 and 30."""
    from glamor.logger import Logger

    run.mkdir()
    first = Logger(run, tensorboard=False)
    for step in (10, 20, 30):
        first.log(step, {"losses/total": step / 10})
    first.close()
    return run


def test_a_resume_keeps_metrics_csv_whole_when_its_rewrite_fails(tmp_path, monkeypatch):
    """A resume rewrites metrics.csv without the rows the killed process logged past the
    checkpoint: through a temporary file, so a failure (full disk, a kill) leaves the history."""
    import csv

    from glamor.logger import Logger

    run = _logged_three_rows(tmp_path / "run")
    before = (run / "metrics.csv").read_text()

    real_writer = csv.writer

    class DiskFullAfterTheHeader:  # a csv writer whose disk fills after one row
        def __init__(self, f, *args, **kwargs):
            self.writer, self.rows = real_writer(f, *args, **kwargs), 0

        def writerow(self, row):
            if self.rows == 1:
                raise OSError(28, "No space left on device")
            self.rows += 1
            return self.writer.writerow(row)

        def writerows(self, rows):
            for row in rows:
                self.writerow(row)

    monkeypatch.setattr(csv, "writer", DiskFullAfterTheHeader)
    with pytest.raises(OSError, match="No space"):
        Logger(run, tensorboard=False, resume_step=20)
    assert (run / "metrics.csv").read_text() == before
    monkeypatch.undo()
    resumed = Logger(run, tensorboard=False, resume_step=20)
    resumed.log(30, {"losses/total": 3.5})
    resumed.close()
    rows = (run / "metrics.csv").read_text().splitlines()
    assert rows[0] == before.splitlines()[0] and rows[1:3] == before.splitlines()[1:3] and len(rows) == 4
    assert rows[3].startswith("30,") and ",3.5," in rows[3]


def test_a_run_whose_eval_json_failed_logs_its_final_evaluation_once_after_the_resume(tmp_path, monkeypatch):
    """The final evaluation's row (logged at the last checkpoint's step, after it) was kept by the
    resume's filter (rows at env_step <= the checkpoint's), and the re-run evaluation logged a
    second one: 48 rows where the uninterrupted run has 47; TensorBoard, which purges only later
    steps, had two final points."""
    import glamor.train as train_module
    from glamor.train import resume, train

    cfg = preset("debug", progress=False, total_env_steps=48, learning_starts=24, eval_episodes=2,
                 eval_episodes_during_training=2, torch_threads=1)
    train(cfg, tmp_path / "whole", table=False)
    write_results = train_module.write_results

    def full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(train_module, "write_results", full)
    with pytest.raises(OSError, match="No space"):
        train(cfg, tmp_path / "cut", table=False)
    monkeypatch.setattr(train_module, "write_results", write_results)
    resume(tmp_path / "cut", table=False)

    def steps(run):
        return [line.split(",")[0] for line in (run / "metrics.csv").read_text().splitlines()]

    def tensorboard_steps(run):  # TensorBoard kept the failed run's final point too (purged from the next step on)
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

        events = EventAccumulator(str(run / "tb")).Reload()
        return [e.step for e in events.Scalars("eval/success_rate")]

    assert steps(tmp_path / "cut") == steps(tmp_path / "whole")
    assert tensorboard_steps(tmp_path / "cut") == tensorboard_steps(tmp_path / "whole") == [48]


def test_a_metrics_row_cut_short_is_dropped_at_a_resume(tmp_path):
    """A row cut off by a full disk or a kill ('62' alone, at a page boundary) stayed in the
    history at a resume, out of order, since only its env_step was read."""
    from glamor.logger import Logger

    run = _logged_three_rows(tmp_path / "run")
    whole = (run / "metrics.csv").read_text().splitlines()
    with open(run / "metrics.csv", "a") as f:
        f.write("6")  # the start of a row logged at step 62, then the disk was full
    with open(run / "metrics.csv", "a") as f:
        f.write("\n2x,1.0\n")  # and a damaged one
    Logger(run, tensorboard=False, resume_step=40, wall_offset=1e9).close()
    assert (run / "metrics.csv").read_text().splitlines() == whole


def test_a_metrics_row_torn_at_its_end_is_dropped_at_a_resume(tmp_path):
    """Only rows with too few cells were dropped: a last row cut inside its last value ('0.12'
    of '0.125', no end of line) or padded with NULs by a power cut was kept, and the NULs then
    failed every later reading of the curve (`glamor eval`'s plot, compare's curves)."""
    import csv

    from glamor.logger import METRICS, Logger
    from glamor.reports import read_success_curve

    cells = ["" for _ in METRICS]
    for tail, kept in ((f"{','.join(cells[:-1])},0.12", 2), (f"{','.join(cells[:-1])},0.125\x00\x00\r\n", 2),
                       (f"{','.join(cells[:-1])},0.125\r\n", 3)):
        run = _logged_three_rows(tmp_path / f"run{len(list(tmp_path.iterdir()))}")
        with open(run / "metrics.csv", "a", newline="") as f:
            f.write(f"30,9.00,{tail}")  # the final evaluation's row at the checkpoint's step
        Logger(run, tensorboard=False, resume_step=30, wall_offset=1.0, evaluated=True).close()
        with open(run / "metrics.csv", newline="") as f:
            rows = list(csv.DictReader(f))
        assert len(rows) == 1 + kept, (tail, rows)
        read_success_curve(run / "metrics.csv")  # every cell a number


def test_a_checkpoint_never_reaches_the_disk_before_the_metrics_rows_logged_before_it(tmp_path, monkeypatch):
    """metrics.csv's rows were flushed, never fsynced, while each checkpoint was: after a power
    cut the resumed run's checkpoint could be ahead of its metrics, and the rows since the last
    rewrite (a whole run's curve, when it was never resumed) were lost for good, leaving a gap in
    the curves. Each checkpoint fsyncs the rows logged before it, first."""
    from glamor.logger import METRICS
    from glamor.train import train

    durable, checked = {}, []
    real_fsync = os.fsync

    def fsync(fd):
        name = os.readlink(f"/proc/self/fd/{fd}")
        if name.endswith("metrics.csv"):
            durable["metrics"] = os.fstat(fd).st_size
        if name.endswith(".checkpoint.pt.new.tmp"):  # the checkpoint's data: the rows must be there first
            checked.append((durable.get("metrics"), (tmp_path / "run" / "metrics.csv").stat().st_size))
        return real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    train(preset("debug", progress=False, total_env_steps=96, snapshot_every=48, learning_starts=24, eval_episodes=2,
                 eval_episodes_during_training=2), tmp_path / "run")
    header = len(",".join(("env_step", "wall_time", *METRICS))) + 2
    assert len(checked) >= 2 and all(size > header for _, size in checked), checked  # (rows logged before each)
    assert all(synced == size for synced, size in checked), f"(fsynced, logged) bytes of metrics.csv: {checked}"


def test_wall_time_does_not_go_back_after_the_final_evaluation_an_extension_keeps(tmp_path):
    """Extending a finished run keeps its final evaluation's row, logged after the last checkpoint
    (at wall time 2.0 here): the extension's rows went on from the checkpoint's 2.0, under it."""
    import csv

    from glamor.logger import Logger

    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.csv").write_text("env_step,wall_time,eval/success_rate\n24,1.00,\n48,2.00,\n48,50.00,0.5\n")
    logger = Logger(run, tensorboard=False, resume_step=48, wall_offset=2.0, evaluated=True)
    logger.log(72, {"losses/total": 1.0})
    logger.close()
    with open(run / "metrics.csv", newline="") as f:
        times = [float(row["wall_time"]) for row in csv.DictReader(f)]
    assert len(times) == 4 and times == sorted(times), times


def test_an_extended_runs_train_wall_time_counts_the_final_evaluation_it_keeps(tmp_path):
    """eval.json's train_wall_time_s of an extended run went on from the checkpoint's wall time,
    before the first final evaluation, while metrics.csv went on from that evaluation's row: the
    two clocks disagreed by the evaluation's length (here made 1000 s)."""
    import csv

    from glamor.train import resume, train

    cfg = preset("debug", progress=False, total_env_steps=48, learning_starts=24, eval_episodes=2,
                 eval_episodes_during_training=2, torch_threads=1)
    run = tmp_path / "run"
    train(cfg, run, table=False)
    rows = (run / "metrics.csv").read_text().splitlines()
    fields = rows[-1].split(",")  # the final evaluation's row
    fields[1] = "1000.00"
    (run / "metrics.csv").write_text("\n".join(rows[:-1] + [",".join(fields)]) + "\n")
    results = resume(run, total_env_steps=96, table=False)
    with open(run / "metrics.csv", newline="") as f:
        times = [float(row["wall_time"]) for row in csv.DictReader(f)]
    assert times == sorted(times) and times[-1] > 1000
    assert results["train_wall_time_s"] >= times[-1]


def test_the_error_that_ends_a_run_is_not_replaced_by_one_from_closing_its_logs(tmp_path, monkeypatch):
    """eval.json failed to write on a full disk, then closing TensorBoard's writer failed too, and
    that second error was the one reported."""
    import glamor.train as train_module
    from glamor.logger import Logger
    from glamor.train import train

    def full(*args, **kwargs):
        raise OSError(28, "No space left on device", "eval.json")

    def close_fails(self):
        self._file.close()
        raise OSError(28, "No space left on device", "tb/events")

    monkeypatch.setattr(train_module, "write_results", full)
    monkeypatch.setattr(Logger, "close", close_fails)
    cfg = preset("debug", progress=False, total_env_steps=48, learning_starts=24, eval_episodes=2,
                 eval_episodes_during_training=2, torch_threads=1)
    with pytest.warns(UserWarning, match="closing the run's logs failed too: .*tb/events"):
        with pytest.raises(OSError, match="eval.json"):
            train(cfg, tmp_path / "run", table=False)


def test_a_periodic_checkpoint_on_the_last_round_is_not_written_twice(tmp_path):
    """The last round's periodic checkpoint was written again as the final one, so
    checkpoint.prev.pt held the same step and the fallback lost its older checkpoint."""
    from glamor.train import train

    cfg = preset("debug", progress=False, total_env_steps=48, learning_starts=24, eval_episodes=2,
                 eval_episodes_during_training=2, torch_threads=1, snapshot_every=24)
    train(cfg, tmp_path / "run", table=False)
    steps = {name: checkpoint.load(tmp_path / "run" / name)["env_step"]
             for name in ("checkpoint.pt", "checkpoint.prev.pt")}
    assert steps == {"checkpoint.pt": 48, "checkpoint.prev.pt": 24}


def test_a_resumed_run_holds_one_replay(tmp_path, monkeypatch):
    """The checkpoint's replay arrays were copied into the trainer's replay, and `_resume` held
    them until the run ended: a second replay in memory (2.5 GB at the spec's Atari settings).
    Now the replay takes them: every loaded array alive in the run is the replay's own."""
    import gc
    import weakref

    from glamor.train import resume, train

    cfg = preset("debug", progress=False, total_env_steps=48, learning_starts=24, eval_episodes=2,
                 eval_episodes_during_training=2, torch_threads=1)
    train(cfg, tmp_path / "run", table=False)
    loaded, alive_in_run = {}, {}
    load, run = Trainer.load_state_dict, Trainer.run

    def load_and_watch(self, state, **kwargs):
        loaded.update((k, weakref.ref(a)) for k, a in state["replay"].items() if np.ndim(a))  # (not the counts)
        load(self, state, **kwargs)

    def run_and_look(self):
        gc.collect()
        alive_in_run.update((k, ref() is getattr(self.replay, k)) for k, ref in loaded.items()
                            if ref() is not None)
        return run(self)

    monkeypatch.setattr(Trainer, "load_state_dict", load_and_watch)
    monkeypatch.setattr(Trainer, "run", run_and_look)
    resume(tmp_path / "run", total_env_steps=96, table=False)
    assert {"frames", "actions", "valid"} <= set(loaded) and alive_in_run == dict.fromkeys(loaded, True)


# A save killed at its n-th os.replace: 1 the replay's temporary file, 2 the new checkpoint's,
# 3 the new checkpoint onto checkpoint.pt (the first save has no checkpoint.pt to move aside).
_KILLED_SAVE = """
import os, sys
import numpy as np
from glamor import checkpoint
run, kill_at = sys.argv[1], int(sys.argv[2])
replay = {"frames": np.arange(4000, dtype=np.uint8)}
checkpoint.save_run(run, {"env_step": 24, "x": 1}, replay)
calls, replace = [0], os.replace
def replace_or_die(src, dst):
    calls[0] += 1
    if calls[0] == kill_at:
        os._exit(9)  # as a kill -9: no cleanup runs
    replace(src, dst)
os.replace = replace_or_die
checkpoint.save_run(run, {"env_step": 48, "x": 2}, replay)
"""


@pytest.mark.parametrize("kill_at, left", [(1, ".replay-48.npz.tmp"), (2, "..checkpoint.pt.new.tmp"),
                                           (3, ".checkpoint.pt.new")])
def test_a_resume_removes_what_a_killed_save_left(tmp_path, kill_at, left):
    """Files of a save killed before its renames stayed until the next save (a replay's: up to
    gigabytes, for the length of a snapshot interval); the resume removes them, and only them."""
    run = tmp_path / "run"
    run.mkdir()
    done = subprocess.run([sys.executable, "-c", _KILLED_SAVE, str(run), str(kill_at)], env=subprocess_env(),
                          capture_output=True, text=True)
    assert done.returncode == 9, done.stderr
    assert (run / left).exists() and checkpoint.load_latest(run)["x"] == 1
    others = {"notes.txt", "replay-7.npz", ".notes.tmp"}  # not temporaries of a write
    for name in others | {".eval.json.4194305.tmp"}:  # (write_atomically's, a killed evaluation's: removed too)
        (run / name).write_text("kept")
    checkpoint.remove_temporaries(run)
    assert not (run / left).exists() and all((run / name).exists() for name in others)
    assert not (run / ".eval.json.4194305.tmp").exists()
    assert checkpoint.load_latest(run)["x"] == 1


def test_resume_removes_a_killed_saves_temporaries_before_it_loads(tmp_path, monkeypatch):
    from glamor.train import resume, train

    cfg = preset("debug", progress=False, total_env_steps=48, learning_starts=24, eval_episodes=2,
                 eval_episodes_during_training=2, torch_threads=1)
    train(cfg, tmp_path / "run", table=False)
    leftovers = [tmp_path / "run" / name for name in (".replay-96.npz.tmp", ".checkpoint.pt.new")]
    for path in leftovers:
        path.write_bytes(b"cut short")
    seen = []
    load = Trainer.load_state_dict
    monkeypatch.setattr(Trainer, "load_state_dict",
                        lambda self, state, **kw: (seen.extend(p.exists() for p in leftovers), load(self, state, **kw)))
    resume(tmp_path / "run", total_env_steps=72, table=False)
    assert seen == [False, False]


def test_extending_a_finished_run_keeps_its_final_evaluation_in_metrics_csv(tmp_path):
    """The final evaluation's row (logged after the last checkpoint) was dropped from metrics.csv
    when a finished run was extended, as if that evaluation had been cut short, though the
    extension does not evaluate that step again: with eval_every=0 the success curve lost its
    point, while TensorBoard kept it. A later resume of the extension keeps it too."""
    import csv

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from glamor.train import resume, train

    cfg = preset("debug", progress=False, total_env_steps=48, learning_starts=24, eval_episodes=2,
                 eval_episodes_during_training=2, torch_threads=1, snapshot_every=24)
    run = tmp_path / "run"
    train(cfg, run, table=False)

    def evaluated_steps():
        with open(run / "metrics.csv", newline="") as f:
            csv_steps = [int(row["env_step"]) for row in csv.DictReader(f) if row["eval/success_rate"]]
        events = EventAccumulator(str(run / "tb")).Reload()
        return csv_steps, [e.step for e in events.Scalars("eval/success_rate")]

    assert evaluated_steps() == ([48], [48])
    resume(run, total_env_steps=96, table=False)
    assert evaluated_steps() == ([48, 96], [48, 96])
    # A resume from the extension's step-72 checkpoint (as after a kill) keeps the step-48 row,
    # however long that evaluation took (the row's wall time may be past the checkpoint's).
    rows = (run / "metrics.csv").read_text().splitlines()
    at_48 = next(i for i, row in enumerate(rows) if row.startswith("48,") and row.split(",")[10])
    fields = rows[at_48].split(",")
    fields[1] = "1000000.00"
    rows[at_48] = ",".join(fields)
    (run / "metrics.csv").write_text("\n".join(rows) + "\n")
    (run / "checkpoint.pt").unlink()  # checkpoint.prev.pt: step 72
    (run / "eval.json").unlink()
    assert checkpoint.load_latest(run, with_replay=False)["env_step"] == 72
    resume(run, table=False)
    assert evaluated_steps() == ([48, 96], [48, 96])


def test_a_resume_past_a_replay_that_fails_its_crc_keeps_the_checkpoint_it_resumed_from(tmp_path):
    """A checkpoint.pt whose replay file is there but damaged inside (a CRC error: only reading
    it all shows that) looks whole to a save, so the first save after the resume that fell back
    past it moved it onto the good checkpoint.prev.pt it resumed from (at the same step: prev
    became the old step-48 state on the new replay file). The trainer now says it fell back."""
    from glamor.train import resume, train

    run = tmp_path / "run"
    cfg = preset("debug", progress=False, total_env_steps=48, learning_starts=24, eval_episodes=2,
                 eval_episodes_during_training=2, torch_threads=1, snapshot_every=24)
    train(cfg, run, table=False)
    newest = run / checkpoint.load(run / "checkpoint.pt")["replay_file"]
    data = bytearray(newest.read_bytes())
    with zipfile.ZipFile(newest) as z:  # one flipped byte in the middle of the frames' compressed bytes
        member = z.getinfo("frames.npy")
    local_header = member.header_offset
    start = local_header + 30 + int.from_bytes(data[local_header + 26:local_header + 28], "little") \
        + int.from_bytes(data[local_header + 28:local_header + 30], "little")
    data[start + member.compress_size // 2] ^= 0xFF
    newest.write_bytes(bytes(data))
    with pytest.warns(UserWarning, match="using checkpoint.prev.pt"):
        resume(run, table=False)  # from step 24 to 48 again
    steps = {name: checkpoint.load(run / name)["env_step"] for name in ("checkpoint.pt", "checkpoint.prev.pt")}
    assert steps == {"checkpoint.pt": 48, "checkpoint.prev.pt": 24}  # (was 48 and the damaged 48)
    assert checkpoint.load_latest(run)["env_step"] == 48


def test_a_run_killed_between_eval_json_and_its_final_metrics_row_gets_the_row_at_the_resume(tmp_path, monkeypatch):
    """eval.json is written before the final evaluation's metrics.csv row: a run killed between
    the two was 'finished' to a resume (and kept that step's evaluation when extended), and its
    success curve (metrics.csv, TensorBoard) never got its final point. The resume logs it from
    eval.json."""
    import csv

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from glamor.logger import Logger
    from glamor.train import resume, train

    class Killed(BaseException):
        pass

    cfg = preset("debug", progress=False, total_env_steps=48, learning_starts=24, eval_episodes=2,
                 eval_episodes_during_training=2, torch_threads=1, snapshot_every=24)
    run = tmp_path / "run"
    log = Logger.log

    def killed_at_the_final_row(self, env_step, metrics):
        if "eval/success_rate" in metrics:
            raise Killed()
        return log(self, env_step, metrics)

    monkeypatch.setattr(Logger, "log", killed_at_the_final_row)
    with pytest.raises(Killed):
        train(cfg, run, table=False)
    monkeypatch.setattr(Logger, "log", log)
    rate = json.loads((run / "eval.json").read_text())["success_rate"]

    def evaluated():
        with open(run / "metrics.csv", newline="") as f:
            rows = list(csv.DictReader(f))
        events = EventAccumulator(str(run / "tb")).Reload()
        times = [float(row["wall_time"]) for row in rows]
        assert times == sorted(times), "the wall time never goes back"
        return ([(int(r["env_step"]), float(r["eval/success_rate"])) for r in rows if r["eval/success_rate"]],
                [e.step for e in events.Scalars("eval/success_rate")] if "eval/success_rate" in
                events.Tags()["scalars"] else [])

    assert evaluated() == ([], [])
    resume(run, table=False)  # finished
    assert evaluated() == ([(48, pytest.approx(rate, abs=1e-6))], [48])
    resume(run, table=False)  # and once only
    resume(run, total_env_steps=96, table=False)
    assert [step for step, _ in evaluated()[0]] == [48, 96] and evaluated()[1] == [48, 96]


def test_metrics_on_a_file_system_that_cannot_fsync_a_file_are_flushed_and_training_goes_on(tmp_path, monkeypatch):
    """Logger.sync (before every checkpoint) on a file system that answers EINVAL to fsync (some
    network and FUSE ones) must not fail every checkpoint; a real write error (EIO) is raised."""
    import errno

    from glamor.logger import Logger

    run = _logged_three_rows(tmp_path / "run")
    logger = Logger(run, tensorboard=False, resume_step=30, wall_offset=1e9)
    try:
        logger.log(40, {"losses/total": 4.0})
        for code, raised in ((errno.EINVAL, False), (errno.EIO, True)):
            def fsync(fd, code=code):
                raise OSError(code, os.strerror(code))

            monkeypatch.setattr(os, "fsync", fsync)
            if raised:
                with pytest.raises(OSError, match=os.strerror(code)):
                    logger.sync()
            else:
                logger.sync()
            monkeypatch.undo()
        assert (run / "metrics.csv").read_text().splitlines()[-1].startswith("40,")  # flushed
    finally:
        logger.close()


def test_tensorboards_points_reach_the_disk_with_the_metrics_rows_before_a_checkpoint(tmp_path, monkeypatch):
    """Logger.sync (before every checkpoint) fsynced metrics.csv but only flushed TensorBoard's
    event file: after a power cut the resumed run had every row up to its checkpoint in the CSV
    and a gap in TensorBoard's curves there (the purge drops only later points; nothing logs the
    lost ones again). The event file, and its folder, are fsynced too; a file system that cannot
    fsync (EINVAL) gets the flush alone, as for the CSV."""
    import errno

    from glamor.logger import Logger

    real_fsync, synced = os.fsync, {}

    def fsync(fd):
        synced[os.readlink(f"/proc/self/fd/{fd}")] = os.fstat(fd).st_size
        return real_fsync(fd)

    logger = Logger(tmp_path)
    try:
        logger.log(24, {"losses/total": 1.0, "eval/success_rate": 0.5})
        monkeypatch.setattr(os, "fsync", fsync)
        logger.sync()
        (events,) = (tmp_path / "tb").glob("events.out.tfevents.*")
        assert synced.get(str(events)) == events.stat().st_size > 0, synced
        assert str(tmp_path / "tb") in synced, "the event file's name in its folder"

        def cannot(fd):
            raise OSError(errno.EINVAL, os.strerror(errno.EINVAL))

        monkeypatch.setattr(os, "fsync", cannot)
        logger.log(48, {"losses/total": 2.0})
        logger.sync()
    finally:
        monkeypatch.undo()
        logger.close()
    assert [step for step, _ in _scalars(tmp_path, "losses/total")] == [24, 48]


def _next_second():
    """Sleep into the next second: TensorBoard reads a folder's event files in name order, and a
    name's first field is the second its writer started (within one second, a counter's digits)."""
    time.sleep(1.01 - time.time() % 1)


def _scalars(run, tag):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run / "tb")).Reload()
    return [(e.step, round(e.value, 6)) for e in events.Scalars(tag)] if tag in events.Tags()["scalars"] else []


def test_tensorboard_drops_the_rows_a_resume_drops_at_its_checkpoints_step(tmp_path):
    """A resume drops from metrics.csv the rows the stopped process logged after the checkpoint,
    at the checkpoint's own step too (an owed periodic evaluation done by a resume that then
    died): TensorBoard was purged from the next step only, so it kept that row's points and the
    resume's evaluation of the step was a second point there. The rows kept at that step stay,
    and so do the videos of a `glamor eval` of that checkpoint."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from torch.utils.tensorboard import SummaryWriter

    from glamor.logger import Logger, read_rows, write_gif
    from glamor.reports import VIDEO_EVENTS, rollout_gif

    run = tmp_path / "run"
    run.mkdir()
    first = Logger(run)
    first.log(10, {"losses/total": 1.0})
    first.log(20, {"losses/total": 2.0})
    checkpointed = first.elapsed  # the checkpoint at step 20, its evaluation owed
    time.sleep(0.05)
    first.log(20, {"eval/success_rate": 0.25})  # done by a resume that then died
    first.log(30, {"losses/total": 3.0})
    first.close()
    _next_second()
    videos = SummaryWriter(str(run / "tb"), filename_suffix=VIDEO_EVENTS)  # `glamor eval` of the step-20 checkpoint
    write_gif(videos, "eval/video/eval/goal_000", rollout_gif(list(np.zeros((3, 8, 8), np.uint8)),
                                                                np.zeros((8, 8), np.uint8))[0], (8, 16), 20)
    videos.close()
    _next_second()
    resumed = Logger(run, resume_step=20, wall_offset=checkpointed)
    resumed.log(20, {"eval/success_rate": 0.5})
    resumed.log(30, {"losses/total": 3.5})
    resumed.close()
    rows = read_rows(run / "metrics.csv")
    for tag in ("eval/success_rate", "losses/total"):
        assert _scalars(run, tag) == [(int(r["env_step"]), float(r[tag])) for r in rows if r[tag]]
    assert _scalars(run, "eval/success_rate") == [(20, 0.5)]
    assert _scalars(run, "losses/total") == [(10, 1.0), (20, 2.0), (30, 3.5)]
    events = EventAccumulator(str(run / "tb"), size_guidance={"images": 0}).Reload()
    assert [e.step for e in events.Images("eval/video/eval/goal_000")] == [20], "the evaluation's video stays"


def test_tensorboard_drops_a_row_a_resume_drops_at_its_checkpoints_step_when_no_row_stays_there(tmp_path):
    """The checkpoint's step held only the row the resume drops (an evaluation at a step no
    training row was logged at, the final one's): nothing of that step is kept to log again, and
    TensorBoard must still be purged from that step, or the resume's evaluation of it is a
    second point there."""
    from glamor.logger import Logger, read_rows

    run = tmp_path / "run"
    run.mkdir()
    first = Logger(run)
    first.log(10, {"losses/total": 1.0})
    checkpointed = first.elapsed  # the checkpoint at step 20, no row logged at it yet
    time.sleep(0.05)
    first.log(20, {"eval/success_rate": 0.25})  # its evaluation, done by a process that then died
    first.close()
    _next_second()
    resumed = Logger(run, resume_step=20, wall_offset=checkpointed)
    resumed.log(20, {"eval/success_rate": 0.5})
    resumed.close()
    rows = read_rows(run / "metrics.csv")
    assert [(int(r["env_step"]), r["eval/success_rate"]) for r in rows] == [(10, ""), (20, "0.5")]
    assert _scalars(run, "eval/success_rate") == [(20, 0.5)]
    assert _scalars(run, "losses/total") == [(10, 1.0)]


def test_a_checkpoint_that_does_not_fit_in_memory_is_not_fallen_back_past(tmp_path, monkeypatch):
    """A MemoryError reading the newest checkpoint's replay is the machine's, not the file's: it
    fell back to checkpoint.prev.pt, whose replay (not yet as large) fits, and the resume went on
    from there, its next save removing the newest checkpoint (it was taken for unusable)."""
    import warnings

    replay = {"frames": np.arange(12, dtype=np.uint8).reshape(3, 2, 2)}
    checkpoint.save_run(tmp_path, {"env_step": 1, "x": 1}, replay)
    checkpoint.save_run(tmp_path, {"env_step": 2, "x": 2}, replay)
    checkpoint.save_rank(tmp_path, 1, {"env_step": 2}, replay)
    load_arrays = checkpoint.load_arrays

    def too_large(path):
        if os.path.basename(path) in ("replay-2.npz", "replay-2-rank1.npz"):
            raise MemoryError("Unable to allocate 40.0 GiB")
        return load_arrays(path)

    monkeypatch.setattr(checkpoint, "load_arrays", too_large)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # (not "using checkpoint.prev.pt")
        with pytest.raises(MemoryError, match="Unable to allocate"):
            checkpoint.load_latest(tmp_path)
        with pytest.raises(MemoryError, match="Unable to allocate"):  # a torchrun rank's part alike
            checkpoint.load_rank(tmp_path, {"rank_files": {1: list(checkpoint.rank_file_names(1, 2))}}, 1)


def test_torchs_allocator_failing_while_loading_a_checkpoint_is_not_taken_for_damage(tmp_path, monkeypatch):
    """torch.load's own allocations fail with a RuntimeError ("DefaultCPUAllocator: can't allocate
    memory"), which was named a damaged checkpoint and fallen back past, as a MemoryError was."""
    import warnings

    checkpoint.save_run(tmp_path, {"env_step": 1}, {"frames": np.zeros((1, 2), np.uint8)})
    checkpoint.save_run(tmp_path, {"env_step": 2}, {"frames": np.zeros((1, 2), np.uint8)})
    torch_load = torch.load

    def allocator_fails(path, *args, **kwargs):
        if os.path.basename(path) == checkpoint.CHECKPOINT:
            torch.empty(2**62, dtype=torch.uint8)  # more than any machine has: the allocator's own error
        return torch_load(path, *args, **kwargs)

    monkeypatch.setattr(torch, "load", allocator_fails)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # (not "using checkpoint.prev.pt")
        with pytest.raises(MemoryError, match=r"out of memory loading it .*can't allocate memory"):
            checkpoint.load_latest(tmp_path)
    monkeypatch.setattr(torch, "load", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("PytorchStreamReader "
                                                                                           "failed reading zip archive")))
    with pytest.raises(ValueError, match="is not a glamor checkpoint, or is damaged"):  # a damaged file stays that
        checkpoint.load(tmp_path / checkpoint.CHECKPOINT)


def test_a_checkpoint_goes_on_where_tensorboards_event_file_cannot_be_found_to_fsync(tmp_path, monkeypatch):
    """Logger.sync found TensorBoard's event file through SummaryWriter's private attributes and
    opened it by name: a writer without them (another torch or tensorboard) raised AttributeError,
    and an event file removed since its last point (TensorBoard's folder cleared during training)
    FileNotFoundError, from every checkpoint's sync, and so ended the run ('writing a checkpoint
    failed'). Both are now flushed alone."""
    from torch.utils.tensorboard import SummaryWriter

    from glamor.logger import Logger

    logger = Logger(tmp_path)
    try:
        logger.log(24, {"losses/total": 1.0})
        logger.sync()
        (events,) = (tmp_path / "tb").glob("events.out.tfevents.*")
        events.unlink()  # removed since its last point
        logger.sync()
        logger.log(48, {"losses/total": 2.0})
        logger.sync()
        assert events.exists(), "the writer made its file again at the next point"
        monkeypatch.delattr(SummaryWriter, "_get_file_writer")  # a version without the private chain
        flushed = []
        monkeypatch.setattr(SummaryWriter, "flush", lambda self: flushed.append(True))
        logger.sync()
        assert flushed == [True], "still flushed"
    finally:
        monkeypatch.undo()
        logger.close()
