"""Configuration: one frozen dataclass for training and evaluation, and named presets.

Every field carries a docstring line. Values derived from others (the number of tokens, the
epsilon schedule's end) are computed in one place, as properties. Presets are plain dicts of
overrides applied to the defaults, which are the reference values of the GLAMOR spec.

Example:
    >>> from glamor.config import Config, preset
    >>> cfg = preset("debug")
    >>> cfg.env_id
    'glamor/GridWorld-v0'
    >>> cfg.replace(seed=3).seed
    3
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import types
import typing
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from glamor.errors import did_you_mean
from glamor.files import write_text_atomically


def _non_string_keys(value) -> list:
    """The dict keys in `value` (nested in dicts and lists) that are not strings."""
    if isinstance(value, dict):
        return [k for k in value if not isinstance(k, str)] + [b for v in value.values() for b in _non_string_keys(v)]
    if isinstance(value, (list, tuple)):
        return [b for v in value for b in _non_string_keys(v)]
    return []


@dataclass(frozen=True)
class Config:
    """Everything a GLAMOR run needs. Defaults are the reference (Atari) values of the spec."""

    # --- environment -----------------------------------------------------------------------
    env_id: str = "glamor/GridWorld-v0"
    """Gymnasium id of a goal environment (see `glamor envs`), or `module:id` for one a module registers."""
    env_kwargs: dict = field(default_factory=dict)
    """Extra keyword arguments for `gymnasium.make`."""
    episode_length: int = 50
    """k: environment steps per episode, also the planning horizon (50 Atari, 100 Control)."""
    num_envs: int = 1
    """Environments collected in parallel; one batched plan call serves all of them."""
    vector: str = "sync"
    """Where collection environments run: 'sync' (in this process) or 'async' (a worker process each;
    GLAMOR only: GCSL's policy acts at every step, so algo='gcsl' needs 'sync')."""

    # --- algorithm -------------------------------------------------------------------------
    algo: str = "glamor"
    """'glamor' (IDM + prior, planning) or 'gcsl' (goal-conditioned policy: the model-free baseline)."""
    gcsl_act: str = "greedy"
    """How GCSL picks actions (collection and evaluation): 'greedy' (argmax) or 'sample' (softmax)."""
    gcsl_time: bool = False
    """GCSL only: the policy also reads the steps left to reach the goal, pi(a | s, g, h) (the GCSL
    paper's time-varying policy); h is k at the first step of an episode and 1 at its last."""

    # --- model ----------------------------------------------------------------------------
    encoder_channels: tuple[int, ...] = (16, 32, 32)
    """Channels of the Impala encoder's stages."""
    embed_dim: int = 512
    """Width of the encoders' output, of state_mix and of the LSTM input projection."""
    mix_hidden: int = 256
    """Hidden width of the state_mix MLP."""
    lstm_hidden: int = 64
    """Hidden size of the IDM and prior LSTMs."""

    # --- planning -------------------------------------------------------------------------
    planner: str = "sample"
    """'sample' (the reference's random shooting) or 'beam' (beam search)."""
    plan_width: int = 200
    """Candidates per plan (samples, or beam width), at most 2**31 - 1 (the planners index them with
    int32; beam search: at most (2**31 - 1) // num_actions, unless num_actions**horizon is smaller)."""
    use_prior: bool = True
    """Divide by the action prior in the plan score (the paper's Bayes argument): how the training
    agent collects and how `Agent.load` plans. Evaluation reports both, whatever this is:
    success_rate with the prior, success_rate_no_prior without."""
    gamma: float = 0.99
    """Per-token discount in the plan score: favours short plans."""
    clip_logq: float | None = None
    """The spec's optional clip: plan tokens whose IDM log-probability lies below it score a
    fixed -20 (None: off, the spec's default). At most -0.001 (a near-certain token's log q is 0
    only up to rounding, which the planners' backends round differently)."""
    backend: str = "auto"
    """Planner backend: 'auto' (native when built), 'reference' or 'native'."""

    # --- data and exploration ---------------------------------------------------------------
    replay_capacity: int = 300_000
    """Frame slots the replay holds; memory is capacity x H x W bytes. An episode of L actions
    takes L+1 slots, so 3e5 slots hold about 294k transitions of 50-step episodes (the spec's
    3e5 counts transitions: 2% more)."""
    learning_starts: int = 50_000
    """Environment steps collected before the first update."""
    total_env_steps: int = 1_000_000
    """Environment steps of the whole run."""
    eps_start: float = 1.0
    """Epsilon of epsilon-greedy exploration at step 0."""
    eps_end: float = 0.1
    """Epsilon after the decay."""
    eps_decay_steps: int = 300_000
    """Environment steps over which epsilon falls linearly from eps_start to eps_end."""
    num_train_goals: int = 1000
    """Training goals, chosen greedily for label diversity."""
    goal_candidates: int = 2000
    """Random rollouts the training goals are chosen from (at least num_train_goals)."""
    train_start: str = "fresh"
    """Where a training episode starts: "fresh", a new random reset (the spec's env.reset(); its
    goal came from another reset, so it may be out of reach, e.g. Control's randomised targets),
    or "goal", the reset its goal's rollout started from, as evaluation episodes do (starts then
    repeat over the num_train_goals goals). Learning is relabelled either way: this changes only
    what exploration aims at."""
    train_moved_fraction: float = 0.0
    """Share of the training goals drawn instead from rollouts that changed the env's
    `moved_labels` (the box was pushed), chosen for diversity among themselves. 0 is the spec's
    protocol; random rollouts rarely move an object, so a higher share sends the collecting
    agent after such goals more often. Evaluation goals are unaffected."""
    moved_sample_fraction: float = 0.0
    """Share of each training batch drawn from hindsight pairs in which an object moved between
    the observation and the goal, as the env reads it from the frames (`objects_moved`; the box
    variant). Not in the spec: it uses the env's knowledge of its own rendering. 0 is the spec's
    uniform sampler."""
    label_range_rollouts: int = 500
    """Random rollouts of random length 1..k that estimate each label's range."""

    # --- optimisation -----------------------------------------------------------------------
    batch_size: int = 200
    """Relabelled samples per update."""
    updates_per_episode: float = 1.0
    """Gradient updates per collected episode, however short it was (a life loss ends an Atari
    episode early); fractions carry over between rounds."""
    lr: float = 5e-4
    """AdamW learning rate."""
    weight_decay: float = 0.01
    """AdamW weight decay."""
    grad_clip: float = 1.0
    """Gradient-norm clip."""

    # --- evaluation, logging, checkpoints ----------------------------------------------------
    eval_every: int = 50_000
    """Environment steps between evaluations during training: one after the round that reaches each
    multiple (0: only at the end)."""
    eval_episodes: int = 200
    """Held-out goals of each evaluation."""
    eval_batch: int = 200
    """Evaluation episodes run side by side (one batched plan call per step), so this many
    environments live at once (a DeepMind Control one holds about 50 MB). Every draw is keyed
    by (seed, goal, step), so the draws do not depend on it; only the float rounding of batched
    convolutions does (rarely enough to turn a plan; README, "Command line")."""
    eval_episodes_during_training: int = 50
    """Held-out goals of the periodic evaluations while training (the final one uses eval_episodes); at most
    eval_episodes, the goals each held-out set holds (more: training warns and evaluates those)."""
    snapshot_every: int = 500_000
    """Environment steps between checkpoints: one after the round that reaches each multiple."""
    seed: int = 0
    """Seed of the run (torch, numpy, environments, training goals), in [0, 2^31)."""
    eval_seed: int = 1_000_003
    """Seed of the held-out evaluation goals (distinct from training goals), in [0, 2^31)."""
    device: str = "auto"
    """Torch device of the model: 'auto' (cuda when available), 'cpu', 'cuda', 'cuda:1', ..."""
    torch_threads: int = 0
    """torch.set_num_threads for the run (0: leave torch's default)."""
    deterministic: bool = False
    """torch.use_deterministic_algorithms and one torch thread (unless torch_threads says otherwise):
    a killed and resumed run ends with the same weights as an uninterrupted one. On a GPU it sets
    CUBLAS_WORKSPACE_CONFIG=:4096:8 unless set, which cuBLAS reads once: a process (a notebook) that
    used CUDA before is warned, and should set it in the environment before Python starts."""
    progress: bool = True
    """Show progress bars, and let train() print the results table (the CLI prints it either way)."""

    # --- derived values, in one place ---------------------------------------------------------
    @property
    def horizon(self) -> int:
        """Most actions a plan may have: the episode length."""
        return self.episode_length

    def epsilon(self, env_step: int) -> float:
        """The spec's linear epsilon schedule at `env_step`."""
        if self.eps_decay_steps <= 0:
            return self.eps_end
        frac = min(max(env_step, 0) / self.eps_decay_steps, 1.0)
        return self.eps_start + frac * (self.eps_end - self.eps_start)

    def replace(self, **changes: Any) -> Config:
        """A copy with `changes`; unknown names raise a TypeError naming them."""
        names = [f.name for f in dataclasses.fields(self)]
        unknown = sorted(set(changes) - set(names))
        if unknown:
            hints = "".join(f"; {u}{did_you_mean(u, names)}" for u in unknown if did_you_mean(u, names))
            raise TypeError(f"unknown config field(s) {unknown}{hints}; see glamor.config.Config")
        return dataclasses.replace(self, **changes)

    def __post_init__(self) -> None:
        self._check_types()
        at_least_1, at_least_0, unit = "at least 1", "at least 0", "in [0, 1]"
        seed_range = "in [0, 2**31)"  # goal reset seeds are built from both seeds

        def one_of(value: str, *names: str) -> tuple[bool, str]:
            return value in names, "one of " + ", ".join(repr(n) for n in names)

        # field: (whether its value is allowed, the rule a refusal states)
        checks = {
            "episode_length": (self.episode_length >= 1, at_least_1),
            "num_envs": (self.num_envs >= 1, at_least_1),
            "plan_width": (1 <= self.plan_width <= 2**31 - 1,  # planning.MAX_SIZE: the ops index with int32
                           "in [1, 2**31 - 1] (the planners index candidates with int32)"),
            "batch_size": (self.batch_size >= 1, at_least_1),
            "replay_capacity": (self.replay_capacity >= 2 * self.episode_length + 2,
                                "at least 2 * episode_length + 2 frames (two episodes)"),
            "planner": one_of(self.planner, "sample", "beam"),
            "backend": one_of(self.backend, "auto", "reference", "native"),
            "algo": one_of(self.algo, "glamor", "gcsl"),
            "gcsl_act": one_of(self.gcsl_act, "greedy", "sample"),
            "gcsl_time": (not self.gcsl_time or self.algo == "gcsl",
                          "a GCSL setting, only with algo='gcsl' (GLAMOR's plans already end within the horizon)"),
            "gamma": (0.0 < self.gamma <= 1.0, "in (0, 1]"),
            "clip_logq": (self.clip_logq is None or self.clip_logq <= -1e-3,  # planning.MAX_CLIP_LOGQ
                          "None or at most -0.001 (a log-probability threshold; a near-certain token's log q is 0 "
                          "up to rounding)"),
            "eval_episodes": (self.eval_episodes >= 1, at_least_1),
            "eval_episodes_during_training": (self.eval_episodes_during_training >= 1, at_least_1),
            "eval_batch": (self.eval_batch >= 1, at_least_1),
            "train_moved_fraction": (0.0 <= self.train_moved_fraction <= 1.0, unit),
            "moved_sample_fraction": (0.0 <= self.moved_sample_fraction <= 1.0, unit),
            "vector": (self.vector in ("sync", "async") and (self.vector == "sync" or self.algo != "gcsl"),
                       "one of 'sync', 'async'; 'sync' with algo='gcsl' (GCSL's policy acts at every step, "
                       "so its environments run in this process)"),
            "train_start": one_of(self.train_start, "fresh", "goal"),
            "encoder_channels": (len(self.encoder_channels) >= 1
                                 and all(c >= 4 and c % 4 == 0 for c in self.encoder_channels),
                                 "one or more multiples of 4 (GroupNorm with 4 groups)"),
            "embed_dim": (self.embed_dim >= 1, at_least_1),
            "mix_hidden": (self.mix_hidden >= 1, at_least_1),
            "lstm_hidden": (self.lstm_hidden >= 1, at_least_1),
            "lr": (self.lr > 0, "above 0"),
            "weight_decay": (self.weight_decay >= 0, at_least_0),
            "grad_clip": (self.grad_clip > 0, "above 0"),
            "updates_per_episode": (self.updates_per_episode >= 0, at_least_0),
            "eps_start": (0.0 <= self.eps_start <= 1.0, unit),
            "eps_end": (0.0 <= self.eps_end <= 1.0, unit),
            "eps_decay_steps": (self.eps_decay_steps >= 0, at_least_0),
            "learning_starts": (self.learning_starts >= 0, at_least_0),
            "total_env_steps": (self.total_env_steps >= 1, at_least_1),
            "eval_every": (self.eval_every >= 0, f"{at_least_0} (0: only at the end)"),
            "snapshot_every": (self.snapshot_every >= 1, at_least_1),
            "num_train_goals": (self.num_train_goals >= 1, at_least_1),
            "goal_candidates": (self.goal_candidates >= max(self.num_train_goals, 1),
                                "at least num_train_goals (the training goals are chosen from them)"),
            "label_range_rollouts": (self.label_range_rollouts >= 1, at_least_1),
            "torch_threads": (self.torch_threads >= 0, f"{at_least_0} (0: leave torch's default)"),
            "seed": (0 <= self.seed < 2**31, seed_range),
            "eval_seed": (0 <= self.eval_seed < 2**31, seed_range),
        }
        for f in dataclasses.fields(self):  # inf or nan pass the comparisons above
            value = getattr(self, f.name)
            if isinstance(value, float) and not math.isfinite(value):
                checks[f.name] = (False, "finite")
        bad = [f"{name}={getattr(self, name)!r} (must be {rule})" for name, (ok, rule) in checks.items() if not ok]
        if bad:
            raise ValueError(f"invalid config value(s): {'; '.join(bad)}; see the field docs in glamor.config.Config")
        # env_kwargs in their JSON form (tuples become lists), so a config equals itself after
        # a save and load (resume and `glamor compare` compare them)
        keys = _non_string_keys(self.env_kwargs)
        if keys:  # JSON would turn them into strings: the environment would get "3", not 3
            raise ValueError(f"env_kwargs keys must be strings (they are saved as JSON), got {keys[0]!r}")
        try:
            object.__setattr__(self, "env_kwargs", json.loads(json.dumps(self.env_kwargs)))
        except TypeError as e:
            raise ValueError(f"env_kwargs must be JSON values (numbers, strings, lists, dicts): {e}") from e

    def _check_types(self) -> None:
        """Each field holds its annotated type (ints may be written 1e6, floats as ints); a
        mistyped value (`--set lr=abc`, `use_prior=no`) is named with the type it needs."""
        hints = _field_types()
        bad = []
        for f in dataclasses.fields(self):
            value, want = getattr(self, f.name), hints[f.name]
            ok, fixed = _coerce(value, want)
            if ok:
                object.__setattr__(self, f.name, fixed)
            else:
                bad.append(f"{f.name}={value!r} ({type(value).__name__}) must be {_type_name(want)}")
        if bad:
            raise ValueError("invalid config value(s): " + "; ".join(bad))

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["encoder_channels"] = list(self.encoder_channels)
        return d

    def save(self, path: str | Path) -> None:
        """As JSON, written whole or not at all (glamor/files.py)."""
        write_text_atomically(path, json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> Config:
        """The config a run saved as JSON; a damaged file or one with unknown fields is named."""
        path = Path(path)
        try:
            fields = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as e:  # (not text: a write lost to a crash)
            raise ValueError(f"{path} is not valid JSON ({e}): a damaged run config") from None
        return cls.from_dict(fields, str(path))

    @classmethod
    def from_dict(cls, fields, source: str = "the config") -> Config:
        """Config(**fields) (missing fields take their defaults) with errors that name `source`
        (a file) and any field this version does not know."""
        if not isinstance(fields, dict):
            raise ValueError(f"{source} must hold a dict of config fields, got a {type(fields).__name__}")
        unknown = sorted(set(fields) - set(cls.__dataclass_fields__))
        if unknown:
            raise ValueError(f"{source} has fields this version of glamor does not know: {unknown} (written by "
                             f"another version? remove them to use the run here)")
        return cls(**fields)


# The checks of Config.__post_init__ that read another field, said in words (a bad value alone
# is clear from the field's doc).

# Fields that change where and how a run computes, not what (beyond floating-point rounding):
# a resume may change them (`glamor train --resume RUN --set eval_batch=50` after running out of
# memory), and `glamor compare` reuses runs that differ in them. eval_batch is one since
# evaluation draws are keyed by goal and step (glamor/evaluate.py).
MACHINE_FIELDS = ("progress", "torch_threads", "device", "backend", "eval_batch")
# Fields a trained model's checkpoint fixes: its architecture (and whether it is GCSL's).
MODEL_FIELDS = ("algo", "gcsl_time", "encoder_channels", "embed_dim", "mix_hidden", "lstm_hidden")
# Fields only training reads: an evaluation with them changed would repeat the run's own.
TRAINING_FIELDS = (
    "num_envs", "vector", "replay_capacity", "learning_starts", "total_env_steps", "eps_start", "eps_end",
    "eps_decay_steps", "num_train_goals", "goal_candidates", "train_start", "train_moved_fraction", "moved_sample_fraction",
    "batch_size", "updates_per_episode", "lr", "weight_decay", "grad_clip", "eval_every",
    "eval_episodes_during_training", "snapshot_every", "deterministic",
)


def check_model_unchanged(cfg: Config, changes: dict[str, Any], what: str) -> None:
    """Refuse changes to the fields a trained run's checkpoint fixes (MODEL_FIELDS): `what`
    (e.g. "an evaluation") would build a model its weights do not fit."""
    changed = cfg.replace(**{k: v for k, v in changes.items() if k in MODEL_FIELDS})
    fixed = [f"{k}={getattr(changed, k)!r} (the model has {getattr(cfg, k)!r})" for k in MODEL_FIELDS
             if getattr(changed, k) != getattr(cfg, k)]
    if fixed:
        raise ValueError(f"{', '.join(fixed)}: fixed by the checkpoint, {what} cannot change it")


def field_value(name: str, value: Any) -> Any:
    """`value` as Config holds it in the field `name` (the field's type: plan_width=200.0 is 200,
    gamma=1 is 1.0; env_kwargs in JSON form); a value that does not fit, or a name that is no
    field, comes back as it is (Config names it when it is used)."""
    want = _field_types().get(name)
    if want is None:
        return value
    ok, fixed = _coerce(value, want)
    if ok and name == "env_kwargs":
        try:
            fixed = json.loads(json.dumps(fixed))
        except TypeError:
            return value
    return fixed if ok else value


@functools.cache
def _field_types() -> dict[str, Any]:
    """Config's field annotations, evaluated once (they are strings under `annotations`)."""
    return typing.get_type_hints(Config)


def _coerce(value: Any, want: Any) -> tuple[bool, Any]:
    """(whether `value` fits the type `want`, the value in that type)."""
    if typing.get_origin(want) in (typing.Union, types.UnionType):
        for option in typing.get_args(want):
            ok, fixed = _coerce(value, option)
            if ok:
                return True, fixed
        return False, value
    if want is type(None):
        return value is None, value
    if type(value).__module__ == "numpy" and hasattr(value, "tolist"):
        value = value.tolist()  # numpy scalars and arrays (a sweep's np.arange) as Python numbers and lists
    if want is bool:
        return isinstance(value, bool), value
    if isinstance(value, bool):  # not a number, whatever Python says
        return False, value
    if want is int:
        if isinstance(value, float) and value.is_integer():
            return True, int(value)
        return isinstance(value, int), value
    if want is float:
        if not isinstance(value, (int, float)):
            return False, value
        try:
            return True, float(value)
        except OverflowError:  # an int beyond any float: refused as not finite
            return True, math.inf
    if typing.get_origin(want) is tuple:  # tuple[int, ...]
        if not isinstance(value, (list, tuple)):
            return False, value
        items = [_coerce(v, typing.get_args(want)[0]) for v in value]
        return all(ok for ok, _ in items), tuple(v for _, v in items)
    return isinstance(value, want), value


def _type_name(want: Any) -> str:
    if typing.get_origin(want) in (typing.Union, types.UnionType):
        return " or ".join(_type_name(t) for t in typing.get_args(want))
    if typing.get_origin(want) is tuple:
        inner = typing.get_args(want)[0]
        return "a list of " + {int: "integers", float: "numbers", str: "strings"}.get(inner, str(inner))
    return {bool: "true or false", int: "an integer", float: "a number", str: "a string",
            dict: "a dict", type(None): "None"}.get(want, str(want))


# What the CPU presets of the paper's benchmarks (atari_cpu, control_cpu) share.
_CPU_BUDGET: dict[str, Any] = dict(
    env_kwargs={"frame_shape": [40, 52]},
    num_envs=8,
    embed_dim=256,
    replay_capacity=100_000,
    learning_starts=5_000,
    batch_size=128,
    eval_every=20_000,
    snapshot_every=20_000,
    torch_threads=1,
)

# The demo: four rooms with doors, 12-step goals, trained in about 6 minutes on a CPU core.
# One torch thread: two threads are 1.4x faster on an idle 2-core machine but many times
# slower when another process holds a core (OpenMP's fork-join waits on it).
# Two Impala stages: a 22x22 frame keeps a 4x4 map after them (three would leave 1x1).
_GRIDWORLD: dict[str, Any] = dict(
    env_id="glamor/GridWorld-v0",
    episode_length=12,
    num_envs=16,
    encoder_channels=(16, 32),
    embed_dim=128,
    mix_hidden=128,
    lstm_hidden=64,
    planner="beam",
    plan_width=32,
    replay_capacity=100_000,
    learning_starts=2_000,
    total_env_steps=30_000,
    eps_decay_steps=10_000,
    num_train_goals=200,
    goal_candidates=400,
    label_range_rollouts=200,
    batch_size=256,
    updates_per_episode=1,
    lr=1.5e-3,
    eval_every=10_000,
    eval_episodes=200,
    eval_episodes_during_training=50,
    snapshot_every=10_000,
    torch_threads=1,
)

PRESETS: dict[str, dict[str, Any]] = {
    # Runs in seconds on a CPU: shapes and plumbing, not results.
    "debug": dict(
        env_id="glamor/GridWorld-v0",
        env_kwargs={"size": 7},
        episode_length=6,
        num_envs=4,
        encoder_channels=(4, 8),
        embed_dim=32,
        mix_hidden=32,
        lstm_hidden=16,
        planner="beam",
        plan_width=8,
        replay_capacity=4000,
        learning_starts=100,
        total_env_steps=600,
        eps_decay_steps=400,
        num_train_goals=20,
        goal_candidates=40,
        label_range_rollouts=20,
        batch_size=32,
        updates_per_episode=1,
        lr=2e-3,
        eval_every=0,
        eval_episodes=16,
        eval_episodes_during_training=8,
        snapshot_every=300,
    ),
    "gridworld": _GRIDWORLD,
    # The object variant: the agent pushes a box and success needs both cells. The demo's model
    # and planner with four times the steps and twice the goals and replay (box-moved goals are rarer).
    "gridworld_box": dict(
        _GRIDWORLD,
        env_id="glamor/GridWorldBox-v0",
        replay_capacity=200_000,
        total_env_steps=120_000,
        eps_decay_steps=40_000,
        num_train_goals=400,
        goal_candidates=800,
        eval_every=40_000,
        snapshot_every=20_000,
        # Box pushes are about 4% of hindsight pairs; half of each batch is drawn from them
        # (not in the spec; README: "Gridworld with a box"). One torch thread: 30 minutes here.
        moved_sample_fraction=0.5,
    ),
    # The spec's Atari settings (the environments issue makes them runnable).
    "atari": dict(env_id="glamor/Pong-v0", episode_length=50, updates_per_episode=1),
    # The spec's DeepMind Control settings.
    # 50 evaluation environments at once: each dm_control one holds about 50 MB (physics and
    # renderer), so 200 took 10 GB.
    "control": dict(
        env_id="glamor/reacher-hard-v0", episode_length=100, updates_per_episode=2, eval_batch=50
    ),
    # CPU budgets of the paper's benchmarks: under an hour on one core of a 2-core machine.
    # The spec's protocol (k, goals, success judge, preprocessing) at half the frame size
    # (an update costs 4x less), a 256-wide embedding, and more updates per environment step
    # in place of the spec's 1e6 steps (see _CPU_BUDGET).
    "atari_cpu": dict(
        _CPU_BUDGET, env_id="glamor/Seaquest-v0", episode_length=50,
        total_env_steps=60_000, eps_decay_steps=30_000, updates_per_episode=4,
    ),
    "control_cpu": dict(
        _CPU_BUDGET, env_id="glamor/point_mass-easy-v0", episode_length=100,
        total_env_steps=50_000, eps_decay_steps=25_000, updates_per_episode=5, eval_batch=50,
    ),
}


# Budgets of `glamor compare`: "full" keeps a preset's own schedule (the spec's settings for
# atari/control, meant for a GPU machine); "small" runs 40% of the preset's environment steps
# (epsilon decay, evaluations and snapshots scaled alike) on one torch thread, so a gridworld run
# takes about two CPU-minutes.
BUDGETS: dict[str, dict[str, Any]] = {
    "full": dict(scale=1.0),
    "small": dict(scale=0.4, torch_threads=1),
}


def apply_budget(cfg: Config, name: str) -> Config:
    """`cfg` with the named budget of BUDGETS: step counts scaled, other fields set."""
    if name not in BUDGETS:
        raise ValueError(f"unknown budget {name!r}; known budgets: {sorted(BUDGETS)}")
    b = dict(BUDGETS[name])
    scale = b.pop("scale")
    if scale != 1.0:
        steps = lambda n: max(int(round(n * scale)), 1)  # noqa: E731
        total = steps(cfg.total_env_steps)
        b.update(
            total_env_steps=total,
            eps_decay_steps=steps(cfg.eps_decay_steps),
            learning_starts=min(cfg.learning_starts, total // 2),
            eval_every=steps(cfg.eval_every) if cfg.eval_every else 0,
            snapshot_every=steps(cfg.snapshot_every),
        )
    return cfg.replace(**b)


def preset(name: str, **overrides: Any) -> Config:
    """The named preset with `overrides` applied; an unknown name lists the known ones.

    A preset's `env_kwargs` are its own environment's: given with an `env_id` of your own
    (outside the ``glamor/`` namespace) and no `env_kwargs`, they are passed to that environment
    too, with a warning (`debug`'s ``size=7`` is taken by any environment with a `size` argument);
    ``env_kwargs={}`` builds it with its own defaults."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}{did_you_mean(name, PRESETS)}; known presets: {sorted(PRESETS)}")
    cfg = Config().replace(**{**PRESETS[name], **overrides})
    own = PRESETS[name].get("env_kwargs")
    if own and "env_kwargs" not in overrides and not cfg.env_id.startswith("glamor/"):
        # An environment that rejects them says so when built (glamor.envs.make); one that takes
        # them (a `size` of its own) would silently be built at the preset's settings.
        warnings.warn(f"preset {name}'s env_kwargs {own} are set for its own environment "
                      f"({PRESETS[name]['env_id']}) and are passed to {cfg.env_id} too; give env_kwargs={{}} "
                      f"(--set env_kwargs={{}}) to build it with its own defaults, or env_kwargs of its own",
                      UserWarning, stacklevel=2)
    return cfg
