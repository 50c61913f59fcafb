"""A user's own goal environment (examples/puck_env.py), built by gymnasium's module:id form."""

import functools
import json
import os
import re
import subprocess
import sys
import warnings
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from glamor import envs

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture
def on_path(monkeypatch):
    monkeypatch.syspath_prepend(str(EXAMPLES))


def test_module_id_imports_and_builds(on_path):
    env = envs.make("puck_env:Puck-v0", episode_length=7)
    assert type(env).__name__ == "Puck" and env.episode_length == 7
    check_env(env, skip_render_check=True)
    obs, info = env.reset(seed=3)
    assert obs["observation"].shape == (2, 24, 24) and info["labels"].shape == (2,)
    for t in range(7):
        obs, _, terminated, truncated, _ = env.step(int(env.action_space.sample()))
        assert not terminated and truncated == (t == 6)


def test_same_seed_same_episode(on_path):
    a, b = envs.make("puck_env:Puck-v0", 10), envs.make("puck_env:Puck-v0", 10)
    oa, _ = a.reset(seed=11)
    ob, _ = b.reset(seed=11)
    np.testing.assert_array_equal(oa["desired_goal"], ob["desired_goal"])
    for action in [1, 1, 4, 0, 2]:
        oa, *_ = a.step(action)
        ob, *_ = b.step(action)
        np.testing.assert_array_equal(oa["observation"], ob["observation"])


def test_module_id_errors_name_the_problem(on_path):
    with pytest.raises(ValueError, match="cannot import module 'no_such_module_xyz'"):
        envs.make("no_such_module_xyz:Puck-v0", 5)
    with pytest.raises(ValueError, match=r"cannot import module 'no_such_pkg_xyz.env' .*; is it on PYTHONPATH\?"):
        envs.make("no_such_pkg_xyz.env:Puck-v0", 5)
    with pytest.raises(ValueError, match=r"did not register 'Nope-v0': register it there with "
                                         r"gymnasium.register\('Nope-v0', entry_point=YourGoalEnv\)") as e:
        envs.make("puck_env:Nope-v0", 5)
    assert "glamor/GridWorld-v0" not in str(e.value)  # the built-in ids are no help there
    with pytest.raises(ValueError, match=r"rejected env_kwargs \{'size': 7, 'wind': 1\}"):
        envs.make("puck_env:Puck-v0", 5, size=7, wind=1)
    with pytest.raises(ValueError, match="unknown environment 'glamor/Nope-v0'"):
        envs.make("glamor/Nope-v0", 5)
    # a file path in place of the module's import name (it was "cannot import module
    # 'examples/puck_env.py' (No module named 'examples/puck_env'); is it on PYTHONPATH?")
    with pytest.raises(ValueError, match=r"module:id takes the module's import name, not a file path: "
                                         r"puck_env:Puck-v0 with its folder on PYTHONPATH \(PYTHONPATH=examples\)"):
        envs.make("examples/puck_env.py:Puck-v0", 5)
    with pytest.raises(ValueError, match=r"not a file path: puck_env:Puck-v0 .*\(PYTHONPATH=\.\)"):
        envs.make("puck_env.py:Puck-v0", 5)
    if "CartPole-v1" in gym.registry:
        with pytest.raises(TypeError, match="not a glamor.envs.GoalEnv"):
            envs.make("CartPole-v1", 5)


def test_train_and_eval_on_a_custom_env_with_worker_processes(tmp_path):
    """The CLI trains on puck_env:Puck-v0 with one worker process per environment (each
    imports the module from the id), then evaluates the run again from its config."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(EXAMPLES), os.environ.get("PYTHONPATH", "")]))
    run = tmp_path / "puck"
    common = dict(env=env, capture_output=True, text=True, timeout=300)
    r = subprocess.run([sys.executable, "-m", "glamor", "train", "--preset", "debug", "--env", "puck_env:Puck-v0",
                        "--set", "env_kwargs={}", "--set", "vector=async", "--set", "num_envs=2",
                        "--total-env-steps", "240", "--run-dir", str(run)], **common)
    assert r.returncode == 0, r.stderr[-2000:]
    config = json.loads((run / "config.json").read_text())
    assert config["env_id"] == "puck_env:Puck-v0"
    assert json.loads((run / "eval.json").read_text())["episodes"] == config["eval_episodes"]
    r = subprocess.run([sys.executable, "-m", "glamor", "eval", str(run), "--episodes", "4"], **common)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "| eval | GLAMOR |" in r.stdout


def test_a_module_whose_own_import_fails_is_not_said_to_be_off_the_path(tmp_path, monkeypatch):
    """The module was found; a package it imports is missing: that package is named, not PYTHONPATH."""
    (tmp_path / "needs_a_dep_env.py").write_text("import no_such_dependency_xyz\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ValueError, match=r"module 'needs_a_dep_env' was found but failed to import "
                                         r"\(ModuleNotFoundError: No module named 'no_such_dependency_xyz'\)") as e:
        envs.make("needs_a_dep_env:Dep-v0", 5)
    assert "PYTHONPATH" not in str(e.value)


def test_preset_env_kwargs_on_another_env_get_a_hint(tmp_path):
    r = subprocess.run([sys.executable, "-m", "glamor", "train", "--preset", "debug", "--env", "glamor/GridWorldBox-v0",
                        "--set", "env_kwargs={'size': 7, 'colour': 1}", "--run-dir", str(tmp_path / "x")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode != 0
    assert "rejected env_kwargs" in r.stderr and "--set env_kwargs=" in r.stderr


GLITCH_ENV = '''
import gymnasium as gym
import numpy as np
from glamor.envs import GoalEnv


class Glitch(GoalEnv):
    def __init__(self, episode_length=6):
        super().__init__((8, 8), 1, episode_length, np.ones(1))
        self.action_space = gym.spaces.Discrete(2)

    def _reset_state(self):
        pass

    def _step_state(self, action):
        return False

    def _frame(self):
        raise ValueError("sensor glitch")

    def _labels(self):
        return np.zeros(1)

    def _get_state(self):
        return None

    def _set_state(self, state):
        pass


gym.register("Glitch-v0", entry_point=Glitch)
'''


def test_an_error_raised_in_ones_own_environment_says_where(tmp_path):
    """The CLI prints a ValueError as one line, without a traceback; one raised outside glamor
    (here by the environment's _frame) also names the file, line and function."""
    (tmp_path / "glitch_env.py").write_text(GLITCH_ENV)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")]))
    r = subprocess.run([sys.executable, "-m", "glamor", "train", "--preset", "debug", "--env", "glitch_env:Glitch-v0",
                        "--set", "env_kwargs={}", "--run-dir", str(tmp_path / "run")],
                       env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr[-2000:]
    assert re.search(r"error: sensor glitch \(raised at .*glitch_env.py:\d+ in _frame\)", r.stderr), r.stderr[-2000:]


def test_a_constructor_without_episode_length_is_named_whatever_the_env_kwargs(on_path):
    """(It was reported as the preset's env_kwargs being rejected.)"""
    import puck_env

    class NoLength(puck_env.Puck):
        def __init__(self, size=24):
            super().__init__(episode_length=10, size=size)

    gym.register("NoLength-v0", entry_point=NoLength)
    try:
        for kwargs in ({}, {"size": 30}):
            with pytest.raises(TypeError, match="'NoLength-v0': its __init__ must take episode_length"):
                envs.make("NoLength-v0", 5, **kwargs)
    finally:
        del gym.registry["NoLength-v0"]


def test_a_bare_id_registered_in_this_process_alone_is_named_with_the_module_that_would_find_it(on_path, tmp_path):
    """A script that imports its environment's module and trains on the bare id (`Dot-v0`, not
    `dotenv:Dot-v0`) trained fine in its own process, but the run's config kept the bare id:
    `glamor eval`, `glamor train --resume`, closed_loop.py and worker processes then said only
    "unknown environment 'Puck-v0'", after the training was done. The training warns, naming the id
    that would work."""
    import puck_env

    from glamor.config import preset
    from glamor.train import train

    assert envs.unnamed_module("Puck-v0") == (
        "environment 'Puck-v0' is registered in this process only, and the run's config names it so: glamor eval, "
        "glamor train --resume (the command line) and examples/closed_loop.py will not find it (environment workers "
        "(vector='async') register it only where the running script does so at its top level, or imports the module "
        "that does, as they run that again); "
        "name it puck_env:Puck-v0 (its class's module; name the module that registers it on import, if another)")
    main_class = type("Mine", (puck_env.Puck,), {"__module__": "__main__"})  # defined in the running script
    gym.register("MineInMain-v0", entry_point=main_class)
    try:
        assert envs.unnamed_module("MineInMain-v0").endswith(
            "its class is defined in the running script (__main__): define and register it in a module of its "
            "own and name it MODULE:MineInMain-v0")
    finally:
        del gym.registry["MineInMain-v0"]
    gym.register("PuckPartial-v0", entry_point=functools.partial(puck_env.Puck, size=12))
    try:  # by its function's module, not functools'
        assert "name it puck_env:PuckPartial-v0 (" in envs.unnamed_module("PuckPartial-v0")
    finally:
        del gym.registry["PuckPartial-v0"]
    for named in ("puck_env:Puck-v0", "glamor/GridWorld-v0", "NotRegistered-v0"):
        assert envs.unnamed_module(named) is None
    cfg = preset("debug", env_id="Puck-v0", env_kwargs={}, progress=False, total_env_steps=48, learning_starts=24,
                 eval_episodes=2, eval_episodes_during_training=2)
    with pytest.warns(UserWarning, match=re.escape("name it puck_env:Puck-v0")) as caught:
        train(cfg, tmp_path / "bare")
    # once, pointing at the caller's train()
    assert [w.filename for w in caught if "in this process only" in str(w.message)] == [__file__]
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # the module:id form: no warning
        train(cfg.replace(env_id="puck_env:Puck-v0"), tmp_path / "named")


BARE_ID_SCRIPT = """
import sys
import warnings

import gymnasium as gym

from glamor.envs.gridworld import GridWorld


class ScriptGrid(GridWorld):
    pass


REGISTER_AT_TOP
if __name__ == "__main__":
    REGISTER_IN_MAIN
    from glamor.config import preset
    from glamor.train import train

    cfg = preset("debug", env_id="ScriptGrid-v0", env_kwargs={}, progress=False, total_env_steps=32,
                 learning_starts=16, eval_episodes=2, eval_episodes_during_training=2, vector="async", num_envs=2)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        train(cfg, sys.argv[1])
    print("WARNED:", " ".join(str(w.message) for w in caught if "ScriptGrid-v0" in str(w.message)))
"""


@pytest.mark.slow
def test_async_workers_of_a_script_find_the_bare_id_it_registers_at_its_top_level(tmp_path):
    """The warning said environment workers (vector='async') would not find a bare id the script
    registered; spawn runs the script's top level again in each worker (as __mp_main__), so one
    registered there trains with them, while one registered under `if __name__ == "__main__":`
    does not: the warning says which, and names for certain only the command line's eval and
    resume."""
    register = 'gym.register("ScriptGrid-v0", entry_point=ScriptGrid)'
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[2]), *sys.path])}
    for top, in_main, trains in ((register, "", True), ("", register, False)):
        script = tmp_path / f"script_{trains}.py"
        script.write_text(BARE_ID_SCRIPT.replace("REGISTER_AT_TOP", top).replace("REGISTER_IN_MAIN", in_main or "pass"))
        done = subprocess.run([sys.executable, str(script), str(tmp_path / f"run_{trains}")], capture_output=True,
                              text=True, env=env, cwd=tmp_path, timeout=300)
        assert (done.returncode == 0) == trains, done.stderr[-3000:]
        if trains:  # the run's commands on the command line are named; the workers are not said to fail
            assert "will not find it (environment workers (vector='async') register it only where the running " \
                   "script does so at its top level" in done.stdout
        else:
            assert "unknown environment 'ScriptGrid-v0'" in done.stderr


def test_the_arguments_a_subclass_passes_on_with_kwargs_are_its_bases(on_path):
    """`class Mine(Puck): def __init__(self, **kwargs): super().__init__(**kwargs)` (the usual way
    to change one method) read as taking no arguments at all, so `--set size=9` on it said only
    "unknown config field", not that env_kwargs passes it; the MRO is followed while **kwargs go on."""
    import puck_env

    class PassesOn(puck_env.Puck):
        def __init__(self, *, trail: int = 0, **kwargs):
            super().__init__(**kwargs)
            self.trail = trail

    class PassesOnAgain(PassesOn):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)

    for name, cls in (("PassesOn-v0", PassesOn), ("PassesOnAgain-v0", PassesOnAgain)):
        gym.register(name, entry_point=cls)
    try:
        puck = envs.constructor_arguments("puck_env:Puck-v0")
        assert "size" in puck
        assert envs.constructor_arguments("PassesOn-v0") == puck | {"trail"}
        assert envs.constructor_arguments("PassesOnAgain-v0") == puck | {"trail"}
        assert "kwargs" not in envs.constructor_arguments("PassesOnAgain-v0")
    finally:
        for name in ("PassesOn-v0", "PassesOnAgain-v0"):
            del gym.registry[name]
    gridworld = envs.constructor_arguments("glamor/GridWorld-v0")  # (no **kwargs: GoalEnv's are not its)
    assert "size" in gridworld and "frame_shape" not in gridworld


def test_the_arguments_a_goal_env_passes_on_with_kwargs_are_not_goal_envs_own(on_path):
    """A GoalEnv written `def __init__(self, size=8, **kwargs): super().__init__(frame_shape=(size,
    size), frame_stack=1, label_ranges=..., **kwargs)` (its **kwargs carry episode_length and
    render_mode) was read as taking GoalEnv's frame_shape, frame_stack and label_ranges, so `--set
    frame_stack=2` was answered with `--set "env_kwargs={'frame_stack': 2}" passes it`, which its
    constructor then refused (frame_stack given twice). GoalEnv's own are what a subclass gives it."""
    from glamor.cli import _check_env_arguments
    from glamor.envs.gridworld import GridWorld

    class Sized(envs.GoalEnv):
        def __init__(self, size: int = 8, **kwargs):
            super().__init__(frame_shape=(size, size), frame_stack=1, label_ranges=np.ones(2), **kwargs)

    class Wider(GridWorld):  # (a base that is no GoalEnv itself is still followed)
        def __init__(self, *, wide: bool = False, **kwargs):
            super().__init__(**kwargs)

    gym.register("Sized-v0", entry_point=Sized)
    gym.register("Wider-v0", entry_point=Wider)
    try:
        assert envs.constructor_arguments("Sized-v0") == {"size"}
        assert envs.constructor_arguments("Wider-v0") == envs.constructor_arguments("glamor/GridWorld-v0") | {"wide"}
        _check_env_arguments({"frame_stack": 2}, "Sized-v0", {})  # no config field, and no hint of env_kwargs
        with pytest.raises(TypeError, match=r"--set size: an argument of the environment Sized-v0"):
            _check_env_arguments({"size": 9}, "Sized-v0", {})
    finally:
        for name in ("Sized-v0", "Wider-v0"):
            del gym.registry[name]


def test_a_bare_id_every_process_registers_at_start_up_is_not_warned_about(on_path, tmp_path, monkeypatch):
    """A bare id that a plugin registers in every interpreter at start-up (a package's .pth file or
    sitecustomize importing it) is found by glamor eval, resume and workers alike, yet training
    warned that they would not find it and told the user to rename it."""
    (tmp_path / "sitecustomize.py").write_text(
        "import gymnasium\ngymnasium.register('Plugged-v0', entry_point='puck_env:Puck')\n")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(tmp_path), str(EXAMPLES), *sys.path]))
    gym.register("Plugged-v0", entry_point="puck_env:Puck")  # (as the plugin did in this process)
    gym.register("ThisProcessOnly-v0", entry_point="puck_env:Puck")
    try:
        assert envs.unnamed_module("Plugged-v0") is None
        assert "name it puck_env:ThisProcessOnly-v0 (" in envs.unnamed_module("ThisProcessOnly-v0")
    finally:
        for name in ("Plugged-v0", "ThisProcessOnly-v0"):
            del gym.registry[name]


def test_a_plugins_bare_id_registered_here_as_another_environment_is_named(on_path, tmp_path, monkeypatch):
    """A bare id that a plugin registers in every process at start-up, registered in this process
    again as an environment of its own (another class, other kwargs: gymnasium lets a registration
    replace one), was taken for one every process builds alike, as only the id was looked for:
    training said nothing, and glamor eval, resume and workers built the plugin's environment, not
    the one trained. What the id builds is compared, and the other one is named."""
    (tmp_path / "sitecustomize.py").write_text(
        "import gymnasium\nprint('plugin loaded')\n"
        "gymnasium.register('Plugged-v0', entry_point='puck_env:Puck', kwargs={'size': 7})\n")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(tmp_path), str(EXAMPLES), *sys.path]))
    import puck_env

    class Mine(puck_env.Puck):
        pass

    try:
        for entry_point, kwargs in (("puck_env:Puck", {"size": 9}), (Mine, {"size": 7}),
                                    (functools.partial(puck_env.Puck, push=0.05), {"size": 7})):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # (gymnasium's "Overriding environment")
                gym.register("Plugged-v0", entry_point=entry_point, kwargs=kwargs)
            why = envs.unnamed_module("Plugged-v0")
            assert why is not None and "a fresh Python process registers another environment under that id (" \
                "puck_env:Puck [('size', 7)])" in why and "would build that one, not the one trained here" in why
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            gym.register("Plugged-v0", entry_point=puck_env.Puck, kwargs={"size": 7})  # the plugin's, as a class
        assert envs.unnamed_module("Plugged-v0") is None
    finally:
        del gym.registry["Plugged-v0"]


@pytest.mark.parametrize("executable", [None, ""])
def test_a_bare_id_is_warned_about_where_python_does_not_know_its_executable(on_path, monkeypatch, executable):
    """sys.executable is None or empty where Python cannot tell its own path (an embedded
    interpreter): asking a fresh interpreter raised TypeError from subprocess for None, and the
    training stopped before it began, over a warning. It cannot tell: the warning is given."""
    import puck_env  # noqa: F401 - registers Puck-v0

    monkeypatch.setattr(sys, "executable", executable)
    assert "name it puck_env:Puck-v0 (" in envs.unnamed_module("Puck-v0")
