"""Evaluation's draws are keyed by (seed, goal, step): a goal gets the same draws whatever
`eval_batch` runs it (glamor.evaluate), so on these sizes its episode is the same (batched
convolutions may still round by batch size elsewhere: see the README)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from glamor.agent import Agent
from glamor.envs import make
from glamor.evaluate import random_actions, run_episodes, wilson_interval
from glamor.gcsl import GCSLAgent, GCSLPolicy
from glamor.goals import GoalSet
from glamor.model import GlamorModel

ENV, K, GOALS = "glamor/GridWorld-v0", 8, 11


def goal_set() -> GoalSet:
    env = make(ENV, K)
    goals = []
    for s in range(GOALS):
        env.reset(seed=100 + s)
        goals.append(env.goal)
    return GoalSet(np.stack([g.frame for g in goals]), np.stack([g.labels for g in goals]),
                   np.zeros((GOALS, 2)), 100 + np.arange(GOALS), env.label_ranges)


def agent(policy: str, seed: int = 3):
    torch.manual_seed(0)
    if policy == "random":
        return None
    if policy == "gcsl_sample":
        net = GCSLPolicy(4, 1, (22, 22), encoder_channels=(4, 8), embed_dim=16, mix_hidden=16)
        return GCSLAgent(net.eval(), mode="sample", seed=seed)
    model = GlamorModel(4, 1, (22, 22), (4, 8), 16, 16, 8).eval()
    return Agent(model, method="sample", width=6, seed=seed)


def episodes(policy: str, batch: int, agent_=None, seed: int = 3):
    envs = [make(ENV, K) for _ in range(batch)]
    res = run_episodes(envs, goal_set(), agent(policy, seed) if agent_ is None else agent_, seed=seed)
    return res.success, res.steps, res.label_distance


class DropKeys:
    """An agent that ignores the keys: what evaluation drew like before they existed."""

    def __init__(self, inner):
        self.inner = inner

    def act(self, obs, goal, horizon=None, keys=None):
        return self.inner.act(obs, goal, horizon)


@pytest.mark.parametrize("policy", ["glamor_sample", "gcsl_sample", "random"])
def test_a_goals_episode_does_not_depend_on_the_batch_it_runs_in(policy):
    whole = episodes(policy, GOALS)
    for batch in (4, 1):
        for a, b in zip(whole, episodes(policy, batch)):
            np.testing.assert_array_equal(a, b)
    # the agent's history does not enter either: one agent for two evaluations, in other batches
    if policy != "random":
        shared = agent(policy)
        episodes(policy, 5, shared)
        for a, b in zip(whole, episodes(policy, 3, shared)):
            np.testing.assert_array_equal(a, b)
    # and the seed does: the draws are not all the same
    other = episodes(policy, GOALS, seed=4)
    assert any(not np.array_equal(a, b) for a, b in zip(whole, other))


@pytest.mark.parametrize("policy", ["glamor_sample", "gcsl_sample"])
def test_unkeyed_draws_follow_the_batch(policy):
    """The control: an agent drawing from its own stream gets other episodes in other batches
    (so the test above would see an evaluation that dropped the keys)."""
    runs = [episodes(policy, b, DropKeys(agent(policy))) for b in (GOALS, 4)]
    assert any(not np.array_equal(a, b) for a, b in zip(*runs))


def test_keyed_act_is_the_batched_act_row_by_row():
    """Agent.act with keys: each row's action equals that observation acted on alone with its key
    (one observation takes one int key)."""
    model = GlamorModel(4, 1, (22, 22), (4, 8), 16, 16, 8).eval()
    a = Agent(model, method="sample", width=8, seed=9, backend="reference")
    g = torch.Generator().manual_seed(1)
    obs = torch.randint(0, 256, (6, 1, 22, 22), dtype=torch.uint8, generator=g).numpy()
    goal = torch.randint(0, 256, (6, 1, 22, 22), dtype=torch.uint8, generator=g).numpy()
    keys = np.array([5, 0, 2**32 - 1, 77, 12, 3])
    actions, stop = a.act(obs, goal, horizon=7, keys=keys)
    for i in range(6):
        assert a.act(obs[i], goal[i], horizon=7, keys=int(keys[i])) == (int(actions[i]), bool(stop[i]))
    native = Agent(model, method="sample", width=8, seed=9, backend="native")
    np.testing.assert_array_equal(native.act(obs, goal, horizon=7, keys=keys)[0], actions)


def test_bad_keys_are_named():
    model = GlamorModel(4, 1, (22, 22), (4, 8), 16, 16, 8).eval()
    a = Agent(model, method="sample", width=4)
    obs = np.zeros((2, 1, 22, 22), np.uint8)
    with pytest.raises(ValueError, match=r"keys must have shape \(2,\)"):
        a.act(obs, obs, horizon=3, keys=[1, 2, 3])
    with pytest.raises(ValueError, match=r"keys must be in \[0, 2\*\*32\)"):
        a.act(obs, obs, horizon=3, keys=[1, -2])
    with pytest.raises(ValueError, match=r"keys must be in \[0, 2\*\*32\)"):
        a.act(obs, obs, horizon=3, keys=np.array([1, 2**32], dtype=np.uint64))
    with pytest.raises(TypeError, match="keys must be integers"):
        a.act(obs, obs, horizon=3, keys=[1.0, 2.0])
    gcsl = GCSLAgent(GCSLPolicy(4, 1, (22, 22), encoder_channels=(4, 8), embed_dim=16, mix_hidden=16),
                     mode="sample")
    with pytest.raises(ValueError, match=r"keys must have shape \(2,\)"):
        gcsl.act(obs, obs, keys=[1])


def test_random_actions_are_uniform_over_the_actions():
    actions = random_actions(7, np.arange(18_000), 18)
    counts = np.bincount(actions, minlength=18)
    assert counts.min() > 850 and counts.max() < 1150  # 1000 each; 4.7 sigma either side
    assert np.array_equal(actions, random_actions(7, np.arange(18_000), 18))
    assert not np.array_equal(actions, random_actions(8, np.arange(18_000), 18))


def test_evaluating_more_episodes_than_the_goal_sets_hold_says_so(tmp_path):
    from conftest import saved_run

    from glamor.config import preset
    from glamor.train import evaluate_checkpoint

    cfg = preset("debug", progress=False, learning_starts=0, eval_episodes=3)
    saved_run(tmp_path, cfg)
    with pytest.warns(RuntimeWarning, match="5 episodes asked for, but the run's held-out goal sets hold "
                                            "eval_episodes=3 goals each: evaluating those"):
        results = evaluate_checkpoint(tmp_path, cfg, episodes=5, set_names=("eval",), policies=("random",))
    assert results["sets"]["eval"]["random"]["episodes"] == 3


class OneStep:
    """Action 0 once, then stop: an episode that ends where a step from its start leads."""

    def act(self, obs, goal, horizon=None, keys=None):
        return np.zeros(len(obs), np.int64), np.ones(len(obs), bool)


def test_label_distance_is_in_the_judges_units_for_a_label_of_zero_range():
    """A label of zero range must match exactly: an episode that misses it by 0.05 failed, so its
    distance must not read 0.05 (within the 0.1 tolerance) but inf; success is distance <= 0.1."""
    from glamor.envs import judge_success, label_distance

    base = goal_set()
    env = make(ENV, K)
    ends = []
    for i in range(GOALS):  # where OneStep's episode towards goal i ends
        env.reset(seed=int(base.seeds[i]), options={"goal": base[i]})
        ends.append(env.step(0)[-1]["labels"])
    ends = np.stack(ends)
    ranges = np.array([0.0, *base.label_ranges[1:]])
    missed = ends + np.array([0.05] + [0.0] * (ends.shape[1] - 1))  # label 0 off by 0.05, the rest exact
    goals = GoalSet(base.frames, missed, base.start_labels, base.seeds, ranges)
    res = run_episodes([make(ENV, K) for _ in range(4)], goals, OneStep())
    assert not res.success.any() and np.isinf(res.label_distance).all()
    exact = GoalSet(base.frames, ends, base.start_labels, base.seeds, ranges)
    res = run_episodes([make(ENV, K) for _ in range(4)], exact, OneStep())
    assert res.success.all() and (res.label_distance == 0).all()
    rng = np.random.default_rng(0)  # the judge and the distance agree, zero ranges included
    labels, goal_labels = rng.integers(0, 3, (200, 3)) * 0.05, rng.integers(0, 3, (200, 3)) * 0.05
    r = np.array([0.0, 0.5, 1.0])
    np.testing.assert_array_equal(judge_success(labels, goal_labels, r), label_distance(labels, goal_labels, r) <= 0.1)


def test_an_evaluation_that_fails_gives_the_model_back_in_training_mode(monkeypatch):
    """evaluate() put model.train() back only after a finished evaluation: an error in one (a
    crashing environment, a Ctrl-C caught by a caller's loop that goes on training) left the
    model in eval mode, which a model with dropout or batch norm trains differently in."""
    import glamor.evaluate as evaluate_module
    from glamor.config import preset

    model = GlamorModel(4, 1, (22, 22), (4, 8), 16, 16, 8).train()
    cfg = preset("debug", progress=False)

    def fail(*args, **kwargs):
        assert not model.training, "evaluation runs in eval mode"
        raise RuntimeError("an environment crashed")

    monkeypatch.setattr(evaluate_module, "run_episodes", fail)
    with pytest.raises(RuntimeError, match="crashed"):
        evaluate_module.evaluate(model, cfg, [make(ENV, K)], {"eval": goal_set()}, progress=False)
    assert model.training


def test_eval_of_a_weights_only_checkpoint_is_refused_before_it_evaluates(tmp_path, capsys, monkeypatch):
    """A checkpoint from before resumable checkpoints (weights only, no env_step): `glamor eval`
    evaluated every goal, then crashed with a KeyError traceback and wrote nothing."""
    import glamor.evaluate as evaluate_module
    from glamor.cli import main
    from glamor.config import preset
    from glamor.train import Trainer

    cfg = preset("debug", progress=False, eval_episodes=2)
    cfg.save(tmp_path / "config.json")
    tr = Trainer(cfg, tmp_path)
    torch.save({"model": tr.model.state_dict()}, tmp_path / "checkpoint.pt")
    tr.close()
    monkeypatch.setattr(evaluate_module, "run_episodes", lambda *a, **k: pytest.fail("evaluated first"))
    assert main(["eval", str(tmp_path), "--videos", "0"]) == 2
    err = capsys.readouterr().err
    assert "checkpoint.pt was written before resumable checkpoints" in err and "glamor.Agent.load" in err, err
    assert not (tmp_path / "eval.json").exists()


@pytest.mark.parametrize("use_prior", [True, False])
def test_success_rate_is_the_planner_with_the_prior_whatever_the_runs_use_prior(monkeypatch, use_prior):
    """eval.json's success_rate is GLAMOR with the prior and success_rate_no_prior without it,
    also for a run trained with use_prior=False (README, the run directory; Config.use_prior):
    the run's setting chooses how it collects, not which agent the headline reports."""
    import glamor.evaluate as evaluate_module
    from glamor.config import preset
    from glamor.evaluate import EpisodeResults

    def fake(envs, goals, agent_, **kwargs):  # 3 of 4 goals with the prior, 1 without, 0 random
        wins = 0 if agent_ is None else 3 if agent_.use_prior else 1
        return EpisodeResults(np.arange(4) < wins, np.full(4, K), np.zeros(4))

    monkeypatch.setattr(evaluate_module, "run_episodes", fake)
    model = GlamorModel(4, 1, (22, 22), (4, 8), 16, 16, 8)
    cfg = preset("debug", progress=False, use_prior=use_prior)
    out = evaluate_module.evaluate(model, cfg, [make(ENV, K)], {"eval": goal_set()}, progress=False)
    assert (out["success_rate"], out["success_rate_no_prior"], out["random_success_rate"]) == (0.75, 0.25, 0.0)


@pytest.mark.parametrize("clip", [None, -2.5])
def test_eval_json_names_the_planners_clip(monkeypatch, clip):
    """eval.json's planner block records clip_logq with method, width and gamma: an evaluation
    with a clip (`glamor eval --set clip_logq=-2.5`) planned otherwise than one without."""
    import glamor.evaluate as evaluate_module
    from glamor.config import preset
    from glamor.evaluate import EpisodeResults

    monkeypatch.setattr(evaluate_module, "run_episodes",
                        lambda envs, goals, agent_, **kw: EpisodeResults(np.ones(4, bool), np.full(4, K), np.zeros(4)))
    model = GlamorModel(4, 1, (22, 22), (4, 8), 16, 16, 8)
    cfg = preset("debug", progress=False, clip_logq=clip)
    out = evaluate_module.evaluate(model, cfg, [make(ENV, K)], {"eval": goal_set()}, progress=False)
    assert out["planner"] == dict(method=cfg.planner, width=cfg.plan_width, gamma=cfg.gamma, clip_logq=clip)


def test_wilson_bounds_are_exact_at_no_and_all_successes():
    """Closed forms: 0 of n gives [0, z^2 / (n + z^2)], n of n gives [n / (n + z^2), 1]; the
    rounding of the general formula gave 0.9999999999999999 as the upper bound at 100% success
    of 200 episodes (the evaluations' default), and a lower bound above 0 at 0 of 11."""
    z2 = 1.96 ** 2
    for n in range(1, 301):
        assert wilson_interval(0, n) == (0.0, pytest.approx(z2 / (n + z2), abs=1e-12))
        assert wilson_interval(n, n) == (pytest.approx(n / (n + z2), abs=1e-12), 1.0)
    # 1 of 2: centre 1/2, half 1.96 * sqrt(1/8 + z^2/16) / (1 + z^2/2)
    half = 1.96 * math.sqrt(1 / 8 + z2 / 16) / (1 + z2 / 2)
    assert wilson_interval(1, 2) == (pytest.approx(0.5 - half, abs=1e-12), pytest.approx(0.5 + half, abs=1e-12))
    for bad in ((-1, 5), (6, 5)):
        with pytest.raises(ValueError, match="successes must be between 0 and n"):
            wilson_interval(*bad)
