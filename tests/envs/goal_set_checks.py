"""A check of glamor.goals on a real environment, shared by the Atari and Control tests."""

import numpy as np

import glamor.envs


def check_goal_sets(env_id: str, preset_name: str, k: int) -> None:
    """glamor.goals on a real environment: shapes, held-out seeds, reproducible goals, caching."""
    from glamor.config import preset
    from glamor.goals import make_goal_set

    cfg = preset(
        preset_name,
        env_id=env_id,
        episode_length=k,
        num_train_goals=4,
        goal_candidates=8,
        label_range_rollouts=8,
        eval_episodes=3,
    )
    env = glamor.envs.make(env_id, episode_length=k)
    train = make_goal_set(env, cfg, "train", progress=False)
    evals = make_goal_set(env, cfg, "eval", progress=False)
    n_labels = len(env.label_names)
    assert train.frames.shape == (4, 1, 80, 104) and train.frames.dtype == np.uint8
    assert evals.labels.shape == evals.start_labels.shape == (3, n_labels)
    assert not set(train.seeds.tolist()) & set(evals.seeds.tolist())  # held out
    assert np.all(train.label_ranges >= 0) and np.array_equal(
        train.label_ranges, evals.label_ranges
    )
    for i in range(len(evals)):
        goal = evals[i]
        _, info = env.reset(seed=goal.seed)  # the seed remakes the same goal...
        np.testing.assert_array_equal(env.goal.frame, goal.frame)
        np.testing.assert_array_equal(env.goal.labels, goal.labels)
        _, info = env.reset(seed=goal.seed, options={"goal": goal})  # ...from the same start
        np.testing.assert_array_equal(info["labels"], evals.start_labels[i])
    again = make_goal_set(env, cfg, "train", progress=False)  # from the cache
    np.testing.assert_array_equal(again.frames, train.frames)
    env.close()
