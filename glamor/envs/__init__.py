"""Goal environments, registered with gymnasium under the ``glamor/`` namespace.

``glamor.envs.registered()`` lists them (``glamor envs`` prints the list); ``make(env_id,
episode_length, **env_kwargs)`` builds one.

The paper's benchmarks are registered from ``goal_labels.json`` (shipped in this package):
``glamor/<ale_game>-v0`` for Atari (e.g. ``glamor/Pong-v0``) and ``glamor/<domain>-<task>-v0``
for DeepMind Control (e.g. ``glamor/reacher-hard-v0``). Registering imports neither ale-py nor
dm_control; they are imported when such an environment is built.

Environments of your own subclass ``GoalEnv`` and register with gymnasium in their module;
``make("module:id", ...)`` imports the module first (``examples/puck_env.py``).
"""

from __future__ import annotations

import functools
import importlib
import json
from importlib import resources

import gymnasium as gym
from gymnasium.envs.registration import load_env_creator

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
    """Build a goal environment by id, unwrapped (GLAMOR needs no gymnasium wrappers).

    ``env_id`` is a registered id (``glamor/Pong-v0``) or gymnasium's ``module:id`` form
    (``puck_env:Puck-v0``): the module is imported first, so that it registers its
    environments; a config that names the module builds in worker processes too.
    """
    module, _, name = env_id.rpartition(":")
    if module:
        try:
            importlib.import_module(module)
        except ImportError as e:
            raise ValueError(f"environment {env_id!r}: cannot import module {module!r} ({e}); "
                             f"is it on PYTHONPATH?") from e
    if name not in gym.registry:
        where = f"module {module!r} did not register {name!r}; " if module else ""
        raise ValueError(f"unknown environment {env_id!r}: {where}registered glamor environments: "
                         f"{registered()}")
    creator = gym.spec(name).entry_point
    if isinstance(creator, str):
        creator = load_env_creator(creator)
    if isinstance(creator, type) and not issubclass(creator, GoalEnv):
        raise TypeError(f"{env_id} is a {creator.__name__}, not a glamor.envs.GoalEnv "
                        f"(see glamor/envs/goal_env.py for the contract)")
    try:
        env = gym.make(name, episode_length=episode_length, **kwargs).unwrapped
    except (TypeError, ValueError) as e:  # an unknown keyword, or a value it refuses
        if not kwargs:
            raise
        raise ValueError(f"environment {env_id!r} rejected env_kwargs {kwargs} ({e}); a preset's "
                         f"env_kwargs fit its own environment: replace them with --set env_kwargs={{...}} "
                         f"(or env_kwargs={{}})") from e
    if not isinstance(env, GoalEnv):
        raise TypeError(f"{env_id} is a {type(env).__name__}, not a glamor.envs.GoalEnv "
                        f"(see glamor/envs/goal_env.py for the contract)")
    if not isinstance(env.action_space, gym.spaces.Discrete):
        raise TypeError(f"{env_id}'s action_space is {env.action_space}: GLAMOR plans over discrete actions "
                        f"(a gymnasium.spaces.Discrete; control tasks discretise theirs, see glamor/envs/control.py)")
    return env


_register_builtin()

__all__ = ["Goal", "GoalEnv", "judge_success", "make", "registered"]
