"""GCSL, the baseline: relabelled labels, the loss, acting, closed-loop collection, training."""

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import saved_run
from PIL import Image

from glamor.config import Config, preset
from glamor.evaluate import run_episodes
from glamor.gcsl import IGNORE, GCSLAgent, GCSLPolicy, collect_closed_loop, gcsl_labels, gcsl_steps
from glamor.goal_cache import GoalEncodingCache
from glamor.replay import Replay
from glamor.reports import SERIES
from glamor.train import Trainer, eval_goal_sets, make_envs

HW = (22, 22)


def small_policy(n=4, stack=1, seed=0, time_conditioned=False):
    torch.manual_seed(seed)
    return GCSLPolicy(n, stack, HW, encoder_channels=(4, 8), embed_dim=16, mix_hidden=16,
                      time_conditioned=time_conditioned)


def test_labels_are_the_first_action_and_k0_is_left_out():
    n = 4  # END = 4, PAD = 5
    targets = torch.tensor([[2, 1, 4, 5], [4, 5, 5, 5], [0, 4, 5, 5], [3, 3, 3, 4]])
    assert gcsl_labels(targets, n).tolist() == [2, IGNORE, 0, 3]


def test_loss_is_cross_entropy_of_a_t_over_samples_with_an_action():
    policy = small_policy()
    g = torch.Generator().manual_seed(0)
    obs = torch.randint(0, 256, (5, 1, *HW), dtype=torch.uint8, generator=g)
    goal = torch.randint(0, 256, (5, 1, *HW), dtype=torch.uint8, generator=g)
    targets = torch.tensor([[1, 4, 5], [4, 5, 5], [3, 0, 4], [0, 4, 5], [4, 5, 5]])
    loss = policy.loss(obs, goal, targets)["loss"]
    logits = policy(obs, goal)
    keep = torch.tensor([0, 2, 3])
    expected = F.cross_entropy(logits[keep], torch.tensor([1, 3, 0]))
    torch.testing.assert_close(loss, expected)
    # a batch of k = 0 samples only: zero loss with a gradient path, not NaN
    only_end = policy.loss(obs[:2], goal[:2], torch.tensor([[4, 5, 5], [4, 5, 5]]))["loss"]
    assert only_end.item() == 0.0 and only_end.requires_grad


def test_relabelled_batch_pairs_s_t_with_a_t_and_the_frame_k_ahead(rng):
    n, L = 4, 10
    replay = Replay(200, HW, 1, n)
    frames = np.stack([np.full(HW, 10 * t, np.uint8) for t in range(L + 1)])  # frame t has value 10 t
    actions = rng.integers(n, size=L)
    replay.add_episode(frames, actions)
    obs, goal, targets, k = replay.sample(256, 6, rng)
    labels = gcsl_labels(torch.from_numpy(targets), n).numpy()
    t = obs[:, -1, 0, 0].astype(int) // 10  # the time index of each sample
    has_action = k >= 1
    assert has_action.any() and (~has_action).any()
    np.testing.assert_array_equal(labels[has_action], actions[t[has_action]])
    assert (labels[~has_action] == IGNORE).all() and (t[~has_action] == L).all()
    np.testing.assert_array_equal(goal[:, 0, 0, 0].astype(int) // 10, t + k)


def test_steps_to_the_goal_are_the_actions_before_end(rng):
    n = 4
    targets = torch.tensor([[2, 1, 4, 5], [4, 5, 5, 5], [0, 4, 5, 5], [3, 3, 3, 4]])
    assert gcsl_steps(targets, n).tolist() == [2, 0, 1, 3]
    replay = Replay(200, HW, 1, n)
    replay.add_episode(np.zeros((11, *HW), np.uint8), rng.integers(n, size=10))
    _, _, targets, k = replay.sample(128, 6, rng)
    np.testing.assert_array_equal(gcsl_steps(torch.from_numpy(targets), n).numpy(), k)


def test_time_conditioned_policy_starts_as_the_plain_one_and_checks_its_steps():
    plain, timed = small_policy(), small_policy(time_conditioned=True)
    timed_only = set(timed.state_dict()) - set(plain.state_dict())
    assert timed_only == {"steps_in.weight", "steps_in.bias"}
    timed.load_state_dict(plain.state_dict(), strict=False)  # same encoders, mix and head
    g = torch.Generator().manual_seed(2)
    obs = torch.randint(0, 256, (3, 1, *HW), dtype=torch.uint8, generator=g)
    goal = torch.randint(0, 256, (3, 1, *HW), dtype=torch.uint8, generator=g)
    with torch.no_grad():
        for steps in ([1, 2, 3], [50, 7, 1000]):  # the steps input starts at zero weight
            torch.testing.assert_close(timed(obs, goal, steps=torch.tensor(steps)), plain(obs, goal), rtol=0, atol=0)
    with pytest.raises(ValueError, match="needs steps"):
        timed(obs, goal)
    with pytest.raises(ValueError, match="not time-conditioned"):
        plain(obs, goal, steps=torch.tensor([1, 2, 3]))
    with pytest.raises(ValueError, match=r"shape \(3,\)"):
        timed(obs, goal, steps=torch.tensor([1, 2]))
    with pytest.raises(ValueError, match=">= 1"):
        GCSLAgent(timed).act(obs.numpy(), goal.numpy(), horizon=0)
    with pytest.raises(ValueError, match="steps left"):
        GCSLAgent(timed).act(obs.numpy(), goal.numpy())  # neither a horizon nor the agent's
    for bad in (-3, 0, 2.5):  # an agent's own horizon is checked where it is given, for either policy
        with pytest.raises(ValueError, match=r"horizon must be an int in \[1, "):
            GCSLAgent(plain, horizon=bad)


def test_only_a_time_conditioned_policy_learns_labels_that_depend_on_the_steps_left():
    """One (observation, goal) pair, two relabelled samples: 1 step to go -> action 0, 2 steps ->
    action 1. Without the steps left the best a policy can do is 1/2 on each."""
    n = 4  # END = 4, PAD = 5
    obs = torch.full((2, 1, *HW), 30, dtype=torch.uint8)
    goal = torch.full((2, 1, *HW), 200, dtype=torch.uint8)
    targets = torch.tensor([[0, 4, 5], [1, 2, 4]])
    accuracy = {}
    for timed in (False, True):
        policy = small_policy(time_conditioned=timed)
        opt = torch.optim.Adam(policy.parameters(), lr=1e-2)
        for _ in range(150):
            opt.zero_grad()
            policy.loss(obs, goal, targets)["loss"].backward()
            opt.step()
        steps = gcsl_steps(targets, n) if timed else None
        with torch.no_grad():
            accuracy[timed] = (policy(obs, goal, steps=steps).argmax(1) == targets[:, 0]).float().mean().item()
    assert accuracy == {False: 0.5, True: 1.0}


class _StepsSpy(GCSLAgent):
    """Records the steps left that each action was chosen with."""

    def __init__(self, policy):
        super().__init__(policy)
        self.seen: list[list[int]] = []

    def policy_actions(self, obs, goal, steps=None, keys=None):
        self.seen.append(np.broadcast_to(np.asarray(steps), (len(obs),)).tolist())
        return super().policy_actions(obs, goal, steps, keys)


def test_acting_reads_the_steps_left_in_collection_and_evaluation():
    cfg = preset("debug", progress=False, algo="gcsl", gcsl_time=True)
    envs = make_envs(cfg, 3)
    k = cfg.episode_length
    policy = GCSLPolicy.from_config(cfg, envs[0].action_space.n, envs[0].frame_stack, envs[0].frame_shape).eval()
    assert policy.time_conditioned
    spy = _StepsSpy(policy)
    collect_closed_loop(envs, [env.reset(seed=i)[0] for i, env in enumerate(envs)], spy, 0.0,
                        np.random.default_rng(0))
    assert spy.seen == [[k - t] * 3 for t in range(k)]
    spy.seen.clear()
    goals = eval_goal_sets(cfg, envs[0], 3, False)["eval"]
    run_episodes(envs, goals, spy)
    assert spy.seen == [[k - t] * 3 for t in range(k)]


def test_gcsl_time_is_a_gcsl_setting_fixed_by_the_checkpoint():
    with pytest.raises(ValueError, match="gcsl_time=True \\(must be a GCSL setting, only with algo='gcsl'"):
        Config(gcsl_time=True)  # a GLAMOR run
    from glamor.config import check_model_unchanged

    with pytest.raises(ValueError, match="fixed by the checkpoint"):
        check_model_unchanged(preset("debug", algo="gcsl"), {"gcsl_time": True}, "an evaluation")


def test_greedy_is_argmax_never_stops_and_sampling_is_seeded():
    policy = small_policy().eval()
    g = torch.Generator().manual_seed(1)
    obs = torch.randint(0, 256, (64, 1, *HW), dtype=torch.uint8, generator=g).numpy()
    goal = torch.randint(0, 256, (64, 1, *HW), dtype=torch.uint8, generator=g).numpy()
    actions, stop = GCSLAgent(policy).act(obs, goal, horizon=3)
    with torch.no_grad():
        expected = policy(torch.from_numpy(obs), torch.from_numpy(goal)).argmax(1).numpy()
    np.testing.assert_array_equal(actions, expected)
    assert stop.dtype == bool and not stop.any()
    a, s = GCSLAgent(policy).act(obs[0], goal[0, 0])
    assert isinstance(a, int) and s is False
    with torch.no_grad():
        policy.head.weight.zero_()
        policy.head.bias.zero_()  # uniform: sampling must spread over the actions
    s1, _ = GCSLAgent(policy, mode="sample", seed=3).act(obs, goal)
    s2, _ = GCSLAgent(policy, mode="sample", seed=3).act(obs, goal)
    np.testing.assert_array_equal(s1, s2)
    assert len(set(s1.tolist())) == 4
    with pytest.raises(ValueError, match="greedy"):
        GCSLAgent(policy, mode="softmax")
    with pytest.raises(ValueError, match="seed must be an int in"):
        GCSLAgent(policy, seed=-1)
    with pytest.raises(ValueError, match="epsilon must be a probability"):
        GCSLAgent(policy).epsilon_greedy(actions, 2.0)


def test_closed_loop_collection_acts_with_the_policy():
    cfg = preset("debug", progress=False)
    envs = make_envs(cfg, 3)
    policy = GCSLPolicy.from_config(cfg, envs[0].action_space.n, envs[0].frame_stack, envs[0].frame_shape).eval()
    with torch.no_grad():
        policy.head.weight.zero_()
        policy.head.bias.copy_(torch.tensor([0.0, 0.0, 5.0, 0.0]))  # always action 2
    obs = [env.reset(seed=i)[0] for i, env in enumerate(envs)]
    episodes = collect_closed_loop(envs, obs, GCSLAgent(policy), 0.0, np.random.default_rng(0))
    for frames, acts in episodes:
        assert len(acts) == cfg.episode_length and frames.shape == (len(acts) + 1, *envs[0].frame_shape)
        assert (acts == 2).all()
    random_eps = collect_closed_loop(envs, [e.reset(seed=9)[0] for e in envs], None, 1.0, np.random.default_rng(0))
    assert len({int(a) for _, acts in random_eps for a in acts}) > 1


def test_gcsl_training_loss_falls_and_checkpoint_round_trips(tmp_path):
    cfg = preset("debug", progress=False, learning_starts=0, algo="gcsl")
    tr = Trainer(cfg, tmp_path)
    assert isinstance(tr.model, GCSLPolicy) and isinstance(tr.agent, GCSLAgent)
    while tr.env_step < 200:
        tr.collect_round()
    torch.manual_seed(0)
    first = np.mean([tr.update()["loss"] for _ in range(5)])
    for _ in range(100):
        tr.update()
    last = np.mean([tr.update()["loss"] for _ in range(5)])
    assert last < first - 0.2, (first, last)
    state = tr.state_dict()
    tr.close()
    other = Trainer(cfg, tmp_path / "other")
    other.load_state_dict({**state, "replay": tr.replay.state_dict()})
    for name, t in tr.model.state_dict().items():
        assert torch.equal(t, other.model.state_dict()[name]), name
    other.close()


def test_a_gcsl_agent_loads_from_its_run_and_load_agent_picks_each_runs_agent(tmp_path):
    from glamor.agent import Agent, load_agent

    runs = {}
    for algo in ("gcsl", "glamor"):
        cfg = preset("debug", progress=False, learning_starts=0, algo=algo, gcsl_time=algo == "gcsl",
                     gcsl_act="sample" if algo == "gcsl" else "greedy")
        runs[algo] = saved_run(tmp_path / algo, cfg)
    tr = runs["gcsl"]
    agent = GCSLAgent.load(tmp_path / "gcsl", horizon=4)
    for name, t in tr.model.state_dict().items():
        assert torch.equal(t, agent.model.state_dict()[name]), name
    assert not agent.model.training and agent.model.time_conditioned and agent.mode == "sample"
    assert repr(agent) == f"GCSLAgent(mode='sample', seed=0, horizon=4, actions={tr.num_actions}, device='cpu')"
    assert agent.horizon == 4 and agent.config.algo == "gcsl"  # horizon: an argument (the config has the run's)
    assert GCSLAgent.load(tmp_path / "gcsl", mode="greedy").config.gcsl_act == "greedy"  # mode is gcsl_act
    env = make_envs(tr.cfg, 1)[0]
    obs = env.reset(seed=3)[0]
    keys = np.arange(5)
    frames = np.repeat(obs["observation"][None], 5, axis=0)
    goals = np.repeat(obs["desired_goal"][None], 5, axis=0)
    want = GCSLAgent.from_config(tr.model.eval(), tr.cfg).act(frames, goals, horizon=4, keys=keys)[0]
    np.testing.assert_array_equal(agent.act(frames, goals, keys=keys)[0], want)  # keyed draws: the same actions
    assert agent.act(obs["observation"], obs["desired_goal"][0], keys=2) == (int(want[2]), False)
    assert isinstance(load_agent(tmp_path / "gcsl" / "checkpoint.pt"), GCSLAgent)
    assert isinstance(load_agent(tmp_path / "glamor", plan_width=3), Agent)
    with pytest.raises(ValueError, match=r"holds a glamor run, not a gcsl one: load it with glamor.agent.Agent.load"):
        GCSLAgent.load(tmp_path / "glamor")
    with pytest.raises(ValueError, match=r"\['plan_width'\]: GCSLAgent does not read these settings.* it reads the "
                       r"config fields .*; \['plan_width'\] is read by glamor.agent.Agent \(glamor runs\)$"):
        GCSLAgent.load(tmp_path / "gcsl", plan_width=3)  # GLAMOR's planner setting
    with pytest.raises(ValueError, match=r"gcsl_time=False \(the model has True\): fixed by the checkpoint"):
        load_agent(tmp_path / "gcsl", gcsl_time=False)
    with pytest.raises(FileNotFoundError, match="holds no complete checkpoint"):
        GCSLAgent.load(tmp_path)
    Image.fromarray(obs["observation"][-1]).save(tmp_path / "now.png")
    Image.fromarray(obs["desired_goal"][0]).save(tmp_path / "goal.png")
    out = subprocess.run([sys.executable, "-m", "glamor", "plan", str(tmp_path / "gcsl"), "--frames",
                          str(tmp_path / "now.png"), "--goal", str(tmp_path / "goal.png"), "--horizon", "3"],
                         capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert out.returncode == 0, out.stderr[-3000:]
    stack = np.repeat(obs["observation"][-1:], tr.model.frame_stack, axis=0)  # as `glamor plan` fills the stack
    want = GCSLAgent.load(tmp_path / "gcsl").act(stack, obs["desired_goal"], horizon=3)[0]  # a fresh agent's draw
    assert json.loads(out.stdout) == {"action": want, "policy": "gcsl", "mode": "sample", "steps_left": 3}
    example = Path(__file__).resolve().parents[1] / "examples" / "closed_loop.py"  # a user's loop, on a GCSL run
    out = subprocess.run([sys.executable, str(example), str(tmp_path / "gcsl"), "--episodes", "2"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.count("used every step") == 2 and "/2 goals reached" in out.stdout and "decisions/s, GCSL, sample" in out.stdout


def test_gcsl_acting_names_what_is_wrong_with_its_input():
    agent = GCSLAgent(small_policy(stack=2))
    obs, goal = np.zeros((3, 2, *HW), np.uint8), np.zeros((3, 1, *HW), np.uint8)
    cases = [
        ((obs[0, :1], goal[0]), r"one observation must be the model's \(S, H, W\) = \(2, 22, 22\)"),
        ((np.zeros((*HW, 3), np.uint8), goal[0]), "an RGB image"),
        ((obs[0], np.zeros((2, *HW), np.uint8)), r"takes one goal of shape \(22, 22\) or \(1, 22, 22\)"),
        ((obs.astype(np.float32) / 255, goal), r"obs must be uint8, got torch.float32 \(frames hold 0..255"),
        ((obs, goal[:2]), "obs and goal must have the same batch size, got 3 and 2"),
        ((None, goal), "obs must be uint8 frames .* got NoneType"),
        ((obs[:, :, :20], goal), r"obs must have shape \(P, 2, 22, 22\), got \(3, 2, 20, 22\)"),
        ((obs[0, 0], goal[0]), r"obs must be uint8 frames \(S, H, W\) or a batch"),
    ]
    for (o, g), match in cases:
        with pytest.raises(ValueError, match=match):
            agent.act(o, g, horizon=3)
    with pytest.raises(ValueError, match="policy must be a GCSLPolicy, got GlamorModel"):
        from glamor.model import GlamorModel

        GCSLAgent(GlamorModel(4, 1, HW, (4, 8), 16, 16, 8))
    with pytest.raises(ValueError, match=r"model sizes must be ints >= 1, got \{'num_actions': 0\}"):
        GCSLPolicy(0, 1, HW)
    with pytest.raises(ValueError, match="image_hw must be"):
        GCSLPolicy(4, 1, (22,))
    with pytest.raises(ValueError, match="time_conditioned must be True or False, got 1"):
        GCSLPolicy(4, 1, HW, time_conditioned=1)
    actions, stop = agent.act(torch.from_numpy(obs), torch.from_numpy(goal), horizon=3)  # tensors, as arrays
    np.testing.assert_array_equal(actions, agent.act(obs, goal, horizon=3)[0])


@pytest.mark.parametrize("mode", ["greedy", "sample"])
def test_gcsl_acting_refuses_non_finite_logits_as_glamors_agent_refuses_non_finite_scores(mode):
    """NaN weights gave action 0 for every observation (argmax of NaNs; a NaN cumulative sum is
    never below u), silently, where glamor.agent.Agent refuses the NaN plan scores."""
    agent = GCSLAgent(small_policy(stack=2), mode=mode)
    obs, goal = np.zeros((3, 2, *HW), np.uint8), np.zeros((3, 1, *HW), np.uint8)
    with torch.no_grad():
        agent.model.head.bias[1] = float("nan")
    with pytest.raises(ValueError, match="policy's action logits are not finite"):
        agent.act(obs, goal)


def test_gcsl_needs_in_process_environments():
    """Refused by the config, naming the field, before any environment or worker starts (and so
    before `glamor compare` trains the GLAMOR runs it lists ahead of GCSL's)."""
    with pytest.raises(ValueError, match=r"vector='async' \(must be .*'sync' with algo='gcsl'"):
        preset("debug", progress=False, algo="gcsl", vector="async", num_envs=1)
    assert preset("debug", algo="glamor", vector="async").vector == "async"


def test_cli_train_and_eval_gcsl(tmp_path):
    run = tmp_path / "gcsl"
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    cmd = [sys.executable, "-m", "glamor"]
    out = subprocess.run(cmd + ["train", "--preset", "debug", "--algo", "gcsl", "--run-dir", str(run),
                                "--set", "total_env_steps=200", "--set", "eval_episodes=4", "--set", "progress=false",
                                "--set", "torch_threads=1", "--set", "plan_width=7", "--set", "lstm_hidden=48"],
                         cwd=tmp_path, capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr
    # said, not refused: GLAMOR's planner and LSTM settings (the policy has no LSTM)
    assert "note: --set lstm_hidden, plan_width: a gcsl run's agent and network do not read them" in out.stderr
    saved = json.loads((run / "eval.json").read_text())
    assert saved["algo"] == "gcsl" and set(saved["sets"]["eval"]) == {"goal_digest", "gcsl", "random"}
    assert "success_rate_no_prior" not in saved and saved["sets"]["eval"]["gcsl"]["mean_steps"] == 6.0
    header = (run / "metrics.csv").read_text().splitlines()[0].split(",")
    assert "losses/total" in header
    out = subprocess.run(cmd + ["eval", str(run), "--set", "plan_width=3", "--set", "planner=sample"],
                         cwd=tmp_path, capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 2 and "--set plan_width, planner: a gcsl run's agent does not read them" in out.stderr
    out = subprocess.run(cmd + ["eval", str(run), "--set", "gcsl_act=sample", "--videos", "1"],
                         cwd=tmp_path, capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "| eval | GCSL |" in out.stdout and "| eval | random |" in out.stdout
    reports = run / "eval-gcsl_act=sample"  # a --set evaluation keeps its reports apart
    rows = list(csv.DictReader(open(reports / "eval_goals.csv")))
    assert {r["policy"] for r in rows} == {"gcsl", "random"}
    # GCSL's own plot: its curve in GCSL's colour, no GLAMOR series
    colours = {c for _, c in Image.open(reports / "success.png").convert("RGB").getcolors(1 << 16)}
    assert SERIES["gcsl"][0][2] in colours and SERIES["glamor"][1][2] not in colours
    gifs = sorted((reports / "videos").glob("*.gif"))
    assert [g.name for g in gifs] == ["eval_goal000.gif"]  # --videos 1: GCSL's rollout of the first goal
    steps = int(next(r for r in rows if r["policy"] == "gcsl" and r["goal_id"] == "0")["steps"])
    assert Image.open(gifs[0]).n_frames >= 2 and steps == 6
    from glamor.agent import Agent

    with pytest.raises(ValueError, match=r"holds a gcsl run, not a glamor one: load it with glamor.gcsl.GCSLAgent.load"):
        Agent.load(run)


@pytest.mark.parametrize("mode", ["greedy", "sample"])
def test_gcsl_goal_cache_encodes_an_episodes_goals_once_and_acts_as_without_it(mode):
    """Closed-loop collection with the goal encoding cached: the same episodes as without it,
    and the goal encoder runs once per goal batch (then again after a training step)."""
    cfg = preset("debug", progress=False)
    env = make_envs(cfg, 1)[0]
    torch.manual_seed(3)
    policy = GCSLPolicy.from_config(cfg, env.action_space.n, env.frame_stack, env.frame_shape).eval()
    with torch.no_grad():
        for p in policy.parameters():
            p.normal_(0, 0.5)  # actions that depend on the inputs
    calls = []
    policy.goal_encoder.register_forward_hook(lambda mod, args, out: calls.append(args[0].shape[0]))
    runs = {}
    for cached in (True, False):
        envs = make_envs(cfg, 3)
        obs = [env.reset(seed=i)[0] for i, env in enumerate(envs)]
        agent = GCSLAgent(policy, mode=mode, seed=1, cache_goals=cached)
        calls.clear()
        runs[cached] = collect_closed_loop(envs, obs, agent, 0.3, np.random.default_rng(0))
        runs[cached, "calls"] = list(calls)
    for (f1, a1), (f2, a2) in zip(runs[True], runs[False]):
        assert np.array_equal(f1, f2) and np.array_equal(a1, a2)
    assert len({int(a) for _, acts in runs[True] for a in acts}) > 1
    assert runs[True, "calls"] == [3] and runs[False, "calls"] == [3] * cfg.episode_length
    agent = GCSLAgent(policy, mode=mode, seed=1)
    o, g = np.zeros((2, env.frame_stack, *env.frame_shape), np.uint8), np.zeros((2, 1, *env.frame_shape), np.uint8)
    calls.clear()
    agent.act(o, g), agent.act(o, g)
    policy.loss(torch.as_tensor(o), torch.as_tensor(g), torch.tensor([[1, 4], [2, 4]]))["loss"].backward()
    assert calls == [2, 2]  # the first act and the loss's forward; the second act hit the cache
    torch.optim.SGD(policy.parameters(), lr=0.1).step()
    agent.act(o, g)
    assert calls == [2, 2, 2]  # encoded again after the step


def test_gcsl_goal_cache_does_not_carry_an_encoding_across_autocast():
    torch.manual_seed(0)
    policy = small_policy(seed=2)
    with torch.no_grad():
        for p in policy.parameters():
            p.normal_(0, 0.5)
    g = torch.Generator().manual_seed(0)
    obs = torch.randint(0, 256, (64, 1, *HW), dtype=torch.uint8, generator=g).numpy()
    goal = torch.randint(0, 256, (64, 1, *HW), dtype=torch.uint8, generator=g).numpy()
    cached, fresh = GCSLAgent(policy, mode="sample", seed=1), GCSLAgent(policy, mode="sample", seed=1, cache_goals=False)
    for autocast in (True, False, True):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            assert np.array_equal(cached.policy_actions(obs, goal), fresh.policy_actions(obs, goal))
    cache, goal_t = GoalEncodingCache(), torch.as_tensor(goal)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert cache(policy, goal_t).dtype == torch.bfloat16
    with torch.no_grad():
        assert torch.equal(cache(policy, goal_t), policy.encode_goal(goal_t))  # float32, not the bf16 one


def test_gcsl_acting_checks_the_steps_left_and_its_cache_flag():
    """A time-conditioned agent took 2.7 as 2 and "3" as 3, and a plain one any horizon at all;
    `cache_goals="no"` (truthy) kept caching on. Each is named now, as glamor.agent.Agent does."""
    obs, goal = np.zeros((4, 1, *HW), np.uint8), np.zeros((4, 1, *HW), np.uint8)
    for policy in (small_policy(time_conditioned=True), small_policy()):
        agent = GCSLAgent(policy)
        for bad, match in ((2.7, "must be an integer >= 1, or one per observation, got 2.7"),
                           ("3", "must be an integer >= 1, or one per observation, got '3'"),
                           ([1, 2], r"must be one integer or 4 \(one per observation\), got shape \(2,\)"),
                           (0, "must be >= 1, got 0"), ([3, 0, 1, 2], "must be >= 1")):
            with pytest.raises(ValueError, match=r"horizon \(the steps left\) " + match):
                agent.act(obs, goal, horizon=bad)
        assert agent.act(obs, goal, horizon=[3, 1, 2, 5])[0].shape == (4,)  # one per observation
        assert agent.act(obs, goal, horizon=np.int32(3))[0].shape == (4,)
    for bad in ("no", 1):
        with pytest.raises(ValueError, match=f"cache_goals must be True or False, got {bad!r}"):
            GCSLAgent(small_policy(), cache_goals=bad)


def test_sampled_gcsl_actions_do_not_reuse_the_sampling_planners_draws_of_the_same_seed_and_keys():
    """A comparison evaluates GLAMOR and GCSL runs of one seed with the same (goal, step) keys: a
    sampling GCSL policy's draws must not be the sampling planner's first candidate's, or the two
    methods' evaluations share their randomness (uniform policies here: equal draws, equal actions)."""
    from glamor.agent import Agent
    from glamor.model import GlamorModel

    policy = small_policy().eval()
    torch.manual_seed(0)
    model = GlamorModel(4, 1, HW, encoder_channels=(4, 8), embed_dim=16, mix_hidden=16, lstm_hidden=8).eval()
    with torch.no_grad():
        for head in (policy.head, model.idm.head, model.prior.head):
            head.weight.zero_()
            head.bias.zero_()  # every action equally likely to both
    obs = np.zeros((64, 1, *HW), np.uint8)
    keys = np.arange(64) * 7 + 3
    gcsl, _ = GCSLAgent(policy, mode="sample", seed=5).act(obs, obs, keys=keys)
    first, _ = Agent(model, method="sample", width=1, seed=5).act(obs, obs, horizon=3, keys=keys)
    assert len(set(gcsl.tolist())) == 4 and len(set(first.tolist())) == 4
    assert int((gcsl == first).sum()) < 32  # about 16 for independent draws; 64 when they are the same


def test_glamor_plan_notes_the_horizon_as_a_gcsl_policy_reads_it(tmp_path, capsys):
    """`glamor plan --horizon` past the training episodes' length noted "its scores for plans past k
    actions are extrapolation" for a GCSL run too, which has no plans and no scores, and for a
    plain GCSL policy, which does not read the steps left at all."""
    from glamor.cli import main

    k = preset("debug").episode_length
    for time_conditioned in (False, True):
        run = tmp_path / f"gcsl_time={time_conditioned}"
        tr = saved_run(run, preset("debug", progress=False, learning_starts=0, algo="gcsl",
                                   gcsl_time=time_conditioned))
        Image.fromarray(np.zeros(tr.model.image_hw, np.uint8)).save(tmp_path / "frame.png")
        plan = lambda *a, run=run: main(["plan", str(run), "--frames", str(tmp_path / "frame.png"),  # noqa: E731
                                "--goal", str(tmp_path / "frame.png"), *a])
        actions = []
        for horizon in (k, k + 3):
            assert plan("--horizon", str(horizon)) == 0
            out, err = capsys.readouterr()
            actions.append(json.loads(out)["action"])
            assert "scores" not in err and "plans past" not in err, err
            if time_conditioned:
                assert ("extrapolation" in err) == (horizon > k), err
                if horizon > k:
                    assert f"its action for {horizon} steps left is extrapolation" in err, err
            else:
                assert "not time-conditioned (gcsl_time=false), so it does not read the steps left" in err, err
        if not time_conditioned:
            assert actions[0] == actions[1]  # what the note says
        assert plan() == 0 and capsys.readouterr().err == ""  # the default horizon: nothing to note
