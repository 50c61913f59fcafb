import numpy as np
import pytest

from glamor.replay import Replay


def fill(replay, episodes, rng, length=5):
    stored = []
    for e in range(episodes):
        L = length if np.isscalar(length) else length[e]
        frames = rng.integers(0, 256, (L + 1, 4, 3), dtype=np.uint8)
        actions = rng.integers(0, replay.num_actions, L)
        replay.add_episode(frames, actions)
        stored.append((frames, actions))
    return stored


def test_frames_are_stored_once(rng):
    r = Replay(100, (4, 3), frame_stack=3, num_actions=4)
    fill(r, 3, rng, length=[4, 6, 2])
    assert r.frames.shape == (100, 4, 3)  # one slot per frame, not per stack
    assert len(r) == (4 + 1) + (6 + 1) + (2 + 1)
    assert r.transitions_added == 12


def test_relabelled_targets_and_goals_are_exact(rng):
    r = Replay(200, (4, 3), frame_stack=3, num_actions=4)
    stored = fill(r, 10, rng, length=list(rng.integers(1, 9, 10)))
    index = {}  # slot -> (episode, t)
    slot = 0
    for e, (frames, _actions) in enumerate(stored):
        for t in range(len(frames)):
            index[slot] = (e, t)
            slot += 1
    obs, goal, targets, k = r.sample(500, k_max=6, rng=rng)
    n, END, PAD = 4, 4, 5
    assert targets.shape == (500, 7) and obs.shape == (500, 3, 4, 3) and goal.shape == (500, 1, 4, 3)
    for b in range(500):
        # find the slot this sample came from through its newest frame
        matches = [s for s, (e, t) in index.items() if np.array_equal(stored[e][0][t], obs[b, -1])]
        e, t = index[matches[0]]
        frames, actions = stored[e]
        assert 0 <= k[b] <= min(6, len(actions) - t)
        assert np.array_equal(goal[b, 0], frames[t + k[b]])  # exactly k steps ahead
        assert targets[b, : k[b]].tolist() == actions[t : t + k[b]].tolist()
        assert targets[b, k[b]] == END and (targets[b, k[b] + 1 :] == PAD).all()
        for j in range(3):  # the stack repeats the episode's first frame before t = 0
            assert np.array_equal(obs[b, 2 - j], frames[max(t - j, 0)])
    assert (targets[targets < n] >= 0).all() and (k == 0).any() and (k == 6).any()


def test_overwriting_an_episode_start_invalidates_its_rest(rng):
    r = Replay(10, (4, 3), frame_stack=2, num_actions=4)
    old = fill(r, 2, rng, length=4)  # slots 0-4 and 5-9
    new = fill(r, 1, rng, length=2)  # overwrites slots 0-2: the rest of episode 0 is gone
    assert r.valid.tolist() == [True] * 3 + [False] * 2 + [True] * 5
    assert len(r) == 8
    obs, goal, targets, k = r.sample(200, k_max=4, rng=rng)
    # every sample comes from a live episode: the new one (slots 0-2) or episode 1 (slots 5-9),
    # never the orphaned slots 3-4, and its goal lies in the same episode
    live = [(new[0][0], new[0][1]), (old[1][0], old[1][1])]
    seen = set()
    for b in range(200):
        where = [(e, t) for e, (frames, _) in enumerate(live) for t in range(len(frames))
                 if np.array_equal(frames[t], obs[b, -1])]
        assert where, f"sample {b} comes from an invalidated slot"
        e, t = where[0]
        assert np.array_equal(goal[b, 0], live[e][0][t + k[b]])
        seen.add(e)
    assert seen == {0, 1}


def test_bad_episodes_are_named(rng):
    r = Replay(10, (4, 3), frame_stack=2, num_actions=4)
    with pytest.raises(ValueError, match="frames must be uint8"):
        r.add_episode(np.zeros((3, 4, 3), np.float32), np.zeros(2, int))
    with pytest.raises(ValueError, match=r"actions must be in \[0, 4\)"):
        r.add_episode(np.zeros((3, 4, 3), np.uint8), np.array([0, 9]))
    with pytest.raises(RuntimeError, match="empty"):
        r.sample(2, 3, rng)


def test_preferred_pairs_fill_their_share_and_stay_exact_hindsight_pairs(rng):
    r = Replay(400, (4, 3), frame_stack=1, num_actions=4)
    stored = fill(r, 40, rng, length=6)
    first = {frames[t].tobytes(): (e, t) for e, (frames, _) in enumerate(stored) for t in range(len(frames))}
    bright = lambda obs, goal: goal.mean(axis=(1, 2)) > 140  # noqa: E731 - about a third of the frames
    for fraction in (0.0, 0.5, 1.0):
        obs, goal, targets, k = r.sample(64, k_max=6, rng=rng, prefer=bright, prefer_fraction=fraction)
        hit = bright(obs[:, -1], goal[:, 0])
        assert len(obs) == 64 and hit.sum() == round(fraction * 64)
        for b in range(64):  # still the frame k steps ahead and the k actions taken
            e, t = first[obs[b, -1].tobytes()]
            frames, actions = stored[e]
            assert np.array_equal(goal[b, 0], frames[t + k[b]])
            assert targets[b, : k[b]].tolist() == actions[t : t + k[b]].tolist() and targets[b, k[b]] == 4
    # when preferred pairs run short the batch is topped up with others, never short
    never = lambda obs, goal: np.zeros(len(obs), bool)  # noqa: E731
    obs, *_ = r.sample(64, k_max=6, rng=rng, prefer=never, prefer_fraction=1.0)
    assert len(obs) == 64


def test_box_world_reads_a_moved_box_from_its_frames():
    import glamor.envs as genvs

    env = genvs.make("glamor/GridWorldBox-v0", 12)
    starts, ends, moved = [], [], []
    for seed in range(300):
        _, info = env.reset(seed=seed)  # the goal is a 12-step random rollout from this start
        starts.append(env._frame())
        ends.append(env.goal.frame[0])
        moved.append(not np.array_equal(info["labels"][2:], env.goal.labels[2:]))
    got = env.objects_moved(np.stack(starts), np.stack(ends))
    assert got.tolist() == moved and 0 < sum(moved) < 300
    plain = genvs.make("glamor/GridWorld-v0", 12)
    assert not plain.objects_moved(np.stack(starts), np.stack(ends)).any()


def _state_and_copy(replay):
    state = replay.state_dict()
    return state, {k: v.copy() if isinstance(v, np.ndarray) else v for k, v in state.items()}


def test_a_loaded_state_is_copied_in_unless_taken(rng):
    """By default a loaded replay copies the arrays it is given (another replay's state_dict()
    holds that replay's live arrays); with take=True it keeps arrays of its dtype as they are
    (a resume's checkpoint arrays: one replay in memory, not two) and copies the others."""
    source = Replay(60, (4, 3), frame_stack=3, num_actions=4)
    fill(source, 5, rng, length=list(rng.integers(1, 9, 5)))
    state, saved = _state_and_copy(source)
    copied = Replay(60, (4, 3), frame_stack=3, num_actions=4)
    copied.load_state_dict(state)
    taken = Replay(60, (4, 3), frame_stack=3, num_actions=4)
    taken.load_state_dict({**saved, "step": saved["step"].astype(np.int64)}, take=True)
    for name, value in saved.items():
        for replay in (copied, taken):
            assert np.array_equal(getattr(replay, name), value)
        if isinstance(value, np.ndarray):
            assert not np.shares_memory(getattr(copied, name), getattr(source, name))
    assert all(getattr(taken, name) is saved[name] for name in ("frames", "actions", "length", "valid"))
    assert taken.step is not saved["step"] and taken.step.dtype == np.int32  # another dtype: copied
    batch = [r.sample(8, 4, np.random.default_rng(3)) for r in (source, copied, taken)]
    for other in batch[1:]:
        assert all(np.array_equal(a, b) for a, b in zip(batch[0], other))


def test_a_state_of_the_wrong_shape_changes_nothing(rng):
    """Shapes are checked before anything is loaded: a state whose last array does not fit
    left the replay half loaded."""
    source = Replay(60, (4, 3), frame_stack=3, num_actions=4)
    fill(source, 4, rng)
    _, state = _state_and_copy(source)
    state["valid"] = state["valid"][:-1]
    target = Replay(60, (4, 3), frame_stack=3, num_actions=4)
    before = {k: v.copy() if isinstance(v, np.ndarray) else v for k, v in target.state_dict().items()}
    for take in (False, True):
        with pytest.raises(ValueError, match=r"replay valid has shape \(59,\), expected \(60,\)"):
            target.load_state_dict(state, take=take)
        assert all(np.array_equal(getattr(target, k), v) for k, v in before.items())
