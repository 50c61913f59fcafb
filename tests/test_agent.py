import json

import numpy as np
import pytest
import torch
from conftest import random_images, saved_run, tiny_model

from glamor.agent import Agent
from glamor.config import preset
from glamor.envs import make
from glamor.evaluate import run_episodes
from glamor.goals import GoalSet
from glamor.planning import Plan


def _closed_loop_example():
    """examples/closed_loop.py, imported as a module (its main(argv) runs the loop)."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "examples" / "closed_loop.py"
    spec = importlib.util.spec_from_file_location("closed_loop", path)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    return example


def test_closed_loop_acts_with_first_action_and_stops_on_single_action_plans():
    m = tiny_model(num_actions=3)
    agent = Agent(m, width=27, backend="reference")
    obs, goal = random_images(4, 2, (24, 24)).numpy(), random_images(4, 1, (24, 24), 1).numpy()
    plan = agent.plan(obs, goal, horizon=3)
    actions, stop = agent.act(obs, goal, horizon=3)
    assert actions.tolist() == plan.actions[:, 0].tolist()
    assert stop.tolist() == (plan.lengths == 1).tolist()


def test_plan_and_open_loop_default_to_the_agents_horizon_as_act_does():
    """act(obs, goal) planned at the agent's horizon while plan and open_loop required one."""
    m = tiny_model(num_actions=3)
    obs, goal = random_images(2, 2, (24, 24)).numpy(), random_images(2, 1, (24, 24), 1).numpy()
    agent = Agent(m, width=9, backend="reference", horizon=4)
    plan = agent.plan(obs, goal)
    want = agent.plan(obs, goal, horizon=4)
    assert plan.actions.shape == (2, 4) and torch.equal(plan.actions, want.actions)
    assert torch.equal(plan.lengths, want.lengths)
    assert agent.open_loop(obs, goal).shape == (2, 4) and agent.act(obs, goal)[0].tolist() == want.actions[:, 0].tolist()
    assert agent.plan(obs, goal, horizon=2).actions.shape == (2, 2)  # (a given one still wins)
    bare = Agent(m, width=9, backend="reference")
    for call in (bare.plan, bare.open_loop, bare.act):
        with pytest.raises(ValueError, match=rf"{call.__name__}\(\) needs a horizon \(this agent has no default one\)"):
            call(obs, goal)


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
    # the padding is uniform over the actions and fresh on every call (plans of one action here)
    short = Plan(torch.tensor([[2, -1, -1, -1, -1]] * 6), torch.ones(6, dtype=torch.int64), torch.zeros(6))
    agent.plan = lambda *args, **kwargs: short
    seqs = np.stack([agent.open_loop(obs, goal, horizon=5) for _ in range(100)])  # (100, 6, 5)
    assert (seqs[:, :, 0] == 2).all()
    freq = np.bincount(seqs[:, :, 1:].ravel(), minlength=3) / seqs[:, :, 1:].size
    assert np.abs(freq - 1 / 3).max() < 0.04, freq
    assert len({s.tobytes() for s in seqs}) == 100  # no two calls pad alike


def test_epsilon_greedy_rate():
    agent = Agent(tiny_model(num_actions=4), width=2)
    actions = np.zeros(20000, dtype=np.int64)
    out = agent.epsilon_greedy(actions, 0.4)
    # a random action is 0 with probability 1/4, so 0.4 * 3/4 of the actions change
    assert abs((out != 0).mean() - 0.3) < 0.02
    assert (agent.epsilon_greedy(actions, 0.0) == 0).all()


def test_epsilon_greedy_gives_int64_actions_whatever_integers_it_is_given():
    """uint64 actions (or an empty list) came back as float64: numpy promotes uint64 with the
    int64 random actions to floats, which an environment's step refuses."""
    agent = Agent(tiny_model(num_actions=4), width=2)
    for actions in (np.array([1, 2, 3], np.uint64), np.array([1, 2, 3], np.uint8), np.array([1, 2, 3], np.int32), []):
        out = agent.epsilon_greedy(actions, 0.5)
        assert out.dtype == np.int64 and out.shape == np.shape(actions), (actions, out)
    env = make("glamor/GridWorld-v0", 6)
    env.reset(seed=0)
    env.step(agent.epsilon_greedy(np.array([1], np.uint64), 0.5)[0])


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


def test_agent_loads_from_a_checkpoint_and_acts_without_an_environment(tmp_path):
    import torch

    tr = saved_run(tmp_path)
    agent = Agent.load(tmp_path)  # a run directory: its newest checkpoint
    for name, t in tr.model.state_dict().items():
        assert torch.equal(t, agent.model.state_dict()[name]), name
    assert agent.horizon == tr.cfg.episode_length and not agent.model.training
    env = make(tr.cfg.env_id, tr.cfg.episode_length, **tr.cfg.env_kwargs)
    obs = env.reset(seed=3)[0]
    action, stop = agent.act(obs["observation"], obs["desired_goal"][0])  # (S, H, W), (H, W)
    assert isinstance(action, int) and isinstance(stop, bool) and 0 <= action < agent.num_actions
    batch_actions, batch_stop = Agent.from_config(tr.model.eval(), tr.cfg).act(
        obs["observation"][None], obs["desired_goal"][None])
    assert (action, stop) == (int(batch_actions[0]), bool(batch_stop[0]))
    wide = Agent.load(tmp_path / "checkpoint.pt", plan_width=3, use_prior=False)
    assert wide.width == 3 and wide.use_prior is False


def test_glamor_plan_prints_a_plan_from_image_files(tmp_path):
    import json
    import os
    import subprocess
    import sys

    from PIL import Image

    tr = saved_run(tmp_path)
    env = make(tr.cfg.env_id, tr.cfg.episode_length, **tr.cfg.env_kwargs)
    obs = env.reset(seed=3)[0]
    Image.fromarray(obs["observation"][-1]).save(tmp_path / "now.png")
    Image.fromarray(obs["desired_goal"][0]).resize((40, 40)).save(tmp_path / "goal.png")  # resized back
    out = subprocess.run([sys.executable, "-m", "glamor", "plan", str(tmp_path), "--frames", str(tmp_path / "now.png"),
                          "--goal", str(tmp_path / "goal.png"), "--horizon", "4"],
                         capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert out.returncode == 0, out.stderr
    plan = json.loads(out.stdout)
    assert 1 <= plan["length"] <= 4 and len(plan["actions"]) == plan["length"]
    assert all(0 <= a < tr.num_actions for a in plan["actions"])


def test_the_configs_clip_reaches_the_agents_plans():
    m = tiny_model(num_actions=3)
    obs, goal = random_images(4, 2, (24, 24)).numpy(), random_images(4, 1, (24, 24), 1).numpy()
    cfg = preset("debug", plan_width=27, backend="reference", clip_logq=-1.0)
    plan = Agent.from_config(m, cfg).plan(obs, goal, horizon=3)
    want = m.plan(torch.from_numpy(obs), torch.from_numpy(goal), width=27, horizon=3, clip_logq=-1.0, backend="reference",
                  method=cfg.planner, seed=cfg.seed)
    assert plan.actions.tolist() == want.actions.tolist() and np.allclose(plan.scores, want.scores)
    unclipped = Agent.from_config(m, cfg.replace(clip_logq=None)).plan(obs, goal, horizon=3)
    assert not np.allclose(plan.scores, unclipped.scores)  # the clip changed something
    with pytest.raises(ValueError, match="clip_logq"):
        preset("debug", clip_logq=0.5)



def test_agent_load_and_act_name_bad_input(tmp_path):
    import numpy as np
    import torch

    saved_run(tmp_path)
    with pytest.raises(ValueError, match=r"unknown setting\(s\) \['plan_wdth'\]; plan_wdth \(did you mean "
                                         r"plan_width\?\): overrides are"):  # the closest setting named
        Agent.load(tmp_path, plan_wdth=3)
    (tmp_path / "notes.pt").write_text("{}")
    with pytest.raises(ValueError, match="notes.pt is not a glamor checkpoint"):
        Agent.load(tmp_path / "notes.pt")
    nan = torch.load(tmp_path / "checkpoint.pt", weights_only=False)
    next(iter(nan["model"].values())).fill_(float("nan"))
    torch.save(nan, tmp_path / "nan.pt")
    with pytest.raises(ValueError, match="nan.pt holds NaN or infinite weights"):
        Agent.load(tmp_path / "nan.pt")
    torch.save({"weights": 1}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a glamor run's checkpoint"):
        Agent.load(tmp_path / "other.pt")
    agent = Agent.load(tmp_path)
    s, (h, w) = agent.model.frame_stack, agent.model.image_hw
    frames = np.zeros((s, h, w), np.uint8)
    with pytest.raises(ValueError, match=r"takes one goal of shape"):
        agent.act(frames, np.zeros((h, w, 3), np.uint8))  # an RGB goal
    with pytest.raises(ValueError, match=r"an RGB image\? frames are grayscale"):
        agent.act(np.zeros((h, w, 3), np.uint8), np.zeros((h, w, 3), np.uint8))
    with pytest.raises(ValueError, match=r"obs must be uint8 frames \(S, H, W\) or a batch"):
        agent.act(0, 0)
    with pytest.raises(ValueError, match=r"goal must be uint8 frames \(a numpy array or a tensor\), got NoneType"):
        agent.act(frames, None)
    with pytest.raises(ValueError, match=r"obs must be uint8, got torch.float64 \(frames hold 0..255; from floats"):
        agent.act(frames / 255.0, np.zeros((h, w), np.uint8))  # an image scaled to [0, 1]
    action, stop = agent.act(frames, np.zeros((1, h, w), np.uint8))
    assert 0 <= action < agent.num_actions
    goal = np.zeros((1, h, w), np.uint8)  # tensors (on the model's device or not) act like arrays
    assert agent.act(torch.from_numpy(frames), torch.from_numpy(goal)) == agent.act(frames, goal)
    with pytest.raises(ValueError, match=r"\['batch_size', 'lr'\]: Agent does not read these settings \(a glamor run's agent; "
                       r"they are training, evaluation or another algorithm's settings\)"):
        Agent.load(tmp_path, lr=0.1, batch_size=3, plan_width=4)
    with pytest.raises(ValueError, match=r"\['gcsl_act'\] is read by glamor.gcsl.GCSLAgent \(gcsl runs\)$"):
        Agent.load(tmp_path, gcsl_act="greedy")
    with pytest.raises(ValueError, match=r"reads the config fields \['backend', 'clip_logq', 'gamma', 'plan_width', "
                       r"'planner', 'seed', 'use_prior'\] .*a plan's length is the horizon argument \(horizon=N\)"):
        Agent.load(tmp_path, episode_length=7)
    with pytest.raises(ValueError, match=r"torch_threads: call torch.set_num_threads\(N\) in your process"):
        Agent.load(tmp_path, torch_threads=1)
    with pytest.raises(ValueError, match="planner and method name one setting"):
        Agent.load(tmp_path, planner="beam", method="sample")
    short = Agent.load(tmp_path, planner="sample", gamma=0.5, horizon=3)
    assert short.horizon == 3  # act's default plan length; the config keeps the run's episode length
    assert short.config.horizon == short.config.episode_length == agent.config.horizon
    by_argument = Agent.load(tmp_path, method="sample", width=5)  # the config says what the agent does
    assert (by_argument.method, by_argument.width) == ("sample", 5)
    assert (by_argument.config.planner, by_argument.config.plan_width) == ("sample", 5)
    with pytest.raises(ValueError, match=r"lstm_hidden=8 \(the model has \d+\): fixed by the checkpoint"):
        Agent.load(tmp_path, lstm_hidden=8)
    assert Agent.load(tmp_path, lstm_hidden=agent.model.idm.cell.hidden_size).width == agent.width  # unchanged: fine


def test_damaged_checkpoints_and_configs_are_named(tmp_path):
    from glamor.config import Config

    saved_run(tmp_path)
    state = torch.load(tmp_path / "checkpoint.pt", weights_only=False)
    torch.save({**state, "config": {**state["config"], "future_field": 1}}, tmp_path / "newer.pt")
    with pytest.raises(ValueError, match=r"newer.pt's config has fields this version of glamor does not know: "
                                         r"\['future_field'\]"):
        Agent.load(tmp_path / "newer.pt")
    torch.save({**state, "config": "debug"}, tmp_path / "str.pt")
    with pytest.raises(ValueError, match="str.pt's config must hold a dict of config fields, got a str"):
        Agent.load(tmp_path / "str.pt")
    torch.save({**state, "model_meta": {"frame_stack": 1}}, tmp_path / "meta.pt")
    with pytest.raises(ValueError, match="meta.pt's model_meta must name num_actions, frame_stack and image_hw"):
        Agent.load(tmp_path / "meta.pt")
    (tmp_path / "bad.json").write_text("{bad")
    with pytest.raises(ValueError, match="bad.json is not valid JSON"):
        Config.load(tmp_path / "bad.json")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            Agent.load(tmp_path, device=torch.device("cuda"))  # a torch.device, not only a string


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(method="bogus"), "method must be one of"),
        (dict(backend="gpu"), "backend must be one of"),
        (dict(width=0), "width must be an int in"),
        (dict(width=2**30, horizon=50), r"width \(plan_width\) must be at most 715,827,882 for beam search over 3 "
                                        r"actions at horizon 50 \(each step scores width x actions candidates"),  # not at the first plan
        (dict(horizon=0), "horizon must be an int in"),
        (dict(gamma=0.0), "gamma must be in"),
        (dict(clip_logq=1.0), "clip_logq must be None or a number <= -0.001"),
        (dict(use_prior="no"), "use_prior must be True or False"),
        (dict(seed=1.5), r"seed must be an int in \[0, 4611686018427387904\), got 1.5"),
        (dict(seed=2**64), "seed must be an int in"),
        (dict(plan_seed=-1), "plan_seed must be an int in"),
        (dict(cache_goals="yes"), "cache_goals must be True or False"),
        (dict(model=None), "model must be a GlamorModel, got NoneType"),
    ],
)
def test_agent_arguments_are_checked_when_it_is_made(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Agent(**{"model": tiny_model(), **kwargs})


def test_a_wrapped_model_is_named_with_the_attribute_that_holds_it():
    """torch.compile's and DataParallel's wrappers are not the model: the error says which attribute is."""
    m = tiny_model()
    with pytest.raises(ValueError, match=r"got OptimizedModule that wraps one: pass model\._orig_mod"):
        Agent(torch.compile(m))
    with pytest.raises(ValueError, match=r"got DataParallel that wraps one: pass model\.module"):
        Agent(torch.nn.DataParallel(m))
    with pytest.raises(ValueError, match=r"got ImpalaEncoder$"):
        Agent(m.obs_encoder)


def test_a_beam_wider_than_int32_allows_runs_where_n_to_the_horizon_caps_it():
    """Beam search runs at min(width, n**horizon): a width past (2**31 - 1) // n is fine where
    that caps it (few actions, a short horizon), and refused by name, before any encoder runs,
    where it does not."""
    m = tiny_model(num_actions=3)
    obs, goal = random_images(2, 2, (24, 24)).numpy(), random_images(2, 1, (24, 24), 1).numpy()
    wide = Agent(m, width=2**31 - 1, horizon=4, backend="reference")  # 3**4 = 81 plans: exhaustive
    assert _plans_equal(wide.plan(obs, goal, horizon=4), Agent(m, width=81, backend="reference").plan(obs, goal, 4))
    assert _plans_equal(m.plan(torch.from_numpy(obs), torch.from_numpy(goal), width=2**31 - 1, horizon=4,
                               backend="reference"), wide.plan(obs, goal, horizon=4))
    unset = Agent(m, width=2**30)  # no default horizon: checked at each plan's
    encodes = _counting_goal_encoder(m)
    with pytest.raises(ValueError, match=r"must be at most 715,827,882 for beam search over 3 actions at horizon 30"):
        unset.act(obs, goal, horizon=30)
    with pytest.raises(ValueError, match=r"at most 715,827,882 .* at horizon 30"):
        m.plan(torch.from_numpy(obs), torch.from_numpy(goal), width=2**30, horizon=30)
    assert encodes == []


def test_a_sampler_may_be_wider_than_a_beam():
    assert Agent(tiny_model(), method="sample", width=2**30).width == 2**30  # its bound is per candidate


def test_epsilon_must_be_a_probability():
    agent = Agent(tiny_model(num_actions=3))
    for bad in ("0.5", -0.1, 1.5, float("nan")):
        with pytest.raises(ValueError, match="epsilon must be a probability in"):
            agent.epsilon_greedy(np.zeros(4, np.int64), bad)
    assert (agent.epsilon_greedy(np.zeros(4, np.int64), 0.0) == 0).all()
    for bad in (np.array([3]), np.array([-1]), np.array([1.0])):  # not an action of this agent
        with pytest.raises(ValueError, match=r"actions must be integers in \[0, 3\)"):
            agent.epsilon_greedy(bad, 0.5)


def test_glamor_plan_names_damaged_truncated_and_16_bit_images(tmp_path):
    """Images glamor plan cannot use are named with the reason (no traceback from PIL's decoder,
    no 16-bit frame clipped to a few gray levels)."""
    from PIL import Image

    from glamor.cli import load_gray

    gradient = np.tile(np.arange(0, 256, 8, dtype=np.uint8), (8, 1))  # (8, 32)
    Image.fromarray(gradient).save(tmp_path / "ok.png")
    data = (tmp_path / "ok.png").read_bytes()
    (tmp_path / "truncated.png").write_bytes(data[: len(data) // 2])
    noise = np.random.default_rng(0).integers(0, 256, (30, 30, 3), dtype=np.uint8)
    Image.fromarray(noise).save(tmp_path / "noise.png")
    damaged = bytearray((tmp_path / "noise.png").read_bytes())
    damaged[36] ^= 0xFF  # the image data's chunk length: PIL's decoder raises SyntaxError("broken PNG file")
    (tmp_path / "damaged.png").write_bytes(bytes(damaged))
    Image.fromarray(gradient.astype(np.uint16) * 256).save(tmp_path / "deep.png")  # 16-bit
    assert np.array_equal(load_gray(str(tmp_path / "ok.png"), (8, 32)), gradient)
    for name in ("truncated.png", "damaged.png"):
        with pytest.raises(ValueError, match=f"cannot read image {tmp_path / name}: "):
            load_gray(str(tmp_path / name), (8, 32))
    with pytest.raises(ValueError, match=r"deep.png: it holds I;16 pixels \(16-bit or float\); frames are 8-bit"):
        load_gray(str(tmp_path / "deep.png"), (8, 32))


def test_glamor_plan_notes_conversions_and_names_unreadable_images(tmp_path):
    import os
    import subprocess
    import sys

    from PIL import Image

    saved_run(tmp_path)
    Image.new("RGB", (30, 20), (10, 200, 30)).save(tmp_path / "rgb.png")
    (tmp_path / "bad.png").write_text("not an image")
    run = lambda *a: subprocess.run([sys.executable, "-m", "glamor", "plan", str(tmp_path), *a],  # noqa: E731
                                    capture_output=True, text=True, timeout=300, env={**os.environ})
    out = run("--frames", str(tmp_path / "rgb.png"), "--goal", str(tmp_path / "rgb.png"))
    assert out.returncode == 0, out.stderr
    assert "converted RGB to grayscale" in out.stderr and "resized 20x30" in out.stderr
    assert "not writable" not in out.stderr
    out = run("--frames", str(tmp_path / "bad.png"), "--goal", str(tmp_path / "rgb.png"))
    assert out.returncode == 2 and "cannot read image" in out.stderr and "Traceback" not in out.stderr
    out = run("--frames", str(tmp_path / "rgb.png"), "--goal", str(tmp_path / "rgb.png"), "--horizon", "0")
    assert out.returncode == 2 and "--horizon: must be at least 1" in out.stderr
    trained = Agent.load(tmp_path).horizon
    out = run("--frames", str(tmp_path / "rgb.png"), "--goal", str(tmp_path / "rgb.png"), "--horizon", str(trained))
    assert out.returncode == 0 and "extrapolation" not in out.stderr
    out = run("--frames", str(tmp_path / "rgb.png"), "--goal", str(tmp_path / "rgb.png"), "--horizon",
              str(trained + 1))
    assert out.returncode == 0 and f"longer than the episodes the model learned from ({trained} steps)" in out.stderr
    out = run("--frames", str(tmp_path / "rgb.png"), "--goal", str(tmp_path / "rgb.png"), "--set", "horizon=1")
    assert out.returncode == 0 and json.loads(out.stdout)["length"] == 1  # --set horizon is the plan's horizon


def _counting_goal_encoder(model):
    calls = []
    model.goal_encoder.register_forward_hook(lambda mod, args, out: calls.append(args[0].shape[0]))
    return calls


def _plans_equal(a: Plan, b: Plan) -> bool:
    return all(torch.equal(x, y) for x, y in zip((a.actions, a.lengths, a.scores), (b.actions, b.lengths, b.scores)))


@pytest.mark.parametrize("method", ["beam", "sample"])
def test_goal_cache_encodes_a_goal_batch_once_and_plans_exactly_as_without_it(method):
    m = tiny_model(num_actions=3)
    calls = _counting_goal_encoder(m)
    cached = Agent(m, method=method, width=9, seed=5)
    fresh = Agent(m, method=method, width=9, seed=5, cache_goals=False)
    goal = random_images(4, 1, (24, 24), 1).numpy()
    for step in range(4):  # a closed loop: new observations, the same goals
        obs = random_images(4, 2, (24, 24), 10 + step).numpy()
        assert _plans_equal(cached.plan(obs, goal, horizon=4), fresh.plan(obs, goal, horizon=4))
    assert calls == [4] + [4] * 4  # the cached agent's one encoding, then the uncached agent's four
    calls.clear()
    goal2 = goal.copy()
    goal2[2, 0, 5, 5] ^= 1  # one pixel of one goal: a new batch
    for g in (goal2, goal2[:3], goal2[:3]):  # then fewer plans (episodes that stopped)
        obs = random_images(len(g), 2, (24, 24), 20).numpy()
        assert _plans_equal(cached.plan(obs, g, horizon=4), fresh.plan(obs, g, horizon=4))
    assert calls == [4, 4, 3, 3, 3]  # cached: 4, 3 (the repeat of the 3 is a hit); uncached: all three


def test_goal_cache_sees_weight_changes():
    m = tiny_model(num_actions=3)
    calls = _counting_goal_encoder(m)
    cached = Agent(m, method="sample", width=9, seed=5)
    obs, goal = random_images(2, 2, (24, 24)).numpy(), random_images(2, 1, (24, 24), 1).numpy()

    def check(encodes: bool):
        calls.clear()
        fresh = Agent(m, method="sample", width=9, seed=5, cache_goals=False, plan_seed=cached._plan_seed)
        assert _plans_equal(cached.plan(obs, goal, horizon=4), fresh.plan(obs, goal, horizon=4))
        assert calls == ([2, 2] if encodes else [2])

    check(True)
    check(False)
    for fused in (False, True):  # a training update between two plans (a fused step leaves versions alone)
        opt = torch.optim.AdamW(m.parameters(), lr=0.1, fused=fused)
        m.loss(torch.as_tensor(obs), torch.as_tensor(goal), torch.tensor([[0, 3], [1, 3]]))["loss"].backward()
        opt.step()
        check(True)
        check(False)
    m.double().float()  # new storages: the cache holds the old ones, so no address comes back
    check(True)
    calls.clear()
    with pytest.raises(ValueError, match="horizon"):  # argument checks come before any encoder runs
        cached.plan(obs, goal, horizon=0)
    assert calls == []
    m.load_state_dict(tiny_model(num_actions=3, seed=1).state_dict())  # weights loaded in place
    check(True)
    check(False)
    with torch.no_grad():
        m.goal_encoder.fc.bias.data.add_(1.0)  # a write through .data: not seen, as documented
    calls.clear()
    cached.plan(obs, goal, horizon=4)
    assert calls == []
    cached.forget_goals()
    check(True)


def test_a_model_made_under_inference_mode_acts_uncached():
    with torch.inference_mode():  # its weights carry no version counters to key a cache on
        m = tiny_model(num_actions=3)
        calls = _counting_goal_encoder(m)
        obs, goal = random_images(2, 2, (24, 24)).numpy(), random_images(2, 1, (24, 24), 1).numpy()
        cached = Agent(m, method="sample", width=9, seed=5)
        fresh = Agent(m, method="sample", width=9, seed=5, cache_goals=False)
        for _ in range(2):
            assert _plans_equal(cached.plan(obs, goal, horizon=4), fresh.plan(obs, goal, horizon=4))
    assert calls == [2, 2, 2, 2]


def test_plan_refuses_a_goal_rep_that_does_not_fit():
    m = tiny_model(num_actions=3)
    obs, goal = random_images(2, 2, (24, 24)), random_images(2, 1, (24, 24), 1)
    rep = m.encode_goal(goal).detach()
    assert _plans_equal(m.plan(obs, goal, width=9, horizon=3, goal_rep=rep), m.plan(obs, goal, width=9, horizon=3))
    with pytest.raises(ValueError, match=r"goal_rep must be a tensor of shape \(2, 16\)"):
        m.plan(obs, goal, width=9, horizon=3, goal_rep=rep[:1])
    with pytest.raises(ValueError, match="goal_rep must be torch.float32"):
        m.plan(obs, goal, width=9, horizon=3, goal_rep=rep.double())


@pytest.mark.parametrize("planner", ["beam", "sample"])
def test_closed_loop_example_reaches_what_the_evaluator_reaches(tmp_path, planner):
    """examples/closed_loop.py (a user's own loop) takes the same steps and gets the same verdicts
    as glamor.evaluate.run_episodes on the goals the environment draws at those seeds (the
    sampling planner too: both loops key each step's draws by episode * k + step)."""
    import subprocess
    import sys

    import torch

    tr = saved_run(tmp_path)
    torch.manual_seed(0)
    with torch.no_grad():  # weights under which the agent stops itself after 1, 2 or 6 steps
        for p in tr.model.parameters():
            p.normal_(0, 1.0)
        tr.model.idm.head.bias[tr.model.num_actions] += 4.0  # END
    tr.save()
    example = _closed_loop_example()
    path = example.__file__
    cfg, seeds = tr.cfg, [10_000, 10_001, 10_002, 10_003]
    env = make(cfg.env_id, cfg.episode_length, **cfg.env_kwargs)
    agent = Agent.load(tmp_path, planner=planner)
    mine = [example.run_episode(agent, env, s, cfg.episode_length, episode=i) for i, s in enumerate(seeds)]
    goals = []
    for s in seeds:
        env.reset(seed=s)
        goals.append(env.goal)
    gs = GoalSet(np.stack([g.frame for g in goals]), np.stack([g.labels for g in goals]),
                 np.zeros((len(seeds), 1)), np.array(seeds), env.label_ranges)
    ref = run_episodes([env, make(cfg.env_id, cfg.episode_length, **cfg.env_kwargs)], gs,
                       Agent.load(tmp_path, planner=planner))
    assert [r["steps"] for r in mine] == ref.steps.tolist() and len(set(ref.steps.tolist())) > 1
    assert [r["success"] for r in mine] == ref.success.tolist()
    out = subprocess.run([sys.executable, str(path), str(tmp_path), "--episodes", "2"], capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.count("episode ") == 2 and "/2 goals reached" in out.stdout
    bad = subprocess.run([sys.executable, str(path), str(tmp_path), "--episodes", "0"], capture_output=True, text=True,
                         timeout=300)
    assert bad.returncode != 0 and "--episodes must be >= 1" in bad.stderr
    missing = subprocess.run([sys.executable, str(path), str(tmp_path / "nothing")], capture_output=True,
                             text=True, timeout=300)
    assert missing.returncode == 2 and "error: no checkpoint at" in missing.stderr and "Traceback" not in missing.stderr


def test_closed_loop_example_judges_with_the_runs_label_ranges(tmp_path, monkeypatch, capsys):
    """On an environment whose label ranges are estimated (puck_env, Atari, Control), the example
    judged success with the placeholder ranges its __init__ declares (ones for the puck: a 0.1
    tolerance where the evaluator's estimate gives about 0.07), so its verdicts were not the
    evaluator's."""
    from pathlib import Path

    import glamor.envs
    from glamor.goals import label_ranges_for

    examples = Path(__file__).resolve().parents[1] / "examples"
    monkeypatch.syspath_prepend(str(examples))
    cfg = preset("debug", env_id="puck_env:Puck-v0", env_kwargs={}, progress=False, learning_starts=0)
    saved_run(tmp_path, cfg)
    example = _closed_loop_example()
    made, real_make = [], glamor.envs.make
    monkeypatch.setattr(glamor.envs, "make", lambda *a, **kw: made.append(real_make(*a, **kw)) or made[-1])
    assert example.main([str(tmp_path), "--episodes", "1"]) == 0
    assert "/1 goals reached" in capsys.readouterr().out
    (env,) = made
    judge = label_ranges_for(real_make(cfg.env_id, cfg.episode_length), cfg, progress=False)
    assert not np.array_equal(judge, np.ones(2))
    np.testing.assert_array_equal(env.label_ranges, judge)
    # Where they are not cached (a run copied from another machine) their estimate took minutes on a
    # control task without a sign of life: it shows a progress bar (and nothing where cached).
    assert "label ranges" not in capsys.readouterr().err
    monkeypatch.setenv("GLAMOR_CACHE", str(tmp_path / "empty-cache"))
    made.clear()
    assert example.main([str(tmp_path), "--episodes", "1"]) == 0
    assert "label ranges" in capsys.readouterr().err
    np.testing.assert_array_equal(made[0].label_ranges, judge)


def test_closed_loop_example_names_an_environment_that_no_longer_fits_the_model(tmp_path, monkeypatch, capsys):
    """An environment edited since its run trained (an action added) was stepped by the trained
    agent without a word: the new action never taken, the verdicts of another problem. glamor
    eval refuses such an environment; the example names it too."""
    import gymnasium as gym

    import glamor.envs

    saved_run(tmp_path)
    example = _closed_loop_example()
    real_make = glamor.envs.make

    def with_a_fifth_action(*args, **kwargs):
        env = real_make(*args, **kwargs)
        env.action_space = gym.spaces.Discrete(5)
        return env

    monkeypatch.setattr(glamor.envs, "make", with_a_fifth_action)
    with pytest.raises(SystemExit) as e:
        example.main([str(tmp_path), "--episodes", "1"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and ("now gives {'actions': 5, 'frame_stack': 1, 'frames': (14, 14)}, but the model "
                                  "was trained on {'actions': 4, 'frame_stack': 1, 'frames': (14, 14)}") in err, err
    monkeypatch.setattr(glamor.envs, "make", real_make)
    assert example.main([str(tmp_path), "--episodes", "1"]) == 0


def test_closed_loop_example_names_a_negative_first_seed(tmp_path, capsys):
    """--first-seed -1 ended in gymnasium's traceback at the first reset."""

    saved_run(tmp_path)
    example = _closed_loop_example()
    with pytest.raises(SystemExit) as e:
        example.main([str(tmp_path), "--first-seed", "-1"])
    assert e.value.code == 2 and "--first-seed must be >= 0, got -1" in capsys.readouterr().err


def test_loading_a_checkpoint_file_names_a_run_left_aside(tmp_path):
    run = tmp_path / "r"
    run.mkdir()
    saved_run(run)
    (tmp_path / ".r.replaced-999999999").mkdir()  # a killed --overwrite's old run (no such process)
    for target in (run, run / "checkpoint.pt"):
        with pytest.warns(RuntimeWarning, match=r"replaced-999999999 holds the run an interrupted `--overwrite`") as w:
            Agent.load(target)
        assert w[0].filename == __file__  # the warning points at the call that loaded


@pytest.mark.parametrize("cache_goals", [True, False])
def test_planning_runs_in_float32_under_a_callers_autocast(cache_goals):
    """The planners read float32 encodings and tables: under torch.autocast (bfloat16) acting
    failed ("goal_rep must be torch.float32 ... got torch.bfloat16"), model.plan too ("h0 must be
    float32"); now autocast is off inside planning, so the plans are those made without it."""
    m = tiny_model(num_actions=3)
    obs, goal = random_images(4, 2, (24, 24), 3).numpy(), random_images(4, 1, (24, 24), 4).numpy()
    plain = Agent(m, width=9, cache_goals=cache_goals).plan(obs, goal, horizon=3)
    agent = Agent(m, width=9, cache_goals=cache_goals)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert _plans_equal(agent.plan(obs, goal, horizon=3), plain)
        assert _plans_equal(m.plan(torch.from_numpy(obs), torch.from_numpy(goal), width=9, horizon=3), plain)
        scores = m.score(torch.from_numpy(obs), torch.from_numpy(goal), plain.actions, plain.lengths)
    assert torch.equal(scores, m.score(torch.from_numpy(obs), torch.from_numpy(goal), plain.actions, plain.lengths))
    assert _plans_equal(agent.plan(obs, goal, horizon=3), plain)  # the cache's encoding (made under it) is float32


def test_numpy_views_torch_cannot_share_are_copied_without_a_warning():
    """np.flip / [::-1] views (negative strides) were refused with torch's message, and
    read-only arrays (np.asarray of a PIL image) warned "not writable"; both are copied now."""
    agent = Agent(tiny_model(num_actions=3), width=9)
    obs, goal = random_images(3, 2, (24, 24), 5).numpy(), random_images(3, 1, (24, 24), 6).numpy()
    want = agent.act(np.ascontiguousarray(obs[::-1]), np.flip(goal, axis=3).copy(), horizon=3)
    read_only = goal.copy()
    read_only.flags.writeable = False
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # torch's "The given NumPy array is not writable" warning
        got = agent.act(obs[::-1], np.flip(goal, axis=3), horizon=3)
        agent.act(obs, read_only, horizon=3)
        agent.act(obs[0], read_only[0, 0], horizon=3)
    for a, b in zip(got, want):
        np.testing.assert_array_equal(a, b)


def test_frames_on_the_meta_device_and_a_partly_double_model_are_named():
    m = tiny_model(num_actions=3)
    meta = torch.zeros(2, 2, 24, 24, dtype=torch.uint8, device="meta")
    goal = torch.zeros(2, 1, 24, 24, dtype=torch.uint8)
    for call in (lambda: m.plan(meta, goal, width=4, horizon=2), lambda: Agent(m, width=4).act(meta, goal, horizon=2)):
        with pytest.raises(ValueError, match="obs is on the meta device, which holds shapes but no frames"):
            call()
    with pytest.raises(ValueError, match="goal is on the meta device"):
        m.plan(goal.new_zeros(2, 2, 24, 24), goal.to("meta"), width=4, horizon=2)
    m.prior.double()  # one part: the planners' check looked at the IDM's weights only
    with pytest.raises(ValueError, match="the planners run in float32 and this model's weights are torch.float32 "
                                         r"and torch.float64: plan with a float32 copy \(model.float\(\)\)"):
        m.plan(goal.new_zeros(2, 2, 24, 24), goal, width=4, horizon=2)


def test_an_empty_batch_acts_with_an_empty_list_of_keys():
    """A loop whose episodes have all ended passes keys=[] (numpy reads [] as float64: it was
    refused as "keys must be integers")."""
    agent = Agent(tiny_model(num_actions=3), method="sample", width=9)
    empty_obs, empty_goal = np.zeros((0, 2, 24, 24), np.uint8), np.zeros((0, 1, 24, 24), np.uint8)
    actions, stop = agent.act(empty_obs, empty_goal, horizon=3, keys=[])
    assert actions.shape == stop.shape == (0,)
    with pytest.raises(TypeError, match="keys must be integers, got float64"):
        agent.act(np.zeros((1, 2, 24, 24), np.uint8), np.zeros((1, 1, 24, 24), np.uint8), horizon=3, keys=[1.5])


def test_closed_loop_example_says_when_the_environment_ended_an_episode(tmp_path, monkeypatch, capsys):
    """An environment that ends an episode early (an Atari life loss, a Control task's termination)
    was reported as '2 steps, used every step': the agent neither stopped nor used the k steps."""

    import glamor.envs

    saved_run(tmp_path)
    example = _closed_loop_example()
    real_make = glamor.envs.make

    def make_ending(*args, **kwargs):  # the environment ends every episode after its second step
        env = real_make(*args, **kwargs)
        step = env.step

        def ending_step(action):
            obs, reward, terminated, truncated, info = step(action)
            return obs, reward, terminated or env._t == 2, truncated, info

        env.step = ending_step
        return env

    monkeypatch.setattr(glamor.envs, "make", make_ending)
    monkeypatch.setattr(Agent, "act", lambda self, obs, goal, horizon=None, keys=None: (0, False))  # never stops
    assert example.main([str(tmp_path), "--episodes", "2"]) == 0
    out = capsys.readouterr().out
    assert out.count("2 steps, the environment ended it") == 2 and "used every step" not in out, out


def test_a_planning_call_that_raises_leaves_the_agents_draws_as_they_were(monkeypatch):
    """The plan seed and count moved on before the plan ran, so a call that raised (a Ctrl-C in a
    notebook, a refused plan) changed every later draw of a seeded agent."""
    m = tiny_model(num_actions=3)
    obs, goal = random_images(2, 2, (24, 24)).numpy(), random_images(2, 1, (24, 24), 1).numpy()
    interrupted, clean = (Agent(m, method="sample", width=9, seed=5) for _ in range(2))
    real_plan = m.plan

    def ctrl_c(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(m, "plan", ctrl_c)
    with pytest.raises(KeyboardInterrupt):
        interrupted.act(obs, goal, horizon=4)
    monkeypatch.setattr(m, "plan", real_plan)
    assert interrupted.state_dict()["plan_seed"] == clean.state_dict()["plan_seed"]
    assert interrupted.plans_made == clean.plans_made == 0
    assert _plans_equal(interrupted.plan(obs, goal, horizon=4), clean.plan(obs, goal, horizon=4))


@pytest.mark.parametrize("algo", ["glamor", "gcsl"])
def test_an_agent_that_has_acted_pickles_and_acts_on_as_the_original(algo):
    """The goal cache's entry holds the weights' untyped storages: pickling an agent that had
    acted (torch.save, a multiprocessing worker) raised at load until the cache dropped it."""
    import copy
    import io
    import pickle

    from glamor.gcsl import GCSLAgent, GCSLPolicy

    if algo == "glamor":
        agent = Agent(tiny_model(num_actions=3), method="sample", width=9, seed=5)
    else:
        torch.manual_seed(0)
        agent = GCSLAgent(GCSLPolicy(3, 2, (24, 24), encoder_channels=(4, 8), embed_dim=16, mix_hidden=16),
                          mode="sample", seed=5)
    obs, goal = random_images(3, 2, (24, 24)).numpy(), random_images(3, 1, (24, 24), 1).numpy()
    agent.act(obs, goal, horizon=4)  # fills the goal cache
    buf = io.BytesIO()
    torch.save(agent, buf)
    buf.seek(0)
    copies = [pickle.loads(pickle.dumps(agent)), copy.deepcopy(agent), torch.load(buf, weights_only=False)]
    expected = [agent.act(obs, goal, horizon=4)[0].tolist() for _ in range(3)]
    for c in copies:
        assert c._goals._entry is None  # its entry keyed on the original's storages
        assert [c.act(obs, goal, horizon=4)[0].tolist() for _ in range(3)] == expected


def test_a_run_trained_with_the_native_backend_loads_with_the_reference_where_there_is_none(tmp_path, monkeypatch):
    """`backend` is a setting of the machine a run trained on: a run trained with backend='native'
    loaded where glamor._C is not built plans with the reference (the same plans) and says so,
    instead of failing at its first plan; an explicit backend='native' still refuses, naming the way out."""
    import warnings

    from glamor import ops
    from glamor.agent import load_agent

    saved_run(tmp_path / "run")
    state = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=False)
    state["config"]["backend"] = "native"
    torch.save(state, tmp_path / "native.pt")
    frames = random_images(3, 1, (14, 14)).numpy()
    goals = random_images(3, 1, (14, 14), 1).numpy()
    if ops.available():  # where it can, it plans with the backend the run names, silently
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert Agent.load(tmp_path / "native.pt").backend == "native"
    monkeypatch.setattr(ops, "_IMPORT_ERROR", ImportError("not built here"))  # a machine without glamor._C
    for load in (Agent.load, load_agent):
        with pytest.warns(RuntimeWarning, match=r"trained with backend='native'.*not built here.*backend='reference'"):
            agent = load(tmp_path / "native.pt")
        assert agent.backend == agent.config.backend == "reference"
        chosen = Agent.load(tmp_path / "native.pt", backend="reference")
        assert agent.act(frames, goals, 4)[0].tolist() == chosen.act(frames, goals, 4)[0].tolist()
    refusing = Agent.load(tmp_path / "native.pt", backend="native")
    with pytest.raises(RuntimeError, match=r"not built here.*backend='auto' or 'reference' plans the same"):
        refusing.act(frames, goals, 4)


def test_a_run_loads_and_builds_in_float32_under_a_float64_default_dtype(tmp_path):
    """A caller's torch.set_default_dtype(torch.float64) made Agent.load build a float64 model
    (the checkpoint's float32 weights widened into it), which the planners refuse; a run's
    network (`from_config`, training's too) is float32, from the same initial draws."""
    from glamor.gcsl import GCSLPolicy
    from glamor.model import GlamorModel

    cfg = preset("debug", progress=False)
    saved_run(tmp_path)
    frames, goals = random_images(3, 1, (14, 14)).numpy(), random_images(3, 1, (14, 14), 1).numpy()
    want = {method: Agent.load(tmp_path, method=method).act(frames, goals, 4)[0].tolist()
            for method in ("beam", "sample")}
    built = {}
    for default in (torch.float32, torch.float64):
        torch.set_default_dtype(default)
        try:
            for method in ("beam", "sample"):
                agent = Agent.load(tmp_path, method=method)
                assert {p.dtype for p in agent.model.parameters()} == {torch.float32}
                assert agent.act(frames, goals, 4)[0].tolist() == want[method]
            for cls in (GlamorModel, GCSLPolicy):
                torch.manual_seed(0)
                built[cls, default] = cls.from_config(cfg, 4, 1, (14, 14)).state_dict()
        finally:
            torch.set_default_dtype(torch.float32)
    for cls in (GlamorModel, GCSLPolicy):
        a, b = built[cls, torch.float32], built[cls, torch.float64]
        assert all(b[k].dtype == a[k].dtype and torch.equal(a[k], b[k]) for k in a)


def test_threads_that_build_networks_at_once_leave_a_float64_default_as_it_was():
    """torch's default dtype is process-wide: a build (float32_weights) that ended while another
    thread's was under way restored float64 under it (that build then made float64 weights), and
    the other's end restored the float32 it had found, so the caller's float64 default was lost.
    Builds now take turns. Thread a waits (at most a second) for b to be inside before it ends."""
    import threading

    from glamor.model import GlamorModel
    from glamor.nn.goal_conditioned import float32_weights

    a_in, b_in, a_out = threading.Event(), threading.Event(), threading.Event()
    seen = {}

    def a():
        with float32_weights():
            a_in.set()
            b_in.wait(timeout=1.0)
        a_out.set()

    def b():
        a_in.wait(timeout=10)
        with float32_weights():
            b_in.set()
            a_out.wait(timeout=10)
            seen["inside"] = torch.get_default_dtype()
            seen["built"] = {p.dtype for p in GlamorModel.from_config(preset("debug"), 4, 1, (14, 14)).parameters()}

    torch.set_default_dtype(torch.float64)
    try:
        threads = [threading.Thread(target=a), threading.Thread(target=b)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        seen["after"] = torch.get_default_dtype()
    finally:
        torch.set_default_dtype(torch.float32)
    assert seen == {"inside": torch.float32, "built": {torch.float32}, "after": torch.float64}


def test_closed_loop_example_names_an_environment_it_cannot_build(tmp_path, capsys):
    """A run on an environment of your own, looped without its module on PYTHONPATH: the example
    stops with the reason (put the module on PYTHONPATH), as glamor eval does, not a traceback."""

    import torch

    saved_run(tmp_path)
    state = torch.load(tmp_path / "checkpoint.pt", weights_only=False)
    state["config"] = {**state["config"], "env_id": "glamor_not_a_module_xyz:Thing-v0", "env_kwargs": {}}
    torch.save(state, tmp_path / "checkpoint.pt")
    example = _closed_loop_example()
    with pytest.raises(SystemExit) as e:
        example.main([str(tmp_path), "--episodes", "1"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "cannot import module 'glamor_not_a_module_xyz'" in err and "PYTHONPATH" in err


@pytest.mark.parametrize("frame_shape", [(40, 52), (80, 104)])
def test_glamor_plan_makes_an_atari_screen_the_frame_training_saw(tmp_path, monkeypatch, frame_shape):
    """`glamor plan` resized every picture bilinearly, while Atari training crops the screen's top
    and bottom rows and area-resizes it: a saved Seaquest screen came out ~2.7 gray levels off on
    average, pixels the model never learned from. A 210x160 screen of an Atari run is now made into
    exactly the frame an episode shows when its last two screens are that screen."""
    pytest.importorskip("ale_py")
    from PIL import Image

    import glamor.agent
    from glamor.cli import load_gray, main
    from glamor.model import GlamorModel

    env = make("glamor/Seaquest-v0", 8, frame_shape=frame_shape)
    env.reset(seed=3)
    for action in (1, 3, 11, 4, 2):  # fire and move: a screen with more than the start's
        env.step(action)
    screens = []
    for _ in range(2):
        env.step(1)
        screen = env.ale.getScreenGrayscale()
        env._screens[:] = screen  # an episode whose last two screens are this picture
        env._processed = None
        screens.append((screen, env._frame().copy()))
    assert not np.array_equal(screens[0][0], screens[1][0])
    for i, (screen, want) in enumerate(screens):
        Image.fromarray(screen).save(tmp_path / f"s{i}.png")
        got = load_gray(str(tmp_path / f"s{i}.png"), frame_shape, "glamor/Seaquest-v0")
        assert got.dtype == np.uint8 and np.array_equal(got, want)
        bilinear = np.asarray(Image.fromarray(screen).resize(frame_shape[::-1], Image.BILINEAR))
        assert not np.array_equal(bilinear, want)  # (what plan made of it before)

    cfg = preset("atari_cpu", env_kwargs={"frame_shape": list(frame_shape)}, episode_length=8)
    model = GlamorModel.from_config(cfg, env.action_space.n, env.frame_stack, frame_shape)
    agent = Agent.from_config(model, cfg, width=4)
    agent.config = cfg  # (as load_agent's agent has)
    seen = []
    plan = agent.plan
    monkeypatch.setattr(agent, "plan", lambda obs, goal, **kw: seen.append((obs, goal)) or plan(obs, goal, **kw))
    monkeypatch.setattr(glamor.agent, "load_agent", lambda path, **overrides: agent)
    assert main(["plan", "RUN", "--frames", str(tmp_path / "s0.png"), "--goal", str(tmp_path / "s1.png")]) == 0
    (obs, goal), = seen
    assert obs.shape == (1, env.frame_stack, *frame_shape)
    assert all(np.array_equal(obs[0, s], screens[0][1]) for s in range(env.frame_stack))
    assert np.array_equal(goal[0, 0], screens[1][1])


@pytest.mark.parametrize("scale", [(2, 2), (4, 4), (3, 5)])
def test_glamor_plan_gives_a_frame_saved_scaled_up_back_exactly(tmp_path, scale):
    """A gridworld frame is 22x22, so a picture of one is often saved scaled up for viewing (each
    pixel a block). glamor plan resized it back bilinearly, which blends the blocks at every cell's
    edge: gray levels up to 60 off, ones the model never saw. A picture a whole number of times the
    frame's size is area-resized, giving the frame back exactly."""
    from PIL import Image

    from glamor.cli import load_gray

    env = make("glamor/GridWorldBox-v0", 8)
    env.reset(seed=2)
    for action in (0, 1, 1, 2, 3):
        obs = env.step(action)[0]
    frame = obs["observation"][-1]
    assert len(np.unique(frame)) >= 3  # walls, floor, agent (and the box)
    big = np.repeat(np.repeat(frame, scale[0], axis=0), scale[1], axis=1)
    Image.fromarray(big).save(tmp_path / "big.png")
    for env_id in ("glamor/GridWorldBox-v0", None):
        got = load_gray(str(tmp_path / "big.png"), frame.shape, env_id)
        assert got.dtype == np.uint8 and np.array_equal(got, frame)
    odd = np.asarray(Image.fromarray(frame).resize((frame.shape[1] * 3 + 1, frame.shape[0] * 3 + 1)))
    Image.fromarray(odd).save(tmp_path / "odd.png")  # not a whole multiple: bilinear, as before
    want = np.asarray(Image.fromarray(odd).resize(frame.shape[::-1], Image.BILINEAR))
    assert np.array_equal(load_gray(str(tmp_path / "odd.png"), frame.shape, "glamor/GridWorldBox-v0"), want)
