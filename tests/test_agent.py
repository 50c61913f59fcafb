import numpy as np

from conftest import random_images, tiny_model
from glamor.agent import Agent
from glamor.envs import make
from glamor.evaluate import run_episodes
from glamor.goals import GoalSet


def test_closed_loop_acts_with_first_action_and_stops_on_single_action_plans():
    m = tiny_model(num_actions=3)
    agent = Agent(m, width=27, backend="reference")
    obs, goal = random_images(4, 2, (24, 24)).numpy(), random_images(4, 1, (24, 24), 1).numpy()
    plan = agent.plan(obs, goal, horizon=3)
    actions, stop = agent.act(obs, goal, horizon=3)
    assert actions.tolist() == plan.actions[:, 0].tolist()
    assert stop.tolist() == (plan.lengths == 1).tolist()


def test_open_loop_pads_plans_with_random_actions():
    m = tiny_model(num_actions=3)
    agent = Agent(m, width=9, backend="reference")
    obs, goal = random_images(6, 2, (24, 24)).numpy(), random_images(6, 1, (24, 24), 1).numpy()
    plan = agent.plan(obs, goal, horizon=5)
    seq = agent.open_loop(obs, goal, horizon=5)
    assert seq.shape == (6, 5) and ((seq >= 0) & (seq < 3)).all()
    for p in range(6):
        L = int(plan.lengths[p])
        assert seq[p, :L].tolist() == plan.actions[p, :L].tolist()


def test_epsilon_greedy_rate():
    agent = Agent(tiny_model(num_actions=4), width=2)
    actions = np.zeros(20000, dtype=np.int64)
    out = agent.epsilon_greedy(actions, 0.4)
    # a random action is 0 with probability 1/4, so 0.4 * 3/4 of the actions change
    assert abs((out != 0).mean() - 0.3) < 0.02
    assert (agent.epsilon_greedy(actions, 0.0) == 0).all()


def test_random_policy_runs_the_fixed_horizon_and_glamor_may_stop_early():
    env_id, k = "glamor/GridWorld-v0", 6
    envs = [make(env_id, k) for _ in range(3)]
    goals = []
    for s in range(5):
        envs[0].reset(seed=s)
        goals.append(envs[0].goal)
    gs = GoalSet(np.stack([g.frame for g in goals]), np.stack([g.labels for g in goals]),
                 np.zeros((5, 2)), np.arange(5), envs[0].label_ranges)
    rand = run_episodes(envs, gs, None)
    assert rand.steps.tolist() == [k] * 5 and rand.success.dtype == bool
    from glamor.model import GlamorModel
    m = GlamorModel(4, 1, (22, 22), (4, 8), 16, 16, 8)
    res = run_episodes(envs, gs, Agent(m, width=4, backend="reference"))
    assert ((res.steps >= 1) & (res.steps <= k)).all() and res.label_distance.shape == (5,)
