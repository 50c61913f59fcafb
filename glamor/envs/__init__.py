"""Goal environments, registered with gymnasium under the ``glamor/`` namespace.

``glamor.envs.registered()`` lists them (``glamor envs`` prints the list); ``make(cfg)`` builds
the one a config names with the config's episode length.
"""

from __future__ import annotations

import gymnasium as gym

from glamor.envs.goal_env import Goal, GoalEnv, judge_success

_BUILTIN = {
    "glamor/GridWorld-v0": ("glamor.envs.gridworld:GridWorld", {}),
    "glamor/GridWorldBox-v0": ("glamor.envs.gridworld:GridWorld", {"box": True}),
}


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
