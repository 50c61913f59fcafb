"""Goal environments, registered with gymnasium under the ``glamor/`` namespace.

``glamor.envs.registered()`` lists them (``glamor envs`` prints the list); ``make(cfg)`` builds
the one a config names with the config's episode length.

The paper's benchmarks are registered from ``goal_labels.json`` (shipped in this package):
``glamor/<ale_game>-v0`` for Atari (e.g. ``glamor/Pong-v0``) and ``glamor/<domain>-<task>-v0``
for DeepMind Control (e.g. ``glamor/reacher-hard-v0``). Registering imports neither ale-py nor
dm_control; they are imported when such an environment is built.
"""

from __future__ import annotations

import functools
import json
from importlib import resources

import gymnasium as gym

from glamor.envs.goal_env import Goal, GoalEnv, judge_success

_BUILTIN = {
    "glamor/GridWorld-v0": ("glamor.envs.gridworld:GridWorld", {}),
    "glamor/GridWorldBox-v0": ("glamor.envs.gridworld:GridWorld", {"box": True}),
}


@functools.cache
def goal_labels() -> dict:
    """The benchmark table (``goal_labels.json``): Atari games with their RAM label addresses,
    control tasks with their label slices of the physics observation, action repeat and action
    discretisation. Cached: treat it as read-only."""
    text = resources.files(__package__).joinpath("goal_labels.json").read_text()
    return json.loads(text)


def _benchmark_ids() -> dict[str, tuple[str, dict]]:
    table = goal_labels()
    ids = {}
    for game, entry in table["atari"].items():
        ids[f"glamor/{entry['ale_game']}-v0"] = ("glamor.envs.atari:AtariGoalEnv", {"game": game})
    for name in table["control"]:
        domain, task = name.split("/")
        ids[f"glamor/{domain}-{task}-v0"] = (
            "glamor.envs.control:ControlGoalEnv",
            {"domain": domain, "task": task},
        )
    return ids


_BUILTIN.update(_benchmark_ids())


def _register_builtin() -> None:
    for env_id, (entry_point, kwargs) in _BUILTIN.items():
        if env_id not in gym.registry:
            gym.register(env_id, entry_point=entry_point, kwargs=kwargs)


def registered() -> list[str]:
    """Ids of every registered glamor environment."""
    return sorted(k for k in gym.registry if k.startswith("glamor/"))


def make(env_id: str, episode_length: int, **kwargs) -> GoalEnv:
    """Build a goal environment by id, unwrapped (GLAMOR needs no gymnasium wrappers)."""
    if env_id not in gym.registry:
        raise ValueError(f"unknown environment {env_id!r}; registered: {registered()}")
    env = gym.make(env_id, episode_length=episode_length, **kwargs).unwrapped
    if not isinstance(env, GoalEnv):
        raise TypeError(f"{env_id} is not a glamor GoalEnv")
    return env


_register_builtin()

__all__ = ["Goal", "GoalEnv", "judge_success", "make", "registered"]
