"""The DeepMind Control goal environments: contract, rendering, determinism, labels, success judge.

Rendering must work: the environments pick EGL or OSMesa themselves (MUJOCO_GL, if set, wins),
and when neither works every test here fails with the message naming the package to install.
"""

import os
import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

pytest.importorskip("dm_control", reason="control environments need dm_control")

from goal_set_checks import check_goal_sets  # noqa: E402

import glamor.envs  # noqa: E402
from glamor.envs import Goal, goal_labels  # noqa: E402
from glamor.envs.control import (  # noqa: E402
    ControlGoalEnv,
    discrete_actions,
    gl_failure,
    select_gl_backend,
)
from glamor.errors import EnvironmentUnavailable  # noqa: E402

TASKS = sorted(goal_labels()["control"])
K = 10


def env_id(name: str) -> str:
    domain, task = name.split("/")
    return f"glamor/{domain}-{task}-v0"


@pytest.fixture(scope="module")
def envs():
    made = {}

    def get(name):
        if name not in made:
            domain, task = name.split("/")
            made[name] = ControlGoalEnv(domain, task, episode_length=K)
        return made[name]

    yield get
    for env in made.values():
        env.close()


def dummy_goal(env) -> Goal:
    return Goal(np.zeros((1, *env.frame_shape), np.uint8), np.zeros(len(env.label_names)))


def run(env, seed: int, actions, goal=None):
    out = [env.reset(seed=seed, options={"goal": goal or dummy_goal(env)})]
    for a in actions:
        obs, _, terminated, _, info = env.step(int(a))
        out.append((obs, info))
        assert not terminated  # these tasks only end by the time limit
    return out


def test_every_task_is_registered():
    ids = glamor.envs.registered()
    assert len(TASKS) == 7
    for name in TASKS:
        assert env_id(name) in ids
    assert "glamor/reacher-hard-v0" in ids and "glamor/ball_in_cup-catch-v0" in ids


def test_select_gl_backend(monkeypatch):
    monkeypatch.setenv("MUJOCO_GL", "glfw")
    assert select_gl_backend(probe=lambda b: pytest.fail("probed although set")) == "glfw"
    monkeypatch.delenv("MUJOCO_GL")
    found = lambda lib: f"lib{lib}.so"  # noqa: E731
    assert (
        select_gl_backend(
            probe=lambda b: None if b == "osmesa" else "no display", find_library=found
        )
        == "osmesa"
    )
    assert os.environ["MUJOCO_GL"] == "osmesa"
    monkeypatch.delenv("MUJOCO_GL")
    with pytest.raises(EnvironmentUnavailable, match="libosmesa6") as err:
        select_gl_backend(
            probe=lambda b: "failed", find_library=lambda lib: None if lib == "OSMesa" else "x"
        )
    assert "libegl1" in str(err.value) and "MUJOCO_GL" not in os.environ


def test_a_failing_backend_names_the_package():
    assert "libosmesa6" in gl_failure("osmesa", AttributeError("no glGetError"))
    assert "libegl1" in gl_failure("egl", RuntimeError("no display"))
    # a typo in MUJOCO_GL was told to install "its OpenGL library": there is none to install
    typo = gl_failure("elg", RuntimeError("Environment variable MUJOCO_GL must be one of [...]: got 'elg'."))
    assert "Install" not in typo and typo.endswith(
        "MUJOCO_GL=elg names none of the backends glamor renders with (egl, osmesa; glfw with a display): set one "
        "of them, or unset MUJOCO_GL to let glamor pick EGL or OSMesa."), typo
    # dm_control's other names are no typos: MUJOCO_GL=1 (on, true, ...) is GLFW, =off (0, false, ...) no renderer
    glfw = gl_failure("1", RuntimeError("no display"))
    assert "none of the backends" not in glfw and "MUJOCO_GL=1 is GLFW's: install libglfw3 and a display" in glfw, glfw
    off = gl_failure("off", RuntimeError("rendering disabled"))
    assert "none of the backends" not in off and "MUJOCO_GL=off turns MuJoCo's rendering off" in off, off
    code = "import glamor.envs; glamor.envs.make('glamor/reacher-hard-v0', episode_length=2)"
    env = {**os.environ, "MUJOCO_GL": "nonexistent"}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode != 0
    assert "MUJOCO_GL=nonexistent failed" in out.stderr and "unset MUJOCO_GL" in out.stderr


def test_the_command_line_names_a_rendering_failure_in_one_line(tmp_path):
    env = {**os.environ, "MUJOCO_GL": "nonexistent", "PYTHONWARNINGS": "ignore"}
    run = tmp_path / "r"
    out = subprocess.run(
        [sys.executable, "-m", "glamor", "train", "--preset", "control_cpu", "--run-dir", str(run)],
        env=env, capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 2, out.stderr
    assert out.stderr.startswith("glamor train: error: MuJoCo rendering with MUJOCO_GL=nonexistent failed")
    assert "Traceback" not in out.stderr and not run.exists()


def test_discrete_actions():
    lo, hi = -np.ones(2), np.ones(2)
    grid = discrete_actions("grid", lo, hi)
    assert grid.shape == (9, 2)
    assert {tuple(r) for r in grid} == {(a, b) for a in (-1, 0, 1) for b in (-1, 0, 1)}
    one = discrete_actions("one_axis", -np.ones(5), np.ones(5))
    assert one.shape == (11, 5)
    np.testing.assert_array_equal(one[0], 0.0)
    np.testing.assert_array_equal(np.abs(one[1:]).sum(1), 1.0)  # one axis at a time
    assert {tuple(r) for r in one[1:]} == {
        tuple(s * np.eye(5)[i]) for i in range(5) for s in (-1, 1)
    }
    np.testing.assert_allclose(
        discrete_actions("grid", np.array([0.0]), np.array([2.0]))[:, 0], [0, 1, 2]
    )
    with pytest.raises(ValueError, match="discretisation must be 'grid' or 'one_axis', got 'cube'"):
        discrete_actions("cube", lo, hi)


@pytest.mark.parametrize("name", TASKS)
def test_check_env(name):
    env = gym.make(env_id(name), episode_length=K)
    check_env(env.unwrapped, skip_render_check=True)
    env.close()


@pytest.mark.parametrize("name", TASKS)
def test_shapes_actions_and_rendering(envs, name):
    env = envs(name)
    entry = goal_labels()["control"][name]
    d = env._env.action_spec().shape[0]
    assert env.action_space.n == (3**d if entry["discretisation"] == "grid" else 2 * d + 1)
    assert env.action_repeat == entry["action_repeat"]
    obs, info = env.reset(seed=0)
    assert obs["observation"].shape == (4, 80, 104) and obs["observation"].dtype == np.uint8
    assert obs["desired_goal"].shape == obs["achieved_goal"].shape == (1, 80, 104)
    assert env.observation_space.contains(obs)
    assert obs["observation"][-1].std() > 5  # a rendered scene, not a blank buffer
    assert not np.array_equal(obs["desired_goal"], obs["achieved_goal"])  # the goal rollout moved
    # One agent step is action_repeat control steps of the task.
    t0 = env.physics.data.time
    env.step(0)
    expected = env.action_repeat * env._env.control_timestep()
    assert env.physics.data.time - t0 == pytest.approx(expected)


@pytest.mark.parametrize("name", TASKS)
def test_labels_are_physics_observation_slices(envs, name):
    env = envs(name)
    _, info = env.reset(seed=1)
    _, _, _, _, info = env.step(env.action_space.n - 1)
    obs = env.task.get_observation(env.physics)
    expected = np.concatenate(
        [
            np.asarray(obs[key]).reshape(-1)[idx]
            for key, idx in goal_labels()["control"][name]["labels"].items()
        ]
    )
    np.testing.assert_array_equal(info["labels"], expected)
    assert info["labels"].dtype == np.float64
    # Independent of the task's observation code, where the label is a joint position:
    qpos = env.physics.data.qpos
    if name in ("reacher/hard", "point_mass/easy"):
        np.testing.assert_array_equal(info["labels"], qpos[:2])
    if name == "cartpole/balance":
        np.testing.assert_allclose(info["labels"], [qpos[0], np.cos(qpos[1]), np.sin(qpos[1])])


@pytest.mark.parametrize("name", TASKS)
def test_deterministic_under_a_seed(envs, name):
    actions = np.random.default_rng(1).integers(envs(name).action_space.n, size=5)
    first = run(envs(name), 11, actions)
    domain, task = name.split("/")
    other = ControlGoalEnv(domain, task, episode_length=K)
    other.reset(seed=5)
    second = run(other, 11, actions)
    for (o1, i1), (o2, i2) in zip(first, second):
        np.testing.assert_array_equal(o1["observation"], o2["observation"])
        np.testing.assert_array_equal(i1["labels"], i2["labels"])
    np.testing.assert_array_equal(
        envs(name).reset(seed=4)[0]["desired_goal"], other.reset(seed=4)[0]["desired_goal"]
    )
    other.close()


@pytest.mark.parametrize("name", TASKS)
def test_goal_of_own_state_is_reached_and_a_distant_one_is_not(envs, name):
    env = envs(name)
    actions = np.random.default_rng(2).integers(env.action_space.n, size=5)
    *_, (obs, info) = run(env, 21, actions)
    goal = Goal(obs["achieved_goal"].copy(), info["labels"].copy())
    *_, (obs2, info2) = run(env, 21, actions, goal=goal)
    np.testing.assert_array_equal(obs2["achieved_goal"], goal.frame)
    assert info2["is_success"]
    ranges = env.label_ranges
    infos = []
    for i in range(len(ranges)):
        for frac in (0.09, 0.11):
            far = goal.labels.copy()
            far[i] += frac * ranges[i]
            infos.append({"labels": info2["labels"], "goal_labels": far})
    frames = np.repeat(obs2["achieved_goal"][None], len(infos), axis=0)  # (B, 1, H, W)
    np.testing.assert_array_equal(
        env.compute_reward(frames, frames, infos), np.tile([1.0, 0.0], len(ranges))
    )


@pytest.mark.parametrize("name", TASKS)
def test_state_roundtrip_replays_exactly(envs, name):
    env = envs(name)
    env.reset(seed=7)
    before = (env._frame().copy(), env._labels())
    env.random_goal()
    np.testing.assert_array_equal(env._frame(), before[0])
    np.testing.assert_array_equal(env._labels(), before[1])
    state = env._get_state()
    actions = np.random.default_rng(3).integers(env.action_space.n, size=8)
    trace = []
    for a in actions:
        env._step_state(int(a))
        trace.append((env._frame().copy(), env._labels()))
    env._set_state(state)
    for a, (frame, labels) in zip(actions, trace):
        env._step_state(int(a))
        np.testing.assert_array_equal(env._labels(), labels)  # bit for bit
        np.testing.assert_array_equal(env._frame(), frame)


def test_fast_render_looks_like_the_default():
    fast = ControlGoalEnv("reacher", "hard", episode_length=K)
    slow = ControlGoalEnv("reacher", "hard", episode_length=K, fast_render=False)
    a = fast.reset(seed=0)[0]["observation"][-1].astype(int)
    b = slow.reset(seed=0)[0]["observation"][-1].astype(int)
    assert np.abs(a - b).mean() < 3  # only anti-aliased edges differ
    fast.close(), slow.close()


def test_smaller_frames_render_the_same_scene():
    # frame_shape renders the camera directly at the smaller size (the CPU presets use it);
    # the picture agrees with an area downsample of the spec's 80x104 frame
    small = ControlGoalEnv("point_mass", "easy", episode_length=K, frame_shape=(40, 52))
    full = ControlGoalEnv("point_mass", "easy", episode_length=K)
    a = small.reset(seed=3)[0]
    assert a["observation"].shape == (4, 40, 52) and a["desired_goal"].shape == (1, 40, 52)
    assert small.observation_space["observation"].shape == (4, 40, 52)
    b = full.reset(seed=3)[0]["observation"][-1].astype(float)
    pooled = b.reshape(40, 2, 52, 2).mean(axis=(1, 3))
    assert np.abs(a["observation"][-1] - pooled).mean() < 6
    small.close(), full.close()


def test_a_frame_wider_than_the_default_offscreen_buffer_renders_without_fast_render():
    # The model's buffer is 640x480: a wider frame with fast_render=False was refused by the
    # camera, and reported as a broken rendering backend with a package to install.
    env = ControlGoalEnv("point_mass", "easy", episode_length=2, fast_render=False, frame_shape=(24, 700))
    obs, _ = env.reset(seed=0, options={"goal": Goal(np.zeros((1, 24, 700), np.uint8), np.zeros(2))})
    assert obs["observation"].shape == (4, 24, 700) and obs["observation"][-1].std() > 5
    env.close()


def test_bad_arguments():
    with pytest.raises(ValueError, match="frame_shape"):
        ControlGoalEnv("reacher", "hard", frame_shape=(0, 52))
    with pytest.raises(ValueError, match="unknown control task"):
        ControlGoalEnv("reacher", "impossible")
    with pytest.raises(ValueError, match="action_repeat"):
        ControlGoalEnv("reacher", "hard", action_repeat=0)


def test_goal_sets():
    check_goal_sets("glamor/reacher-hard-v0", "control", k=10)


@pytest.mark.slow
@pytest.mark.parametrize("name", TASKS)
def test_every_label_varies_under_random_play(name):
    from glamor.config import preset
    from glamor.goals import label_ranges_for

    cfg = preset("control", env_id=env_id(name), label_range_rollouts=20, seed=5)
    env = glamor.envs.make(env_id(name), episode_length=cfg.episode_length)
    ranges = label_ranges_for(env, cfg, progress=False)
    assert np.all(ranges > 0), dict(zip(env.label_names, ranges))
    env.close()


def test_goal_caches_are_keyed_by_the_simulator_and_the_gl_backend(envs, monkeypatch, tmp_path):
    """Goals cached under one MuJoCo, dm_control or MUJOCO_GL backend were served to another, whose
    physics (labels) or rendering (frames) may differ: the key held nothing outside the package."""
    import importlib.metadata

    import mujoco
    from dm_control import _render

    from glamor.goals import _cache_path

    monkeypatch.setenv("GLAMOR_CACHE", str(tmp_path))
    env = envs("reacher/hard")
    versions = dict(env.cache_versions)
    renderer = versions.pop("gl_renderer")  # the driver: "Mesa/X.org | llvmpipe (...) | 4.5 (...) Mesa 22.3.6"
    assert renderer.count(" | ") == 2 and "unknown" not in renderer, renderer
    assert versions == {"mujoco": mujoco.__version__, "dm_control": importlib.metadata.version("dm_control"),
                        "gl": _render.BACKEND}
    versions["gl_renderer"] = renderer

    def path():
        return _cache_path(env, env_id("reacher/hard"), {}, K, "eval", n=2, seed=0)

    before = path()
    for key in versions:
        monkeypatch.setattr(env, "cache_versions", {**versions, key: versions[key] + "-other"})
        assert path() != before, key
    monkeypatch.setattr(env, "cache_versions", dict(versions))
    assert path() == before


def test_a_camera_that_fails_frees_the_physics_and_its_gl_context(monkeypatch):
    """The Camera (the offscreen buffer, the scene) failed after the physics had made its GL
    context: the error came out, and the physics, its MuJoCo data and the context stayed allocated
    (tens of MB each) for as long as anything held the half-built environment or the traceback."""
    select_gl_backend()  # (before dm_control's renderer is imported: it reads MUJOCO_GL once)
    from dm_control.mujoco import engine

    made = []

    class FailingCamera:
        def __init__(self, physics, **kwargs):
            made.append(physics)
            assert physics.contexts.gl is not None  # the GL context exists now, as in a real Camera
            raise RuntimeError("cannot allocate the offscreen framebuffer")

    monkeypatch.setattr(engine, "Camera", FailingCamera)
    with pytest.raises(EnvironmentUnavailable, match="cannot allocate the offscreen framebuffer"):
        ControlGoalEnv("reacher", "hard", episode_length=K)
    (physics,) = made
    assert physics._contexts is None and not hasattr(physics, "_data")  # freed before the error came out


def test_close_is_harmless_twice():
    """close() frees the physics whether or not a camera was made, so a second close frees it again."""
    env = ControlGoalEnv("point_mass", "easy", episode_length=K)
    env.reset(seed=0)
    env.close()
    env.close()
