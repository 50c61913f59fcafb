"""The Atari goal environments: contract, preprocessing, determinism, RAM labels, success judge."""

import json
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

pytest.importorskip("ale_py", reason="Atari environments need ale-py")

from goal_set_checks import check_goal_sets

import glamor.envs  # noqa: E402
from glamor.envs import Goal, goal_labels  # noqa: E402
from glamor.envs.atari import REFERENCE_FRAME_SHAPE, AtariGoalEnv, preprocess  # noqa: E402

GAMES = sorted(goal_labels()["atari"])
K = 8  # a short episode keeps the per-game work small


def env_id(game: str) -> str:
    return f"glamor/{goal_labels()['atari'][game]['ale_game']}-v0"


@pytest.fixture(scope="module")
def envs():
    made = {}
    yield lambda game: made.setdefault(game, glamor.envs.make(env_id(game), episode_length=K))
    for env in made.values():
        env.close()


def dummy_goal(env) -> Goal:
    return Goal(np.zeros((1, *env.frame_shape), np.uint8), np.zeros(len(env.label_names)))


def run(env, seed: int, actions, goal=None):
    """Reset (aimed at `goal`, a dummy one if None) and play `actions`; returns (obs, info) pairs."""
    out = [env.reset(seed=seed, options={"goal": goal or dummy_goal(env)})]
    for a in actions:
        obs, _, terminated, _, info = env.step(int(a))
        out.append((obs, info))
        if terminated:
            break
    return out


def test_packaged_labels_match_the_shared_table():
    shared = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "goal_labels.json"
    if not shared.exists():
        pytest.skip("no ../shared checkout beside the repository")
    assert goal_labels() == json.loads(shared.read_text())


def test_every_game_is_registered():
    ids = glamor.envs.registered()
    assert len(GAMES) == 14
    for game in GAMES:
        assert env_id(game) in ids
    assert "glamor/Pong-v0" in ids and "glamor/MsPacman-v0" in ids


@pytest.mark.parametrize("game", GAMES)
def test_check_env(game):
    env = gym.make(env_id(game), episode_length=K)
    check_env(env.unwrapped, skip_render_check=True)
    env.close()


@pytest.mark.parametrize("game", GAMES)
def test_shapes_dtypes_and_labels_are_ram(envs, game):
    env = envs(game)
    ram = goal_labels()["atari"][game]["ram"]
    assert env.action_space == gym.spaces.Discrete(18)
    assert env.label_names == tuple(ram)
    obs, info = env.reset(seed=3)
    assert obs["observation"].shape == (4, 80, 104) and obs["observation"].dtype == np.uint8
    assert obs["desired_goal"].shape == obs["achieved_goal"].shape == (1, 80, 104)
    assert env.observation_space.contains(obs)
    for _ in range(3):
        obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
        assert info["labels"].dtype == np.float64 and info["labels"].shape == (len(ram),)
        np.testing.assert_array_equal(info["labels"], env.ale.getRAM()[list(ram.values())])
        assert reward == float(info["is_success"])
    np.testing.assert_array_equal(obs["achieved_goal"][0], obs["observation"][-1])


@pytest.mark.parametrize("game", GAMES)
def test_deterministic_under_a_seed(envs, game):
    actions = np.random.default_rng(1).integers(18, size=6)
    first = run(envs(game), 11, actions)
    other = AtariGoalEnv(game, episode_length=K)  # a fresh emulator, another history
    other.reset(seed=5)
    other.step(3)
    second = run(other, 11, actions)
    assert len(first) == len(second)
    for (o1, i1), (o2, i2) in zip(first, second):
        np.testing.assert_array_equal(o1["observation"], o2["observation"])
        np.testing.assert_array_equal(i1["labels"], i2["labels"])
    # The automatic goal (a k-step random rollout) is a function of the seed too.
    g1 = envs(game).reset(seed=4)[0]["desired_goal"]
    g2 = other.reset(seed=4)[0]["desired_goal"]
    np.testing.assert_array_equal(g1, g2)


@pytest.mark.parametrize("game", GAMES)
def test_goal_of_own_state_is_reached_and_a_distant_one_is_not(envs, game):
    env = envs(game)
    actions = np.random.default_rng(2).integers(18, size=5)
    *_, (obs, info) = run(env, 21, actions)
    goal = Goal(obs["achieved_goal"].copy(), info["labels"].copy())
    # The same seed and actions: the same state.
    *_, (obs2, info2) = run(env, 21, actions, goal=goal)
    np.testing.assert_array_equal(obs2["achieved_goal"], goal.frame)
    assert info2["is_success"]
    # Every label counts: one label off by 11% of its range fails, 9% passes.
    ranges = env.label_ranges
    infos = []
    for i in range(len(ranges)):
        for frac in (0.09, 0.11):
            far = goal.labels.copy()
            far[i] += frac * ranges[i]
            infos.append({"labels": info2["labels"], "goal_labels": far})
    frames = np.repeat(obs2["achieved_goal"][None], len(infos), axis=0)  # (B, 1, H, W)
    reward = env.compute_reward(frames, frames, infos)
    np.testing.assert_array_equal(reward, np.tile([1.0, 0.0], len(ranges)))


@pytest.mark.parametrize("game", GAMES)
def test_state_roundtrip_replays_exactly(envs, game):
    env = envs(game)
    env.reset(seed=7)
    before = (env._frame().copy(), env._labels())
    env.random_goal()  # rolls out k steps and comes back
    np.testing.assert_array_equal(env._frame(), before[0])
    np.testing.assert_array_equal(env._labels(), before[1])
    state, rng_state = env._get_state(), env.np_random.bit_generator.state
    actions = np.random.default_rng(3).integers(18, size=10)
    trace = []
    for a in actions:
        env._step_state(int(a))
        trace.append((env._frame().copy(), env._labels()))
    env._set_state(state)
    env.np_random.bit_generator.state = rng_state  # sticky actions draw from np_random
    for a, (frame, labels) in zip(actions, trace):
        env._step_state(int(a))
        np.testing.assert_array_equal(env._frame(), frame)
        np.testing.assert_array_equal(env._labels(), labels)


def test_preprocess_max_crop_and_resize():
    screens = np.zeros((2, 210, 160), np.uint8)
    screens[0, 0] = screens[1, -1] = 255  # the first and last rows are cropped away
    assert not preprocess(screens).any()
    screens[0, 50:60, 10:20] = 200  # one object in each frame: the max keeps both
    screens[1, 100:110, 100:110] = 100
    out = preprocess(screens)
    assert out.shape == (80, 104) and out.dtype == np.uint8
    # 208 rows -> 80, 160 cols -> 104: the blocks land at scaled positions with their values.
    assert out[(55 - 1) * 80 // 208, 15 * 104 // 160] == 200
    assert out[(105 - 1) * 80 // 208, 105 * 104 // 160] == 100
    assert (out > 0).sum() < 0.05 * out.size


def test_reference_frame_shape_is_a_2x_downsample():
    screens = np.random.default_rng(0).integers(0, 256, (2, 210, 160), dtype=np.uint8)
    out = preprocess(screens, REFERENCE_FRAME_SHAPE)
    blocks = np.maximum(screens[0], screens[1])[1:-1].reshape(104, 2, 80, 2).mean((1, 3))
    assert out.shape == (104, 80)
    assert np.abs(out - blocks).max() <= 1  # the 2x2 mean (PIL rounds in fixed point)
    env = AtariGoalEnv("pong", episode_length=2, frame_shape=REFERENCE_FRAME_SHAPE)
    obs, _ = env.reset(seed=0)
    assert obs["observation"].shape == (4, 104, 80) and obs["desired_goal"].shape == (1, 104, 80)


def test_no_op_starts():
    for game, low in (("pong", 0), ("ms_pacman", 200)):
        env = AtariGoalEnv(game, episode_length=1)
        start = AtariGoalEnv(game, episode_length=1, noop_max=0)
        start.reset(seed=0)
        base = start.ale.getEpisodeFrameNumber() - start.start_noops  # frame count at ALE's reset
        seen = set()
        for seed in range(12):
            env.reset(seed=seed, options={"goal": dummy_goal(env)})
            seen.add(env.ale.getEpisodeFrameNumber() - base)
        assert env.start_noops == low
        assert min(seen) >= low and max(seen) <= low + 30 and len(seen) > 3, seen


def test_sticky_actions():
    # With probability 1 the previous (no-op) action always sticks: the game sees only no-ops.
    stuck = AtariGoalEnv("breakout", episode_length=15, repeat_action_probability=1.0)
    idle = AtariGoalEnv("breakout", episode_length=15, repeat_action_probability=0.0)
    moving = AtariGoalEnv("breakout", episode_length=15, repeat_action_probability=0.0)
    frames = {}
    for name, env, action in (("stuck", stuck, 4), ("idle", idle, 0), ("moving", moving, 4)):
        run(env, 0, [action] * 15)  # 4 = LEFT: moves the paddle
        frames[name] = env._frame().copy()
    np.testing.assert_array_equal(frames["stuck"], frames["idle"])
    assert not np.array_equal(frames["moving"], frames["idle"])


def test_life_loss_ends_the_episode():
    env = AtariGoalEnv("breakout", episode_length=1000)
    env.reset(seed=0, options={"goal": dummy_goal(env)})
    lives = env.ale.lives()
    for t in range(2000):
        _, _, terminated, truncated, _ = env.step(1 if t % 20 == 0 else 0)  # FIRE launches the ball
        if terminated:
            break
    assert terminated and not truncated
    assert 0 < env.ale.lives() == lives - 1 and not env.ale.game_over()


def test_unknown_game():
    with pytest.raises(ValueError, match="unknown Atari game"):
        AtariGoalEnv("not_a_game")


def test_goal_sets():
    check_goal_sets("glamor/Breakout-v0", "atari", k=10)


def test_goal_caches_are_keyed_by_the_games_entry_of_the_label_table(monkeypatch, tmp_path):
    """A RAM address edited in goal_labels.json changes every goal's labels and the label ranges:
    the cached ones, read at the old address, were served (the key held only the label names)."""
    import copy

    from glamor.config import preset
    from glamor.goals import make_goal_set

    monkeypatch.setenv("GLAMOR_CACHE", str(tmp_path))
    cfg = preset("atari", env_id=env_id("pong"), episode_length=4, eval_episodes=2, label_range_rollouts=4)
    first = glamor.envs.make(cfg.env_id, episode_length=4)
    make_goal_set(first, cfg, "eval", progress=False)
    first.close()
    table = copy.deepcopy(goal_labels())
    table["atari"]["pong"]["ram"]["ball_x"] = 51  # player_y's address: never 0 after the no-op start
    monkeypatch.setattr(glamor.envs, "goal_labels", lambda: table)
    env = glamor.envs.make(cfg.env_id, episode_length=4)
    goals = make_goal_set(env, cfg, "eval", progress=False)
    for i in range(len(goals)):
        env.reset(seed=int(goals.seeds[i]))
        np.testing.assert_array_equal(goals.labels[i], env.goal.labels)
    env.close()


@pytest.mark.slow
@pytest.mark.parametrize("game", GAMES)
def test_every_label_varies_under_random_play(game):
    from glamor.config import preset
    from glamor.goals import label_ranges_for

    cfg = preset("atari", env_id=env_id(game), label_range_rollouts=40, seed=5)
    env = glamor.envs.make(env_id(game), episode_length=cfg.episode_length)
    ranges = label_ranges_for(env, cfg, progress=False)
    assert np.all(ranges > 0), dict(zip(env.label_names, ranges))


def test_registration_needs_neither_ale_py_nor_dm_control(monkeypatch):
    code = (
        "import sys; sys.modules['ale_py'] = sys.modules['dm_control'] = None\n"
        "import glamor.envs\n"
        "assert 'glamor/Pong-v0' in glamor.envs.registered()\n"
        "assert 'glamor/reacher-hard-v0' in glamor.envs.registered()\n"
        "assert 'ale_py' not in sys.modules or sys.modules['ale_py'] is None\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
    monkeypatch.setitem(sys.modules, "ale_py", None)
    with pytest.raises(ImportError, match="pip install ale-py"):
        AtariGoalEnv("pong")


class _FakeALE:
    """Frame n of the emulator shows one white pixel in column n; the game is over after frame `over_at`."""

    def __init__(self, over_at: int):
        self.n, self.over_at = 0, over_at

    def act(self, action):
        self.n += 1

    def game_over(self) -> bool:
        return self.n >= self.over_at

    def lives(self) -> int:
        return 3

    def getRAM(self):
        return np.zeros(128, np.uint8)

    def getScreenGrayscale(self, out):
        out[:] = 0
        out[100, self.n] = 255


@pytest.mark.parametrize("over_at", [5, 6, 7, 8])  # each frame of the second 4-frame step
def test_a_game_over_inside_a_step_shows_the_max_of_its_last_two_frames(over_at):
    """A game over at frame i of a step kept frame i alone (it was captured into both halves of
    the max), and frame i-1, emulated, was lost: the episode's last frame, and a goal rolled out
    to a game over, showed what a step ending there normally would not (Atari sprites flicker)."""
    env = AtariGoalEnv("pong", episode_length=K)
    env.reset(seed=0, options={"goal": dummy_goal(env)})
    env.ale = _FakeALE(over_at)
    env._screens[:] = 0
    _, _, terminated, _, _ = env.step(0)  # frames 1..4
    assert not terminated
    _, _, terminated, _, _ = env.step(0)
    assert terminated and env.ale.n == over_at
    want = np.zeros((2, 210, 160), np.uint8)
    want[0, 100, over_at - 1] = want[1, 100, over_at] = 255
    np.testing.assert_array_equal(env._screens, want)
    np.testing.assert_array_equal(env._frame(), preprocess(want, env.frame_shape))


def test_goal_caches_are_keyed_by_the_emulators_version(monkeypatch, tmp_path):
    """Goals cached under one ale-py were served to another, whose frames or RAM may differ: the key
    held the env's source, kwargs and label table, nothing of the emulator outside the package."""
    import ale_py

    from glamor.config import preset
    from glamor.goals import _cache_path

    monkeypatch.setenv("GLAMOR_CACHE", str(tmp_path))
    cfg = preset("atari", env_id=env_id("pong"), episode_length=4)
    paths = []
    for version in (ale_py.__version__, ale_py.__version__ + ".post1"):
        monkeypatch.setattr(ale_py, "__version__", version)
        env = glamor.envs.make(cfg.env_id, episode_length=4)
        paths.append(_cache_path(env, cfg.env_id, cfg.env_kwargs, 4, "eval", n=2, seed=0))
        env.close()
    assert paths[0] != paths[1]
