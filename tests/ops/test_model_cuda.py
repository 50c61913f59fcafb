"""A GlamorModel on a GPU, end to end: planning, scoring, a training update and acting with
CUDA tensors (runs only with a GPU, in benchmarks/gpu_check.sh; the op-level comparisons are in
test_planner_cuda.py).

The encoders run on cuDNN, whose convolutions round differently from the CPU's (TF32 too), so a
CUDA model is compared with the CPU planner on the same planning inputs (the model's gate
tables moved to the CPU), not with a CPU copy of the model. GLAMOR_TEST_MODEL_DEVICE=cpu runs
the same checks on the CPU (to check the tests themselves without a GPU).
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from test_planner_cuda import _MISSING

from glamor import planning
from glamor.agent import Agent
from glamor.model import GlamorModel
from glamor.planning.inputs import PlanningInputs

DEV = os.environ.get("GLAMOR_TEST_MODEL_DEVICE", "cuda")
pytestmark = pytest.mark.skipif(DEV == "cuda" and bool(_MISSING), reason=_MISSING or "")

N_ACTIONS, STACK, HW = 18, 4, (80, 104)  # the Atari sizes of the spec


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    m = GlamorModel(N_ACTIONS, STACK, HW).to(DEV).eval()
    with torch.no_grad():  # livelier heads than the initial ones, so plans differ in length
        for lstm in (m.idm, m.prior):
            lstm.head.weight.mul_(8.0)
        m.idm.head.bias[N_ACTIONS] += 2.0  # END: likelier under q than under p
        m.prior.head.bias[N_ACTIONS] -= 1.0
    return m


def _images(P: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    obs = torch.randint(0, 256, (P, STACK, *HW), generator=g, dtype=torch.uint8)
    goal = torch.randint(0, 256, (P, 1, *HW), generator=g, dtype=torch.uint8)
    return obs.to(DEV), goal.to(DEV)


def _on_cpu(inputs: PlanningInputs) -> PlanningInputs:
    return PlanningInputs(*(t.cpu() for t in inputs.tensors()))


@pytest.mark.parametrize("use_prior", [True, False], ids=["prior", "no-prior"])
@pytest.mark.parametrize("method,width", [("beam", 64), ("sample", 200)])
def test_model_plans_on_the_device_as_the_cpu_planner_does(model, method, width, use_prior):
    obs, goal = _images(6, seed=1)
    kw = dict(method=method, width=width, horizon=30, gamma=0.99, seed=7)
    got = model.plan(obs, goal, backend="native", use_prior=use_prior, **kw)
    assert all(t.device.type == obs.device.type for t in got)
    inputs = model.planning_inputs(obs, goal, use_prior)
    want = planning.plan(_on_cpu(inputs), backend="native", **kw)
    assert torch.equal(got.actions.cpu(), want.actions) and torch.equal(got.lengths.cpu(), want.lengths)
    torch.testing.assert_close(got.scores.cpu(), want.scores, rtol=1e-4, atol=1e-4)
    if method == "sample" and use_prior:  # (beam search takes all 30 with the prior, 1 without)
        assert len(set(got.lengths.tolist())) > 1, "the case should exercise END at varied steps"
    rescored = model.score(obs, goal, got.actions, got.lengths, use_prior=use_prior, backend="native")
    torch.testing.assert_close(rescored, got.scores, rtol=1e-4, atol=1e-4)


def test_planning_on_the_device_waits_for_nothing(model):
    """model.plan from frames on the GPU never synchronises with the host: the planning inputs'
    values are checked on the CPU only (planning.on_host refuses what non-finite ones give),
    and the ops neither copy back nor wait."""
    if DEV != "cuda":
        pytest.skip("synchronisation is a GPU matter")
    obs, goal = _images(4, seed=3)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        plans = [model.plan(obs, goal, method=method, width=16, horizon=8, seed=1, backend="native")
                 for method in ("beam", "sample")]
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert all(planning.on_host(p).lengths.min() >= 1 for p in plans)


def test_the_reference_planner_on_the_device_agrees(model):
    obs, goal = _images(3, seed=2)
    kw = dict(method="beam", width=16, horizon=12)
    native, ref = (model.plan(obs, goal, backend=b, **kw) for b in ("native", "reference"))
    assert torch.equal(native.actions, ref.actions) and torch.equal(native.lengths, ref.lengths)
    torch.testing.assert_close(native.scores, ref.scores, rtol=1e-4, atol=1e-4)


def test_a_training_update_on_the_device(model):
    m = GlamorModel(N_ACTIONS, STACK, HW).to(DEV)
    m.load_state_dict(model.state_dict())
    m.train()
    obs, goal = _images(16, seed=3)
    g = torch.Generator().manual_seed(3)
    targets = torch.randint(0, N_ACTIONS, (16, 11), generator=g)
    targets[:, 6] = N_ACTIONS  # END, then PAD
    targets[:, 7:] = N_ACTIONS + 1
    opt = torch.optim.AdamW(m.parameters(), lr=5e-4, weight_decay=0.01)
    before = {k: v.detach().clone() for k, v in m.state_dict().items()}
    losses = m.loss(obs, goal, targets.to(DEV))
    assert all(torch.isfinite(v).all() for v in losses.values())
    losses["loss"].backward()
    grads = [p.grad for p in m.parameters() if p.grad is not None]
    assert len(grads) == len(list(m.parameters())) and all(torch.isfinite(g).all() for g in grads)
    torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0)
    opt.step()
    assert not torch.equal(before["idm.head.weight"], m.state_dict()["idm.head.weight"])
    cpu_model = GlamorModel(N_ACTIONS, STACK, HW)
    cpu_model.load_state_dict({k: v.cpu() for k, v in before.items()})
    with torch.no_grad():
        cpu_loss = cpu_model.train().loss(obs.cpu(), goal.cpu(), targets)["loss"]
    torch.testing.assert_close(losses["loss"].detach().cpu(), cpu_loss, rtol=2e-3, atol=2e-3)  # TF32 convs


def test_an_agent_acts_with_a_model_on_the_device(model):
    obs, goal = _images(4, seed=4)
    obs, goal = obs.cpu().numpy(), goal.cpu().numpy()  # environments hand the agent numpy arrays
    for method in ("beam", "sample"):
        agent = Agent(model, method=method, width=32, horizon=20)
        actions, stop = agent.act(obs, goal)
        assert isinstance(actions, np.ndarray) and actions.dtype == np.int64 and stop.dtype == bool
        assert ((0 <= actions) & (actions < N_ACTIONS)).all()
        plan = agent.open_loop(obs, goal, horizon=20)
        assert plan.shape == (4, 20) and ((0 <= plan) & (plan < N_ACTIONS)).all()
        action, stop_one = agent.act(obs[0], goal[0])
        assert isinstance(action, int) and isinstance(stop_one, bool)


def test_keys_on_the_device_act_and_are_checked(model):
    """Keys as a tensor on the GPU: one observation's went through numpy, which cannot read
    them; out-of-range ones reached the planner unchecked (kept to their low 32 bits)."""
    obs, goal = _images(3, seed=5)
    obs, goal = obs.cpu().numpy(), goal.cpu().numpy()
    agent = Agent(model, method="sample", width=32, horizon=10)
    keys = torch.tensor([4, 5, 6], device=DEV)
    batch, _ = agent.act(obs, goal, keys=keys)
    one, _ = agent.act(obs[1], goal[1], keys=keys[1])  # (the same draws as batch[1]; cuDNN may round otherwise)
    assert ((0 <= batch) & (batch < N_ACTIONS)).all() and 0 <= one < N_ACTIONS
    for bad in (torch.tensor([0, 2**32, 1], device=DEV), torch.tensor([-1, 0, 1], device=DEV)):
        with pytest.raises(ValueError, match=r"keys must be in \[0, 2\*\*32\)"):
            agent.act(obs, goal, keys=bad)


def test_the_goal_cache_plans_as_without_it_on_the_device(model):
    """Goals as numpy arrays (compared on the host) and as device tensors (compared there): the
    cached agent's plans equal the uncached agent's, bitwise, step after step."""
    obs, goal = _images(4, seed=5)
    for goals in (goal.cpu().numpy(), goal):
        cached = Agent(model, method="sample", width=64, horizon=20, seed=3)
        fresh = Agent(model, method="sample", width=64, horizon=20, seed=3, cache_goals=False)
        for step in range(3):
            o = _images(4, seed=10 + step)[0]
            a, b = cached.plan(o, goals, 20), fresh.plan(o, goals, 20)
            assert all(torch.equal(x, y) for x, y in zip((a.actions, a.lengths, a.scores),
                                                         (b.actions, b.lengths, b.scores)))
