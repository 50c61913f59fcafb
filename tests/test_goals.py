import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

import glamor.envs as genvs
import glamor.goals as goals_module
from glamor.config import preset
from glamor.evaluate import wilson_interval
from glamor.goals import GoalSet, make_goal_set, select_diverse


def test_select_diverse_maximises_the_minimum_distance():
    labels = np.array([[0.0], [0.1], [10.0], [5.0], [9.9], [0.2]])
    chosen = select_diverse(labels, 3, np.array([10.0]))
    assert chosen.tolist() == [0, 2, 3]  # start, the farthest, then the middle


def select_diverse_reference(labels, count, ranges):
    """Readable greedy max-min: each pick is the not-yet-chosen row farthest from the chosen ones."""
    x = labels / np.where(ranges > 0, ranges, 1.0)
    chosen = [0]
    while len(chosen) < min(count, len(x)):
        rest = [i for i in range(len(x)) if i not in chosen]
        dist = np.stack([np.linalg.norm(x - x[j], axis=1) for j in chosen])  # (chosen, G), same rounding
        gaps = [dist[:, i].min() for i in rest]
        chosen.append(rest[int(np.argmax(gaps))])  # lowest index on ties
    return chosen


@pytest.mark.parametrize("seed", range(6))
def test_select_diverse_equals_the_readable_greedy_and_never_repeats(seed):
    """Few distinct labels (as in gridworld or a one-byte Atari label): once each is taken, the
    rest tie at distance 0 and must still be new rows."""
    rng = np.random.default_rng(seed)
    n, n_labels = int(rng.integers(5, 60)), int(rng.integers(1, 4))
    labels = rng.integers(0, int(rng.integers(2, 6)), size=(n, n_labels)).astype(np.float64)
    ranges = rng.uniform(0.5, 3.0, size=n_labels)
    count = int(rng.integers(1, n))
    chosen = select_diverse(labels, count, ranges)
    assert len(set(chosen.tolist())) == count
    assert chosen.tolist() == select_diverse_reference(labels, count, ranges)


def test_goal_sets_are_held_out_cached_and_match_their_rollouts():
    cfg = preset("debug", env_kwargs={}, episode_length=8, num_train_goals=10, goal_candidates=30, eval_episodes=12)
    env = genvs.make(cfg.env_id, cfg.episode_length)
    train = make_goal_set(env, cfg, "train")
    ev = make_goal_set(env, cfg, "eval")
    assert len(train) == 10 and len(ev) == 12
    assert not set(train.seeds.tolist()) & set(ev.seeds.tolist())
    again = make_goal_set(env, cfg, "eval")  # from the cache
    assert np.array_equal(again.frames, ev.frames) and np.array_equal(again.seeds, ev.seeds)
    # the goal is the state k steps into the random rollout of its reset seed: replaying the
    # reset reproduces the goal the environment made itself
    env.reset(seed=int(ev.seeds[3]))
    assert np.array_equal(env.goal.frame, ev.frames[3]) and np.array_equal(env.goal.labels, ev.labels[3])


def test_box_moved_goals_moved_the_box():
    cfg = preset("gridworld_box", eval_episodes=20)
    env = genvs.make(cfg.env_id, cfg.episode_length)
    moved = make_goal_set(env, cfg, "eval_moved", count=20)
    assert (moved.labels[:, 2:] != moved.start_labels[:, 2:]).any(axis=1).all()
    with pytest.raises(ValueError, match="no moved_labels"):
        make_goal_set(genvs.make("glamor/GridWorld-v0", 8), preset("debug"), "eval_moved")


def test_too_few_moved_goals_say_why():
    from glamor.goals import rollout_goals

    env = genvs.make(preset("gridworld_box").env_id, 1)  # one step: the box hardly ever moves
    with pytest.raises(ValueError, match=r"found only 0 of 3 goals in 5 rollouts: in the others the labels \[2, 3\] "
                                         r"\(the environment's moved_labels\) were where they started"):
        rollout_goals(env, 3, 0, moved=tuple(env.moved_labels), max_tries=5, progress=False)


def test_a_share_of_training_goals_can_come_from_box_moved_rollouts():
    cfg = preset("gridworld_box", num_train_goals=20, goal_candidates=40, eval_episodes=20, train_moved_fraction=0.5)
    env = genvs.make(cfg.env_id, cfg.episode_length)
    train = make_goal_set(env, cfg, "train")
    moved = (train.labels[:, 2:] != train.start_labels[:, 2:]).any(axis=1)
    assert len(train) == 20 and moved[10:].all() and moved.sum() >= 10
    # the moved goals' reset seeds are shared with neither evaluation set nor the usual rollouts
    usual = make_goal_set(env, cfg.replace(train_moved_fraction=0.0), "train")  # cached apart
    assert len(usual) == 20 and not np.array_equal(usual.seeds, train.seeds)
    for other in (make_goal_set(env, cfg, "eval"), make_goal_set(env, cfg, "eval_moved"), usual):
        assert not set(train.seeds[10:].tolist()) & set(other.seeds.tolist())
    # each goal is the state its own reset seed's rollout ends in
    env.reset(seed=int(train.seeds[15]))
    assert np.array_equal(env.goal.frame, train.frames[15]) and np.array_equal(env.goal.labels, train.labels[15])
    with pytest.raises(ValueError, match="train_moved_fraction"):
        make_goal_set(genvs.make("glamor/GridWorld-v0", 8), preset("debug", train_moved_fraction=0.5), "train")
    with pytest.raises(ValueError, match="train_moved_fraction"):
        preset("debug", train_moved_fraction=1.5)


def test_every_training_goal_can_come_from_box_moved_rollouts(monkeypatch, tmp_path):
    monkeypatch.setenv("GLAMOR_CACHE", str(tmp_path))  # built here, not read from an earlier test's cache
    assert select_diverse(np.arange(5.0)[:, None], 0, np.ones(1)).tolist() == []
    cfg = preset("gridworld_box", num_train_goals=10, goal_candidates=20, train_moved_fraction=1.0)
    rolled = []  # the kinds of rollouts made: no ordinary ones when none would be kept
    real = goals_module.rollout_goals
    monkeypatch.setattr(goals_module, "rollout_goals", lambda *a, **kw: rolled.append(kw["desc"]) or real(*a, **kw))
    train = make_goal_set(genvs.make(cfg.env_id, cfg.episode_length), cfg, "train")
    assert len(train) == 10 and (train.labels[:, 2:] != train.start_labels[:, 2:]).any(axis=1).all()
    assert "training goals" not in rolled and "training goals (moved)" in rolled


def test_goal_set_round_trips(tmp_path):
    g = GoalSet(np.zeros((2, 1, 3, 3), np.uint8), np.ones((2, 2)), np.zeros((2, 2)), np.arange(2), np.ones(2))
    g.save(tmp_path / "g.npz")
    back = GoalSet.load(tmp_path / "g.npz")
    assert all(np.array_equal(getattr(g, f), getattr(back, f)) for f in GoalSet.__dataclass_fields__)


def test_wilson_interval():
    lo, hi = wilson_interval(95, 100)
    assert 0.88 < lo < 0.89 and 0.97 < hi < 0.98  # the textbook 95% interval of 95/100
    assert wilson_interval(0, 10)[0] == 0.0 and wilson_interval(10, 10)[1] == 1.0


def test_success_is_judged_with_the_goal_sets_ranges_on_every_env():
    # Atari and Control envs start with placeholder ranges (255, 1.0); a goal set loaded from
    # the cache, and every env that runs its episodes, must judge with the set's own ranges.
    from glamor.evaluate import run_episodes

    cfg = preset("debug", env_kwargs={}, episode_length=8, eval_episodes=24)
    ev = make_goal_set(genvs.make(cfg.env_id, cfg.episode_length), cfg, "eval")
    fresh = genvs.make(cfg.env_id, cfg.episode_length)
    fresh.label_ranges = np.full_like(ev.label_ranges, 1000.0)  # a lenient placeholder
    make_goal_set(fresh, cfg, "eval")  # from the cache
    assert np.array_equal(fresh.label_ranges, ev.label_ranges)
    envs = [genvs.make(cfg.env_id, cfg.episode_length) for _ in range(3)]
    for env in envs:
        env.label_ranges = np.full_like(ev.label_ranges, 1000.0)
    res = run_episodes(envs, ev, None, seed=0)
    assert np.array_equal(res.success, res.label_distance <= 0.1 + 1e-9)
    assert not res.success.all()  # the random policy misses some exact-cell goals


def test_an_unreadable_cached_goal_set_is_built_again(tmp_path, monkeypatch):
    """A damaged cache file (a disk filled mid-write by another tool, a truncated copy) costs a
    rebuild with a warning, never the run; the rebuilt set equals the one first cached."""
    monkeypatch.setenv("GLAMOR_CACHE", str(tmp_path))
    cfg = preset("debug", progress=False, eval_episodes=6)
    env = genvs.make(cfg.env_id, cfg.episode_length, **cfg.env_kwargs)
    first = make_goal_set(env, cfg, "eval")
    cached = list((tmp_path / "goals").glob("*-eval-*.npz"))
    assert len(cached) == 1 and not list((tmp_path / "goals").glob("*.tmp.*"))
    cached[0].write_bytes(cached[0].read_bytes()[:100])  # truncated
    with pytest.warns(RuntimeWarning, match="unreadable.*building it again"):
        again = make_goal_set(env, cfg, "eval")
    np.testing.assert_array_equal(again.frames, first.frames)
    np.testing.assert_array_equal(again.labels, first.labels)
    assert GoalSet.load(cached[0]).seeds.tolist() == first.seeds.tolist()  # and the cache is whole again


def test_every_run_seed_is_judged_with_the_same_label_ranges(tmp_path, monkeypatch):
    from glamor.evaluate import goal_digest
    from glamor.goals import label_ranges_for

    monkeypatch.setenv("GLAMOR_CACHE", str(tmp_path))
    cfg = preset("debug", progress=False, label_range_rollouts=20)
    env = genvs.make(cfg.env_id, cfg.episode_length, **cfg.env_kwargs)
    env.estimate_label_ranges = True  # gridworld declares its ranges: estimate them as Atari and Control do
    ranges = [label_ranges_for(env, cfg.replace(seed=s)) for s in (0, 1, 5)]
    assert all(np.array_equal(r, ranges[0]) for r in ranges)
    assert len(list((tmp_path / "goals").glob("*-ranges-*"))) == 1  # one estimate, cached once
    goals = make_goal_set(env, cfg, "eval", 6)
    other = GoalSet(goals.frames, goals.labels, goals.start_labels, goals.seeds, goals.label_ranges * 2)
    assert goal_digest(other) != goal_digest(goals)  # another judge is another goal list


@pytest.mark.parametrize("value,want", [("", "~/.cache/glamor/goals"), ("  ", "~/.cache/glamor/goals"),
                                        ("~/scratch/glamor", "~/scratch/glamor/goals"),
                                        ("/tmp/glamor-cache", "/tmp/glamor-cache/goals")])
def test_the_goal_cache_folder_reads_glamor_cache_as_a_shell_user_means_it(monkeypatch, value, want):
    """An empty GLAMOR_CACHE (`export GLAMOR_CACHE=`, or `$SCRATCH` unset in GLAMOR_CACHE=$SCRATCH)
    put the cache in ./goals of whatever folder a command ran in (a checkout, a run's parent), and
    a quoted "~/..." in a folder named "~" there; both now mean what they say."""
    from glamor.goals import cache_dir

    monkeypatch.setenv("GLAMOR_CACHE", value)
    assert cache_dir() == Path(want).expanduser()
    monkeypatch.delenv("GLAMOR_CACHE")
    assert cache_dir() == Path("~/.cache/glamor/goals").expanduser()


HELPED_ENV = '''
import gymnasium as gym
import numpy as np

import helped_draw
from glamor.envs.gridworld import GridWorld


class Helped(GridWorld):
    """The gridworld drawn and labelled by a module of its own: an edit there leaves this source as it was."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.estimate_label_ranges = True  # (gridworld declares its own)

    def _frame(self):
        return helped_draw.draw(super()._frame())

    def _labels(self):
        return super()._labels() * helped_draw.SCALE


gym.register("Helped-v0", entry_point=Helped)
'''


def test_a_cached_goal_set_the_environment_no_longer_makes_is_built_again(tmp_path, monkeypatch):
    """The goal cache is keyed by the source of the environment's classes and their modules: an
    edit of a module they import (how the frames are drawn, here) left the cached goals in use,
    images and labels the environment no longer makes, so training chased them and evaluation
    judged against them, without a word. The first and last cached goals are rolled out again
    from their seeds, and a set they disagree with is built again (its label ranges too)."""
    import importlib

    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("GLAMOR_CACHE", str(tmp_path / "cache"))
    (tmp_path / "helped_env.py").write_text(HELPED_ENV)
    draw = tmp_path / "helped_draw.py"
    draw.write_text("SCALE = 1.0\n\ndef draw(frame):\n    return frame\n")
    cfg = preset("debug", env_id="helped_env:Helped-v0", env_kwargs={"size": 7}, progress=False, eval_episodes=6, label_range_rollouts=20)
    env = genvs.make(cfg.env_id, cfg.episode_length, **cfg.env_kwargs)
    first = make_goal_set(env, cfg, "eval")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # what it still makes: read from the cache, unsaid
        np.testing.assert_array_equal(make_goal_set(env, cfg, "eval").frames, first.frames)

    import helped_draw

    for edit, what in (("SCALE = 2.0\n\ndef draw(frame):\n    return frame\n", "labels differ"),
                       ("SCALE = 2.0\n\ndef draw(frame):\n    return frame // 2\n", "image differs")):
        draw.write_text(edit)
        importlib.reload(helped_draw)
        with pytest.warns(RuntimeWarning, match=rf"the cached eval goals .* are not what helped_env:Helped-v0 makes "
                                                 rf"now \(goal 0, from reset seed \d+: its {what}\)") as w:
            again = make_goal_set(env, cfg, "eval")
        assert [x.filename for x in w if "not what" in str(x.message)] == [__file__]
        monkeypatch.setenv("GLAMOR_CACHE", str(tmp_path / f"fresh-{what[:5]}"))  # what a fresh cache builds
        fresh = make_goal_set(genvs.make(cfg.env_id, cfg.episode_length, **cfg.env_kwargs), cfg, "eval")
        monkeypatch.setenv("GLAMOR_CACHE", str(tmp_path / "cache"))
        for field in GoalSet.__dataclass_fields__:
            np.testing.assert_array_equal(getattr(again, field), getattr(fresh, field))
        np.testing.assert_array_equal(env.label_ranges, fresh.label_ranges)
    np.testing.assert_array_equal(again.label_ranges, 2 * first.label_ranges)  # estimated again, not read
    np.testing.assert_array_equal(again.frames, first.frames // 2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the cache holds what it makes now
        make_goal_set(env, cfg, "eval")


SLIPPERY_ENV = '''
import gymnasium as gym
import numpy as np

from glamor.envs.gridworld import GridWorld


class Slippery(GridWorld):
    """The gridworld whose moves slip, drawn from a generator of its own (seeded once, at
    construction, as a simulator's often is): a seed's goal depends on what ran before."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.slips = np.random.default_rng(0)

    def _step_state(self, action):
        if self.slips.random() < 0.5:
            action = int(self.slips.integers(self.action_space.n))
        return super()._step_state(action)


gym.register("Slippery-v0", entry_point=Slippery)
'''


def test_a_cached_goal_set_of_an_environment_whose_goals_are_not_reproducible_is_kept(tmp_path, monkeypatch):
    """The read check rolls a cached goal out again from its seed; an environment whose steps draw
    from a generator of its own (not np_random) makes another goal each time, so every read found
    the set 'not what it makes now', warned that its code had changed and built it again: every
    run (every DDP rank, every `glamor eval`) got goals of its own, never the cached ones."""
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("GLAMOR_CACHE", str(tmp_path / "cache"))
    (tmp_path / "slippery_env.py").write_text(SLIPPERY_ENV)
    cfg = preset("debug", env_id="slippery_env:Slippery-v0", env_kwargs={"size": 7}, progress=False,
                 eval_episodes=6)
    env = genvs.make(cfg.env_id, cfg.episode_length, **cfg.env_kwargs)
    first = make_goal_set(env, cfg, "eval")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no rebuild, no word of an edit
        for reader in (env, env, genvs.make(cfg.env_id, cfg.episode_length, **cfg.env_kwargs)):
            again = make_goal_set(reader, cfg, "eval")
            for field in GoalSet.__dataclass_fields__:
                np.testing.assert_array_equal(getattr(again, field), getattr(first, field))


MARKED_ENV = '''
import gymnasium as gym

import marked_cells
from glamor.envs.gridworld import GridWorld


class Marked(GridWorld):
    """The gridworld whose labels a module of its own raises at some cells (none at first)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.estimate_label_ranges = True  # (gridworld declares its own)

    def _labels(self):
        return super()._labels() + 100 * (tuple(self._agent.tolist()) in marked_cells.CELLS)


gym.register("Marked-v0", entry_point=Marked)
'''


def test_a_cached_goal_set_judged_with_ranges_estimated_again_since_is_built_again(tmp_path, monkeypatch):
    """The read check rolled out a cached set's first and last goals alone. After an edit the
    training set's ends saw (so it and the label ranges were built again), an evaluation set whose
    ends it did not touch was read as it was, with the old label ranges: evaluation judged with
    ranges the training judge and the ranges cache no longer had. A set's ranges must be the
    estimate now (itself checked), or it is built again."""
    import importlib

    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("GLAMOR_CACHE", str(tmp_path / "cache"))
    (tmp_path / "marked_env.py").write_text(MARKED_ENV)
    cells = tmp_path / "marked_cells.py"
    cells.write_text("CELLS = ()\n")
    cfg = preset("debug", env_id="marked_env:Marked-v0", env_kwargs={"size": 7}, progress=False, eval_episodes=4,
                 num_train_goals=4, goal_candidates=8, label_range_rollouts=100)
    env = genvs.make(cfg.env_id, cfg.episode_length, **cfg.env_kwargs)
    train_set, eval_set = make_goal_set(env, cfg, "train"), make_goal_set(env, cfg, "eval")
    ends = [eval_set.labels[0], eval_set.labels[-1], eval_set.start_labels[0], eval_set.start_labels[-1]]
    cell = next(tuple(map(int, c)) for c in (train_set.labels[0], train_set.labels[-1])
                if not any(np.array_equal(c, e) for e in ends))  # what the eval set's ends never are
    cells.write_text(f"CELLS = ({cell},)\n")
    import marked_cells

    importlib.reload(marked_cells)
    with pytest.warns(RuntimeWarning, match="the cached train goals .* not what"):
        make_goal_set(env, cfg, "train")
    monkeypatch.setenv("GLAMOR_CACHE", str(tmp_path / "fresh"))  # what a fresh cache builds
    fresh = make_goal_set(genvs.make(cfg.env_id, cfg.episode_length, **cfg.env_kwargs), cfg, "eval")
    monkeypatch.setenv("GLAMOR_CACHE", str(tmp_path / "cache"))
    assert not np.array_equal(fresh.label_ranges, eval_set.label_ranges)  # (the edit moved the judge)
    with pytest.warns(RuntimeWarning, match=r"the cached eval goals .* not what .*its label ranges") as w:
        again = make_goal_set(env, cfg, "eval")
    assert [x.filename for x in w if "not what" in str(x.message)] == [__file__]
    for field in GoalSet.__dataclass_fields__:
        np.testing.assert_array_equal(getattr(again, field), getattr(fresh, field))
    np.testing.assert_array_equal(env.label_ranges, fresh.label_ranges)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the cache holds what it makes now
        make_goal_set(env, cfg, "eval")


def test_cached_label_ranges_the_environment_no_longer_gives_are_estimated_again(tmp_path, monkeypatch):
    """label_ranges_for (what examples/closed_loop.py judges with) read a cached estimate
    unchecked: after an edit of a module the environment imports it gave the old ranges for ever.
    It is checked as goal sets are, and estimated again with a warning."""
    import importlib

    import gymnasium as gym

    from glamor.goals import estimate_label_ranges, label_ranges_for

    for name in ("helped_env", "helped_draw"):  # (another test's, from its own folder)
        monkeypatch.delitem(sys.modules, name, raising=False)
    monkeypatch.delitem(gym.registry, "Helped-v0", raising=False)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("GLAMOR_CACHE", str(tmp_path / "cache"))
    (tmp_path / "helped_env.py").write_text(HELPED_ENV)
    draw = tmp_path / "helped_draw.py"
    draw.write_text("SCALE = 1.0\n\ndef draw(frame):\n    return frame\n")
    cfg = preset("debug", env_id="helped_env:Helped-v0", env_kwargs={"size": 7}, progress=False,
                 label_range_rollouts=20)
    env = genvs.make(cfg.env_id, cfg.episode_length, **cfg.env_kwargs)
    first = label_ranges_for(env, cfg, progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # what it still gives: read from the cache, unsaid
        np.testing.assert_array_equal(label_ranges_for(env, cfg, progress=False), first)
    import helped_draw

    draw.write_text("SCALE = 3.0\n\ndef draw(frame):\n    return frame\n")
    importlib.reload(helped_draw)
    with pytest.warns(RuntimeWarning, match=r"the cached label ranges .* are not what helped_env:Helped-v0 gives "
                                             r"now \(rollout \d+ of the estimate, from reset seed \d+: its labels"):
        again = label_ranges_for(env, cfg, progress=False)
    np.testing.assert_array_equal(again, estimate_label_ranges(env, 20, base_seed=3, progress=False))
    np.testing.assert_array_equal(again, 3 * first)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_array_equal(label_ranges_for(env, cfg, progress=False), again)


def test_the_label_range_cache_leaves_an_older_glamors_ranges_where_it_reads_them(tmp_path, monkeypatch):
    """An older glamor cached the estimate alone (np.save's data) under a key without the probe and
    read whatever lay there with np.load as its ranges. The probe's .npz was written at that same
    name, so a glamor from before the probe sharing the cache (another checkout or venv, a bisect)
    got an NpzFile for ranges and failed building any goal set ('NpzFile' object has no attribute
    'shape'). The probed estimate is keyed apart: the older glamor's file stays its own."""
    from glamor.files import write_atomically
    from glamor.goals import RANGE_SEED, _cache_path, estimate_label_ranges, label_ranges_for

    monkeypatch.setenv("GLAMOR_CACHE", str(tmp_path))
    cfg = preset("debug", progress=False, label_range_rollouts=20)
    env = genvs.make(cfg.env_id, cfg.episode_length, **cfg.env_kwargs)
    env.estimate_label_ranges = True  # (gridworld declares its own)
    want = estimate_label_ranges(env, 20, base_seed=3, progress=False)
    older = _cache_path(env, cfg.env_id, cfg.env_kwargs, cfg.episode_length, "ranges", n=20, seed=RANGE_SEED,
                        labels=list(env.label_names))  # the older glamor's name, and how it wrote it
    older.parent.mkdir(parents=True)
    write_atomically(older, lambda tmp: np.save(tmp, want), suffix=".npy")
    for _ in range(2):  # estimated (its file is no probe), then read from its own cache
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            np.testing.assert_array_equal(label_ranges_for(env, cfg, progress=False), want)
    read = np.load(older)  # what the older glamor reads there
    assert isinstance(read, np.ndarray)
    np.testing.assert_array_equal(read, want)
    assert len(list((tmp_path / "goals").glob("*-ranges-*"))) == 2


def test_label_ranges_a_cache_cannot_keep_are_estimated_once_per_process(tmp_path, monkeypatch):
    """Where the ranges file is missing and the cache cannot be written (a read-only GLAMOR_CACHE
    filled beforehand with the goal sets alone), every read of a cached goal set estimated the
    ranges again (~6 s a read on Atari at 500 rollouts): one process estimates them once, and
    gives what an estimate gives."""
    from glamor.goals import estimate_label_ranges

    monkeypatch.setenv("GLAMOR_CACHE", str(tmp_path))
    cfg = preset("debug", progress=False, eval_episodes=4, label_range_rollouts=20)
    env = genvs.make(cfg.env_id, cfg.episode_length, **cfg.env_kwargs)
    env.estimate_label_ranges = True  # (gridworld declares its own)
    first = make_goal_set(env, cfg, "eval")
    for f in (tmp_path / "goals").glob("*-ranges-*"):
        f.unlink()  # the goal set alone is in the cache

    def read_only(path, write, **kwargs):
        raise PermissionError(13, "Read-only file system", str(path))

    monkeypatch.setattr(goals_module, "write_atomically", read_only)
    estimates = []
    real = goals_module._estimate
    monkeypatch.setattr(goals_module, "_estimate", lambda *a, **k: estimates.append(1) or real(*a, **k))
    with pytest.warns(RuntimeWarning, match="cannot write the goal cache"):
        again = make_goal_set(env, cfg, "eval")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # read again: neither estimated nor warned about again
        for _ in range(3):
            again = make_goal_set(env, cfg, "eval")
    assert len(estimates) == 1
    for field in GoalSet.__dataclass_fields__:
        np.testing.assert_array_equal(getattr(again, field), getattr(first, field))
    np.testing.assert_array_equal(again.label_ranges, estimate_label_ranges(env, 20, base_seed=3, progress=False))
