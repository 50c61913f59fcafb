"""Data-parallel training with torch.distributed: two gloo processes on the CPU, each collecting
its own episodes, end with identical weights (and, started by torchrun, the CLI run works)."""

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from glamor.config import preset


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as_torchrun_rank(rank: int, world: int, port: int, cache: str) -> None:
    """The environment torchrun gives rank `rank` of `world` (one torch thread each)."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE=str(world), GLAMOR_CACHE=cache)
    torch.set_num_threads(1)


def _join_within(ctx, seconds: float, waiting: str) -> None:
    """Join the spawned processes of `ctx`; kill them and fail with `waiting` past `seconds`."""
    deadline = time.monotonic() + seconds
    while not ctx.join(timeout=5):
        if time.monotonic() > deadline:
            for p in ctx.processes:
                p.kill()
            pytest.fail(waiting)


def _rank_main(rank: int, world: int, port: int, out: str, cache: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), GLAMOR_CACHE=cache)
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    from glamor.train import Trainer

    cfg = preset("debug", progress=False, learning_starts=0, device="cpu", deterministic=True)
    tr = Trainer(cfg, out, rank, world)
    for _ in range(3):
        tr.collect_round()
        for _ in range(2):
            tr.update()
    torch.save({"model": tr.model.state_dict(), "frames": torch.from_numpy(tr.replay.frames.copy()),
                "env_step": tr.env_step, "updates": tr.updates}, os.path.join(out, f"rank{rank}.pt"))
    tr.close()
    dist.destroy_process_group()


def test_two_gloo_processes_end_with_identical_weights(tmp_path):
    mp.spawn(_rank_main, args=(2, _free_port(), str(tmp_path), os.environ["GLAMOR_CACHE"]), nprocs=2, join=True)
    a, b = (torch.load(tmp_path / f"rank{r}.pt") for r in range(2))
    for name, t in a["model"].items():
        assert torch.equal(t, b["model"][name]), f"weights differ across ranks: {name}"
    assert not torch.equal(a["frames"], b["frames"]), "each process collects its own episodes"
    cfg = preset("debug")
    assert a["env_step"] == b["env_step"] == 3 * 2 * cfg.num_envs * cfg.episode_length  # both ranks' steps
    assert a["updates"] == b["updates"] == 6


@pytest.mark.slow
def test_torchrun_trains_with_two_processes(tmp_path):
    run = tmp_path / "ddp"
    out = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", str(_free_port()),
         "-m", "glamor", "train", "--preset", "debug", "--run-dir", str(run), "--set", "device='cpu'",
         "--set", "total_env_steps=240", "--set", "eval_episodes=4", "--set", "progress=false"],
        cwd=tmp_path, capture_output=True, text=True, timeout=600,
        env={**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"})
    assert out.returncode == 0, out.stderr[-3000:]
    assert (run / "eval.json").exists() and (run / "checkpoint.pt").exists()


def _rank_interrupted(rank: int, world: int, port: int, out: str, cache: str) -> None:
    """Rank 1 alone gets a SIGTERM in its third round; both ranks must stop after that round."""
    import datetime
    import json
    import signal

    from glamor.interrupt import TrainingInterrupted

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), GLAMOR_CACHE=cache)
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world, timeout=datetime.timedelta(seconds=60))
    from glamor.train import Trainer

    cfg = preset("debug", progress=False, learning_starts=0, device="cpu", total_env_steps=100_000,
                 snapshot_every=100_000, eval_every=100_000)
    tr = Trainer(cfg, out, rank, world)
    rounds = 0
    collect = tr.collect_round

    def collect_round():
        nonlocal rounds
        rounds += 1
        if rank == 1 and rounds == 3:
            os.kill(os.getpid(), signal.SIGTERM)
        return collect()

    tr.collect_round = collect_round
    write, saved_at = tr._write_checkpoint, []

    def slow_write():  # rank 0's checkpoint takes a while: the others must wait for it
        time.sleep(1.0 if rank == 0 and rounds == 3 else 0.0)
        write()
        saved_at.append(time.time())

    tr._write_checkpoint = slow_write
    try:
        tr.run()
        result = {"interrupted": None}
    except TrainingInterrupted as e:
        result = {"interrupted": e.signum, "env_step": e.env_step, "rounds": rounds,
                  "names_torchrun": "`torchrun --nproc-per-node 2 -m glamor train --resume" in str(e)}
    result["times"] = {"left": time.time(), "saved": saved_at[-1] if saved_at else None}
    with open(os.path.join(out, f"rank{rank}.json"), "w") as f:
        json.dump(result, f)
    dist.barrier()  # leave together, as glamor.train.train does
    dist.destroy_process_group()


def test_a_signal_to_one_process_stops_every_process_after_the_same_round(tmp_path):
    import json
    import signal

    from glamor import checkpoint

    mp.spawn(_rank_interrupted, args=(2, _free_port(), str(tmp_path), os.environ["GLAMOR_CACHE"]), nprocs=2,
             join=True)
    a, b = (json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2))
    times = a.pop("times"), b.pop("times")
    assert a == b and a["interrupted"] == signal.SIGTERM and a["rounds"] == 3, (a, b)
    assert times[1]["left"] >= times[0]["saved"], times  # rank 1 left only after rank 0's checkpoint
    saved = checkpoint.load_latest(tmp_path, with_replay=False)  # rank 0 writes it
    cfg = preset("debug")
    assert saved is not None and saved["env_step"] == a["env_step"] == 3 * 2 * cfg.num_envs * cfg.episode_length
    assert saved["world_size"] == 2 and a["names_torchrun"]
    # a resume in one process goes on from rank 0's part alone, and says so
    from glamor.config import Config
    from glamor.train import resume

    Config.from_dict(saved["config"]).save(tmp_path / "config.json")  # what train() writes beside it
    with pytest.warns(RuntimeWarning, match=r"saved by 2 processes \(torchrun\): in one process the run goes on from rank 0's replay"):
        assert resume(tmp_path, total_env_steps=saved["env_step"], table=False)["env_steps"] == saved["env_step"]


def _rank_run(rank: int, world: int, port: int, run: str, cache: str, resume: bool, stop_round: int) -> None:
    """Rank `rank` of `glamor train` (or `--resume`) as torchrun starts it; with `stop_round`,
    rank 1 alone gets a SIGTERM in that round."""
    import signal

    _as_torchrun_rank(rank, world, port, cache)
    from glamor import train as T
    from glamor.interrupt import TrainingInterrupted

    rounds, collect = 0, T.Trainer.collect_round

    def collect_round(self):
        nonlocal rounds
        rounds += 1
        if rank == 1 and rounds == stop_round:
            os.kill(os.getpid(), signal.SIGTERM)
        return collect(self)

    T.Trainer.collect_round = collect_round
    cfg = preset("debug", progress=False, learning_starts=0, device="cpu", deterministic=True, total_env_steps=480,
                 snapshot_every=192, eval_episodes=2, eval_episodes_during_training=2)
    try:
        T.resume(run, table=False) if resume else T.train(cfg, run, table=False)
    except TrainingInterrupted as e:
        with open(os.path.join(run, f"interrupted{rank}.txt"), "w") as f:
            f.write(str(e))
    except ValueError as e:  # a refused resume: on every rank
        with open(os.path.join(run, f"refused{rank}.txt"), "w") as f:
            f.write(str(e))


def _spawn_run(run, resume=False, stop_round=0):
    mp.spawn(_rank_run, args=(2, _free_port(), str(run), os.environ["GLAMOR_CACHE"], resume, stop_round), nprocs=2,
             join=True)


@pytest.fixture(scope="module")
def torchrun_run(tmp_path_factory):
    """A finished torchrun run of 480 steps (two ranks), trained once for the tests that read it;
    a test that writes into it works on a copy."""
    run = tmp_path_factory.mktemp("ddp") / "reference"
    _spawn_run(run)
    return run


def test_a_torchrun_run_interrupted_and_resumed_with_as_many_processes_ends_like_an_uninterrupted_one(
        tmp_path, torchrun_run):
    """Each rank saves its own replay and random states beside rank 0's checkpoint, and a resume
    under torchrun gives every rank its own back: the run ends exactly as if never stopped."""
    import numpy as np

    from glamor import checkpoint

    reference = torchrun_run  # read only
    _spawn_run(tmp_path / "stopped", stop_round=3)
    message = (tmp_path / "stopped" / "interrupted0.txt").read_text()
    assert f"torchrun --nproc-per-node 2 -m glamor train --resume {tmp_path / 'stopped'}" in message
    stopped = checkpoint.load_latest(tmp_path / "stopped", with_replay=False)
    assert stopped["world_size"] == 2 and stopped["env_step"] < 480
    assert sorted(p.name for p in (tmp_path / "stopped").glob("*rank1*")) == sorted(stopped["rank_files"][1])
    _spawn_run(tmp_path / "stopped", resume=True)
    frames = []
    for rank in (0, 1):
        a, b = (checkpoint.load_latest(path) for path in (reference, tmp_path / "stopped"))
        if rank:
            a, b = (checkpoint.load_rank(path, s, rank) for path, s in ((reference, a), (tmp_path / "stopped", b)))
        frames.append(a["replay"]["frames"])
        assert (a["env_step"], a["updates"]) == (b["env_step"], b["updates"]) and a["env_step"] >= 480
        for name in ("frames", "actions", "valid"):
            np.testing.assert_array_equal(a["replay"][name], b["replay"][name], err_msg=f"rank {rank}: {name}")
        for name, t in a["model"].items():
            assert torch.equal(t, b["model"][name]), f"weights differ: {name}"
        assert a["trainer"]["rng"] == b["trainer"]["rng"] and a["agent"] == b["agent"], f"rank {rank}'s draws"
    assert not np.array_equal(*frames), "each rank resumed its own replay"
    assert (tmp_path / "stopped" / "eval.json").exists()
    # a run of one process is not resumed by two (every rank refuses; none waits for the others)
    from glamor.train import train

    alone = tmp_path / "alone"
    train(preset("debug", progress=False, total_env_steps=48, learning_starts=24, eval_episodes=2), alone, table=False)
    config = (alone / "config.json").read_text()
    _spawn_run(alone, resume=True)
    for rank in (0, 1):
        assert "was saved by 1 process(es): resume it with as many (`glamor train --resume`), not 2" in (
            alone / f"refused{rank}.txt").read_text()
    assert (alone / "config.json").read_text() == config


def test_a_rank_part_that_does_not_load_sends_every_rank_back_to_the_checkpoint_before(tmp_path, torchrun_run):
    """A damaged replay file of rank 1's part of the newest checkpoint (one that fails its CRC)
    refused the resume on every rank, while one process falls back to checkpoint.prev.pt for
    its own; every rank now goes on from the checkpoint before, and the run ends as the
    uninterrupted one did."""
    import shutil

    import numpy as np

    from glamor import checkpoint

    run = Path(shutil.copytree(torchrun_run, tmp_path / "run"))  # a finished torchrun run of 480 steps
    newest = checkpoint.load_latest(run, with_replay=False)
    assert newest["env_step"] == 480 and checkpoint.load(run / checkpoint.PREVIOUS)["env_step"] == 384
    replay = run / newest["rank_files"][1][1]
    data = bytearray(replay.read_bytes())
    middle = len(data) // 2
    data[middle:middle + 64] = bytes(b ^ 0xFF for b in data[middle:middle + 64])
    replay.write_bytes(bytes(data))
    (run / "eval.json").unlink()  # (else the run is finished: the resume reads no part)
    _spawn_run(run, resume=True)
    assert not list(run.glob("refused*.txt"))
    for rank in (0, 1):
        a, b = (checkpoint.load_latest(path) for path in (torchrun_run, run))
        if rank:
            a, b = (checkpoint.load_rank(path, s, rank) for path, s in ((torchrun_run, a), (run, b)))
        assert (a["env_step"], a["updates"]) == (b["env_step"], b["updates"]) == (480, a["updates"])
        for name in ("frames", "actions", "valid"):
            np.testing.assert_array_equal(a["replay"][name], b["replay"][name], err_msg=f"rank {rank}: {name}")
        for name, t in a["model"].items():
            assert torch.equal(t, b["model"][name]), f"weights differ: {name}"
    assert (run / "eval.json").exists()
    assert checkpoint.load(run / checkpoint.PREVIOUS)["env_step"] == 384  # the damaged one is not kept


def _resumed_refusals(run: Path, within: float, hangs: str) -> list[str]:
    """What each of two torchrun processes resuming `run` (its eval.json removed, so a resume
    trains) wrote as the error it stopped with, once both ended (within `within` s, else `hangs`)."""
    (run / "eval.json").unlink()
    ctx = mp.spawn(_rank_run, args=(2, _free_port(), str(run), os.environ["GLAMOR_CACHE"], True, 0), nprocs=2,
                   join=False)
    _join_within(ctx, within, hangs)
    return [(run / f"refused{rank}.txt").read_text() for rank in (0, 1)]


def test_rank_parts_of_both_checkpoints_that_do_not_load_are_refused_on_every_rank(tmp_path, torchrun_run):
    import shutil

    from glamor import checkpoint

    run = Path(shutil.copytree(torchrun_run, tmp_path / "run"))
    for name in (checkpoint.CHECKPOINT, checkpoint.PREVIOUS):
        (run / checkpoint.load(run / name)["rank_files"][1][0]).write_bytes(b"not a checkpoint")
    for said in _resumed_refusals(run, 240, "a process still waits after the ranks' parts failed to load"):
        assert said.startswith(f"{run} has checkpoints but none loads ({run}/rank1-480.pt is not a glamor "
                               f"checkpoint, or is damaged"), said
        assert f"{run}/rank1-384.pt is not a glamor checkpoint" in said and "refusing to start over" in said


def _save_naming_a_module_that_is_gone(obj, path) -> None:
    """torch.save `obj` inside an object whose class lives in a module that no longer exists:
    torch.load of the file raises ModuleNotFoundError (a part written by another glamor version)."""
    import types

    module = types.ModuleType("glamor_module_that_is_gone")
    Gone = type("Gone", (), {"__module__": module.__name__})
    module.Gone = Gone
    sys.modules[module.__name__] = module
    try:
        torch.save({**obj, "extra": Gone()}, path)
    finally:
        del sys.modules[module.__name__]


def test_rank_parts_that_fail_to_load_with_any_error_are_refused_on_every_rank(tmp_path, torchrun_run):
    """A rank's part that torch.load reads but that is not a part (no replay file named: KeyError)
    or that names a module that is gone (ModuleNotFoundError) left rank 1 alone with its error
    while rank 0 waited in the vote on the parts (gloo: 'Connection closed by peer'; NCCL: until
    the collective timeout); each is now a reason on every rank, by name."""
    import shutil

    from glamor import checkpoint

    run = Path(shutil.copytree(torchrun_run, tmp_path / "run"))
    newest, before = (checkpoint.load(run / name) for name in (checkpoint.CHECKPOINT, checkpoint.PREVIOUS))
    torch.save({"env_step": 480}, run / newest["rank_files"][1][0])
    _save_naming_a_module_that_is_gone({"env_step": 384}, run / before["rank_files"][1][0])
    for said in _resumed_refusals(run, 120, "a process still waits after a rank's part failed to load"):
        assert said.startswith(f"{run} has checkpoints but none loads ({run}/rank1-480.pt is not a rank's part of "
                               f"a glamor checkpoint (it names no replay file)"), said
        assert (f"{run}/rank1-384.pt was written with a module this Python lacks (torch.load: No module named "
                f"'glamor_module_that_is_gone'): by another version of numpy, torch or glamor") in said, said


def _rank_resume_out_of_memory(rank: int, world: int, port: int, run: str, cache: str) -> None:
    """Rank `rank` of `glamor train --resume` of `run`, whose rank 1 runs out of memory reading
    the replay of its part of the newest checkpoint (step 480); each writes the error it stops with."""
    _as_torchrun_rank(rank, world, port, cache)
    from glamor import train as T

    if rank == 1:
        load_arrays = T.checkpoint.load_arrays

        def too_large(path):
            if os.path.basename(path) == "replay-480-rank1.npz":
                raise MemoryError("Unable to allocate 40.0 GiB")
            return load_arrays(path)

        T.checkpoint.load_arrays = too_large
    try:
        T.resume(run, table=False)
        said = "resumed"
    except Exception as e:  # noqa: BLE001 - written for the test to read
        said = f"{type(e).__name__}: {e}"
    with open(os.path.join(run, f"resumed{rank}.txt"), "w") as f:
        f.write(said)


def test_a_rank_that_runs_out_of_memory_reading_its_part_is_not_taken_for_a_damaged_part(tmp_path, torchrun_run):
    """A MemoryError reading rank 1's part was named a damaged part, and every rank fell back to
    checkpoint.prev.pt (whose replays, not yet as large, may fit): the resume went on from there
    and its next save removed the newest checkpoint. It is raised on every rank, as rank 0's own."""
    import shutil

    run = Path(shutil.copytree(torchrun_run, tmp_path / "run"))
    (run / "eval.json").unlink()
    ctx = mp.spawn(_rank_resume_out_of_memory, args=(2, _free_port(), str(run), os.environ["GLAMOR_CACHE"]),
                   nprocs=2, join=False)
    _join_within(ctx, 120, "a process still waits after a rank ran out of memory reading its part")
    assert (run / "resumed1.txt").read_text() == "MemoryError: Unable to allocate 40.0 GiB"
    assert (run / "resumed0.txt").read_text() == ("MemoryError: another process ran out of memory reading its part "
                                                  "of the checkpoint (its error is in its output)")
    assert (run / "checkpoint.pt").is_file() and (run / "replay-480-rank1.npz").is_file()


def _train_writing_its_error(rank: int, run: str) -> None:
    """`glamor train` of the debug preset in `run` on this rank; the error it stops with goes to
    start<rank>.txt beside the run."""
    from glamor import train as T

    try:
        T.train(preset("debug", progress=False, device="cpu", total_env_steps=48), run, table=False)
    except Exception as e:
        with open(os.path.join(os.path.dirname(run), f"start{rank}.txt"), "w") as f:
            f.write(f"{type(e).__name__}: {e}")


def _rank_failing_start(rank: int, world: int, port: int, run: str, cache: str, failing: int) -> None:
    """Rank `rank` of `glamor train` whose rank `failing` cannot make its environment."""
    _as_torchrun_rank(rank, world, port, cache)
    from glamor import train as T

    if rank == failing:
        def make(*args, **kwargs):
            raise ValueError(f"no environment on rank {rank}")

        T.envs.make = make
    _train_writing_its_error(rank, run)


@pytest.mark.parametrize("failing", [0, 1])
def test_a_start_that_fails_on_one_process_is_raised_on_every_process(tmp_path, failing):
    """Every rank leaves with an error (the others' names the failure elsewhere); none waits in
    DistributedDataParallel's first collective for the rank that left."""
    ctx = mp.spawn(_rank_failing_start, args=(2, _free_port(), str(tmp_path / "run"), os.environ["GLAMOR_CACHE"],
                                              failing), nprocs=2, join=False)
    _join_within(ctx, 240, "a process still waits for the one whose start failed")
    said = {r: (tmp_path / f"start{r}.txt").read_text() for r in (0, 1)}
    assert said[failing] == f"ValueError: no environment on rank {failing}"
    assert said[1 - failing].startswith("RuntimeError: another process failed while setting up training")
    assert not (tmp_path / "run").exists()  # the new run's directory is removed, as with one process


class _TimedStderr:
    """A stderr that keeps (time, text) of what is written to it."""

    def __init__(self):
        self.writes = []

    def write(self, text):
        self.writes.append((time.time(), text))
        return len(text)

    def flush(self):
        pass


def _rank_failing_in_the_loop(rank: int, world: int, port: int, run: str, cache: str, where: str) -> None:
    """Rank `rank` of `glamor train`: rank 1's collection raises in its third round (where="collection"),
    or rank 0's first periodic evaluation does ("evaluation"), while the other rank goes on to its
    next collective. Each writes the error it ends with, when, whether teardown printed it, and
    what it wrote to stderr (with times). The store is the parent's, as torchrun's agent holds it."""
    import json

    _as_torchrun_rank(rank, world, port, cache)
    os.environ.update(TORCHELASTIC_USE_AGENT_STORE="True", TORCHELASTIC_RESTART_COUNT="0")
    from glamor import distributed, errors
    from glamor import train as T

    distributed.LEAVE_TIMEOUT_S = 6.0  # (the failing rank waits this long for the others, in vain)
    distributed.REPORT_AFTER_S = 0.5
    if where == "collection" and rank == 1:
        rounds, collect = [], T.Trainer.collect_round

        def collect_round(self):
            rounds.append(None)
            if len(rounds) == 3:
                raise RuntimeError("rank 1's environment raised")
            return collect(self)

        T.Trainer.collect_round = collect_round
    if where == "evaluation" and rank == 0:
        def evaluate(self, episodes, **kwargs):
            raise RuntimeError("rank 0's evaluation raised")

        T.Trainer.evaluate = evaluate
    cfg = preset("debug", progress=False, device="cpu", total_env_steps=10_000, eval_every=96,
                 eval_episodes_during_training=2, snapshot_every=10_000)
    sys.stderr = stderr = _TimedStderr()
    printed = False
    try:
        T.train(cfg, run, table=False)
        said = "finished"
    except Exception as e:  # noqa: BLE001 - written for the test
        said, printed = f"{type(e).__name__}: {e}", errors.printed(e)
    ended = time.time()
    sys.stderr = sys.__stderr__
    with open(os.path.join(os.path.dirname(run), f"loop{rank}.json"), "w") as f:
        json.dump({"ended": ended, "said": said, "printed": printed, "stderr": stderr.writes}, f)


@pytest.mark.parametrize("where,failing", [("collection", 1), ("evaluation", 0)])
def test_an_error_in_one_processs_training_loop_ends_every_process_soon(tmp_path, where, failing):
    """One rank's error in the loop (no vote there: the other rank waits in its next collective)
    ends that rank after its bounded wait to leave together (LEAVE_TIMEOUT_S, here 6 s), and its
    exit breaks the other's collective: every process is gone long before the collective timeout
    (GLAMOR_DIST_TIMEOUT_MIN, 120 minutes), the failing one with its own error, which it printed
    with its traceback before that wait (it came out only after it, the run silent meanwhile), and
    the other naming the rank that failed and its error (it said only gloo's "Connection closed by
    peer", the failure's rank and error in another process's output)."""
    import json
    from datetime import timedelta

    port = _free_port()
    store = dist.TCPStore("127.0.0.1", port, None, True, timeout=timedelta(seconds=60),  # noqa: F841 - (torchrun's
                          wait_for_workers=False)  # agent's store: it outlives a rank that leaves)
    ctx = mp.spawn(_rank_failing_in_the_loop, args=(2, port, str(tmp_path / "run"), os.environ["GLAMOR_CACHE"], where),
                   nprocs=2, join=False)
    _join_within(ctx, 240, "a process still waits for the one that failed")
    ended = {r: json.loads((tmp_path / f"loop{r}.json").read_text()) for r in (0, 1)}
    own = {"collection": "RuntimeError: rank 1's environment raised",
           "evaluation": "RuntimeError: rank 0's evaluation raised"}[where]
    failed, other = ended[failing], ended[1 - failing]
    assert failed["said"] == own and failed["printed"], failed
    assert other["said"].startswith(
        f"OtherProcessFailed: process rank {failing} of 2 failed first ({own}; its traceback is in that process's "
        f"output), and this process's collective broke when it left: RuntimeError: "), other["said"]
    assert not other["printed"], other
    assert abs(failed["ended"] - other["ended"]) < 30.0, ended  # the other left right after the failing one
    # the failing rank's traceback came before its wait for the others (6 s), not after it
    printed_at = [t for t, text in failed["stderr"] if "Traceback (most recent call last)" in text]
    text = "".join(text for _, text in failed["stderr"])
    assert f"process rank {failing} of 2 stopped with the error below" in text and own in text, text
    assert printed_at and failed["ended"] - printed_at[0] > 4.0, (printed_at, failed["ended"])
    assert text.count("Traceback (most recent call last)") == 1, text


def _rank_failing_part(rank: int, world: int, port: int, run: str, cache: str) -> None:
    """Rank `rank` of `glamor train` whose rank 1 runs out of memory writing its part of the first
    checkpoint."""
    _as_torchrun_rank(rank, world, port, cache)
    from glamor import train as T

    if rank == 1:
        def save_rank(*args, **kwargs):
            raise MemoryError("compressing rank 1's replay")

        T.checkpoint.save_rank = save_rank
    _train_writing_its_error(rank, run)


def test_a_checkpoint_part_that_fails_with_any_error_is_raised_on_every_process(tmp_path):
    """The vote after each step of a save took OSError alone: rank 1's MemoryError left the vote
    unanswered, and rank 0 waited in it until rank 1's exit broke the connection (gloo's 'Connection
    closed by peer'; NCCL: the collective timeout)."""
    run = tmp_path / "run"
    ctx = mp.spawn(_rank_failing_part, args=(2, _free_port(), str(run), os.environ["GLAMOR_CACHE"]), nprocs=2,
                   join=False)
    _join_within(ctx, 240, "a process still waits for the one whose part failed")
    assert (tmp_path / "start1.txt").read_text() == "MemoryError: compressing rank 1's replay"
    assert (tmp_path / "start0.txt").read_text() == (
        f"OSError: writing the first checkpoint in {run} failed (another process could not write its part); there "
        f"is no checkpoint to resume from")


def _rank_mismatched_model(rank: int, world: int, port: int, run: str, cache: str) -> None:
    """Rank `rank` of `glamor train` whose rank 1 builds a model of another size, which
    DistributedDataParallel's start refuses on every rank; each says whether its trainer closed."""
    _as_torchrun_rank(rank, world, port, cache)
    from glamor import train as T

    if rank == 1:
        build = T.build_model
        T.build_model = lambda cfg, env: build(cfg.replace(lstm_hidden=cfg.lstm_hidden + 8), env)
    close = T.Trainer.close

    def closing(self):
        with open(os.path.join(os.path.dirname(run), f"closed{rank}.txt"), "a") as f:
            f.write("closed\n")
        close(self)

    T.Trainer.close = closing
    if rank == 0:  # (rank 0 removes the new run's directory: slowly here, while rank 1 has nothing left to do)
        undo = T.undo_start

        def slow_undo(*args):
            time.sleep(1.0)
            try:
                return undo(*args)
            finally:
                with open(os.path.join(os.path.dirname(run), "undone0.txt"), "w") as f:
                    f.write(repr(time.time()))

        T.undo_start = slow_undo
    destroy = dist.destroy_process_group

    def destroying(*args, **kwargs):
        with open(os.path.join(os.path.dirname(run), f"left{rank}.txt"), "w") as f:
            f.write(repr(time.time()))
        destroy(*args, **kwargs)

    dist.destroy_process_group = destroying
    _train_writing_its_error(rank, run)


def test_a_model_that_differs_on_one_process_closes_every_process_trainer(tmp_path):
    """A model that differs between the processes is named on every rank (DistributedDataParallel's
    own check raised on rank 1 alone, and rank 0 saw a broken connection), and each rank closes
    its environments and puts its torch settings back, as after a failure while building them;
    the new run's directory goes. The ranks leave together: rank 1 tore gloo down right after the
    check's all_gather while rank 0 was still at work, and aborted at exit now and then ("terminate
    called without an active exception")."""
    ctx = mp.spawn(_rank_mismatched_model, args=(2, _free_port(), str(tmp_path / "run"), os.environ["GLAMOR_CACHE"]),
                   nprocs=2, join=False)
    _join_within(ctx, 240, "a process still waits for the one whose model differs")
    undone, left = (float((tmp_path / name).read_text()) for name in ("undone0.txt", "left1.txt"))
    assert left >= undone, "rank 1 tore its process group down while rank 0 was still removing the run"
    for rank in (0, 1):
        assert (tmp_path / f"start{rank}.txt").read_text() == (
            "ValueError: the model differs between processes 0 and 1 (idm.init_h.weight [16, 32] and "
            "idm.init_h.weight [24, 32]): every process must build the same model (the same glamor version "
            "and config)"), rank
        assert (tmp_path / f"closed{rank}.txt").read_text() == "closed\n", f"rank {rank} left its trainer open"
    assert not (tmp_path / "run").exists()


def _rank_resume_refused(rank: int, world: int, port: int, run: str, cache: str) -> None:
    """Rank `rank` of `glamor train --resume`, writing the error it stops with."""
    _as_torchrun_rank(rank, world, port, cache)
    from glamor import train as T

    try:
        T.resume(run, table=False)
    except Exception as e:
        with open(os.path.join(run, f"refused{rank}.txt"), "w") as f:
            f.write(str(e))


def test_a_resume_of_a_run_in_use_is_refused_on_every_process(tmp_path, torchrun_run):
    """Rank 0 alone takes the run's lock: refused (another process trains the run), it left
    while the others waited for its checkpoint's name, and they failed with a broken gloo
    connection (under NCCL: waited until torchrun killed them)."""
    import shutil

    from glamor.run_lock import RunLock

    run = Path(shutil.copytree(torchrun_run, tmp_path / "run"))
    (run / "eval.json").unlink()  # (resumable: not finished)
    lock = RunLock()
    lock.acquire(run)
    try:
        ctx = mp.spawn(_rank_resume_refused, args=(2, _free_port(), str(run), os.environ["GLAMOR_CACHE"]), nprocs=2,
                       join=False)
        _join_within(ctx, 240, "a process still waits for rank 0, refused the run's lock")
    finally:
        lock.release()
    assert (run / "refused0.txt").read_text().startswith(f"run directory {run} is in use: process {os.getpid()} "
                                                          f"is training it")
    assert (run / "refused1.txt").read_text() == "rank 0 could not take the run directory (its error is in its output)"


def _rank_failing_resume(rank: int, world: int, port: int, run: str, cache: str) -> None:
    """Rank `rank` of `glamor train --resume` whose rank 1 cannot load its part."""
    _as_torchrun_rank(rank, world, port, cache)
    from glamor import train as T

    if rank == 1:
        def load_state_dict(self, state, **kwargs):
            raise ValueError("rank 1's part does not fit")

        T.Trainer.load_state_dict = load_state_dict
    try:
        T.resume(run, total_env_steps=960, table=False)  # an extension: each rank loads its part
    except Exception as e:
        with open(os.path.join(run, f"resume{rank}.txt"), "w") as f:
            f.write(f"{type(e).__name__}: {e}")


def test_a_resume_that_fails_on_one_process_is_raised_on_every_process(tmp_path, torchrun_run):
    import shutil

    run = Path(shutil.copytree(torchrun_run, tmp_path / "run"))  # a finished torchrun run of 480 steps
    mp.spawn(_rank_failing_resume, args=(2, _free_port(), str(run), os.environ["GLAMOR_CACHE"]), nprocs=2,
             join=True)
    assert (run / "resume1.txt").read_text() == "ValueError: rank 1's part does not fit"
    assert (run / "resume0.txt").read_text() == "ValueError: another process could not load its part of the checkpoint"


def test_more_processes_than_gpus_are_named_before_any_process_group_starts(monkeypatch):
    """torchrun --nproc-per-node 4 on a machine of 2 GPUs: ranks 2 and 3 failed in
    torch.cuda.set_device with CUDA's bare "invalid device ordinal"."""
    from glamor import distributed

    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("LOCAL_RANK", "2")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "set_device", lambda i: pytest.fail(f"set_device({i})"))
    monkeypatch.setattr(dist, "init_process_group", lambda *a, **k: pytest.fail("init_process_group"))
    with pytest.raises(ValueError, match=r"LOCAL_RANK 2, but this machine has 2 GPU\(s\), one per process: "
                                         r"--nproc-per-node at most 2, or --set device='cpu'"):
        distributed.setup(preset("debug"))


def test_a_deterministic_torchrun_process_sets_cublas_config_before_it_starts_cuda(monkeypatch):
    """torch.cuda.set_device starts CUDA: CUBLAS_WORKSPACE_CONFIG, which cuBLAS reads once, is set
    before it (set_determinism, later, would set it too late and warn)."""
    from glamor import distributed

    class Started(Exception):
        pass

    seen = []
    # (recorded first: monkeypatch.delenv of an unset variable records nothing, and the value setup
    # sets outlived the test)
    monkeypatch.setenv("CUBLAS_WORKSPACE_CONFIG", "")

    def set_device(i):
        seen.append(os.environ.get("CUBLAS_WORKSPACE_CONFIG"))
        raise Started

    for deterministic in (True, False):
        monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
        monkeypatch.setenv("WORLD_SIZE", "2")
        monkeypatch.setenv("LOCAL_RANK", "0")
        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
        monkeypatch.setattr(torch.cuda, "set_device", set_device)
        with pytest.raises(Started):
            distributed.setup(preset("debug", deterministic=deterministic))
    assert seen == [":4096:8", None]


def _rank_leaving(rank: int, world: int, port: int, out: str, cache: str) -> None:
    """Rank 1 leaves at once; rank 0 comes to leave only 10 s later. Each writes how long its
    teardown took."""
    _as_torchrun_rank(rank, world, port, cache)
    from glamor import distributed

    distributed.LEAVE_TIMEOUT_S = 1.0
    distributed.setup(preset("debug", device="cpu"))
    if rank == 0:
        time.sleep(10.0)
    start = time.monotonic()
    distributed.teardown()
    with open(os.path.join(out, f"teardown{rank}.txt"), "w") as f:
        f.write(repr(time.monotonic() - start))


def test_a_process_that_does_not_come_to_leave_is_waited_for_a_bounded_time(tmp_path):
    """teardown waits for the others, but not past LEAVE_TIMEOUT_S: the barrier's bound was
    rank 0's alone, and the other ranks waited for its answer as long as the group's timeout
    (GLAMOR_DIST_TIMEOUT_MIN, 120 minutes), so a rank that failed alone stayed until then."""
    ctx = mp.spawn(_rank_leaving, args=(2, _free_port(), str(tmp_path), os.environ["GLAMOR_CACHE"]), nprocs=2,
                   join=False)
    _join_within(ctx, 120, "a process still waits to leave")
    waited = float((tmp_path / "teardown1.txt").read_text())
    assert 0.5 < waited < 6.0, f"rank 1 waited {waited:.1f} s in teardown for rank 0 (its bound: 1 s)"


def test_ctrl_c_leaves_without_waiting_for_the_others(monkeypatch):
    """After Ctrl-C a process that waited in teardown for the others held up one still in a
    collective (which Python's KeyboardInterrupt does not reach) for the whole bound."""
    from glamor import distributed

    waited, left = [], []
    monkeypatch.setattr(dist, "is_initialized", lambda: True)
    monkeypatch.setattr(dist, "monitored_barrier", lambda **kwargs: waited.append(kwargs["group"]))
    monkeypatch.setattr(dist, "destroy_process_group", lambda: left.append(True))
    for interrupted in (False, True):
        monkeypatch.setattr(distributed, "_leaving", "the group")
        try:
            try:
                if interrupted:
                    raise KeyboardInterrupt
            except KeyboardInterrupt as e:
                distributed.teardown(e)
                raise
            else:
                distributed.teardown()
        except KeyboardInterrupt:
            pass
    assert waited == ["the group"] and left == [True, True]


@pytest.mark.parametrize("inside_except", [False, True])
@pytest.mark.parametrize("interrupted", [False, True])
def test_train_leaves_without_waiting_only_after_its_own_ctrl_c(tmp_path, monkeypatch, interrupted, inside_except):
    """teardown skipped its wait for the others whenever sys.exc_info() held a KeyboardInterrupt,
    which it also does when train() is called inside a caller's own `except KeyboardInterrupt:`
    block: a run that finished there left without the others (and could abort at exit)."""
    from glamor import distributed
    from glamor import train as T

    class Finishing:  # a trainer of a rank other than 0 (its results are empty) that ends at once
        on_first_save = None

        def __init__(self, *args):
            pass

        def run(self):
            if interrupted:
                raise KeyboardInterrupt
            return {}

    waited = []
    monkeypatch.setattr(dist, "is_initialized", lambda: True)
    monkeypatch.setattr(dist, "barrier", lambda *args, **kwargs: None)
    monkeypatch.setattr(dist, "monitored_barrier", lambda **kwargs: waited.append(kwargs["group"]))
    monkeypatch.setattr(dist, "destroy_process_group", lambda: None)
    monkeypatch.setattr(distributed, "all_reduce_int", lambda value, op: value)
    monkeypatch.setattr(distributed, "_leaving", "the group")
    monkeypatch.setattr(T, "Trainer", Finishing)

    def train():
        try:
            T.train(preset("debug", progress=False), tmp_path / "run")
        except KeyboardInterrupt:
            pass

    if inside_except:
        try:
            raise KeyboardInterrupt  # the caller's own, handled before this training started
        except KeyboardInterrupt:
            train()
    else:
        train()
    assert waited == ([] if interrupted else ["the group"])


def test_rank_seeds_do_not_repeat_another_runs_seeds():
    """Process r of a run seeded s must not draw what another (seed, rank) pair draws: with
    seed + rank, rank 1 of seed 0 explored exactly like rank 0 of seed 1."""
    from glamor.planning import check_seed
    from glamor.train import rank_seed

    seeds = {(s, r): rank_seed(s, r) for s in range(16) for r in range(8)}
    assert all(seeds[s, 0] == s for s in range(16))  # a one-process run keeps its seed
    assert len(set(seeds.values())) == len(seeds), "two (seed, rank) pairs share an agent seed"
    assert all(check_seed("seed", v) == v for v in seeds.values())
    # plan seeds count up by one per call from the agent seed: a rank's range must stay apart
    others = [v for (s, r), v in seeds.items() if r > 0]
    assert min(abs(a - b) for a in others for b in seeds.values() if a != b) > 10**9


@pytest.mark.parametrize("value,minutes", [(None, 120.0), ("", 120.0), ("30", 30.0), (" 0.5 ", 0.5),
                                           ("2h", None), ("0", None), ("-5", None), ("inf", None), ("nan", None)])
def test_the_collective_timeout_is_read_by_name(monkeypatch, value, minutes):
    """GLAMOR_DIST_TIMEOUT_MIN=2h stopped every torchrun process with "could not convert string to
    float: '2h'", naming no variable; 0 or a negative number gave collectives no time at all."""
    from glamor.distributed import timeout_minutes

    if value is None:
        monkeypatch.delenv("GLAMOR_DIST_TIMEOUT_MIN", raising=False)
    else:
        monkeypatch.setenv("GLAMOR_DIST_TIMEOUT_MIN", value)
    if minutes is None:
        with pytest.raises(ValueError, match=r"GLAMOR_DIST_TIMEOUT_MIN=.*: must be a positive number of minutes"):
            timeout_minutes()
    else:
        assert timeout_minutes() == minutes


def _rank_resume_whose_config_cannot_be_written(rank: int, world: int, port: int, run: str, cache: str) -> None:
    """Rank `rank` of an extending `glamor train --resume` whose rank 0 cannot write config.json."""
    _as_torchrun_rank(rank, world, port, cache)
    from glamor import train as T
    from glamor.config import Config

    if rank == 0:
        def full_disk(self, path):
            raise OSError(28, "No space left on device")

        Config.save = full_disk
    try:
        T.resume(run, total_env_steps=960, table=False)
    except Exception as e:
        with open(os.path.join(os.path.dirname(run), f"resume{rank}.txt"), "w") as f:
            f.write(f"{type(e).__name__}: {e}")


def test_a_resume_whose_config_cannot_be_written_is_raised_on_every_process(tmp_path, torchrun_run):
    """Rank 0 alone writes config.json when a resume extends the run: its failure left the other
    ranks going on into the training loop, to fail there on a broken connection (or wait)."""
    import shutil

    run = Path(shutil.copytree(torchrun_run, tmp_path / "run"))
    ctx = mp.spawn(_rank_resume_whose_config_cannot_be_written,
                   args=(2, _free_port(), str(run), os.environ["GLAMOR_CACHE"]), nprocs=2, join=False)
    _join_within(ctx, 240, "a process still waits for rank 0, whose resume failed")
    assert (tmp_path / "resume0.txt").read_text() == "OSError: [Errno 28] No space left on device"
    assert (tmp_path / "resume1.txt").read_text().startswith("OSError: rank 0 could not write the run's config.json")


def _rank_start_in_a_taken_folder(rank: int, world: int, port: int, run: str, cache: str) -> None:
    """Rank `rank` of `glamor train` into an existing run without --overwrite."""
    _as_torchrun_rank(rank, world, port, cache)
    _train_writing_its_error(rank, run)


def test_a_run_directory_rank_0_cannot_start_is_raised_on_every_process(tmp_path):
    """Rank 0 alone prepares the run directory: its refusal (a run already there) left the others
    failing on gloo's 'Connection closed by peer', which torchrun could report as the cause."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text("{}")
    ctx = mp.spawn(_rank_start_in_a_taken_folder, args=(2, _free_port(), str(run), os.environ["GLAMOR_CACHE"]),
                   nprocs=2, join=False)
    _join_within(ctx, 240, "a process still waits for rank 0, whose start failed")
    assert (tmp_path / "start0.txt").read_text().startswith("FileExistsError:")
    assert (tmp_path / "start1.txt").read_text().startswith("RuntimeError: rank 0 could not start the run directory")
    assert (run / "config.json").read_text() == "{}"


def test_the_command_line_ends_with_one_line_for_an_error_teardown_printed(monkeypatch, capsys):
    """A failing torchrun process prints its error with its traceback before it waits for the
    others to leave (glamor/distributed.py's teardown): the command line then ends with the
    error's one line, not its traceback a second time, with its hint (what to do next: on Python
    3.10 the traceback does not show it, and that line left it out); an error not printed is raised
    as before."""
    from glamor import cli, errors

    def failing(args, mark):
        e = RuntimeError("rank 1's environment raised")
        if mark:
            errors.mark_printed(e)
        raise e

    monkeypatch.setattr(cli, "cmd_train", lambda args: failing(args, True))
    assert cli.main(["train", "--preset", "debug", "--run-dir", "run"]) == 1
    assert capsys.readouterr().err == ("glamor train: error: RuntimeError: rank 1's environment raised (its "
                                       "traceback is above)\n")
    def failing_with_a_hint(args):  # (rank 0's final evaluation: the training is saved, a resume evaluates it)
        e = RuntimeError("rank 0's evaluation raised")
        e.hint = "the training is finished and saved in run; once that is mended, `glamor train --resume run` evaluates it"
        errors.mark_printed(e)
        raise e

    monkeypatch.setattr(cli, "cmd_train", failing_with_a_hint)
    assert cli.main(["train", "--preset", "debug", "--run-dir", "run"]) == 1
    assert capsys.readouterr().err == ("glamor train: error: RuntimeError: rank 0's evaluation raised (its traceback "
                                       "is above); the training is finished and saved in run; once that is mended, "
                                       "`glamor train --resume run` evaluates it\n")
    monkeypatch.setattr(cli, "cmd_train", lambda args: failing(args, False))
    with pytest.raises(RuntimeError, match="rank 1's environment raised"):
        cli.main(["train", "--preset", "debug", "--run-dir", "run"])

    def other(args):
        raise errors.OtherProcessFailed("process rank 1 of 2 failed first")

    monkeypatch.setattr(cli, "cmd_train", other)
    assert cli.main(["train", "--preset", "debug", "--run-dir", "run"]) == 2  # (the survivor's: one line too)
    assert capsys.readouterr().err.startswith("glamor train: error: process rank 1 of 2 failed first")
