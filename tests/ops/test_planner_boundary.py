"""Bad input at the op boundary raises a clear Python exception; never a crash or a hang.

Hand-written cases name each check; a hypothesis fuzzer throws generated calls (valid and
invalid shapes, dtypes, layouts, values and sizes) at all three ops: 100 in the default run,
1,000 in the slow suite.
"""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from planner_cases import random_inputs

from glamor import ops

pytestmark = pytest.mark.skipif(
    not ops.available(), reason=f"glamor._C not built: {ops.import_error()}"
)

NAMES = ("gate_table", "h0", "c0", "w_hh", "head_w", "head_b")


def _tensors(M=2, P=2, n=4, H=8):
    return dict(zip(NAMES, random_inputs(M, P, n, H, seed=0).tensors(), strict=True))


def _call(op, t, **kw):
    g = torch.ops.glamor
    args = [t[k] for k in NAMES]
    if op == "score":
        return g.score_plans(
            *args,
            kw.get("actions", torch.zeros(2, 3, 4, dtype=torch.long)),
            kw.get("lengths", torch.ones(2, 3, dtype=torch.long)),
            kw.get("gamma", 0.99),
            kw.get("clip", None),
        )
    if op == "sample":
        return g.sample_plans(
            *args,
            kw.get("width", 8),
            kw.get("horizon", 5),
            kw.get("seed", 0),
            kw.get("gamma", 0.99),
            kw.get("clip", None),
        )
    return g.beam_search(
        *args, kw.get("width", 8), kw.get("horizon", 5), kw.get("gamma", 0.99), kw.get("clip", None)
    )


def _replace(name, value):
    t = _tensors()
    t[name] = value(t[name]) if callable(value) else value
    return t


TENSOR_CASES = [
    ("gate_table", lambda x: x.double(), TypeError, "gate_table must be Float"),
    ("h0", lambda x: x.half(), TypeError, "h0 must be Float"),
    ("w_hh", lambda x: x.to(torch.int32), TypeError, "w_hh must be Float"),
    ("gate_table", lambda x: x[0], ValueError, "gate_table must have 4 dimensions"),
    ("gate_table", lambda x: torch.cat([x, x, x]), ValueError, "M = 1 (prior off) or 2"),
    (
        "gate_table",
        lambda x: x[..., :-1].contiguous(),
        ValueError,
        "gate_table must be (M, P, n+1, 4H)",
    ),
    ("gate_table", lambda x: x[:, :, :1].contiguous(), ValueError, "n >= 1 actions"),
    ("h0", lambda x: x[:, :1].contiguous(), ValueError, "h0 must have shape [2, 2, 8]"),
    ("c0", lambda x: x[..., :-1].contiguous(), ValueError, "c0 must have shape"),
    (
        "w_hh",
        lambda x: x.transpose(1, 2).contiguous(),
        ValueError,
        "w_hh must have shape [2, 32, 8]",
    ),
    ("head_w", lambda x: x[:, :-1].contiguous(), ValueError, "head_w must have shape [2, 6, 8]"),
    ("head_b", lambda x: x[:1].contiguous(), ValueError, "head_b must have shape [2, 6]"),
    (
        "gate_table",
        lambda x: x.transpose(2, 3).contiguous().transpose(2, 3),
        ValueError,
        "gate_table must be contiguous",
    ),
    (
        "w_hh",
        lambda x: x.transpose(1, 2).contiguous().transpose(1, 2),
        ValueError,
        "w_hh must be contiguous",
    ),
    (
        "head_w",
        lambda x: x.index_fill(2, torch.tensor([3]), math.nan),
        ValueError,
        "head_w has NaN or infinite",
    ),
    (
        "w_hh",
        lambda x: x.index_fill(0, torch.tensor([1]), math.inf),
        ValueError,
        "w_hh has NaN or infinite",
    ),
    (
        "gate_table",
        lambda x: x.index_fill(3, torch.tensor([2]), -2.0**126),  # finite, but inf once scaled
        ValueError,
        "gate_table has NaN or infinite values, or values of magnitude 2^126",
    ),
    (
        "w_hh",
        lambda x: x.index_fill(2, torch.tensor([1]), 1.7e38),
        ValueError,
        "w_hh has NaN or infinite values, or values of magnitude 2^126",
    ),
    (
        "c0",
        lambda x: x.index_fill(2, torch.tensor([0]), -math.inf),
        ValueError,
        "c0 has NaN or infinite",
    ),
    (
        "head_b",
        lambda x: x.index_fill(1, torch.tensor([5]), math.nan),
        ValueError,
        "head_b has NaN or infinite",
    ),
]


@pytest.mark.parametrize("op", ["score", "sample", "beam"])
@pytest.mark.parametrize(
    "name,change,exc,message", TENSOR_CASES, ids=[f"{c[0]}-{c[3]}" for c in TENSOR_CASES]
)
def test_bad_tensors_raise(op, name, change, exc, message):
    with pytest.raises(exc, match=re.escape(message)):
        _call(op, _replace(name, change))


ARG_CASES = [
    ("sample", dict(width=0), "num_samples must be in"),
    ("sample", dict(width=-3), "num_samples must be in"),
    ("sample", dict(horizon=0), "horizon must be in"),
    ("sample", dict(seed=-1), "seed must be in"),
    ("beam", dict(width=0), "width must be in"),
    ("beam", dict(horizon=-1), "horizon must be in"),
    ("beam", dict(width=2**31), "width must be in"),
    ("beam", dict(gamma=0.0), "gamma must be in"),
    ("sample", dict(horizon=2**31 - 2), "GiB of planner workspace"),
    ("sample", dict(width=2**31 - 1, horizon=2**12), "GiB of planner workspace"),  # refused before its chunk list
    ("beam", dict(width=100_000, horizon=2**20), "GiB of planner workspace"),
    ("sample", dict(gamma=1.5), "gamma must be in"),
    ("score", dict(gamma=math.nan), "gamma must be in"),
    ("beam", dict(clip=math.nan), "clip_logq must be a number"),
    ("beam", dict(clip=0.0), r"clip_logq must be None or at most -0.001 .*got 0"),
    ("sample", dict(clip=-1e-4), r"clip_logq must be None or at most -0.001 .*got -0.0001"),
    ("score", dict(clip=math.inf), "clip_logq must be None or at most -0.001"),
    ("beam", dict(gamma=1.0000001), r"gamma must be in \(0, 1\], got 1.0000001"),  # not '1'
    ("beam", dict(width=2**31 // 4), r"width must be in \[1, \(2\*\*31 - 1\) // n = 536870911\]"),
    ("score", dict(actions=torch.full((2, 3, 4), 4)), r"actions must be in \[0, n=4\)"),
    ("score", dict(actions=torch.full((2, 3, 4), -1)), r"actions must be in \[0, n=4\)"),
    ("score", dict(lengths=torch.zeros(2, 3, dtype=torch.long)), r"lengths must be in \[1, L=4\]"),
    ("score", dict(lengths=torch.full((2, 3), 5)), r"lengths must be in \[1, L=4\]"),
    ("score", dict(lengths=torch.ones(2, 4, dtype=torch.long)), "lengths must have shape"),
    (
        "score",
        dict(actions=torch.zeros(3, 3, 4, dtype=torch.long)),
        r"actions must be \(P=2, N, L\)",
    ),
    ("score", dict(actions=torch.zeros(2, 3, dtype=torch.long)), "actions must have 3 dimensions"),
    ("score", dict(actions=torch.zeros(2, 3, 4, dtype=torch.int32)), "actions must be Long"),
    ("score", dict(lengths=torch.ones(2, 3)), "lengths must be Long"),
    (
        "score",
        dict(actions=torch.zeros(2, 4, 3, dtype=torch.long).transpose(1, 2)),
        "actions must be contiguous",
    ),
]


@pytest.mark.parametrize("op,kw,message", ARG_CASES, ids=[f"{c[0]}-{c[2]}" for c in ARG_CASES])
def test_bad_arguments_raise(op, kw, message):
    with pytest.raises((ValueError, TypeError), match=message):
        _call(op, _tensors(), **kw)


@pytest.mark.parametrize(
    "call,exc,message",
    [
        (lambda inp: ops.beam_search(inp, 2.7, 3, 0.99, None), ValueError, r"width must be an int \(int64\), got 2.7"),
        (lambda inp: ops.beam_search(inp, True, 3, 0.99, None), ValueError, "width must be an int"),
        (lambda inp: ops.beam_search(inp, "4", 3, 0.99, None), ValueError, "width must be an int"),
        (lambda inp: ops.beam_search(inp, 4, 2**63, 0.99, None), ValueError, "horizon must be an int"),
        (lambda inp: ops.beam_search(inp, 4, 3, "0.9", None), ValueError, "gamma must be a number"),
        (lambda inp: ops.beam_search(inp, 4, 3, 10**400, None), ValueError, "gamma must be a number in float's range"),
        (lambda inp: ops.beam_search(inp, 4, 3, 0.9, -(10**400)), ValueError,
         "clip_logq must be a number in float's range"),
        (lambda inp: ops.sample_plans(inp, 2**63, 3, 0, 0.99, None), ValueError, "num_samples must be an int"),
        (lambda inp: ops.sample_plans(inp, 4, 3, None, 0.99, None), ValueError, "seed must be an int"),
        (lambda inp: ops.sample_plans(inp, 4, 3, 0, 0.99, "x"), ValueError, "clip_logq must be a number"),
        (lambda inp: ops.sample_plans(inp, 4, 3, 0, 0.99, None, [1, 2]), TypeError,
         "plan_keys must be a torch.Tensor, got list"),
        (lambda inp: ops.score_plans(inp, [[[0]]] * 2, torch.ones(2, 1, dtype=torch.long), 0.99, None), TypeError,
         "actions must be a torch.Tensor, got list"),
        (lambda inp: ops.uniform(0, torch.arange(3), torch.arange(2), 0), ValueError,
         r"plan \(3,\) and candidate \(2,\) must broadcast together"),
        (lambda inp: ops.uniform(0, torch.arange(3), torch.arange(3), 0.5), ValueError, "step must be an int"),
    ],
)
def test_python_wrappers_name_bad_arguments(call, exc, message):
    with pytest.raises(exc, match=message):
        call(random_inputs(2, 2, 4, 8, seed=0))


def test_python_wrappers_take_zero_dim_tensors_and_arrays_as_numbers():
    inp = random_inputs(2, 2, 4, 8, seed=0)
    want = ops.sample_plans(inp, 6, 3, 5, 0.5, -3.0)
    got = ops.sample_plans(inp, torch.tensor(6), np.array(3), torch.tensor(5), torch.tensor(0.5), np.array(-3.0))
    assert all(torch.equal(a, b) for a, b in zip(want, got, strict=True))
    got = ops.beam_search(inp, np.int64(4), torch.tensor(3), np.array(0.5), None)
    assert all(torch.equal(a, b) for a, b in zip(ops.beam_search(inp, 4, 3, 0.5, None), got, strict=True))
    with pytest.raises(ValueError, match=r"width must be an int \(int64\), got 4.0"):
        ops.beam_search(inp, torch.tensor(4.0), 3, 0.9, None)
    with pytest.raises(ValueError, match="gamma must be a number, got tensor"):
        ops.beam_search(inp, 4, 3, torch.tensor([0.9]), None)  # one element, but not 0-d


def test_sequences_of_2_31_minus_1_actions_are_refused_not_scored_as_garbage():
    """L = 2**31 - 1 made the step count L + 1 overflow int32: no step ran and the op returned
    its uninitialised output as scores. L is now bounded like a horizon. The actions tensor is
    16 GiB of address space of which only the first page is written (skipped where the
    allocation is refused)."""
    t = _tensors(P=1)
    try:
        actions = torch.empty((1, 1, 2**31 - 1), dtype=torch.long)
    except RuntimeError:
        pytest.skip("cannot reserve 16 GiB of address space here")
    actions[0, 0, :2] = torch.tensor([1, 2])
    with pytest.raises(ValueError, match=r"actions is too large: .*L < 2\*\*31 - 1"):
        _call("score", t, actions=actions, lengths=torch.full((1, 1), 2))


def test_scoring_ignores_entries_past_each_length():
    t = _tensors()
    actions = torch.full((2, 3, 4), 99)
    actions[..., 0] = 1
    ones = torch.ones(2, 3, dtype=torch.long)
    out = _call("score", t, actions=actions, lengths=ones)
    clean = _call("score", t, actions=torch.ones(2, 3, 1, dtype=torch.long), lengths=ones)
    assert out.shape == (2, 3) and torch.equal(out, clean)  # the same plans, junk or no junk


@pytest.mark.parametrize("op,name", [("score", "gate_table"), ("score", "w_hh"), ("score", "actions"),
                                     ("sample", "h0"), ("sample", "plan_keys"), ("beam", "head_b")])
def test_an_argument_on_the_meta_device_is_named(op, name):
    """One tensor on 'meta' sends the call to the shape-only kernel, which allocated its outputs
    on gate_table's device and returned them unfilled (uninitialised memory as actions)."""
    t = _tensors()
    if name in NAMES:
        t[name] = t[name].to("meta")
    if name == "plan_keys":
        args = [t[k] for k in NAMES] + [8, 5, 0, 0.99, None, torch.zeros(2, dtype=torch.long, device="meta")]
        call = lambda: torch.ops.glamor.sample_plans(*args)  # noqa: E731
    else:
        kw = {"actions": torch.zeros(2, 3, 4, dtype=torch.long, device="meta")} if name == "actions" else {}
        call = lambda: _call(op, t, **kw)  # noqa: E731
    other = "gate_table" if name != "gate_table" else "h0"
    with pytest.raises(ValueError, match=rf"({name} is on meta, gate_table on cpu|{other} is on cpu, {name} on meta)"):
        call()


def test_calls_on_the_meta_device_give_shapes():
    t = {k: v.to("meta") for k, v in _tensors().items()}
    actions, lengths, scores = _call("beam", t, horizon=7)
    assert actions.device.type == "meta" and actions.shape == (2, 7) and scores.shape == (2,)
    out = _call("score", t, actions=torch.zeros(2, 3, 4, dtype=torch.long, device="meta"),
                lengths=torch.ones(2, 3, dtype=torch.long, device="meta"))
    assert out.device.type == "meta" and out.shape == (2, 3)
    with pytest.raises(ValueError, match=r"candidate is on meta, plan on cpu"):
        ops.uniform(0, torch.arange(3), torch.zeros(1, dtype=torch.long, device="meta"), 0)


def test_a_size_the_ops_do_not_take_is_planned_by_the_reference_under_auto():
    """n > 2**20 actions: the ops raise NotImplementedError (as the CUDA ops do for their own
    limits), so plan(backend='auto') runs it on the reference planner, with a warning."""
    from glamor import planning
    from glamor.planning.inputs import PlanningInputs

    n, H = 2**20 + 1, 1
    g = torch.Generator().manual_seed(0)
    inp = PlanningInputs(torch.randn(1, 1, n + 1, 4 * H, generator=g), torch.zeros(1, 1, H), torch.zeros(1, 1, H),
                         torch.randn(1, 4 * H, H, generator=g), torch.randn(1, n + 2, H, generator=g),
                         torch.randn(1, n + 2, generator=g))
    with pytest.raises(NotImplementedError, match=r"too large for the planner ops.*backend='reference'"):
        ops.beam_search(inp, 1, 1, 0.99, None)
    with pytest.warns(RuntimeWarning, match="reference planner: gate_table is too large"):
        got = planning.plan(inp, width=1, horizon=1)
    want = planning.plan(inp, width=1, horizon=1, backend="reference")
    assert torch.equal(got.actions, want.actions) and torch.equal(got.lengths, want.lengths)


def test_the_packed_weights_are_counted_before_they_are_allocated(tmp_path):
    """H = 1 packs each gate row into a vector of W lanes (8 with AVX2, 16 with AVX-512): a 1.1 GB
    gate table would need about 9 GiB packed. The op refuses it by its size, under a 4 GB address
    space limit (before: std::bad_alloc, or 9 GB taken before the refusal)."""
    script = tmp_path / "pack.py"
    script.write_text(
        "import resource, sys, torch\n"
        "from glamor import ops\n"
        "from glamor.planning.inputs import PlanningInputs\n"
        "P, n, H = 70, 2**20, 1\n"
        "inp = PlanningInputs(torch.zeros(1, P, n + 1, 4 * H), torch.zeros(1, P, H), torch.zeros(1, P, H),\n"
        "                     torch.zeros(1, 4 * H, H), torch.zeros(1, n + 2, H), torch.zeros(1, n + 2))\n"
        "resource.setrlimit(resource.RLIMIT_AS, (4 * 2**30, resource.RLIM_INFINITY))\n"
        "try:\n"
        "    ops.beam_search(inp, 1, 1, 0.9, None)\n"
        "except ValueError as e:\n"
        "    print(e)\n"
    )
    env = {**os.environ, "GLAMOR_CPU_ISA": "avx2" if ops.cpu_isa() != "scalar" else "scalar"}
    if env["GLAMOR_CPU_ISA"] == "scalar":
        pytest.skip("the scalar kernels pack with W = 1 (no growth)")
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0 and "GiB of planner workspace" in out.stdout, out.stderr[-2000:]


def test_empty_batches():
    t = {
        k: v[:, :0].contiguous() if k in ("gate_table", "h0", "c0") else v
        for k, v in _tensors().items()
    }
    actions, lengths, scores = _call("beam", t)
    assert actions.shape == (0, 5) and lengths.shape == (0,) and scores.shape == (0,)
    assert _call("sample", t)[0].shape == (0, 5)
    # no plans need no workspace, whatever the horizon (sampling counted 128 candidates' sequences
    # per thread: 512 GiB for this horizon, refused)
    for op in ("beam", "sample"):
        actions, lengths, scores = _call(op, t, width=200, horizon=2**30)
        assert actions.shape == (0, 2**30) and lengths.shape == (0,) and scores.shape == (0,)
    out = _call(
        "score",
        _tensors(),
        actions=torch.zeros(2, 0, 4, dtype=torch.long),
        lengths=torch.zeros(2, 0, dtype=torch.long),
    )
    assert out.shape == (2, 0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_mixed_devices_raise():
    """Tensors on two devices raise (CUDA tensors alone run the CUDA kernels when built)."""
    t = {k: v.cuda() for k, v in _tensors().items()}
    t["h0"] = t["h0"].cpu()
    # the CUDA kernel's device check names h0; a build without the CUDA kernels has none to run
    with pytest.raises((NotImplementedError, ValueError),
                       match=r"h0 must be a CUDA tensor \(this is the CUDA kernel\), got cpu"
                             r"|with arguments from the 'CUDA' backend"):
        _call("beam", t)


# ---- fuzzing ----------------------------------------------------------------------------------


@st.composite
def calls(draw):
    """An op call with random sizes and values: half of them valid, the others with one
    thing wrong (a tensor's dtype, shape, rank, layout or values, or a scalar argument)."""
    fault = draw(st.sampled_from(["none"] * 4 + ["tensor"] * 2 + ["sizes", "argument"]))
    M = draw(st.sampled_from([0, 3]) if fault == "sizes" else st.sampled_from([1, 2]))
    P = draw(st.integers(0, 3))
    n = draw(st.integers(0 if fault == "sizes" else 1, 6))
    H = draw(st.integers(0 if fault == "sizes" else 1, 9))
    g = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    scale = draw(st.sampled_from([0.0, 1e-3, 0.3, 1.0, 10.0, 1e3, 1e30]))
    shapes = {
        "gate_table": (M, P, n + 1, 4 * H),
        "h0": (M, P, H),
        "c0": (M, P, H),
        "w_hh": (M, 4 * H, H),
        "head_w": (M, n + 2, H),
        "head_b": (M, n + 2),
    }
    t = {k: torch.randn(*s, generator=g) * scale for k, s in shapes.items()}
    if fault == "tensor":
        k = draw(st.sampled_from(NAMES))
        kind = draw(st.sampled_from(["dtype", "shape", "layout", "nan", "inf", "rank"]))
        x = t[k]
        if kind == "dtype":
            x = x.to(draw(st.sampled_from([torch.float64, torch.float16, torch.int64])))
        elif kind == "shape":
            x = torch.randn(*(max(d + draw(st.integers(-1, 1)), 0) for d in x.shape), generator=g)
        elif kind == "layout" and x.dim() >= 2 and x.shape[-1] > 1 and x.shape[-2] > 1:
            x = x.transpose(-1, -2).contiguous().transpose(-1, -2)
        elif kind in ("nan", "inf") and x.numel():
            x = (
                x.flatten()
                .index_fill(
                    0,
                    torch.tensor([draw(st.integers(0, x.numel() - 1))]),
                    math.nan if kind == "nan" else -math.inf,
                )
                .view(x.shape)
            )
        elif kind == "rank":
            x = x.unsqueeze(0) if draw(st.booleans()) else x.flatten()
        if not _is_changed(x, t[k]):  # a fault that changed nothing (an empty tensor, a size-1 transpose)
            fault = "none"
        t[k] = x
    op = draw(st.sampled_from(["score", "sample", "beam"]))
    kw = dict(
        width=draw(st.integers(1, 40)),
        horizon=draw(st.integers(1, 12)),
        seed=draw(st.integers(0, 2**63 - 1)),
        gamma=draw(st.sampled_from([0.99, 1.0, 0.5, 1e-30])),
        clip=draw(st.sampled_from([None, None, -2.0, -1e-3, -math.inf])),
    )
    used = {
        "score": ["gamma", "clip", "sequences"],
        "sample": ["width", "horizon", "seed", "gamma", "clip"],
        "beam": ["width", "horizon", "gamma", "clip"],
    }[op]
    name = draw(st.sampled_from(used)) if fault == "argument" else None
    if name not in (None, "sequences"):
        kw[name] = draw(
            {
                "width": st.integers(-(2**40), 0) | st.integers(2**31, 2**62),
                "horizon": st.integers(-(2**40), 0) | st.integers(2**31, 2**62),
                "seed": st.integers(-(2**63), -1),
                "gamma": st.sampled_from([0.0, -1.0, 1.5, math.nan, math.inf]),
                "clip": st.sampled_from([math.nan, 0.0, -1e-4, math.inf]),
            }[name]
        )
    if op == "score":
        N, L = draw(st.integers(0, 5)), draw(st.integers(1, 6))
        actions = torch.randint(0, max(n, 1), (P, N, L), generator=g)
        lengths = torch.randint(1, L + 1, (P, N), generator=g)
        if name == "sequences":
            what = draw(st.sampled_from(["token", "length", "plans"])) if N and P else "plans"
            if what == "token":
                actions[draw(st.integers(0, P - 1)), draw(st.integers(0, N - 1)), 0] = draw(
                    st.sampled_from([-1, n, 2**40])
                )
            elif what == "length":
                lengths[draw(st.integers(0, P - 1)), draw(st.integers(0, N - 1))] = draw(
                    st.sampled_from([0, -1, L + 1])
                )
            else:
                actions = torch.zeros(P + 1, N, L, dtype=torch.long)
        kw["actions"], kw["lengths"] = actions, lengths
    return op, t, kw, n, fault


def _is_changed(x: torch.Tensor, original: torch.Tensor) -> bool:
    """Whether a tensor fault left something the ops must refuse: another dtype, shape or rank,
    a non-contiguous layout, or a NaN/inf value."""
    return (x.dtype != original.dtype or x.shape != original.shape or not x.is_contiguous()
            or not torch.isfinite(x.double()).all())


def _check_call(op, t, kw, n, fault):
    try:
        out = _call(op, t, **kw)
    except (ValueError, TypeError) as e:
        assert str(e), "exceptions must say what is wrong"
        event(f"{op}: raised {type(e).__name__}")
        assert fault != "none", f"a valid call raised {type(e).__name__}: {e}"
        return
    event(f"{op}: ran")
    assert fault == "none", f"a call with a bad {fault} was accepted"
    P = t["gate_table"].shape[1]
    if op == "score":
        assert out.shape == kw["lengths"].shape and out.dtype == torch.float32
        return
    actions, lengths, scores = out
    horizon = kw["horizon"]
    assert actions.shape == (P, horizon) and lengths.shape == (P,) and scores.shape == (P,)
    for p in range(P):
        L = int(lengths[p])
        if L == 0:  # only when no plan ever finished with a finite score (overflowing weights)
            assert op == "beam" and not math.isfinite(scores[p].item()), (lengths, scores)
            continue
        assert 1 <= L <= horizon
        assert ((actions[p, :L] >= 0) & (actions[p, :L] < n)).all() and (actions[p, L:] == -1).all()


def _fuzz(examples: int):
    return settings(max_examples=examples, deadline=None, suppress_health_check=list(HealthCheck))


@_fuzz(100)
@given(calls())
def test_fuzz_op_boundary(call):
    _check_call(*call)


@pytest.mark.slow
@_fuzz(1000)
@given(calls())
def test_fuzz_op_boundary_slow(call):
    _check_call(*call)


@pytest.mark.parametrize("method", ["beam", "sample"])
def test_overflowing_weights_are_refused_alike_by_both_backends(method):
    """Weights 1e20 times too large overflow float32 (h0 @ w_hh): the reference's scores turned
    NaN (inf - inf in the gates), which plan() refused, while the native kernels clamped the NaN
    gates back into range and returned a plan made of them. Both now refuse the inputs before
    planning, naming them (glamor.planning.inputs.PlanningInputs.validate)."""
    from glamor.planning import PlanningInputs, plan

    big = PlanningInputs(*(t * 1e20 for t in random_inputs(2, 3, 4, 4, seed=1).tensors()))
    for backend in ("reference", "native"):
        with pytest.raises(ValueError, match="gate_table, w_hh and h0 give LSTM gate pre-activations up to"):
            plan(big, method=method, width=4, horizon=3, seed=0, backend=backend)
