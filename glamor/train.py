"""The training loop of the spec: collect open-loop, epsilon-greedy episodes towards training
goals, relabel them in hindsight, and fit the IDM and the prior by maximum likelihood.

One round: every environment resets (a fresh start, or its goal's with `train_start="goal"`)
with a training goal drawn uniformly, the agent plans once for all of them (one batched plan
call), executes the plans with epsilon-greedy exploration and random actions after each plan
ends, and the episodes go to the replay. Then `updates_per_episode` updates per collected
episode (after `learning_starts`). Environments run in this process or in worker processes
(`Config.vector`, see glamor/vector.py).

A run directory holds config.json, metrics.csv, tb/ (TensorBoard), checkpoint.pt (with
checkpoint.prev.pt and the replay-<step>.npz they name; see glamor/checkpoint.py) and eval.json;
glamor/run_dir.py makes it (replacing an old run with --overwrite) and undoes a failed start.

Exact resume: a checkpoint holds everything the loop's future depends on (model, optimiser,
replay, the random states of torch, numpy, python, the trainer, the agent and every environment,
the step counters and the schedule of logs, evaluations and snapshots), and it is written only
between rounds. `resume(run_dir)` continues from it; with `deterministic=True` a run killed and
resumed any number of times ends with the same weights as one that was not. Ctrl-C or SIGTERM
ends the round, writes a checkpoint and raises TrainingInterrupted (glamor/interrupt.py).

Several processes (`torchrun`, see glamor/distributed.py): each collects its own data, gradients
are averaged with DDP, env_step counts every process's steps; rank 0 logs, evaluates and writes
the checkpoint, which names each other rank's own part (its replay and random states), so a
resume under torchrun with as many processes is exact too.

`Config.algo = "gcsl"` trains the GCSL baseline (glamor/gcsl.py) in the same loop, replay, budget
and schedule: its policy collects closed loop (in-process environments only) and learns from the
same relabelled batches.
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import os
import random
import shutil
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from glamor import checkpoint, distributed, envs, sysinfo
from glamor.agent import Agent, agent_class
from glamor.config import MACHINE_FIELDS, MODEL_FIELDS, Config, check_model_unchanged
from glamor.devices import resolve_device
from glamor.evaluate import EvaluationStopped, evaluate
from glamor.gcsl import GCSLAgent, GCSLPolicy, collect_closed_loop
from glamor.goals import make_goal_set
from glamor.interrupt import StopRequest, TrainingInterrupted, stop_on_signal
from glamor.logger import Logger
from glamor.model import GlamorModel
from glamor.replay import Replay
from glamor.results import EVAL_METRICS, format_table, read_results, write_results
from glamor.run_dir import check_is_run, prepare_run_dir, settle_start, undo_start
from glamor.run_lock import RunLock
from glamor.vector import build_envs, close_envs, make_pool

CHECKPOINT_FORMAT = 2


def make_envs(cfg: Config, count: int) -> list[envs.GoalEnv]:
    """`count` environments of `cfg` (those built are closed when one fails to build)."""
    return build_envs(cfg.env_id, cfg.episode_length, cfg.env_kwargs, count)


def build_model(cfg: Config, env: envs.GoalEnv) -> GlamorModel | GCSLPolicy:
    """The network of `cfg.algo`: a GlamorModel, or a GCSLPolicy for the GCSL baseline."""
    return agent_class(cfg.algo).model_class().from_config(cfg, env.action_space.n, env.frame_stack, env.frame_shape)


def rank_seed(seed: int, rank: int) -> int:
    """The agent seed of process `rank` in a run seeded `seed`: the seed itself on rank 0 (a
    one-process run), a draw from numpy's SeedSequence of (seed, rank) on the others. Not
    seed + rank, which gave rank 1 of seed 0 the draws of rank 0 of seed 1 (two runs meant to be
    independent), nor close to rank 0's: an agent's plan seeds count up by one per call."""
    if rank == 0:
        return seed
    return int(np.random.SeedSequence([seed, rank]).generate_state(1, np.uint64)[0] >> 2)  # in [0, 2**62)


def resume_command(run_dir: str | Path, world_size: int) -> str:
    """The command that continues a run trained by `world_size` processes (under torchrun: as
    many again)."""
    if world_size == 1:
        return f"glamor train --resume {run_dir}"
    local = int(os.environ.get("LOCAL_WORLD_SIZE", world_size))
    nodes = f"--nproc-per-node {local}" if local == world_size else \
        f"--nnodes {world_size // local} --nproc-per-node {local} ..."
    return f"torchrun {nodes} -m glamor train --resume {run_dir}"


def build_agent(model, cfg: Config, **overrides) -> Agent | GCSLAgent:
    """The acting side of `cfg.algo` on top of `model`."""
    return agent_class(cfg.algo).from_config(model, cfg, **overrides)


def eval_metrics(results: dict) -> dict[str, float]:
    """The eval/ metrics of an evaluation (those its policies have)."""
    return {name: results[key] for name, key in EVAL_METRICS.items() if results.get(key) is not None}


def eval_goal_sets(cfg: Config, env: envs.GoalEnv, count: int, progress: bool) -> dict:
    """The held-out goal sets of an environment: "eval", and "eval_moved" when objects can move."""
    sets = {"eval": make_goal_set(env, cfg, "eval", count, progress)}
    if env.moved_labels:
        sets["eval_moved"] = make_goal_set(env, cfg, "eval_moved", count, progress)
    return sets


def first_goals(goal_sets: dict, episodes: int, names: tuple[str, ...] | None = None) -> dict:
    """The first `episodes` goals of each set (of those named in `names`; default all)."""
    return {name: s if episodes >= len(s) else s.subset(np.arange(episodes)) for name, s in goal_sets.items()
            if names is None or name in names}


@contextlib.contextmanager
def eval_environments(cfg: Config, episodes: int):
    """Environments for an evaluation of `episodes` goals, closed after it (a control task's
    renderer holds a GL context)."""
    eval_envs = make_envs(cfg, min(cfg.eval_batch, episodes))
    try:
        yield eval_envs
    finally:
        close_envs(eval_envs)


def check_env_fits_model(env: envs.GoalEnv, state: dict, cfg: Config) -> None:
    """The environment gives the observations and actions a checkpoint's model was trained on."""
    trained = checkpoint.model_meta(state)
    if trained is None:
        return
    got = {"num_actions": int(env.action_space.n), "frame_stack": env.frame_stack, "image_hw": list(env.frame_shape)}
    if trained != got:
        raise ValueError(f"{cfg.env_id} with env_kwargs {cfg.env_kwargs} gives {got}, but the model was trained "
                         f"on {trained}")


def evaluate_checkpoint(run_dir: str | Path, cfg: Config, *, episodes: int | None = None,
                        set_names: tuple[str, ...] | None = None, policies: tuple[str, ...] | None = None,
                        details: dict | None = None, record: int = 0, state: dict | None = None) -> dict:
    """Evaluate a run's newest checkpoint with `cfg` (its config, or one with evaluation settings
    changed, e.g. another planner width; one that changes a field the checkpoint fixes,
    `config.MODEL_FIELDS`, is refused naming it) on the first `episodes` goals (default all
    `cfg.eval_episodes`) of its held-out goal sets (those named in `set_names`; default all).
    `state`: the checkpoint already read by `checkpoint.load_latest(run_dir, with_replay=False)`,
    so that the one a caller checked is the one evaluated (and read once).

    Returns the eval.json dict (see `evaluate`, which `policies`, `details` and `record` go to)
    with the checkpoint's `env_steps` and `updates`. It writes no files, and leaves torch's random
    states (CPU and GPUs, a seed torch holds back until CUDA starts included), thread count and
    determinism settings (CUBLAS_WORKSPACE_CONFIG too, unless CUDA first started in it: cuBLAS
    goes on using it, see `set_determinism`) as they were.
    """
    restore_torch = set_determinism(cfg)
    try:
        if state is None:
            state = checkpoint.load_latest(Path(run_dir), with_replay=False)
        if state is None:
            raise FileNotFoundError(f"no checkpoint in {run_dir} to evaluate (a run stopped before its first one? "
                                    f"`glamor train --resume {run_dir}` trains it)")
        if "env_step" not in state:  # (the results name the step they evaluated: found before the evaluation)
            raise ValueError(f"{state.get('path', run_dir)} was written before resumable checkpoints (it holds "
                             f"weights but no environment step), so its evaluation has no step to report; load "
                             f"it with glamor.Agent.load and evaluate that agent with glamor.evaluate.run_episodes")
        if "config" in state:  # a cfg whose model is not the checkpoint's is named as such, not as a damaged file
            trained = Config.from_dict(state["config"], f"{state.get('path', run_dir)}'s config")
            check_model_unchanged(trained, {k: getattr(cfg, k) for k in MODEL_FIELDS}, "the evaluation's cfg")
        episodes = cfg.eval_episodes if episodes is None else goals_to_evaluate(episodes, cfg)
        # the caller's random states come back (building the model draws its initial weights too)
        with eval_environments(cfg, episodes) as eval_envs, torch.random.fork_rng([], device_type="cuda"):
            check_env_fits_model(eval_envs[0], state, cfg)
            model = build_model(cfg, eval_envs[0]).to(resolve_device(cfg.device))
            checkpoint.load_weights(model, state)
            sets = first_goals(eval_goal_sets(cfg, eval_envs[0], cfg.eval_episodes, cfg.progress), episodes, set_names)
            # the GPUs' states too, once the model's move has started CUDA: a torch.manual_seed the
            # caller made before (which torch holds back until then) is in them now, and stays
            gpus = range(torch.cuda.device_count()) if torch.cuda.is_initialized() else []
            with torch.random.fork_rng(gpus, device_type="cuda"):
                if gpus:
                    torch.manual_seed(cfg.seed)
                else:  # (CUDA not started: torch.manual_seed would hold this seed back for the GPUs in
                    torch.default_generator.manual_seed(cfg.seed)  # place of the caller's, past the call)
                results = evaluate(model, cfg, eval_envs, sets, progress=cfg.progress, policies=policies,
                                   details=details, record=record)
        results.update(env_steps=state["env_step"], **{k: state[k] for k in ("updates",) if k in state})
        return results
    finally:
        restore_torch()


def goals_to_evaluate(episodes: int, cfg: Config, stacklevel: int = 3) -> int:
    """`episodes`, at most the goals each of the run's held-out sets holds (`eval_episodes`),
    with a warning when more were asked for."""
    if episodes < 1:
        raise ValueError(f"episodes must be at least 1, got {episodes}")
    if episodes > cfg.eval_episodes:
        warnings.warn(f"{episodes} episodes asked for, but the run's held-out goal sets hold eval_episodes="
                      f"{cfg.eval_episodes} goals each: evaluating those (more goals: --set eval_episodes=N, or "
                      f"cfg.replace(eval_episodes=N))", RuntimeWarning, stacklevel=stacklevel)
    return min(episodes, cfg.eval_episodes)


class _Loss(torch.nn.Module):
    """The model's loss as a forward(), so DistributedDataParallel can wrap it."""

    def __init__(self, model: GlamorModel):
        super().__init__()
        self.model = model

    def forward(self, obs, goal, targets):
        return self.model.loss(obs, goal, targets)


def _add_hint(error: BaseException, hint: str) -> None:
    """What to do next, for `glamor`'s one-line error (`error.hint`) and a traceback (a note)."""
    error.hint = hint
    if hasattr(error, "add_note"):  # (Python 3.11+)
        error.add_note(hint)


def _next_multiple(step: int, every: int) -> int:
    """The first multiple of `every` past `step` (when the next evaluation or snapshot is due)."""
    return (step // every + 1) * every


def set_determinism(cfg: Config, stacklevel: int = 3) -> Callable[[], None]:
    """Thread count and deterministic algorithms (and CUBLAS_WORKSPACE_CONFIG, which cuBLAS needs
    for them), as the config asks. Returns a function that puts back what this changed (they are
    the process's settings: a script or notebook that trains goes on with its own afterwards).

    cuBLAS reads CUBLAS_WORKSPACE_CONFIG once, when the process first uses it: set here after
    CUDA has started (torch.cuda.is_initialized()), it may come too late, and torch, which checks
    only that it is set, no longer refuses the nondeterministic products it then makes. That is
    warned of (`stacklevel` as `warnings.warn`'s); set it in the environment before Python starts.
    Once CUDA has started with it set here, it stays set (cuBLAS goes on using it)."""
    restore = []
    threads = cfg.torch_threads or (1 if cfg.deterministic else 0)
    if threads:
        restore.append(functools.partial(torch.set_num_threads, torch.get_num_threads()))
        torch.set_num_threads(threads)
    if cfg.deterministic:
        if "CUBLAS_WORKSPACE_CONFIG" not in os.environ:  # (deterministic cuBLAS; processes started later inherit it)
            cuda_started = torch.cuda.is_initialized()
            if cuda_started:
                warnings.warn("deterministic=True, but CUDA started in this process before CUBLAS_WORKSPACE_CONFIG "
                              "was set: cuBLAS reads it once, at its first use, so its matrix products may not be "
                              "deterministic; set CUBLAS_WORKSPACE_CONFIG=:4096:8 in the environment before "
                              "Python starts", RuntimeWarning, stacklevel=stacklevel)
            os.environ["CUBLAS_WORKSPACE_CONFIG"] = ":4096:8"

            def unset_cublas_config() -> None:  # (kept when CUDA started since: cuBLAS may be using it)
                if cuda_started or not torch.cuda.is_initialized():
                    os.environ.pop("CUBLAS_WORKSPACE_CONFIG", None)

            restore.append(unset_cublas_config)
        restore.append(functools.partial(torch.use_deterministic_algorithms, torch.are_deterministic_algorithms_enabled(),
                                         warn_only=torch.is_deterministic_algorithms_warn_only_enabled()))
        restore.append(functools.partial(setattr, torch.backends.cudnn, "benchmark", torch.backends.cudnn.benchmark))
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False

    def put_back() -> None:
        for undo in restore:
            undo()

    return put_back


class Trainer:
    """Owns the run's environments, model, optimiser, replay, counters and random states.

    Args:
        cfg: the run's configuration.
        run_dir: where checkpoints and logs go.
        rank, world_size: this process's place among several (torch.distributed must be
            initialised when world_size > 1).
    """

    def __init__(self, cfg: Config, run_dir: Path, rank: int = 0, world_size: int = 1):
        self.cfg, self.run_dir = cfg, Path(run_dir)
        self.rank, self.world_size = rank, world_size
        self.pool = self.env = None
        self._closed = False
        self._restore_torch = lambda: None  # the process's torch settings, put back by close()
        # Under torchrun every process builds its own parts, rank 0 also the train goal set that the
        # others then read from the cache. A failure on any process is raised on all of them before
        # DistributedDataParallel's first collective: none waits there for one that has left.
        try:
            self._on_every_rank(self._build_parts, RuntimeError("another process failed while setting up training "
                                                                "(its error is in its output)"))
            self._on_every_rank(self._read_train_goals if rank else lambda: None,
                                RuntimeError("another process could not read the train goal set (its error is in "
                                             "its output)"))
            # (DistributedDataParallel's start is a collective that checks the ranks' parameters
            # agree: one that fails there fails on every rank, each closing its environments)
            self.loss_fn = self._wrap_loss()
        except BaseException:
            with contextlib.suppress(Exception):  # (the error that stopped the start is the one to report)
                self.close()
            raise
        self.env_step = 0  # over all processes
        self.updates = 0
        self._eval_sets = None
        self._plan_time, self._plans = 0.0, 0
        self._update_credit = 0.0
        # the loop's schedule and its running log window (checkpointed: the loop's future)
        self.next_eval = cfg.eval_every if cfg.eval_every > 0 else math.inf
        self.next_snapshot, self.next_log = cfg.snapshot_every, 0
        self.window: dict[str, list[float]] = {}
        self.last_success: str | None = None
        self.resumed_from: int | None = None
        self._resumed_from_newest = False
        self._fell_back = False  # resumed from checkpoint.prev.pt, and not saved since
        self._wall_offset = 0.0
        self.went_on_from = 0.0
        self.on_first_save: Callable[[], None] | None = None  # called once, after the first checkpoint

    def _build_parts(self) -> None:
        """This process's environments, model, optimiser, replay and agent (rank 0: and the train
        goal set)."""
        cfg, rank = self.cfg, self.rank
        self._restore_torch = set_determinism(cfg, stacklevel=5)  # (where the Trainer is made)
        torch.manual_seed(cfg.seed)  # the same initial weights on every rank
        self.rng = np.random.default_rng(cfg.seed if rank == 0 else [cfg.seed, rank])
        self.device = resolve_device(cfg.device)
        if self.world_size > 1 and self.device.type == "cuda":  # each process its own GPU (LOCAL_RANK)
            self.device = torch.device("cuda", torch.cuda.current_device())
        self.env = envs.make(cfg.env_id, cfg.episode_length, **cfg.env_kwargs)  # goals and shapes
        unnamed = envs.unnamed_module(cfg.env_id) if rank == 0 else None
        if unnamed:  # (training here works; every later command on the run would fail to build it)
            warnings.warn(unnamed, UserWarning, stacklevel=5)
        self.pool = make_pool(cfg)
        self.num_actions = self.env.action_space.n
        self.model = build_model(cfg, self.env).to(self.device)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.replay = Replay(cfg.replay_capacity, self.env.frame_shape, self.env.frame_stack, self.num_actions)
        if rank == 0:
            self._check_replay_fits()
        self.prefer = None  # the replay's preference for pairs in which an object moved
        if cfg.moved_sample_fraction > 0:
            self.prefer = getattr(self.env, "objects_moved", None)
            if self.prefer is None:
                raise ValueError(f"moved_sample_fraction={cfg.moved_sample_fraction} but {cfg.env_id} "
                                 "cannot tell moved objects from its frames (no objects_moved)")
            if not getattr(self.env, "movable_objects", True):  # it would draw 16x the pairs for nothing
                raise ValueError(f"moved_sample_fraction={cfg.moved_sample_fraction} but {cfg.env_id} has no "
                                 "objects that move (a gridworld has a box with box=True, as glamor/GridWorldBox-v0)")
        self.agent = build_agent(self.model, cfg, seed=rank_seed(cfg.seed, rank))
        if rank == 0 and (cfg.learning_starts >= cfg.total_env_steps or cfg.updates_per_episode == 0):
            why = ("updates_per_episode is 0" if cfg.updates_per_episode == 0 else
                   f"learning_starts ({cfg.learning_starts:,}) is not below total_env_steps ({cfg.total_env_steps:,})")
            warnings.warn(f"this run makes no gradient updates, or only in its last round: {why}",
                          RuntimeWarning, stacklevel=4)  # where the Trainer is made
        round_steps = len(self.pool) * cfg.episode_length * self.world_size
        if rank == 0 and round_steps > cfg.total_env_steps:
            processes = f" x {self.world_size} processes" if self.world_size > 1 else ""
            warnings.warn(f"total_env_steps={cfg.total_env_steps:,} is less than one collection round "
                          f"({len(self.pool)} environments x episode_length {cfg.episode_length}{processes} = "
                          f"{round_steps:,} steps): the run takes a whole round", RuntimeWarning, stacklevel=4)
        if rank == 0 and cfg.eval_every > 0 and cfg.eval_episodes_during_training > cfg.eval_episodes:
            warnings.warn(f"eval_episodes_during_training={cfg.eval_episodes_during_training} is more than "
                          f"eval_episodes={cfg.eval_episodes}, the goals each held-out set holds: the periodic "
                          f"evaluations use those {cfg.eval_episodes}", RuntimeWarning, stacklevel=4)
        if rank == 0:
            self._read_train_goals()

    def _wrap_loss(self) -> torch.nn.Module:
        """The model's loss as a module; under torchrun wrapped in DistributedDataParallel, which
        averages the gradients over the processes."""
        loss_fn = _Loss(self.model)
        if self.world_size == 1:
            return loss_fn
        # DistributedDataParallel checks the shapes against rank 0's on each rank, and a rank whose
        # differ leaves while rank 0 waits in its weights' broadcast: compared here, on every rank
        shapes = distributed.all_gather([(name, list(p.shape)) for name, p in self.model.named_parameters()])
        for rank, theirs in enumerate(shapes):
            if theirs != shapes[0]:
                how = next((f"{a[0]} {a[1]} and {b[0]} {b[1]}" for a, b in zip(shapes[0], theirs) if a != b),
                           f"{len(shapes[0])} and {len(theirs)} parameters")
                raise ValueError(f"the model differs between processes 0 and {rank} ({how}): every process must "
                                 f"build the same model (the same glamor version and config)")
        from torch.nn.parallel import DistributedDataParallel

        return DistributedDataParallel(loss_fn, device_ids=None if self.device.type == "cpu" else [self.device])

    def _check_replay_fits(self) -> None:
        """Warn when the replays of this machine's processes, once full, need more memory than it
        has: numpy's zeros take pages only as they are written, so such a run is killed by the
        kernel hours in, when its replay fills, not at the start."""
        available = sysinfo.available_memory()
        processes = int(os.environ.get("LOCAL_WORLD_SIZE", 1))
        need = self.replay.nbytes * processes
        if available is not None and need > available:
            (h, w), each = self.env.frame_shape, f" each, x {processes} processes" if processes > 1 else ""
            warnings.warn(f"the replay takes {need / 2**30:.1f} GiB when full (replay_capacity="
                          f"{self.cfg.replay_capacity:,} frames of {h}x{w}{each}) but this machine has "
                          f"{available / 2**30:.1f} GiB available: the run would be killed when the replay "
                          f"fills; lower replay_capacity", RuntimeWarning, stacklevel=5)

    def _read_train_goals(self) -> None:
        """The train goal set: built by rank 0 (or read from the goal cache), read by the others
        from the cache rank 0 filled."""
        self.train_goals = make_goal_set(self.env, self.cfg, "train", progress=self.cfg.progress and self.rank == 0)

    @property
    def envs(self):
        """The collection environments (an EnvPool)."""
        return self.pool

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def close(self) -> None:
        """Close the environments (the collection pool, and `env`, which gives the goals and
        shapes: a control task's holds a MuJoCo model and a GL context) and put back the torch
        settings the config changed: all of it even when one part fails, whose error is raised
        after. Closing again does nothing more."""
        parts, self._closed = [] if self._closed else [self.pool, self.env], True
        try:
            close_envs([part for part in parts if part is not None])
        finally:
            self._restore_torch()
            self._restore_torch = lambda: None

    # ---- collection ---------------------------------------------------------------------
    def collect_round(self) -> int:
        """One open-loop, epsilon-greedy episode per environment; returns env steps taken
        (by all processes together)."""
        cfg, k, n = self.cfg, self.cfg.episode_length, len(self.pool)
        picks = self.rng.integers(len(self.train_goals), size=n)
        seeds = [int(self.rng.integers(2**31)) for _ in range(n)]  # drawn either way: one rng stream
        if cfg.train_start == "goal":  # where each goal's rollout started, as in evaluation
            seeds = [int(self.train_goals.seeds[i]) for i in picks]
        obs = self.pool.reset(seeds, [self.train_goals[int(i)] for i in picks])
        epsilon = cfg.epsilon(self.env_step)
        if cfg.algo == "gcsl":
            return self._collect_gcsl(obs, epsilon)
        if self.env_step < cfg.learning_starts or epsilon >= 1.0:
            actions = self.rng.integers(self.num_actions, size=(n, k))
        else:
            self.model.eval()
            o = np.stack([x["observation"] for x in obs])  # (E, S, H, W)
            g = np.stack([x["desired_goal"] for x in obs])  # (E, 1, H, W)
            t0 = time.perf_counter()
            actions = self.agent.open_loop(o, g, horizon=k)  # (E, k)
            self._plan_time += time.perf_counter() - t0
            self._plans += n
            self.model.train()
        actions = self.agent.epsilon_greedy(actions, epsilon)
        return self._store(self.pool.rollout(actions))

    def _collect_gcsl(self, obs: list[dict], epsilon: float) -> int:
        """GCSL's round: its policy acts closed loop in every environment (random before
        learning_starts), epsilon-greedy on top."""
        explore = self.env_step < self.cfg.learning_starts or epsilon >= 1.0
        self.model.eval()
        episodes = collect_closed_loop(self.pool._envs, obs, None if explore else self.agent, epsilon, self.rng)
        self.model.train()
        return self._store(episodes)

    def _store(self, episodes) -> int:
        """Episodes to the replay; returns the env steps taken (by all processes together)."""
        taken = 0
        for frames, acts in episodes:
            self.replay.add_episode(frames, acts)
            taken += len(acts)
        taken = self._over_ranks(taken, torch.distributed.ReduceOp.SUM)
        self.env_step += taken
        return taken

    # ---- learning -----------------------------------------------------------------------
    def update(self) -> dict[str, float]:
        cfg = self.cfg
        obs, goal, targets, k = self.replay.sample(cfg.batch_size, cfg.episode_length, self.rng,
                                                   prefer=self.prefer, prefer_fraction=cfg.moved_sample_fraction)
        T = int(k.max()) + 1  # the longest target in the batch; the rest is PAD
        to = lambda x: torch.from_numpy(x).to(self.device)  # noqa: E731
        losses = self.loss_fn(to(obs), to(goal), to(targets[:, :T]))
        # Every loss term to the host at once: one device sync per update, not one per term.
        values = dict(zip(losses, torch.stack([v.detach() for v in losses.values()]).tolist(), strict=True))
        finite = bool(self._over_ranks(int(math.isfinite(values["loss"])), torch.distributed.ReduceOp.MIN))  # all stop
        if not finite:
            kept = (f"the last good checkpoint in {self.run_dir} is kept"
                    if (Path(self.run_dir) / checkpoint.CHECKPOINT).exists()
                    else "no checkpoint had been written yet")
            raise FloatingPointError(
                f"non-finite loss {values['loss']} at env step {self.env_step} (try a lower lr or "
                f"grad_clip); {kept}"
            )
        self.optimizer.zero_grad(set_to_none=True)
        losses["loss"].backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
        self.optimizer.step()
        self.updates += 1
        return values

    # ---- checkpoints --------------------------------------------------------------------
    def model_meta(self) -> dict:
        return {"num_actions": int(self.num_actions), "frame_stack": int(self.env.frame_stack),
                "image_hw": [int(x) for x in self.env.frame_shape]}

    def state_dict(self) -> dict:
        """Everything the rest of the run depends on, except the replay's arrays (under
        torchrun, the parts of its own are this rank's: `local_state_dict`)."""
        return {
            "format": CHECKPOINT_FORMAT,
            "config": self.cfg.to_dict(),
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "env_step": self.env_step,
            "updates": self.updates,
            "world_size": self.world_size,
            "model_meta": self.model_meta(),
            **self.local_state_dict(),
        }

    def local_state_dict(self) -> dict:
        """What each process has of its own: its random states, its environments', its agent's
        draws and the loop's counters (the same on every rank but for the log window)."""
        rng = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
        if torch.cuda.is_initialized():  # (a run on the CPU does not start CUDA for states it never draws from)
            rng["cuda"] = torch.cuda.get_rng_state_all()
        env_rngs = self.pool.rng_states()  # first: a worker restarted while asked is counted below
        return {
            "trainer": {
                "rng": self.rng.bit_generator.state,
                "update_credit": self._update_credit,
                "next_eval": self.next_eval,
                "next_snapshot": self.next_snapshot,
                "next_log": self.next_log,
                "window": self.window,
                "last_success": self.last_success,
                "wall_time": self._wall_offset,
                "worker_restarts": self.pool.restarts,
            },
            "agent": self.agent.state_dict(),
            "rng": rng,
            "envs": env_rngs,
        }

    def load_state_dict(self, state: dict, *, take_replay: bool = False) -> None:
        """Restore a `state_dict()` and `state["replay"]`, the replay's arrays (as
        `checkpoint.load_latest` returns them); a checkpoint without them is refused. With
        `take_replay`, the replay keeps those arrays rather than copying them (see
        `Replay.load_state_dict`): for arrays just read from the checkpoint's file."""
        where = state.get("path", "the checkpoint")
        if state.get("format") is None:
            raise ValueError(f"{where} was written before resumable checkpoints (it holds weights but no "
                             "optimiser, replay or random states): it cannot be resumed; load it for "
                             "planning with glamor.Agent.load, or train a new run")
        if state.get("format") != CHECKPOINT_FORMAT:
            raise ValueError(f"{where} has checkpoint format {state.get('format')} and cannot be resumed "
                             f"(this version writes format {CHECKPOINT_FORMAT})")
        if "replay" not in state:
            raise ValueError(f"{where} names no replay file (or was loaded without it): resuming "
                             "would continue with an empty replay; load it with "
                             "checkpoint.load_latest(run_dir) (with_replay=True)")
        checkpoint.load_weights(self.model, state)
        checkpoint.check_optimizer_state(state)  # (load_latest's fallback has checked it: a state made elsewhere)
        self.optimizer.load_state_dict(state["optimizer"])
        self.env_step, self.updates = int(state["env_step"]), int(state["updates"])
        t = state["trainer"]
        self.rng.bit_generator.state = t["rng"]
        self._update_credit = t["update_credit"]
        self.next_eval, self.next_snapshot, self.next_log = t["next_eval"], t["next_snapshot"], t["next_log"]
        self.window = {k: list(v) for k, v in t["window"].items()}
        self.last_success, self._wall_offset = t["last_success"], t["wall_time"]
        self.pool.restarts = t.get("worker_restarts", 0)  # a count over the whole run
        self.agent.load_state_dict(state["agent"])
        torch.set_rng_state(state["rng"]["torch"])
        if "cuda" in state["rng"] and torch.cuda.is_available():
            # one state per GPU the saving process saw; this machine may show fewer (or more)
            for i, gpu_state in enumerate(state["rng"]["cuda"][: torch.cuda.device_count()]):
                torch.cuda.set_rng_state(gpu_state, i)
        np.random.set_state(state["rng"]["numpy"])
        random.setstate(state["rng"]["python"])
        self.pool.set_rng_states(state["envs"])
        self.replay.load_state_dict(state["replay"], take=take_replay)
        self.resumed_from = self.env_step
        # The newest checkpoint, or a fallback past a damaged one (which the next save replaces).
        came_from = Path(state.get("path", "")).name
        self._resumed_from_newest = came_from == checkpoint.CHECKPOINT
        self._fell_back = came_from == checkpoint.PREVIOUS

    def save(self, logger: Logger | None = None) -> None:
        """A checkpoint of the whole training state; the previous one is kept until this one is
        complete. Under torchrun every rank calls it: the others write their own parts (their
        replays and random states) first, then rank 0 the checkpoint that names them."""
        if logger is not None:
            self._wall_offset = logger.elapsed
        # The rows logged up to this checkpoint reach the disk before it does (rank 0's logger; a step
        # of every rank's, so a failure is agreed on and no rank waits for the others in a collective).
        sync_logs = logger.sync if logger is not None else (lambda: None)
        try:
            for write in (sync_logs, self._write_rank_part, self._write_checkpoint):
                self._on_every_rank(write, OSError("another process could not write its part"))
        except OSError as e:
            if not any((self.run_dir / name).is_file() for name in (checkpoint.CHECKPOINT, checkpoint.PREVIOUS)):
                raise OSError(f"writing the first checkpoint in {self.run_dir} failed ({e}); there is no "
                              f"checkpoint to resume from") from e
            raise OSError(f"writing a checkpoint in {self.run_dir} failed ({e}); the previous checkpoint "
                          f"is kept and `{self.resume_command()}` continues from it") from e
        if self.on_first_save is not None:
            settle, self.on_first_save = self.on_first_save, None
            settle()

    def resume_command(self) -> str:
        """The command that continues this run (under torchrun: as many processes again)."""
        return resume_command(self.run_dir, self.world_size)

    def _write_rank_part(self) -> None:
        if not self.is_main:
            checkpoint.save_rank(self.run_dir, self.rank, {"env_step": self.env_step, **self.local_state_dict()},
                                 self.replay.state_dict())

    def _write_checkpoint(self) -> None:
        if self.is_main:
            state = self.state_dict()
            if self.world_size > 1:
                state["rank_files"] = {r: list(checkpoint.rank_file_names(r, self.env_step))
                                       for r in range(1, self.world_size)}
            # resumed from checkpoint.prev.pt: the checkpoint.pt load_latest fell back past is not kept
            checkpoint.save_run(self.run_dir, state, self.replay.state_dict(), keep_previous=self._fell_back)
            self._fell_back = False

    def _on_every_rank(self, step: Callable[[], None], elsewhere: Exception) -> None:
        """`step()` here, then agree with the other processes that it succeeded on every one: an
        error that `step` raised (any Exception: one the vote let through, a MemoryError while
        saving, left the others waiting in it) is raised here, and `elsewhere` on the processes
        where it succeeded, so none goes on to wait for the others in a collective."""
        if self.world_size == 1:
            step()
            return
        error = None
        try:
            step()
        except Exception as e:  # noqa: BLE001 - raised below, after the vote
            error = e
        distributed.raise_together(error, elsewhere)

    def evaluate(self, episodes: int, **kwargs) -> dict:
        if self._eval_sets is None:
            self._eval_sets = eval_goal_sets(self.cfg, self.env, self.cfg.eval_episodes, self.cfg.progress)
        with eval_environments(self.cfg, episodes) as eval_envs:
            return evaluate(self.model, self.cfg, eval_envs, first_goals(self._eval_sets, episodes), progress=False,
                            **kwargs)

    # ---- the loop -----------------------------------------------------------------------
    def run(self) -> dict:
        """Train until total_env_steps, save, evaluate (rank 0); returns the eval.json dict
        (empty on other ranks). A stop (glamor/interrupt.py) raises TrainingInterrupted: after the
        round it came in, with a checkpoint, or at the final evaluation's next step, giving it up."""
        cfg = self.cfg
        logger = bar = None
        try:  # (the environments are closed however the run ends, a log that cannot be opened included)
            # resumed at the step eval.json holds: a finished run extended, its final evaluation's row stays
            # (not when the checkpoint's periodic evaluation is owed: eval.json is then `glamor eval`'s of an
            # interrupted run, and a row at its step logged after the checkpoint, by a resume that died after
            # doing the owed evaluation, is that evaluation's, which this run does again)
            evaluated = False
            if self.is_main and self.resumed_from is not None and self.env_step < self.next_eval:
                with contextlib.suppress(ValueError):  # (a damaged eval.json, which this run's end writes again)
                    evaluated = _results_of_step(self.run_dir, self.resumed_from) is not None
            logger = Logger(self.run_dir, tensorboard=self.is_main, resume_step=self.resumed_from,
                            wall_offset=self._wall_offset, evaluated=evaluated) if self.is_main else None
            # past the checkpoint's when a kept row (an extended run's final evaluation) came later
            if logger is not None:
                self._wall_offset = logger.went_on_from
            self.went_on_from = self._wall_offset  # the run's wall time (s) when this process took it up
            bar = tqdm(total=cfg.total_env_steps, initial=min(self.env_step, cfg.total_env_steps), unit="step",
                       disable=not (cfg.progress and self.is_main), dynamic_ncols=True)
            self._plan_time, self._plans = 0.0, 0
            with stop_on_signal() as stop:
                self._train_loop(logger, bar, stop)
            if stop:  # it came during the last checkpoint: training is saved, skip the evaluation
                raise TrainingInterrupted(stop.signum, self.env_step, self.run_dir,
                                          continue_with=self.resume_command())
            bar.close()
            if not self.is_main:
                return {}
            # A stop gives up the final evaluation at its next step, as a periodic one (it takes minutes for
            # Atari or control on a CPU, longer than torchrun or a scheduler waits): the training is saved, and
            # its resume, finding it at the total without results of this step, evaluates.
            with stop_on_signal("giving up the final evaluation (the training is finished and saved; "
                                f"`{self.resume_command()}` evaluates it)",
                                at_once="the training stays saved") as stop:
                try:
                    results = self.evaluate(cfg.eval_episodes, stop_request=stop)
                except EvaluationStopped:
                    raise TrainingInterrupted(stop.signum, self.env_step, self.run_dir,
                                              continue_with=self.resume_command(), final_evaluation=True) from None
                except Exception as e:  # (an environment's error): the training is not lost with it
                    _add_hint(e, f"the training is finished and saved in {self.run_dir}; once that is mended, "
                                 f"`{self.resume_command()}` evaluates it")
                    raise
            results.update(env_steps=self.env_step, updates=self.updates)
            write_results(self.run_dir, results)  # first: if it fails, the resume evaluates again and logs
            logger.log(self.env_step, eval_metrics(results))  # (TensorBoard keeps a step's points: one each)
            return results
        finally:
            if bar is not None:
                bar.close()
            failing = sys.exc_info()[1]  # the error that ended the run, if one did: it is the one to report
            try:
                if logger is not None:
                    logger.close()
            except OSError as e:
                if failing is None:
                    raise
                warnings.warn(f"closing the run's logs failed too: {e}", stacklevel=2)
            finally:
                try:
                    self.close()
                except Exception as e:  # noqa: BLE001 - raised when nothing else failed
                    if failing is None:
                        raise
                    warnings.warn(f"closing the run's environments failed too: {e!r}", RuntimeWarning, stacklevel=2)

    def _train_loop(self, logger: Logger | None, bar, stop: StopRequest) -> None:
        """Rounds until total_env_steps, then a checkpoint. A stop request (a signal, see
        glamor/interrupt.py) ends the loop after the round it arrived in, with a checkpoint,
        by raising TrainingInterrupted."""
        cfg = self.cfg
        t_last, steps_last, updates_last = time.time(), self.env_step, self.updates
        # A resume at the total (its final evaluation was cut short) only evaluates: the newest
        # checkpoint holds this state, and writing it again would make checkpoint.prev.pt a copy.
        saved = self.resumed_from == self.env_step and self._resumed_from_newest
        # A periodic evaluation that a stop gave up is owed at the checkpoint's step (its next_eval
        # was not moved past it, on rank 0): done first, where the uninterrupted run did it, before
        # the next round (every rank agrees, so that none starts collecting alone).
        if self.resumed_from == self.env_step < cfg.total_env_steps and self._over_ranks(
                int(self.env_step >= self.next_eval), torch.distributed.ReduceOp.MAX):
            saved = self._end_of_round(logger, bar, stop, saved)
        while self.env_step < cfg.total_env_steps:
            saved = False
            taken = self.collect_round()
            bar.update(min(taken, max(bar.total - bar.n, 0)))  # the last round may overshoot the total
            if self.env_step >= cfg.learning_starts:
                self._update_credit += cfg.updates_per_episode * len(self.pool)
                for _ in range(int(self._update_credit)):
                    self._update_credit -= 1
                    for name, v in self.update().items():
                        self.window.setdefault(name, []).append(v)
            if self.env_step >= self.next_log and self.window:
                now = time.time()
                metrics = {
                    **{f"losses/{name}": np.mean(self.window[name]) for name in ("idm", "prior")
                       if name in self.window},  # GLAMOR's two terms (GCSL has one loss)
                    "losses/total": np.mean(self.window["loss"]),
                    "charts/epsilon": cfg.epsilon(self.env_step - taken),  # what the round acted with
                    "charts/env_steps_per_s": (self.env_step - steps_last) / (now - t_last),
                    "charts/updates_per_s": (self.updates - updates_last) / (now - t_last),
                    "charts/worker_restarts": self.pool.restarts,
                }
                if self._plans:
                    metrics["planner/plans_per_s"] = self._plans / self._plan_time
                if logger is not None:
                    logger.log(self.env_step, metrics)
                bar.set_postfix(loss=f"{metrics['losses/total']:.3f}", success=self.last_success)
                self.window, t_last, steps_last, updates_last = {}, now, self.env_step, self.updates
                self._plan_time, self._plans = 0.0, 0
                self.next_log = self.env_step + max(cfg.total_env_steps // 100, 1)
            saved = self._end_of_round(logger, bar, stop, saved)
        if not saved:  # (a periodic checkpoint may have landed on the last round: it is this one)
            self.save(logger)

    def _end_of_round(self, logger: Logger | None, bar, stop: StopRequest, saved: bool) -> bool:
        """A round's periodic evaluation and checkpoint when they are due, then the stop request's
        checkpoint and TrainingInterrupted; returns whether this state is saved. A stop that comes
        before or during the evaluation gives it up (an Atari or control evaluation on a CPU takes
        minutes, longer than torchrun or a scheduler waits after its signal): next_eval stays at
        this step, and the resumed run evaluates first (`_train_loop`)."""
        cfg = self.cfg
        if self.env_step >= self.next_eval:
            given_up = False
            if self.is_main and self.env_step < cfg.total_env_steps:  # (the last round's is the final one)
                try:
                    res = self.evaluate(cfg.eval_episodes_during_training, stop_request=stop)
                except EvaluationStopped:
                    given_up = True
                else:
                    self.last_success = f"{res['success_rate']:.2f}"
                    logger.log(self.env_step, eval_metrics(res))
                    bar.set_postfix(success=self.last_success)
            if not given_up:
                self.next_eval = _next_multiple(self.env_step, cfg.eval_every)
        if self.env_step >= self.next_snapshot:
            self.next_snapshot = _next_multiple(self.env_step, cfg.snapshot_every)
            self.save(logger)
            saved = True
        signum = self._agreed_stop(stop)
        if signum:
            if not saved:  # (every rank leaves save() after rank 0's checkpoint: one that went on to
                self.save(logger)  # tear gloo down meanwhile could abort, and take rank 0 with it)
            raise TrainingInterrupted(signum, self.env_step, self.run_dir, continue_with=self.resume_command())
        return saved

    def _agreed_stop(self, stop: StopRequest) -> int:
        """The signal that ends training after this round (0: go on). Every process takes
        the same answer: the signal any of them received."""
        return self._over_ranks(stop.signum or 0, torch.distributed.ReduceOp.MAX)

    def _over_ranks(self, value: int, op) -> int:
        """`value` reduced with `op` over every process (itself with one process)."""
        return value if self.world_size == 1 else distributed.all_reduce_int(value, op)


def _finish(results: dict, cfg: Config, run_dir: Path, t0: float, table: bool | None) -> dict:
    if not results:  # a rank other than 0
        return results
    results["train_wall_time_s"] = time.time() - t0
    write_results(run_dir, results)
    if cfg.progress if table is None else table:
        print(format_table(results))
    if cfg.progress:
        print(json.dumps({k: results[k] for k in ("success_rate", "ci95", "episodes", "success_rate_no_prior",
                                                   "random_success_rate") if k in results}))
    return results


def train(cfg: Config, run_dir: str | Path, overwrite: bool = False, table: bool | None = None) -> dict:
    """Train a GLAMOR agent (or the GCSL baseline, `cfg.algo`) in `run_dir`, evaluate it, and
    return the eval.json dict; `table` prints its results table (default: cfg.progress)."""
    rank, world = distributed.setup(cfg)
    aside, made, lock, error = None, False, RunLock(), None
    if rank == 0:
        made = not Path(run_dir).exists()
        try:
            try:
                run_dir, aside = prepare_run_dir(run_dir, overwrite, lock)
            except BaseException:
                lock.release()
                raise
            try:
                cfg.save(run_dir / "config.json")
            except BaseException:  # (a full disk): put back what was there, the replaced run included
                print(f"the new run could not start; {undo_start(run_dir, aside, made)[1]}", file=sys.stderr)
                lock.release()
                raise
        except Exception as e:  # (under torchrun: raised on every rank, not left to a broken connection)
            error = e
    try:
        distributed.raise_together(error, RuntimeError("rank 0 could not start the run directory (its error is "
                                                       "in its output)"))
    except BaseException as e:
        distributed.teardown(e)
        raise
    t0, ending = time.time(), None
    try:
        try:
            trainer = Trainer(cfg, run_dir, rank, world)
        except BaseException:
            # Nothing was trained: leave nothing behind to block the corrected command, and
            # keep the run that --overwrite would have replaced.
            if rank == 0:
                undone, what = undo_start(Path(run_dir), aside, made)
                if not undone:
                    print(f"the new run could not start; {what}", file=sys.stderr)
            raise
        if rank == 0:  # the replaced run goes once the new one has a checkpoint to resume from
            trainer.on_first_save = lambda: settle_start(aside)
        try:
            results = trainer.run()
        except BaseException as e:
            if isinstance(e, TrainingInterrupted):  # every rank stopped after the same round: they leave
                distributed.barrier()  # together, as after a finished run (below)
            if trainer.on_first_save is not None:  # failed before its first checkpoint: nothing to resume,
                what = undo_start(Path(run_dir), aside, made)[1]  # and its files would block the corrected command
                print(f"the new run failed before its first checkpoint; {what}", file=sys.stderr)
            raise
        results = _finish(results, cfg, Path(run_dir), t0, table)
        # Every rank leaves together (the others waited through rank 0's evaluation): a rank that
        # tore gloo down while rank 0 still held its connections aborted at exit now and then
        # ("terminate called without an active exception", torchrun exit 1 after a good run).
        distributed.barrier()
        return results
    except BaseException as e:
        ending = e
        raise
    finally:
        lock.release()
        distributed.teardown(ending)


def resume(run_dir: str | Path, total_env_steps: int | None = None, machine: dict | None = None,
           table: bool | None = None, retrain_hint: str = "train again with --overwrite") -> dict:
    """Continue a run from its newest complete checkpoint (from scratch when it has none yet)
    and return the eval.json dict. `total_env_steps` extends (or shortens) the run; `machine`
    changes fields of config.MACHINE_FIELDS (a run trained on a GPU goes on with device='cpu');
    `table` prints the results table (default: the run's progress setting). When checkpoint
    files exist but none loads, the error ends with `retrain_hint`: how to start the run over.
    A run trained under torchrun resumes under torchrun with as many processes, each from its
    own part of the checkpoint."""
    if str(run_dir) == "":
        raise ValueError("the run directory to resume is an empty path: name a run's folder")
    run_dir = check_is_run(run_dir, "resume (glamor train --resume)")
    cfg = Config.load(run_dir / "config.json")
    other = sorted(set(machine or {}) - set(MACHINE_FIELDS))
    if other:
        raise ValueError(f"a resumed run keeps its config; only --total-env-steps and --set "
                         f"{', '.join(MACHINE_FIELDS)} may change (got --set {', '.join(other)})")
    rank, world = distributed.setup(cfg.replace(**(machine or {})))
    lock, error, ending = RunLock(), None, None
    try:
        if rank == 0:
            try:
                lock.acquire(run_dir)
                checkpoint.remove_temporaries(run_dir)  # a killed save's (the next save would remove them)
            except Exception as e:  # (under torchrun: raised on every rank, not left to a broken connection)
                error = e
        distributed.raise_together(error, RuntimeError("rank 0 could not take the run directory (its error is in "
                                                       "its output)"))
        return _resume(run_dir, cfg, total_env_steps, machine, table, retrain_hint, rank, world)
    except BaseException as e:
        ending = e
        raise
    finally:
        lock.release()
        distributed.teardown(ending)


def _resume(run_dir: Path, saved_cfg: Config, total_env_steps, machine, table, retrain_hint: str, rank: int,
            world: int) -> dict:
    cfg = saved_cfg.replace(**(machine or {}))
    state = _checkpoint_of_this_rank(run_dir, rank, world, retrain_hint)
    done = state.get("env_step", -1) if state is not None else -1  # weights-only checkpoints have none
    if state is not None and "config" in state:
        check_config_is_the_checkpoints(saved_cfg, state, run_dir)
    if total_env_steps is not None and total_env_steps != cfg.total_env_steps:
        if total_env_steps < 1:
            raise ValueError(f"--total-env-steps must be at least 1, got {total_env_steps}")
        if total_env_steps < done:
            raise ValueError(f"{run_dir} is already at {done:,} environment steps; --total-env-steps "
                             f"{total_env_steps:,} would end it before that (the run's total is "
                             f"{cfg.total_env_steps:,})")
        cfg = cfg.replace(total_env_steps=total_env_steps)
    resolve_device(cfg.device)  # a device this machine lacks is named before anything is written
    if rank == 0:
        _log_final_evaluation_if_missing(run_dir, saved_cfg, state, done)
    results = _results_of_step(run_dir, done) if done >= cfg.total_env_steps else None
    if results is not None:  # finished (else, at the total, the trainer below only evaluates)
        if rank == 0:
            if cfg != saved_cfg:
                cfg.save(run_dir / "config.json")
            print(f"{run_dir} is finished ({done:,} environment steps, evaluated in eval.json); "
                  f"pass a larger --total-env-steps to extend it", file=sys.stderr)
            if cfg.progress if table is None else table:
                print(format_table(results))
        distributed.barrier()
        return results
    t0 = time.time()
    trainer = Trainer(cfg, run_dir, rank, world)
    from_scratch = state is None
    try:  # until run() takes over closing the trainer's environments
        if state is not None:  # (each rank its own part: one that does not fit is raised on all)
            trainer._on_every_rank(lambda: trainer.load_state_dict(state, take_replay=True),
                                   ValueError("another process could not load its part of the checkpoint"))
            # A run that ended at this step, extended: its final evaluation (eval.json) stands for the step's
            # periodic one, as in a run that ended there, also where a stop during that one left it owed (a
            # run stopped in it and resumed with --total-env-steps at its step). (Rank 0's alone: the other
            # ranks' are past it, and `_train_loop` takes the owed evaluation from every rank's.)
            if rank == 0 and done >= saved_cfg.total_env_steps and trainer.next_eval <= done:
                with contextlib.suppress(ValueError):  # (a damaged eval.json: the owed evaluation is done)
                    if _results_of_step(run_dir, done) is not None:
                        trainer.next_eval = _next_multiple(done, cfg.eval_every)
        state = None  # in the trainer now (its replay took the arrays): the rest would be held for the whole run

        def write_start() -> None:
            if rank == 0:
                if cfg != saved_cfg:  # written only now that the trainer is built with it and the checkpoint
                    cfg.save(run_dir / "config.json")  # loaded: a resume that fails leaves config.json as it was
                if from_scratch:  # the killed start's logs describe steps about to be run again: afresh too
                    shutil.rmtree(run_dir / "tb", ignore_errors=True)
                    (run_dir / "metrics.csv").unlink(missing_ok=True)

        # (rank 0 alone writes: a failure there is raised on every rank, none waits in the loop's collectives)
        trainer._on_every_rank(write_start, OSError("rank 0 could not write the run's config.json or clear its logs "
                                                    "(its error is in its output)"))
        if rank == 0 and from_scratch:
            warnings.warn(f"{run_dir} has no checkpoint yet; training starts from the beginning",
                          RuntimeWarning, stacklevel=3)
    except BaseException:
        with contextlib.suppress(Exception):  # (the error that stopped the resume is the one to report)
            trainer.close()
        raise
    try:
        results = trainer.run()
    except TrainingInterrupted:
        distributed.barrier()  # every rank stopped after the same round: they leave together
        raise
    results = _finish(results, cfg, run_dir, t0 - trainer.went_on_from, table)
    distributed.barrier()  # as in train(): the others waited through rank 0's evaluation
    return results


def _checkpoint_of_this_rank(run_dir: Path, rank: int, world: int, retrain_hint: str) -> dict | None:
    """The newest complete checkpoint (None when there is none yet); under torchrun rank 0
    picks it, every rank reads the same one with its own part (a part that does not load, a
    replay file that fails its CRC, say, sends every rank back to the checkpoint before, as
    `checkpoint.load_latest` does for rank 0's own files), and a refusal is raised on every rank
    (none is left waiting in a collective)."""
    unusable: dict[str, str] = {}  # checkpoint files passed over for a rank's part that does not load
    while True:
        state, error = None, None
        if rank == 0:
            try:
                state = checkpoint.load_latest(run_dir, stacklevel=5, unusable=unusable)
            except checkpoint.UnusableCheckpoints as e:
                error = ValueError(f"{e}; refusing to start over on top of them: move them away, or {retrain_hint}")
            except Exception as e:  # noqa: BLE001 - (a folder it may not read): told to every rank, raised here
                error = e
            if state is None and error is None and (run_dir / "eval.json").exists():  # checkpoints deleted
                error = ValueError(f"{run_dir} has results (eval.json) but no checkpoint to resume from: starting "
                                   f"over would replace them; {retrain_hint}, or put its checkpoint back")
        path, refusal = distributed.from_rank_0((state and state["path"], error and str(error)))
        try:
            if rank > 0 and refusal:
                raise ValueError(refusal)
            if rank > 0 and path is not None:
                state = checkpoint.load(path)
            saved_by = 1 if state is None else state.get("world_size", 1)
            if state is not None and world > 1 and saved_by != world:
                how = "glamor train --resume" if saved_by == 1 else f"torchrun --nproc-per-node {saved_by} ..."
                raise ValueError(f"{state['path']} was saved by {saved_by} process(es): resume it with as many "
                                 f"(`{how}`), not {world}")
        except Exception as e:  # noqa: BLE001 - whatever it is, every rank learns of it (none waits below)
            error = error or e
        distributed.raise_together(error, ValueError("another process could not read its part of the checkpoint"))
        if state is None or world == 1:
            break
        damaged, error = None, None
        if rank > 0:
            try:
                state = checkpoint.load_rank(run_dir, state, rank)
            except MemoryError as e:  # the machine's, not the part's: raised on every rank, as rank 0's own is
                error = e  # (falling back would give up the newest checkpoint, which the next save replaces)
            except Exception as e:  # noqa: BLE001 - any failure is this checkpoint's on every rank (else the
                damaged = str(e) if isinstance(e, (ValueError, OSError)) else (  # others wait in all_gather)
                    f"rank {rank}'s part of {path} does not load ({type(e).__name__}: {e})")
        distributed.raise_together(error, MemoryError("another process ran out of memory reading its part of the "
                                                      "checkpoint (its error is in its output)"))
        damaged = [why for why in distributed.all_gather(damaged) if why]
        if not damaged:
            break
        unusable[Path(path).name] = "; ".join(damaged)  # every rank: rank 0 tries the checkpoint before
    if state is not None and state.get("world_size", 1) > 1 and world == 1:
        warnings.warn(f"{state['path']} was saved by {state['world_size']} processes (torchrun): in one "
                      f"process the run goes on from rank 0's replay and random states alone and does not end "
                      f"as the uninterrupted run would (resume it with `torchrun --nproc-per-node "
                      f"{state['world_size']} -m glamor train --resume {run_dir}` for that)",
                      RuntimeWarning, stacklevel=4)
    return state


def _log_final_evaluation_if_missing(run_dir: Path, saved_cfg: Config, state: dict | None, done: int) -> None:
    """The final evaluation's row in metrics.csv and TensorBoard, from eval.json, when a run that
    reached its total (`done`) was killed after writing eval.json and before logging the row: the
    resume finds the run finished (or an extension keeps that step's evaluation), so without this
    the success curve never gets that point. A log that cannot be written is warned about: the
    resume goes on."""
    if state is None or done != saved_cfg.total_env_steps:
        return
    try:
        results = _results_of_step(run_dir, done)
    except ValueError:  # a damaged eval.json: the resume evaluates again
        return
    if results is None or results.get("env_steps") != done:
        return
    from glamor.reports import read_success_curve

    if any(step == done for step, _ in read_success_curve(run_dir / "metrics.csv")["eval/success_rate"]):
        return
    try:
        logger = Logger(run_dir, resume_step=done, wall_offset=state.get("trainer", {}).get("wall_time"),
                        evaluated=True)
        try:
            logger.log(done, eval_metrics(results))
        finally:
            logger.close()
    except OSError as e:
        warnings.warn(f"{run_dir}: logging the final evaluation (eval.json) to metrics.csv failed: {e}",
                      RuntimeWarning, stacklevel=4)


def _results_of_step(run_dir: Path, done: int) -> dict | None:
    """eval.json when it evaluates the model of environment step `done`, else None: missing, or
    of an earlier step (the final evaluation was cut short, and eval.json is the one before an
    extension or `glamor eval`'s of the interrupted run)."""
    path = run_dir / "eval.json"
    if not path.exists():
        return None
    results = read_results(path)
    return results if results.get("env_steps", done) >= done else None


def check_config_is_the_checkpoints(cfg: Config, state: dict, run_dir: Path) -> None:
    """config.json says what the checkpoint was trained with, up to the fields a resume may
    change (MACHINE_FIELDS, total_env_steps): a hand edit would go on training another run, or
    have `glamor eval` report another setting as the run's own."""
    trained = Config.from_dict(state["config"], f"{state.get('path', run_dir)}'s config")
    free = {*MACHINE_FIELDS, "total_env_steps"}
    differ = [f for f in Config.__dataclass_fields__ if f not in free and getattr(cfg, f) != getattr(trained, f)]
    if differ:
        pairs = "; ".join(f"{f}: {getattr(cfg, f)!r} in config.json, {getattr(trained, f)!r} in the checkpoint"
                          for f in differ)
        raise ValueError(f"{run_dir}/config.json differs from the config its checkpoint was trained with ({pairs}); "
                         f"put the checkpoint's values back (a run keeps its settings: to train another setting, "
                         f"start a new run; to evaluate one, `glamor eval {run_dir} --set ...`)")

