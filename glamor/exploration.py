"""Epsilon-greedy exploration, shared by both agents (`glamor.agent.Agent`, `glamor.gcsl.GCSLAgent`)."""

from __future__ import annotations

import numbers

import numpy as np


def epsilon_greedy(rng: np.random.Generator, num_actions: int, actions: np.ndarray, epsilon: float) -> np.ndarray:
    """Each action replaced by a uniform random one of `num_actions` with probability `epsilon`
    (drawn from `rng`: first the coin flips, then the random actions, one of each per action);
    int64, whatever integer type `actions` has (numpy makes floats of uint64 and int64 together)."""
    if isinstance(epsilon, bool) or not isinstance(epsilon, numbers.Real) or not 0.0 <= epsilon <= 1.0:
        raise ValueError(f"epsilon must be a probability in [0, 1], got {epsilon!r}")
    actions = np.asarray(actions)
    if actions.size and (not np.issubdtype(actions.dtype, np.integer) or actions.min() < 0
                         or actions.max() >= num_actions):
        raise ValueError(f"actions must be integers in [0, {num_actions}), got {actions.dtype} "
                         f"{actions.min()}..{actions.max()}")
    explore = rng.random(np.shape(actions)) < epsilon
    return np.where(explore, rng.integers(num_actions, size=np.shape(actions)), actions.astype(np.int64))
