"""Goal sets: random-rollout goals, label ranges, diverse training goals, held-out evaluation goals.

Protocol (the spec's):
- A goal is the final observation of a random-policy rollout of exactly k steps from reset (or
  up to an earlier end of the episode: an Atari life loss), with its labels read at that same
  state. Each goal remembers the reset seed it came from: an evaluation episode aimed at it
  starts from that rollout's start (so it is reachable in k steps); a training episode starts
  from a fresh reset by default (`Config.train_start`).
- Label ranges: for each label, max minus min over random rollouts of random length 1..k, from
  one fixed seed (`RANGE_SEED`), so runs of every seed share one judge. Environments whose
  ranges are known exactly (gridworld) declare them instead.
- Training goals: `num_train_goals` chosen greedily from `goal_candidates` rollouts to maximise
  the minimum (range-normalised) label distance between chosen goals.
- Evaluation goals: rollouts from `eval_seed`, whose reset seeds never overlap training ones.
- Optionally (`train_moved_fraction`, not in the spec) a share of the training goals comes from
  rollouts that moved an object (the env's `moved_labels`), as the "eval_moved" set does.

Goal sets are cached under ``$GLAMOR_CACHE`` (default ``~/.cache/glamor``) as ``.npz`` files
keyed by environment, kwargs, episode length, seed, count, kind, the label ranges' settings,
the source of the environment's classes (`env_code_digest`: an edited env builds its goals
again), the data an env reads beside its source (its `cache_data`, if it has one: Atari's and
Control's entry of goal_labels.json, their RAM addresses, label slices and action repeat), the
versions of the simulator and renderer outside this package (its `cache_versions`, if it has
them: ale-py and Pillow for Atari; MuJoCo, dm_control, the GL backend in use and its driver for
Control) and `GOAL_FORMAT_VERSION`. What the key cannot see (a module the environment imports,
a data file it reads) is checked at each read: the set's first and last goals are rolled out
again from their seeds, its label ranges must be the estimate now, and a set the environment no
longer makes is built again, with a warning (not where a seed's goal differs from one rollout to
the next: that set is kept). A cached estimate of the ranges is checked alike: the rollouts that
gave each label's least and greatest value are rolled out again from their seeds and draws.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import inspect
import json
import os
import re
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from glamor.envs import Goal, GoalEnv
from glamor.files import write_atomically

GOAL_FORMAT_VERSION = 2  # 2: training goals without repeats; goal sets keyed by their ranges' settings
SEED_STRIDE = 1 << 24  # reset seeds of one goal set: base * SEED_STRIDE + i, disjoint across bases


@dataclass(frozen=True)
class GoalSet:
    """G goals of one environment.

    Attributes:
        frames: uint8 (G, 1, H, W) goal images.
        labels: float64 (G, L) labels at the goal states.
        start_labels: float64 (G, L) labels at the rollouts' reset states.
        seeds: int64 (G,) reset seeds of the rollouts.
        label_ranges: float64 (L,) the success judge's ranges.
    """

    frames: np.ndarray
    labels: np.ndarray
    start_labels: np.ndarray
    seeds: np.ndarray
    label_ranges: np.ndarray

    def __len__(self) -> int:
        return len(self.seeds)

    def __getitem__(self, i: int) -> Goal:
        return Goal(self.frames[i], self.labels[i], int(self.seeds[i]))

    def subset(self, idx) -> GoalSet:
        idx = np.asarray(idx)
        return GoalSet(self.frames[idx], self.labels[idx], self.start_labels[idx], self.seeds[idx], self.label_ranges)

    def save(self, path: Path) -> None:
        write_atomically(path, lambda tmp: np.savez_compressed(tmp, **self.__dict__), suffix=".npz")

    @classmethod
    def load(cls, path: Path) -> GoalSet:
        with np.load(path) as f:
            return cls(**{k: f[k] for k in cls.__dataclass_fields__})


def rollout_goals(
    env: GoalEnv, count: int, base_seed: int, *, moved: tuple[int, ...] = (), max_tries: int | None = None,
    desc: str = "goals", progress: bool = True,
) -> tuple[list[Goal], list[np.ndarray]]:
    """Goals from random rollouts of k steps (fewer if the episode ends first), one per reset
    seed base * STRIDE + i.

    With `moved`, only goals whose labels at those indices differ from the start are kept
    (e.g. box-moved goals), trying at most `max_tries` seeds.
    """
    goals, starts = [], []
    max_tries = max_tries or (count if not moved else 200 * count)
    bar = tqdm(total=count, desc=desc, disable=not progress, leave=False)
    for i in range(max_tries):
        if len(goals) == count:
            break
        seed = base_seed * SEED_STRIDE + i
        _, info = env.reset(seed=seed)  # the reset makes its goal: a k-step random rollout
        goal = Goal(env.goal.frame, env.goal.labels, seed)
        if moved and np.array_equal(goal.labels[list(moved)], info["labels"][list(moved)]):
            continue
        goals.append(goal)
        starts.append(info["labels"])
        bar.update(1)
    bar.close()
    if len(goals) < count:
        why = (f": in the others the labels {list(moved)} (the environment's moved_labels) were where they "
               f"started, so these goals are rare or impossible here (lower train_moved_fraction, or check "
               f"moved_labels)" if moved else "")
        raise ValueError(f"found only {len(goals)} of {count} {desc} in {max_tries} rollouts{why}")
    return goals, starts


def _no_goal(env: GoalEnv) -> Goal:
    """A placeholder goal: a reset with it rolls out no goal."""
    return Goal(np.zeros((1, *env.frame_shape), np.uint8), np.zeros(len(env.label_ranges)))


def check_seeded_resets(env: GoalEnv, seed: int = 12345, tries: int = 8) -> None:
    """Two resets with one seed give the same frame and labels, for each of `tries` seeds from
    `seed` on: a goal's seed (evaluation resets with it) must bring back its start state, so
    `_reset_state` draws from `self.np_random`. One pair is not enough where there are few start
    states: two unseeded draws among 12 agree one time in 12, and a goal set built past the check
    fails (or judges wrongly) only after a whole training run."""
    for s in range(seed, seed + tries):
        looks = []
        for _ in range(2):
            obs, info = env.reset(seed=s, options={"goal": _no_goal(env)})
            looks.append((obs["observation"][-1], info["labels"]))
        (frame_a, labels_a), (frame_b, labels_b) = looks
        if not (np.array_equal(frame_a, frame_b) and np.array_equal(labels_a, labels_b)):
            raise ValueError(f"{type(env).__name__}: two reset(seed={s}) calls gave different start states (labels "
                             f"{labels_a} and {labels_b}): _reset_state must draw from self.np_random (which "
                             f"reset seeds), not np.random or another unseeded source")


def estimate_label_ranges(env: GoalEnv, rollouts: int, base_seed: int, progress: bool = True) -> np.ndarray:
    """(L,) max minus min of each label over random rollouts of random length 1..k.

    Only the labels are needed, so the rollouts step the env's state machine directly: no
    frames are rendered and no goal is rolled out at reset (40x faster on Control).
    """
    return _estimate(env, rollouts, base_seed, progress)[0]


def _estimate(env: GoalEnv, rollouts: int, base_seed: int, progress: bool) -> tuple[np.ndarray, dict]:
    """`estimate_label_ranges` and its probe: the rollouts that gave each label's least and
    greatest value (index, labels at their end, and the state of the draws they started from),
    which `_ranges_not_made_now` rolls out again to check a cached estimate."""
    rng = np.random.default_rng(base_seed)
    no_goal = _no_goal(env)
    seen, states = [], []
    for i in tqdm(range(rollouts), desc="label ranges", disable=not progress, leave=False):
        states.append(json.dumps(rng.bit_generator.state))
        seen.append(_range_rollout(env, base_seed * SEED_STRIDE + i, rng, no_goal))
    seen = np.stack(seen)
    index = np.unique(np.concatenate([seen.argmin(0), seen.argmax(0)]))
    probe = dict(probe_index=index, probe_labels=seen[index], probe_states=np.array([states[i] for i in index]))
    return seen.max(0) - seen.min(0), probe


def _range_rollout(env: GoalEnv, seed: int, rng: np.random.Generator, no_goal: Goal) -> np.ndarray:
    """The labels at the end of one rollout of the estimate: reset with `seed`, then a random
    length and random actions drawn from `rng`."""
    env.reset(seed=seed, options={"goal": no_goal})
    for _ in range(int(rng.integers(1, env.episode_length + 1))):
        if env._advance(int(rng.integers(env.action_space.n))):
            break
    return env._current_labels()


def select_diverse(labels: np.ndarray, count: int, ranges: np.ndarray) -> np.ndarray:
    """Indices of `count` rows of labels (G, L) chosen greedily to maximise the minimum
    range-normalised distance to those already chosen (starting from row 0)."""
    if count <= 0:  # (every training goal a moved one): none, not row 0
        return np.zeros(0, dtype=np.int64)
    if count >= len(labels):
        return np.arange(len(labels))
    x = labels / np.where(ranges > 0, ranges, 1.0)
    chosen = [0]
    min_dist = np.linalg.norm(x - x[0], axis=1)
    min_dist[0] = -np.inf  # never chosen twice: once every distinct label is taken, the rest tie at 0
    for _ in range(count - 1):
        nxt = int(np.argmax(min_dist))  # lowest index on ties
        chosen.append(nxt)
        min_dist = np.minimum(min_dist, np.linalg.norm(x - x[nxt], axis=1))
        min_dist[nxt] = -np.inf
    return np.array(chosen)


def _to_set(goals: list[Goal], starts: list[np.ndarray], ranges: np.ndarray) -> GoalSet:
    return GoalSet(
        frames=np.stack([g.frame for g in goals]),
        labels=np.stack([g.labels for g in goals]),
        start_labels=np.stack(starts),
        seeds=np.array([g.seed for g in goals], dtype=np.int64),
        label_ranges=np.asarray(ranges, dtype=np.float64),
    )


def cache_dir() -> Path:
    """$GLAMOR_CACHE/goals, `~` expanded; an empty or unset GLAMOR_CACHE (`export GLAMOR_CACHE=`)
    is the default ~/.cache/glamor, not a `goals` folder in whatever directory a command runs in."""
    value = os.environ.get("GLAMOR_CACHE", "").strip()
    return (Path(value).expanduser() if value else Path.home() / ".cache" / "glamor") / "goals"


def env_code_digest(env: GoalEnv) -> str:
    """A fingerprint of the source of the modules that define the env's classes (GoalEnv and
    its subclasses: their module-level constants and helpers too), so cached goals are built
    again after an environment's code changes (how it draws or labels)."""
    return _class_code_digest(type(env))


@functools.cache  # a module's source is read once per process
def _class_code_digest(env_class: type) -> str:
    h, modules = hashlib.sha1(), []
    for cls in env_class.__mro__:
        if not issubclass(cls, GoalEnv):
            continue
        try:
            h.update(inspect.getsource(cls).encode())
        except (OSError, TypeError):  # defined where no source is kept (a notebook, exec)
            h.update(cls.__qualname__.encode())
            _hash_class_body(h, cls)
        module = sys.modules.get(cls.__module__)
        if module not in modules:  # its constants and helpers (an exec's "module" may have none)
            modules.append(module)
            with contextlib.suppress(OSError, TypeError):
                h.update(inspect.getsource(module).encode())
    return h.hexdigest()[:12]


def _hash_class_body(h, cls: type, depth: int = 0) -> None:
    """What a class without source does: its attributes in name order, methods by their
    compiled code (see _hash_value)."""
    for name, value in sorted(vars(cls).items()):
        if name not in ("__dict__", "__weakref__", "__module__", "__doc__"):
            h.update(name.encode())
            _hash_value(h, value, depth)


def _hash_value(h, value, depth: int = 0) -> None:
    """A process-independent fingerprint of a class attribute: functions by their code, defaults
    and what they wrap (decorators, partials, properties); plain values, containers and arrays by
    content; anything else by its type's name (never an object's address)."""
    if depth > 6:
        return

    def inner(v):
        _hash_value(h, v, depth + 1)

    if inspect.iscode(value):
        h.update(value.co_code)
        h.update(repr(value.co_names).encode())
        for const in value.co_consts:
            inner(const)
    elif isinstance(value, (staticmethod, classmethod)):
        inner(value.__func__)
    elif isinstance(value, property):
        for f in (value.fget, value.fset, value.fdel):
            inner(f)
    elif isinstance(value, (functools.partial, functools.cached_property)):
        inner(value.func)
        inner(getattr(value, "args", ()))
        inner(getattr(value, "keywords", {}))
    elif inspect.isfunction(value):
        inner(value.__code__)
        inner(value.__defaults__)
        inner(value.__kwdefaults__)
        if hasattr(value, "__wrapped__"):  # functools.wraps decorators
            inner(value.__wrapped__)
    elif hasattr(value, "__wrapped__") and not isinstance(value, type):  # lru_cache and the like
        inner(value.__wrapped__)
    elif isinstance(value, (bool, int, float, complex, str, bytes, type(None))):
        h.update(repr(value).encode())
    elif isinstance(value, (tuple, list)):
        h.update(f"{type(value).__name__}{len(value)}".encode())
        for v in value:
            inner(v)
    elif isinstance(value, (set, frozenset)):  # by sorted element fingerprints: string hashing varies
        parts = []
        for v in value:
            one = hashlib.sha1()
            _hash_value(one, v, depth + 1)
            parts.append(one.hexdigest())
        h.update(("set" + ",".join(sorted(parts))).encode())
    elif isinstance(value, dict):
        for k in sorted(value, key=repr):
            inner(k)
            inner(value[k])
    elif isinstance(value, np.ndarray):
        h.update(f"{value.dtype}{value.shape}".encode())
        h.update(np.ascontiguousarray(value).tobytes())
    elif isinstance(value, type):  # a nested class
        h.update(value.__qualname__.encode())
        _hash_class_body(h, value, depth + 1)
    else:
        h.update(type(value).__qualname__.encode())


def _cache_path(env: GoalEnv, env_id: str, env_kwargs: dict, episode_length: int, kind: str, **key) -> Path:
    if getattr(env, "cache_data", None) is not None:  # JSON data; envs without it keep their keys
        key["data"] = env.cache_data
    if getattr(env, "cache_versions", None):  # the simulator's and renderer's versions, likewise
        key["versions"] = env.cache_versions
    blob = json.dumps(
        dict(env=env_id, kwargs=env_kwargs, k=episode_length, kind=kind, v=GOAL_FORMAT_VERSION,
             code=env_code_digest(env), **key),
        sort_keys=True,
    )
    digest = hashlib.sha1(blob.encode()).hexdigest()[:16]
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", env_id)  # 'glamor/Pong-v0', 'puck_env:Puck-v0'
    return cache_dir() / f"{safe}-{kind}-{digest}.npz"


# The seed of every label-range estimate, whatever the run's seed: the ranges are the success
# judge, and runs of different seeds must be judged alike (0: the estimate seed-0 runs always used).
RANGE_SEED = 0
RANGES_PROBE_FORMAT = 1  # the label-range cache's format: its ranges and the probe that checks them


def label_ranges_for(env: GoalEnv, cfg, progress: bool = True, *, rebuild: bool = False,
                     _stacklevel: int = 2) -> np.ndarray:
    """The env's declared ranges, or the spec's estimate (cached), the same for every run seed.
    `rebuild`: estimate them again (and cache that) whatever the cache holds. A cached estimate
    is checked as goal sets are (`_ranges_not_made_now`): one the environment no longer gives
    is estimated again, with a warning. An estimate the cache cannot keep is kept in the process
    (and checked alike), so it is made once, not at every goal set read."""
    if not getattr(env, "estimate_label_ranges", True):
        return env.label_ranges
    # Keyed by its format (an .npz with the probe): a glamor from before the probe wrote the ranges
    # alone (.npy data) under the key without it, and reads whatever lies there as its ranges, so
    # one sharing the cache (another checkout, a bisect) would fail on an .npz written there.
    path = _cache_path(env, cfg.env_id, cfg.env_kwargs, cfg.episode_length, "ranges", n=cfg.label_range_rollouts,
                       seed=RANGE_SEED, labels=list(env.label_names), probe=RANGES_PROBE_FORMAT)
    base_seed = 7 * RANGE_SEED + 3
    cached = None if rebuild else _read_cache(path, _load_ranges)
    if cached is None and not rebuild:  # (an estimate the cache could not keep stands in for its file)
        cached = _RANGES_NOT_KEPT.get(path)
    if cached is not None:
        stale = _ranges_not_made_now(env, cached, base_seed)
        if stale is None:
            return cached["ranges"]
        warnings.warn(f"the cached label ranges {path} are not what {cfg.env_id} gives now ({stale}): its code "
                      f"changed where the cache key does not look (see glamor/goals.py); estimating them again",
                      RuntimeWarning, stacklevel=_stacklevel)
    ranges, probe = _estimate(env, cfg.label_range_rollouts, base_seed, progress)
    if _write_cache(path, lambda: write_atomically(path, lambda tmp: np.savez(tmp, ranges=ranges, **probe),
                                                   suffix=".npz")):
        _RANGES_NOT_KEPT.pop(path, None)
    else:
        _RANGES_NOT_KEPT[path] = dict(ranges=ranges, **probe)
    return ranges


# Estimates a cache could not keep (a read-only GLAMOR_CACHE filled beforehand with goal sets alone),
# by their cache path: read, and checked, as the file would be, so one process estimates them once,
# not at every goal set it reads (~6 s each on Atari at 500 rollouts).
_RANGES_NOT_KEPT: dict[Path, dict] = {}


def _load_ranges(path: Path) -> dict:
    """A cached estimate's arrays: ranges and its probe (probe_index, probe_labels, probe_states)."""
    with np.load(path) as data:
        return {k: data[k] for k in ("ranges", "probe_index", "probe_labels", "probe_states")}


def _ranges_not_made_now(env: GoalEnv, cached: dict, base_seed: int) -> str | None:
    """Why a cached estimate is not what `env` gives now, or None: the rollouts that gave each
    label's least and greatest value, rolled out again from their seeds and draws, must end at
    the same labels (as `_not_made_now` checks a goal set's goals; one that does not come out
    the same twice in a row cannot tell, and is kept)."""
    no_goal = _no_goal(env)
    for i, labels, state in zip(cached["probe_index"], cached["probe_labels"], cached["probe_states"]):
        seed = base_seed * SEED_STRIDE + int(i)

        def replay(seed=seed, state=str(state)) -> tuple[np.ndarray]:
            state = json.loads(state)
            rng = np.random.Generator(getattr(np.random, state["bit_generator"])())
            rng.bit_generator.state = state
            return (_range_rollout(env, seed, rng, no_goal),)

        if _replay_differs((labels,), replay) is not None:
            return f"rollout {int(i)} of the estimate, from reset seed {seed}: its labels differ"
    return None


def _replay_differs(stored: tuple, replay) -> int | None:
    """Which of `stored` (arrays) `replay()` (the same, made again now) first differs in, or None:
    where all are equal, or where two replays differ from each other too (what a seed makes
    varies from one rollout to the next: nothing to compare with)."""
    now = replay()
    differs = [i for i, (a, b) in enumerate(zip(now, stored)) if not np.array_equal(a, b)]
    if not differs or not all(np.array_equal(a, b) for a, b in zip(now, replay())):
        return None
    return differs[0]


def _write_cache(path: Path, write) -> bool:
    """Make `path`'s folder and `write()` it; a cache that cannot be written (a read-only home,
    GLAMOR_CACHE naming a file) is warned about, and the goals are built again next time.
    Whether it was written."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write()
    except OSError as e:
        warnings.warn(f"cannot write the goal cache {path} ({e.strerror or e}): the goals are built again by the "
                      f"next run; set GLAMOR_CACHE to a writable folder to keep them", RuntimeWarning, stacklevel=3)
        return False
    return True


def _read_cache(path: Path, read):
    """`read(path)`, or None when the file is missing or unreadable (then it is built again)."""
    if not path.exists():
        return None
    try:
        return read(path)
    except Exception as e:  # noqa: BLE001 - a damaged cache file costs a rebuild, never the run
        warnings.warn(f"goal cache {path} is unreadable ({type(e).__name__}: {e}); building it again",
                      RuntimeWarning, stacklevel=3)
        return None


def _not_made_now(env: GoalEnv, goal_set: GoalSet) -> str | None:
    """Why a cached goal set is not what `env` makes now, or None: its first and last goals rolled
    out again from their reset seeds (a reset makes its goal as `rollout_goals` does) must give
    the same start labels, goal image and goal labels. The cache key holds the source of the
    env's classes and their modules, not of modules they import (a helper of yours), nor data
    files or simulators the env does not declare (`cache_data`, `cache_versions`): an edit there
    would have left goals the environment no longer makes, unsaid.

    Where a seed's goal does not come out the same twice in a row (steps that draw from a
    generator of the env's own, not `np_random`, which a reset seeds), no rollout can tell an edit
    from chance: the cached set is kept, as before this check, not built again at every read
    (which gave every run, and every DDP rank, goals of its own)."""

    def made(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        _, info = env.reset(seed=seed)
        return env.goal.frame, env.goal.labels, info["labels"]

    whats = ("image differs", "labels differ", "start state's labels differ")
    for i in sorted({0, len(goal_set) - 1}):
        seed = int(goal_set.seeds[i])
        cached = (goal_set.frames[i], goal_set.labels[i], goal_set.start_labels[i])
        differs = _replay_differs(cached, functools.partial(made, seed))
        if differs is not None:
            return f"goal {i}, from reset seed {seed}: its {whats[differs]}"
    return None


def make_goal_set(env: GoalEnv, cfg, kind: str, count: int | None = None, progress: bool = True) -> GoalSet:
    """A cached goal set of `kind`: "train" (diverse), "eval" (held out) or "eval_moved"
    (held out, the env's `moved_labels` changed from the start, e.g. the box was pushed)."""
    if kind not in ("train", "eval", "eval_moved"):
        raise ValueError(f"kind must be 'train', 'eval' or 'eval_moved', got {kind!r}")
    count = count or (cfg.num_train_goals if kind == "train" else cfg.eval_episodes)
    seed = cfg.seed if kind == "train" else cfg.eval_seed
    env_moved = tuple(getattr(env, "moved_labels", ()))
    n_moved = round(cfg.train_moved_fraction * count) if kind == "train" else 0
    if n_moved and not env_moved:
        raise ValueError(f"train_moved_fraction={cfg.train_moved_fraction} but {cfg.env_id} declares no moved_labels")
    extra = {"moved": n_moved} if n_moved else {}  # keeps the cache keys of the spec's protocol
    # The set stores the judge's ranges, so its key holds theirs (rollouts, seed) as well.
    estimated = getattr(env, "estimate_label_ranges", True)
    ranges_key = dict(range_rollouts=cfg.label_range_rollouts, range_seed=RANGE_SEED) if estimated else {}
    path = _cache_path(env, cfg.env_id, cfg.env_kwargs, cfg.episode_length, kind, n=count, seed=seed,
                       candidates=cfg.goal_candidates if kind == "train" else None,
                       frame=list(env.frame_shape), labels=list(env.label_names), **ranges_key, **extra)
    cached = _read_cache(path, GoalSet.load)
    stale = ranges = None
    if cached is not None and cached.frames.shape[1:] == (1, *env.frame_shape) and len(cached) == count:
        stale = _not_made_now(env, cached)
        if stale is None and estimated:  # its judge too: the estimate now (checked in turn), which another
            ranges = label_ranges_for(env, cfg, progress, _stacklevel=3)  # set's rebuild may have made again
        if stale is None:  # (declared ranges are the env's code's, in the key; env.label_ranges may be anything)
            if ranges is None or np.array_equal(cached.label_ranges, ranges):
                env.label_ranges = cached.label_ranges  # the judge's ranges, as on a fresh build
                return cached
            stale = f"its label ranges {cached.label_ranges} are not the {ranges} it gives now"
        warnings.warn(f"the cached {kind} goals {path} are not what {cfg.env_id} makes now ({stale}): its code "
                      f"changed where the cache key does not look (a module of yours that it imports, a data file "
                      f"it reads, a simulator's version: see glamor/goals.py); building them "
                      f"{'again' if ranges is not None else 'and the label ranges again'}", RuntimeWarning,
                      stacklevel=2)
    check_seeded_resets(env)
    if ranges is None:  # (cached alike, stale alike)
        ranges = label_ranges_for(env, cfg, progress, rebuild=stale is not None, _stacklevel=3)
    env.label_ranges = ranges
    # Reset seeds: train from base 2*seed+1, evaluation from base 2*eval_seed+2: never equal.
    # Moved goals (train or eval) come from bases 2 * SEED_STRIDE higher, so no seeds are shared.
    if kind == "train":
        goals, starts = [], []
        if count > n_moved:  # (none when every training goal is a moved one)
            goals, starts = rollout_goals(env, max(count - n_moved, cfg.goal_candidates), 2 * seed + 1,
                                          desc="training goals", progress=progress)
            pick = select_diverse(np.stack([g.labels for g in goals]), count - n_moved, ranges)
            goals, starts = [goals[i] for i in pick], [starts[i] for i in pick]
        if n_moved:  # as many candidates again, in proportion
            n_cand = max(n_moved, round(cfg.goal_candidates * n_moved / count))
            more, more_starts = rollout_goals(env, n_cand, 2 * seed + 1 + 2 * SEED_STRIDE, moved=env_moved,
                                              desc="training goals (moved)", progress=progress)
            pick = select_diverse(np.stack([g.labels for g in more]), n_moved, ranges)
            goals, starts = goals + [more[i] for i in pick], starts + [more_starts[i] for i in pick]
        goal_set = _to_set(goals, starts, ranges)
    else:
        moved = env_moved if kind == "eval_moved" else ()
        if kind == "eval_moved" and not moved:
            raise ValueError(f"{cfg.env_id} declares no moved_labels, so it has no 'eval_moved' goals")
        base = 2 * seed + 2 + (1 if moved else 0) * 2 * SEED_STRIDE
        goals, starts = rollout_goals(env, count, base, moved=moved, desc=f"{kind} goals", progress=progress)
        goal_set = _to_set(goals, starts, ranges)
    _write_cache(path, lambda: goal_set.save(path))
    return goal_set
