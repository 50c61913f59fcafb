"""Evaluation on held-out goals: GLAMOR (closed loop, with and without the prior), or the GCSL
baseline, and a random policy on the same goals, judged by the labels.

Each episode resets with its goal's seed (the agent starts where the goal's rollout started)
and has `episode_length` steps. GLAMOR replans every step and may stop early by declaring the
goal reached; the random policy runs for the fixed number of steps. Success is judged at the
final state. Episodes run side by side in batches of `eval_batch`, one plan call per step.
GCSL (any object with `act(obs, goal, horizon, keys) -> (actions, stop)`) runs through the same
`run_episodes` and never stops early. Each goal set's `goal_digest` in eval.json fingerprints
its goals (reset seeds, labels, images) and their judge (the label ranges), so runs can be
checked to share one goal list.

Every random draw of an evaluation is keyed by (seed, goal index, step) (the sampling planner's
candidates, a sampling GCSL policy's actions and the random policy's actions, all from the
counter-based generator of `glamor.planning.rng`), so they do not depend on `eval_batch`: a
goal gets the same draws whichever batch it runs in. (The encoders' float rounding still can:
batched convolutions round by batch size, which may turn a near-tie between plans.)
"""

from __future__ import annotations

import hashlib
import math
import time
from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from glamor.agent import Agent
from glamor.envs import GoalEnv, label_distance
from glamor.gcsl import GCSLAgent
from glamor.goals import GoalSet
from glamor.planning.rng import key_uniforms
from glamor.results import POLICY_LABELS


@dataclass
class EpisodeResults:
    """Per-goal outcomes of one policy on a goal set (G goals)."""

    success: np.ndarray  # bool (G,)
    steps: np.ndarray  # int (G,) environment steps used
    label_distance: np.ndarray  # float (G,) max over labels of |label - goal| / range (inf: a zero-range label missed)
    plans_per_s: float = float("nan")
    frames: list | None = None  # per recorded goal: uint8 (H, W) frames from the start, or None
    goal_frames: list | None = None  # per recorded goal: its goal image, as in the GoalSet

    @property
    def success_rate(self) -> float:
        return float(self.success.mean())

    def summary(self) -> dict:
        lo, hi = wilson_interval(int(self.success.sum()), len(self.success))
        return {"success_rate": self.success_rate, "ci95": [lo, hi], "episodes": len(self.success),
                "mean_steps": float(self.steps.mean())}


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval of a binomial proportion (95% for z = 1.96). Its bounds are
    exactly 0 with no success and exactly 1 with all successes, as the formula's are (rounding
    gave 0.9999999999999999 at 100% success of 6, 21, 200... episodes, and 2.8e-17 at 0 of 11)."""
    if not 0 <= successes <= n:
        raise ValueError(f"successes must be between 0 and n={n}, got {successes}")
    if n == 0:
        return (0.0, 1.0)
    p = successes / n
    denom = 1 + z * z / n
    center = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    lo = 0.0 if successes == 0 else max(0.0, center - half)
    hi = 1.0 if successes == n else min(1.0, center + half)
    return (lo, hi)


def default_policies(cfg) -> tuple[str, ...]:
    """The policies an evaluation of a `cfg.algo` run reports (the random policy last)."""
    return ("gcsl", "random") if cfg.algo == "gcsl" else ("glamor", "glamor_no_prior", "random")


def goal_digest(goals: GoalSet) -> str:
    """A short fingerprint of a goal set: its reset seeds, labels, goal images and label ranges
    (the judge)."""
    h = hashlib.sha1()
    for a in (goals.seeds, goals.labels, goals.frames, goals.label_ranges):
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()[:16]


class EvaluationStopped(Exception):
    """An evaluation given up part-way because a stop was asked for (`run_episodes`' `stop_request`)."""


def run_episodes(
    envs: list[GoalEnv], goals: GoalSet, agent: Agent | None, *, seed: int = 0,
    progress: bool = False, desc: str = "eval", record: int = 0, stop_request=None,
) -> EpisodeResults:
    """Run one episode per goal, len(envs) at a time. agent=None is the random policy, its
    actions drawn from `seed`. The first `record` goals keep their frames and goal images (for
    videos). Goal i's draws at step t are keyed by i * episode_length + t, so they do not
    depend on len(envs). `stop_request`: an object that turns truthy when the evaluation is to be
    given up (a `glamor.interrupt.StopRequest`), looked at before every step: it raises
    `EvaluationStopped`."""
    G, B = len(goals), len(envs)
    k = envs[0].episode_length
    if G * k >= 2**32:
        raise ValueError(f"{G} goals x {k} steps exceed the 2**32 draw keys of one evaluation")
    n_actions = envs[0].action_space.n
    success = np.zeros(G, dtype=bool)
    steps = np.zeros(G, dtype=np.int64)
    dist = np.zeros(G)
    for env in envs:  # every env judges success with the goal set's ranges, not its placeholder
        env.label_ranges = goals.label_ranges
    plan_time, plans = 0.0, 0
    recorded: list = [[] for _ in range(min(record, G))]
    bar = tqdm(total=G, desc=desc, disable=not progress, leave=False)
    for start in range(0, G, B):
        idx = np.arange(start, min(start + B, G))
        batch = envs[: len(idx)]
        obs = [env.reset(seed=int(goals.seeds[i]), options={"goal": goals[i]})[0] for env, i in zip(batch, idx)]
        infos = [None] * len(idx)
        for j, i in enumerate(idx):
            if i < len(recorded):
                recorded[i].append(obs[j]["observation"][-1])
        active = np.ones(len(idx), dtype=bool)
        for t in range(k):
            if stop_request:
                raise EvaluationStopped(f"{desc}: given up for a stop request with {start} of {G} goals done")
            live = np.flatnonzero(active)
            if len(live) == 0:
                break
            keys = idx[live] * k + t  # (E,) this step's draw key of each live goal
            if agent is None:
                actions, stop = random_actions(seed, keys, n_actions), np.zeros(len(live), bool)
            else:
                o = np.stack([obs[j]["observation"] for j in live])
                g = np.stack([obs[j]["desired_goal"] for j in live])
                t0 = time.perf_counter()
                actions, stop = agent.act(o, g, horizon=k - t, keys=keys)
                plan_time += time.perf_counter() - t0
                plans += len(live)
            for a, s, j in zip(actions, stop, live):
                obs[j], _, terminated, truncated, infos[j] = batch[j].step(int(a))
                steps[idx[j]] += 1
                if idx[j] < len(recorded):
                    recorded[idx[j]].append(obs[j]["observation"][-1])
                if s or terminated or truncated:
                    active[j] = False
        for j, i in enumerate(idx):
            success[i] = infos[j]["is_success"]
            dist[i] = label_distance(infos[j]["labels"], goals.labels[i], goals.label_ranges)
        bar.update(len(idx))
    bar.close()
    return EpisodeResults(success, steps, dist, plans / plan_time if plan_time else float("nan"),
                          recorded if record else None,
                          [goals.frames[i] for i in range(len(recorded))] if record else None)


def random_actions(seed: int, keys: np.ndarray, num_actions: int) -> np.ndarray:
    """int64 (E,): uniform actions, one per key (`glamor.planning.rng.key_uniforms`)."""
    u = key_uniforms(seed, torch.as_tensor(np.asarray(keys, dtype=np.int64))).numpy()  # float32, multiples of 2**-24
    return np.minimum((u.astype(np.float64) * num_actions).astype(np.int64), num_actions - 1)


def _agent(policy: str, model, cfg):
    if policy == "gcsl":
        return GCSLAgent.from_config(model, cfg)
    return Agent.from_config(model, cfg, use_prior=policy == "glamor")


def evaluate(model, cfg, envs: list[GoalEnv], goal_sets: dict[str, GoalSet], *, progress: bool = True,
             details: dict | None = None, record: int = 0, policies: tuple[str, ...] | None = None,
             stop_request=None) -> dict:
    """Each policy on each named goal set: by default GLAMOR with and without the prior and the
    random policy (a GCSL run, `cfg.algo == "gcsl"`: GCSL and the random policy).

    Args:
        policies: a subset of "glamor", "glamor_no_prior", "gcsl", "random" (the first is the
            run's own; e.g. ("glamor",) for a planner-width sweep).
        stop_request: given up with `EvaluationStopped` once it is truthy (see `run_episodes`).

    Returns the eval.json dict: for the first set the first policy's numbers at top level
    (success_rate, ci95, episodes, mean_steps, and success_rate_no_prior, random_success_rate
    when evaluated), every set under "sets" with its `goal_digest`. A `details` dict receives
    every (set, policy)'s per-goal EpisodeResults; the first policy's keep the frames of the
    first `record` goals.
    """
    policies = tuple(policies or default_policies(cfg))
    unknown = set(policies) - set(POLICY_LABELS)
    if unknown:
        raise ValueError(f"unknown policies {sorted(unknown)}; known: {sorted(POLICY_LABELS)}")
    was_training = model.training
    model.eval()
    try:
        out: dict = {"algo": cfg.algo, "sets": {}}
        for name, goals in goal_sets.items():
            row: dict = {"goal_digest": goal_digest(goals)}
            for i, key in enumerate(policies):
                if key == "random":
                    res = run_episodes(envs, goals, None, seed=cfg.eval_seed, progress=progress,
                                       desc=f"eval {name} random", stop_request=stop_request)
                else:
                    res = run_episodes(envs, goals, _agent(key, model, cfg), progress=progress,
                                       desc=f"eval {name} {key}", record=record if i == 0 else 0,
                                       stop_request=stop_request)
                if details is not None:
                    details[(name, key)] = res
                row[key] = res.summary() if key == "random" else {**res.summary(), "plans_per_s": res.plans_per_s}
            out["sets"][name] = row
        first = out["sets"][next(iter(goal_sets))]
        main = first[policies[0]]
        out.update(success_rate=main["success_rate"], ci95=main["ci95"], episodes=main["episodes"],
                   mean_steps=main["mean_steps"])
        if "glamor_no_prior" in first:
            out.update(success_rate_no_prior=first["glamor_no_prior"]["success_rate"],
                       ci95_no_prior=first["glamor_no_prior"]["ci95"])
        if "random" in first:
            out.update(random_success_rate=first["random"]["success_rate"], random_ci95=first["random"]["ci95"])
        if cfg.algo == "gcsl":
            out["policy"] = dict(act=cfg.gcsl_act, time_conditioned=cfg.gcsl_time)
        else:
            out["planner"] = dict(method=cfg.planner, width=cfg.plan_width, gamma=cfg.gamma, clip_logq=cfg.clip_logq)
    finally:
        model.train(was_training)
    return out
