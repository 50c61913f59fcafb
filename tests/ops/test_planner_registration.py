"""The ops' torch.library registration: schemas, fake implementations, torch.compile, and
the native draws equal glamor.planning.rng bit for bit."""

from __future__ import annotations

import importlib

import pytest
import torch
from planner_cases import assert_identical, random_inputs, random_sequences
from torch._subclasses.fake_tensor import FakeTensorMode

from glamor import ops
from glamor.planning.rng import uniform

pytestmark = [
    pytest.mark.skipif(not ops.available(), reason=f"glamor._C not built: {ops.import_error()}"),
    pytest.mark.filterwarnings(
        "ignore:.*torch.jit.script_method.*:DeprecationWarning"
    ),  # inside opcheck
]


def _args():
    inp = random_inputs(2, 2, 4, 8, seed=0)
    actions, lengths = random_sequences(2, 5, 6, 4, seed=0)
    actions = actions.clamp(0, 3)
    t = inp.tensors()
    return {
        "score_plans": (*t, actions, lengths, 0.99, None),
        "sample_plans": (*t, 16, 6, 3, 0.99, -2.0),
        "beam_search": (*t, 16, 6, 0.9, None),
        "uniform": (7, torch.arange(3).view(3, 1), torch.arange(5).view(1, 5), 2),
    }


def test_import_registers_ops():
    mod = importlib.import_module("glamor._C")
    assert mod.cpu_isa() in ("avx512", "avx2", "scalar")
    for name in ("score_plans", "sample_plans", "beam_search", "uniform"):
        assert hasattr(torch.ops.glamor, name)


@pytest.mark.parametrize("requires_grad", [False, True])
@pytest.mark.parametrize("name", ["score_plans", "sample_plans", "beam_search", "uniform"])
def test_opcheck(name, requires_grad):
    args = _args()[name]
    if requires_grad:  # weights straight from a model: the ops are not differentiable
        args = tuple(
            a.clone().requires_grad_()
            if isinstance(a, torch.Tensor) and a.is_floating_point()
            else a
            for a in args
        )
    torch.library.opcheck(getattr(torch.ops.glamor, name).default, args)
    out = getattr(torch.ops.glamor, name)(*args)
    assert not any(o.requires_grad for o in (out if isinstance(out, tuple) else (out,)))


@pytest.mark.parametrize("name", ["score_plans", "sample_plans", "beam_search"])
def test_fake_tensor_shapes(name):
    args = _args()[name]
    real = getattr(torch.ops.glamor, name)(*args)
    with FakeTensorMode() as mode:
        fake_args = [mode.from_tensor(a) if isinstance(a, torch.Tensor) else a for a in args]
        fake = getattr(torch.ops.glamor, name)(*fake_args)
    real = real if isinstance(real, tuple) else (real,)
    fake = fake if isinstance(fake, tuple) else (fake,)
    assert [(r.shape, r.dtype) for r in real] == [(f.shape, f.dtype) for f in fake]


def test_torch_compile():
    """The ops run inside a compiled graph (fullgraph: no break) and give the eager results."""
    torch._dynamo.reset()
    args = _args()

    def plan_both(gate_table, h0, c0, w_hh, head_w, head_b):
        t = (gate_table, h0, c0, w_hh, head_w, head_b)
        beam = torch.ops.glamor.beam_search(*t, 16, 6, 0.9, None)
        sample = torch.ops.glamor.sample_plans(*t, 16, 6, 3, 0.99, -2.0)
        return beam[2] + sample[2], beam[0], sample[0]

    t = args["beam_search"][:6]
    compiled = torch.compile(plan_both, fullgraph=True)
    assert_identical(compiled(*t), plan_both(*t))


@pytest.mark.parametrize("seed", [0, 1, 2**32 - 1, 2**32, 2**62 + 12345, 2**63 - 1])
def test_uniform_matches_python_bit_for_bit(seed):
    plan = torch.randint(0, 2**32, (7, 1))
    cand = torch.randint(0, 2**32, (1, 300))
    for step in (0, 1, 49, 2**31 - 1):
        assert_identical(ops.uniform(seed, plan, cand, step), uniform(seed, plan, cand, step))


def test_uniform_is_uniform():
    u = ops.uniform(5, torch.arange(10).view(10, 1), torch.arange(10000).view(1, -1), 3)
    assert 0.0 <= float(u.min()) and float(u.max()) < 1.0
    assert abs(float(u.mean()) - 0.5) < 0.005 and abs(float(u.var()) - 1 / 12) < 0.002
