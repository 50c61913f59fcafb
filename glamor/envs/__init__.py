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
import inspect
import json
import re
from importlib import resources
from pathlib import Path

import gymnasium as gym
from gymnasium.envs.registration import load_env_creator

from glamor.envs.goal_env import Goal, GoalEnv, judge_success, label_distance
from glamor.errors import did_you_mean

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


def suite(env_id: str) -> str | None:
    """Which built-in family `env_id` belongs to: "atari", "control" or "gridworld" (None: an
    environment of your own)."""
    entry = _BUILTIN.get(env_id)
    return None if entry is None else entry[0].split(":")[0].rsplit(".", 1)[1]


def registered() -> list[str]:
    """Ids of every registered glamor environment."""
    return sorted(k for k in gym.registry if k.startswith("glamor/"))


def bare_name(env_id: str) -> str:
    """An id without its namespace and version, lower case (glamor/Pong-v0 -> pong): what a
    mistyped id is compared by."""
    return re.sub(r"-v\d+$", "", env_id.rpartition("/")[2]).lower()


def make(env_id: str, episode_length: int, **kwargs) -> GoalEnv:
    """Build a goal environment by id, unwrapped (GLAMOR needs no gymnasium wrappers).

    ``env_id`` is a registered id (``glamor/Pong-v0``) or gymnasium's ``module:id`` form
    (``puck_env:Puck-v0``): the module is imported first, so that it registers its
    environments; a config that names the module builds in worker processes too.
    """
    module, _, name = env_id.rpartition(":")
    if module.endswith(".py") or "/" in module or "\\" in module:  # a file path, not an import name
        path = Path(module)
        raise ValueError(f"environment {env_id!r}: module:id takes the module's import name, not a file path: "
                         f"{path.with_suffix('').name}:{name} with its folder on PYTHONPATH "
                         f"(PYTHONPATH={path.parent})")
    if module:
        try:
            importlib.import_module(module)
        except ImportError as e:
            missing = getattr(e, "name", None) if isinstance(e, ModuleNotFoundError) else None
            if missing and (module == missing or module.startswith(missing + ".")):
                raise ValueError(f"environment {env_id!r}: cannot import module {module!r} ({e}); "
                                 f"is it on PYTHONPATH?") from e
            raise ValueError(f"environment {env_id!r}: module {module!r} was found but failed to import "
                             f"({type(e).__name__}: {e}); install what it imports") from e
    if name not in gym.registry:
        if module:  # (the built-in ids would not help here)
            raise ValueError(f"unknown environment {env_id!r}: module {module!r} did not register {name!r}: "
                             f"register it there with gymnasium.register({name!r}, entry_point=YourGoalEnv) "
                             f"(examples/puck_env.py does)")
        meant = did_you_mean(env_id, registered(), key=bare_name)
        raise ValueError(f"unknown environment {env_id!r}{meant}: an environment of your own is named module:id, "
                         f"gymnasium's form (e.g. puck_env:Puck-v0); registered glamor environments: {registered()}")
    creator = gym.spec(name).entry_point
    if isinstance(creator, str):
        creator = load_env_creator(creator)
    if isinstance(creator, type) and not issubclass(creator, GoalEnv):  # (ale-py registers Pong-v0 and the like)
        raise TypeError(f"{env_id} is a {creator.__name__}, not a glamor.envs.GoalEnv"
                        f"{did_you_mean(env_id, registered(), key=bare_name)} "
                        f"(see glamor/envs/goal_env.py for the contract)")
    try:  # gymnasium's checker is off: the checks below name the GoalEnv contract instead
        env = gym.make(name, episode_length=episode_length, disable_env_checker=True, **kwargs).unwrapped
    except (TypeError, ValueError) as e:  # an unknown keyword, a value it refuses, or a bug
        if "unexpected keyword argument 'episode_length'" in str(e):  # a constructor without it, whatever kwargs
            raise TypeError(f"environment {env_id!r}: its __init__ must take episode_length (GoalEnv's "
                            f"contract: glamor/envs/goal_env.py) ({e})") from e
        if not kwargs:
            raise
        raise ValueError(f"environment {env_id!r} rejected env_kwargs {kwargs} ({e}); a preset's "
                         f"env_kwargs fit its own environment: replace them with --set env_kwargs={{...}} "
                         f"(or env_kwargs={{}})") from e
    check_built(env, env_id, episode_length)
    return env


def _spec_and_creator(env_id: str):
    """`env_id`'s gymnasium spec and what it calls to build one (a class, a function), its module
    imported first for a ``module:id``; raises where it cannot be found."""
    module, _, name = env_id.rpartition(":")
    if module:
        importlib.import_module(module)
    spec = gym.spec(name)
    creator = load_env_creator(spec.entry_point) if isinstance(spec.entry_point, str) else spec.entry_point
    return spec, creator


def env_class(env_id: str) -> type[GoalEnv]:
    """The GoalEnv class `env_id` builds, found without building one (no emulator or simulator
    started); GoalEnv itself where it cannot be told (an unknown id, a module that fails to
    import, an entry point that is a function)."""
    try:
        creator = _spec_and_creator(env_id)[1]
    except Exception:  # noqa: BLE001 - GoalEnv's defaults then
        return GoalEnv
    while isinstance(creator, functools.partial):
        creator = creator.func
    return creator if isinstance(creator, type) and issubclass(creator, GoalEnv) else GoalEnv


def constructor_arguments(env_id: str) -> set[str]:
    """The names `env_kwargs` may give `env_id`'s environment: its constructor's keyword arguments,
    less ``episode_length`` and ``render_mode`` (glamor passes them) and those its registration
    fixes (an Atari ``game``). A class whose ``__init__`` passes ``**kwargs`` on (``class
    MyEnv(GridWorld): def __init__(self, **kwargs): super().__init__(**kwargs)``) takes its base
    classes' too, followed along the MRO while each passes ``**kwargs`` on, up to GoalEnv: its
    own (frame_shape, frame_stack, label_ranges) are what a subclass gives it, not a user (``def
    __init__(self, size=8, **kwargs): super().__init__(frame_shape=(size, size), ..., **kwargs)``
    passes it episode_length and render_mode, and frame_stack in env_kwargs would come twice).
    Empty where they cannot be read (an unknown id, a module that fails to import: building it
    says why)."""
    try:
        spec, creator = _spec_and_creator(env_id)
        signatures = [inspect.signature(creator)]
        if isinstance(creator, type):  # the __init__s its own passes **kwargs to, nearest first
            signatures = [inspect.signature(cls.__init__) for cls in creator.__mro__
                          if "__init__" in vars(cls) and cls is not object and cls is not GoalEnv]
    except Exception:  # noqa: BLE001 - only a hint depends on it
        return set()
    named = set()
    for signature in signatures:
        parameters = signature.parameters.values()
        named |= {p.name for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
        if not any(p.kind == p.VAR_KEYWORD for p in parameters):
            break
    return named - {"self", "episode_length", "render_mode"} - set(spec.kwargs or {})


def unnamed_module(env_id: str) -> str | None:
    """Why other processes cannot build `env_id`, when it names an environment of your own that
    this process registered but not the module that registers it (``Dot-v0``, not
    ``dotenv:Dot-v0``): a run's config keeps the id, and ``glamor eval``, ``glamor train --resume``
    and ``examples/closed_loop.py`` import nothing before building it ("unknown environment");
    collection workers (spawned) run the script's top level again, so they find it only where the
    script registers it there. None for a ``module:id``, a built-in or an unregistered id, and for
    a bare id that a fresh Python process has registered as this one has once it imports
    glamor.envs (one that a package installed as a plugin registers at start-up, through a ``.pth``
    file or ``sitecustomize``): those processes find it too. One that it registers as another
    environment (this process registered its own over the plugin's) is named: they would build
    that one."""
    if ":" in env_id or env_id in _BUILTIN or env_id not in gym.registry:
        return None
    here, there = _entry_name(gym.spec(env_id)), _registered_elsewhere(env_id)
    if there == here:
        return None
    entry = gym.spec(env_id).entry_point
    while isinstance(entry, functools.partial):  # (a partial's __module__ is functools')
        entry = entry.func
    module = entry.partition(":")[0] if isinstance(entry, str) else getattr(entry, "__module__", None)
    if module in (None, "__main__", "__mp_main__"):
        where = ("its class is defined in the running script (__main__): define and register it in a module "
                 "of its own and name it MODULE:" + env_id)
    else:
        where = (f"name it {module}:{env_id} (its class's module; name the module that registers it on "
                 f"import, if another)")
    users = "glamor eval, glamor train --resume (the command line) and examples/closed_loop.py"
    # (spawn runs the main script's top level again in each worker, as __mp_main__: a registration
    # there, or an import of the module that makes it, is theirs too; one under `if __name__ ==
    # "__main__":` or in a function is not)
    workers = ("environment workers (vector='async') register it only where the running script does so at its "
               "top level, or imports the module that does, as they run that again")
    if there is not None:  # (a plugin's id, registered here again as something else)
        return (f"environment {env_id!r} is registered in this process as {here}, but a fresh Python process "
                f"registers another environment under that id ({there}), and the run's config names the id alone: "
                f"{users} would build that one, not the one trained here ({workers}); {where}")
    return (f"environment {env_id!r} is registered in this process only, and the run's config names it so: "
            f"{users} will not find it ({workers}); {where}")


def _entry_name(spec) -> str:
    """What a registration builds, as text that two processes compare: its entry point (a
    ``module:name`` string, or a callable's module and qualified name; a partial's function and
    arguments) and its kwargs. An argument without a repr of its own (an object's address) never
    compares equal: then the two are taken for different environments."""
    entry, bound = spec.entry_point, []
    while isinstance(entry, functools.partial):
        bound.append((entry.args, sorted(entry.keywords.items())))
        entry = entry.func
    name = entry if isinstance(entry, str) else f"{getattr(entry, '__module__', None)}:{getattr(entry, '__qualname__', entry)}"
    return f"{name}{f' {bound!r}' if bound else ''}{f' {sorted(spec.kwargs.items())!r}' if spec.kwargs else ''}"


def _registered_elsewhere(env_id: str) -> str | None:
    """What a fresh interpreter, as `glamor eval` starts one, has registered as `env_id` after
    importing glamor.envs (`_entry_name`; about half a second; asked only of bare ids this process
    registered), or None: not registered there, or it cannot tell (the interpreter fails or hangs,
    or this one does not know its own executable: sys.executable empty or None, as embedded): the
    warning is then given."""
    import os
    import subprocess
    import sys

    if not sys.executable:  # (None: subprocess would raise TypeError, and the training with it)
        return None
    flags = ["-P"] if sys.version_info >= (3, 11) else []  # (not the folder this runs in: a command elsewhere lacks it)
    code = ("import sys, gymnasium, glamor.envs as e; s = gymnasium.registry.get(sys.argv[1]); "
            "print(e._entry_name(s)) if s is not None else sys.exit(3)")
    try:
        done = subprocess.run([sys.executable, *flags, "-c", code, env_id], capture_output=True, timeout=60,
                              env={**os.environ, "PYTHONWARNINGS": "ignore"}, text=True, errors="replace")
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip().rpartition("\n")[2] if done.returncode == 0 else None  # (after a plugin's prints)


def check_built(env, env_id: str, episode_length: int) -> None:
    """What a GoalEnv's __init__ must leave behind, named when missing."""
    kind = type(env).__name__
    if not isinstance(env, GoalEnv):
        raise TypeError(f"{env_id} is a {kind}, not a glamor.envs.GoalEnv "
                        f"(see glamor/envs/goal_env.py for the contract)")
    if "frame_shape" not in vars(env):
        raise TypeError(f"{env_id}: {kind}.__init__ must call super().__init__(frame_shape=..., frame_stack=..., "
                        f"episode_length=episode_length, label_ranges=...) (GoalEnv's)")
    space = getattr(env, "action_space", None)
    if not isinstance(space, gym.spaces.Discrete):
        raise TypeError(f"{env_id}'s action_space is {space}: GLAMOR plans over discrete actions; set "
                        f"self.action_space = gymnasium.spaces.Discrete(n) in __init__ (control tasks "
                        f"discretise theirs, see glamor/envs/control.py)")
    if int(space.start) != 0:
        raise TypeError(f"{env_id}'s action_space is {space}: actions are 0..n-1 (Discrete(n) with start 0)")
    if env.episode_length != episode_length:
        raise ValueError(f"{env_id} was asked for episode_length={episode_length} and has {env.episode_length}: "
                         f"{kind}.__init__ must pass its episode_length argument on to GoalEnv.__init__")
    if env.label_names and len(env.label_names) != len(env.label_ranges):
        raise ValueError(f"{env_id} names {len(env.label_names)} labels {tuple(env.label_names)} but has "
                         f"{len(env.label_ranges)} label_ranges")


_register_builtin()

__all__ = ["Goal", "GoalEnv", "judge_success", "label_distance", "make", "registered"]
