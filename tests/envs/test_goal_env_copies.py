"""The GoalEnv contract for environments of one's own: what the base class copies and checks."""

import inspect

import gymnasium as gym
import numpy as np
import pytest

import glamor.envs as genvs
from glamor.envs import GoalEnv
from glamor.goals import env_code_digest, estimate_label_ranges


class OneBuffer(GoalEnv):
    """A dot on an 8-cell strip that draws every frame into one buffer and keeps its label in
    one array it updates in place (both allowed by the contract)."""

    label_names = ("x",)

    def __init__(self, episode_length: int = 6, render_mode=None):
        super().__init__((4, 8), 2, episode_length, np.array([7.0]), render_mode)
        self.action_space = gym.spaces.Discrete(2)
        self._buffer = np.zeros((4, 8), np.uint8)
        self._x = np.zeros(1)

    def _reset_state(self):
        self._x[0] = self.np_random.integers(8)

    def _step_state(self, action):
        self._x[0] = min(7, max(0, self._x[0] + (1 if action else -1)))
        return False

    def _frame(self):
        self._buffer[:] = 0
        self._buffer[:, int(self._x[0])] = 255
        return self._buffer

    def _labels(self):
        return self._x

    def _get_state(self):
        return self._x.copy()

    def _set_state(self, state):
        self._x[:] = state


def _dot(frame) -> int:
    return int(np.argmax(frame[0]))


def test_frames_and_labels_an_env_reuses_are_copied():
    env = OneBuffer()
    for seed in range(10):
        obs, info = env.reset(seed=seed)
        start = info["labels"].copy()
        assert _dot(obs["observation"][-1]) == start[0]  # the start, not the goal rolled out after it
        assert _dot(obs["desired_goal"][0]) == env.goal.labels[0]
        obs, _, _, _, after = env.step(1)
        assert info["labels"][0] == start[0]  # the reset's labels did not move with the env
        frames = obs["observation"]
        assert [_dot(f) for f in frames] == [start[0], after["labels"][0]]
    ranges = estimate_label_ranges(env, 30, base_seed=3, progress=False)
    assert ranges[0] > 0  # from 30 labels, not 30 references to the last one


class WrongFrame(OneBuffer):
    def _frame(self):
        return np.zeros((4, 8, 3), np.uint8)  # RGB


class BoxActions(OneBuffer):
    def __init__(self, episode_length: int = 6, render_mode=None):
        super().__init__(episode_length, render_mode)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (2,))


def test_a_wrong_frame_or_a_continuous_action_space_is_named():
    with pytest.raises(ValueError, match=r"WrongFrame._frame\(\) must return a uint8 grayscale frame of shape \(4, 8\)"):
        WrongFrame().reset(seed=0)
    gym.register("test_custom_env/BoxActions-v0", entry_point=BoxActions)
    try:
        with pytest.raises(TypeError, match="GLAMOR plans over discrete actions"):
            genvs.make("test_custom_env/BoxActions-v0", 6)
    finally:
        del gym.registry["test_custom_env/BoxActions-v0"]


def test_cached_goals_are_keyed_by_the_environments_code():
    assert env_code_digest(OneBuffer()) == env_code_digest(OneBuffer())
    assert env_code_digest(WrongFrame()) != env_code_digest(OneBuffer())  # a changed _frame: new goals


STRIP = """
import functools
import gymnasium as gym
import numpy as np
from glamor.envs import GoalEnv

def logged(f):
    @functools.wraps(f)
    def wrapper(*args, **kwargs):
        return f(*args, **kwargs)
    return wrapper

class Strip(GoalEnv):
    label_names = ("x",)
    PUSH = [1, -1]

    def __init__(self, episode_length=6, size=8):
        super().__init__((4, size), 1, episode_length, np.array([7.0]))
        self.action_space = gym.spaces.Discrete(2)

    @logged
    def _step_state(self, action):
        self.x = min(7, max(0, self.x + (1 if action else STEP)))
        return False

    def _labels(self):
        return np.array([float(self.x if str(self.x) not in {"up", "down", "left", "right"} else 0)])
"""


def _define_without_source(text):
    namespace = {}
    exec(compile(text, "<notebook cell>", "exec"), namespace)
    return namespace["Strip"]


def test_an_environment_without_source_is_keyed_by_its_compiled_code():
    """Classes defined where inspect finds no source (a notebook, exec): an edited method (also
    under a decorator), default, list or attribute still changes the key; the same definition
    gives the same key."""
    base = _define_without_source(STRIP.replace("STEP", "-1"))
    with pytest.raises((OSError, TypeError)):
        inspect.getsource(base)  # no source: the fallback is what is tested
    edits = [
        STRIP.replace("STEP", "-1"),  # the same definition
        STRIP.replace("STEP", "-2"),  # a constant in a decorated method
        STRIP.replace("STEP", "-1").replace('("x",)', '("y",)'),  # an attribute
        STRIP.replace("STEP", "-1").replace("[1, -1]", "[-1, 1]"),  # a list attribute
        STRIP.replace("STEP", "-1").replace("size=8", "size=9"),  # a default argument
    ]
    keys = [env_code_digest(cls()) for cls in (base, *map(_define_without_source, edits))]
    assert keys[0] == keys[1] and len(set(keys[1:])) == len(edits)


def test_the_key_of_an_environment_without_source_is_the_same_in_every_process():
    """A set constant's repr follows the string hash seed; the key does not."""
    import subprocess
    import sys

    code = ("import sys; sys.path.insert(0, 'tests/envs'); import test_goal_env_copies as t; "
            "from glamor.goals import env_code_digest; "
            "print(env_code_digest(t._define_without_source(t.STRIP.replace('STEP', '-1'))()))")
    root = str(__import__("pathlib").Path(__file__).resolve().parents[2])
    keys = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root, check=True,
                           env={**__import__("os").environ, "PYTHONHASHSEED": seed}).stdout
            for seed in ("1", "2", "3")}
    assert len(keys) == 1 and len(keys.pop().strip()) == 12


def test_an_edit_of_a_module_constant_an_environment_reads_changes_its_key(tmp_path, monkeypatch):
    """The key covers the module its class is defined in: a module-level constant (or helper)
    the class reads is the environment's code too."""
    import importlib
    import sys

    source = STRIP.replace("STEP", "SHIFT") + "\nSHIFT = -1\n"
    (tmp_path / "strip_env.py").write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(sys, "dont_write_bytecode", True)  # the reload reads the edited source
    module = importlib.import_module("strip_env")
    before = env_code_digest(module.Strip())
    (tmp_path / "strip_env.py").write_text(source.replace("SHIFT = -1", "SHIFT = -2  # two cells a step"))
    module = importlib.reload(module)
    assert env_code_digest(module.Strip()) != before
