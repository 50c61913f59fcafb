import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import glamor.envs as genvs
from glamor.envs import Goal, judge_success
from glamor.envs.gridworld import AGENT, BOX, four_rooms


@pytest.mark.parametrize("env_id", ["glamor/GridWorld-v0", "glamor/GridWorldBox-v0"])
def test_check_env(env_id):
    check_env(gym.make(env_id, render_mode="rgb_array").unwrapped)


@pytest.mark.parametrize("env_id", ["glamor/GridWorld-v0", "glamor/GridWorldBox-v0"])
def test_observation_contract(env_id):
    env = genvs.make(env_id, episode_length=5)
    obs, info = env.reset(seed=1)
    assert obs["observation"].shape == (1, 22, 22) and obs["observation"].dtype == np.uint8
    assert obs["desired_goal"].shape == obs["achieved_goal"].shape == (1, 22, 22)
    assert info["labels"].shape == (len(env.label_names),)
    for t in range(5):
        obs, reward, terminated, truncated, info = env.step(t % 4)
        assert not terminated and truncated == (t == 4)
        assert reward == float(info["is_success"])


def test_deterministic_under_seed():
    def rollout(seed):
        env = genvs.make("glamor/GridWorldBox-v0", episode_length=10)
        obs, _ = env.reset(seed=seed)
        frames = [obs["observation"], obs["desired_goal"]]
        for a in [0, 3, 3, 1, 2, 1, 0, 3]:
            frames.append(env.step(a)[0]["observation"])
        return np.stack([f.reshape(-1) for f in frames])

    assert np.array_equal(rollout(3), rollout(3))
    assert not np.array_equal(rollout(3), rollout(4))


def test_layout_has_four_rooms_joined_by_doors():
    walls = four_rooms(11)
    # flood fill from one free cell reaches every free cell: the doors connect the rooms
    free = ~walls
    start = tuple(np.argwhere(free)[0])
    seen, todo = {start}, [start]
    while todo:
        r, c = todo.pop()
        for dr, dc in ((1, 0), (-1, 0), (0, 1), (0, -1)):
            nb = (r + dr, c + dc)
            if free[nb] and nb not in seen:
                seen.add(nb)
                todo.append(nb)
    assert len(seen) == free.sum()
    assert walls[5, 1:10].sum() == 7 and walls[1:10, 5].sum() == 7  # one door per wall segment


def test_labels_are_cells_in_the_image():
    env = genvs.make("glamor/GridWorldBox-v0", episode_length=20)
    obs, info = env.reset(seed=2)
    frame = obs["observation"][-1]
    ar, ac, br, bc = info["labels"].astype(int)
    assert frame[ar * 2, ac * 2] == AGENT and frame[br * 2, bc * 2] == BOX


def test_box_is_pushed_and_blocked_by_walls():
    env = genvs.make("glamor/GridWorldBox-v0", episode_length=20)
    env.reset(seed=0)
    env._agent, env._box = np.array([2, 2]), np.array([2, 3])
    env.step(3)  # right: pushes the box to (2, 4)
    assert env._agent.tolist() == [2, 3] and env._box.tolist() == [2, 4]
    env.step(3)  # the wall at column 5 blocks the box, so nothing moves
    assert env._agent.tolist() == [2, 3] and env._box.tolist() == [2, 4]


def test_goal_from_own_state_is_reached_and_distant_one_is_not():
    env = genvs.make("glamor/GridWorld-v0", episode_length=10)
    env.reset(seed=0)
    here = Goal(env._frame()[None], env._labels())
    obs, info = env.reset(seed=0, options={"goal": here})
    assert info["is_success"]
    far = Goal(here.frame, here.labels + np.array([4.0, 0.0]))
    _, info = env.reset(seed=0, options={"goal": far})
    assert not info["is_success"]


@pytest.mark.parametrize("size", [7, 11, 13, 21])
@pytest.mark.parametrize("box", [False, True])
def test_success_needs_the_exact_cells_at_every_size(size, box):
    """From size 13 on, 10% of the span (size - 3) is a whole cell or more: the agent (or the box)
    one cell off the goal's was judged a success, where the docs promised exact cells."""
    env = genvs.make("glamor/GridWorldBox-v0" if box else "glamor/GridWorld-v0", episode_length=10, size=size)
    env.reset(seed=0)
    here = Goal(env._frame()[None], env._labels())
    for i in range(len(here.labels)):
        off = here.labels.copy()
        off[i] += 1.0
        _, info = env.reset(seed=0, options={"goal": Goal(here.frame, off)})
        assert not info["is_success"], (i, off, info["labels"])
    _, info = env.reset(seed=0, options={"goal": here})
    assert info["is_success"]


def test_judge_uses_ten_percent_of_range():
    ranges = np.array([10.0, 100.0])
    ok = judge_success(np.array([[1.0, 10.0], [1.0, 10.0]]), np.array([[2.0, 20.0], [2.1, 20.0]]), ranges)
    assert ok.tolist() == [True, False]
    with pytest.raises(ValueError, match="number of labels"):
        judge_success(np.zeros(3), np.zeros(3), ranges)


def test_compute_reward_is_batched():
    env = genvs.make("glamor/GridWorld-v0", episode_length=10)
    obs, info = env.reset(seed=0)
    infos, seen = [], []
    for a in range(4):
        obs, reward, *_, i = env.step(a)
        infos.append(i)
        seen.append(obs["achieved_goal"])
        assert env.compute_reward(obs["achieved_goal"], obs["desired_goal"], i) == reward
    out = env.compute_reward(np.stack(seen), np.stack([obs["desired_goal"]] * 4), infos)
    assert out.shape == (4,)
    assert out.tolist() == [float(i["is_success"]) for i in infos]
    np.testing.assert_array_equal(env.compute_reward(np.stack(seen), obs["desired_goal"], infos), out)  # one goal
    other = np.stack([obs["achieved_goal"], 255 - obs["achieved_goal"]])
    labels_only = [{"labels": infos[0]["labels"]}] * 2  # no goal labels to judge them by: a KeyError once
    for no_labels in (None, {}, [{}, {}], {"labels": infos[0]["labels"]}, labels_only):  # pixel equality, as documented
        assert env.compute_reward(other, np.stack([obs["achieved_goal"]] * 2), no_labels).tolist() == [1.0, 0.0]


def test_compute_reward_judges_a_relabelled_goal_not_the_episodes_own():
    """Hindsight relabelling (SB3's HER) asks compute_reward about a desired goal other than the
    episode's, with the infos the episode stored: the labels in them (the episode's own goal's)
    decided alone, so every relabelled transition got the original goal's verdict (here all 0:
    HER learnt nothing). Only the own goal is judged by the labels; another, by its pixels."""
    env = genvs.make("glamor/GridWorld-v0", episode_length=10)
    env.reset(seed=0)
    far = env._labels() + np.array([4.0, 0.0])  # a goal the next few steps cannot reach
    obs, _ = env.reset(seed=0, options={"goal": Goal(np.zeros((1, 22, 22), np.uint8), far)})
    infos, seen = [], []
    for a in (3, 3, 1, 1):
        obs, reward, *_, info = env.step(a)
        infos.append(info)
        seen.append(obs["achieved_goal"])
        assert reward == 0.0
    seen = np.stack(seen)  # (4, 1, H, W)
    for t in range(4):  # relabelled to the state reached at step t: reached at step t (and only where the same)
        want = [float(np.array_equal(s, seen[t])) for s in seen]
        assert want[t] == 1.0
        assert env.compute_reward(seen, np.stack([seen[t]] * 4), infos).tolist() == want
        assert env.compute_reward(seen[t], seen[t], infos[t]) == 1.0
    assert env.compute_reward(seen, np.stack([obs["desired_goal"]] * 4), infos).tolist() == [0.0] * 4  # its own goal


def test_bad_goal_and_action_are_named():
    env = genvs.make("glamor/GridWorld-v0", episode_length=10)
    with pytest.raises(ValueError, match="goal.frame must be uint8"):
        env.reset(seed=0, options={"goal": Goal(np.zeros((1, 5, 5), np.uint8), np.zeros(2))})
    env.reset(seed=0)
    with pytest.raises(ValueError, match="action must be an int"):
        env.step(7)
    with pytest.raises(ValueError, match="unknown environment"):
        genvs.make("glamor/Nope-v0", episode_length=3)


@pytest.mark.parametrize("action", [True, np.True_, np.array(True), 1.0, np.float32(1), np.array([1]), "1"])
def test_an_action_that_is_not_an_integer_is_refused(action):
    """A Python bool was taken for action 0 or 1 (gymnasium's Discrete counts bool as an int), while
    NumPy's bool was refused: a flag passed for an action stepped the agent."""
    env = genvs.make("glamor/GridWorld-v0", episode_length=10)
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"action must be an int in \[0, 4\), got"):
        env.step(action)


@pytest.mark.parametrize("action", [1, np.int64(1), np.uint8(1), np.int32(1), np.array(1), np.array(1, np.int8)])
def test_integer_actions_of_every_kind_step(action):
    ref = genvs.make("glamor/GridWorld-v0", episode_length=10)
    ref.reset(seed=0)
    env = genvs.make("glamor/GridWorld-v0", episode_length=10)
    env.reset(seed=0)
    np.testing.assert_array_equal(env.step(action)[0]["observation"], ref.step(1)[0]["observation"])


def test_step_after_the_episode_ended_is_refused_until_reset():
    env = genvs.make("glamor/GridWorld-v0", episode_length=3)
    with pytest.raises(RuntimeError, match="before reset"):
        env.step(0)
    for _ in range(2):  # twice: reset starts a new episode
        env.reset(seed=1)
        truncated = [env.step(0)[3] for _ in range(3)]
        assert truncated == [False, False, True]
        with pytest.raises(RuntimeError, match="after the episode ended"):
            env.step(0)
