"""The CUDA planner ops equal the CPU ops and the reference (runs only with a GPU).

On randomized sizes (plans, width, horizon, hidden 1..128, actions 1..18, prior on and off,
gamma, clip) and on every kernel variant (1 or 8 candidates per warp, two warps per candidate,
W_hh in shared or global memory, beam search in one block or a cluster of blocks, chosen
through the GLAMOR_CUDA_* variables): identical actions and lengths, scores within 1e-4 relative. Sampling
draws from the same counter-based generator, so CUDA samples the CPU's plans. Also: graph
capture of every op, a non-default stream, determinism, the draws bit for bit, and the errors.

Run them with `benchmarks/gpu_check.sh` on a GPU machine; without CUDA they are skipped.
"""

from __future__ import annotations

import dataclasses
import math
import os

import pytest
import torch
from planner_cases import (
    assert_identical,
    assert_plans_equal,
    assert_scores_close,
    case_id,
    random_case,
    random_inputs,
    random_sequences,
)

from glamor import ops
from glamor.planning import reference
from glamor.planning.inputs import PlanningInputs
from glamor.planning.rng import uniform


def _cuda_kernels() -> bool:
    return ops.available() and torch._C._dispatch_has_kernel_for_dispatch_key(
        "glamor::beam_search", "CUDA"
    )


_MISSING = (
    "needs a CUDA device"
    if not torch.cuda.is_available()
    else None
    if _cuda_kernels()
    else "glamor._C was built without CUDA kernels (build with CUDA_HOME set: gpu_check.sh)"
)
if _MISSING and os.environ.get("GLAMOR_REQUIRE_CUDA") == "1":  # gpu_check.sh: fail, not skip
    raise RuntimeError(f"GLAMOR_REQUIRE_CUDA=1: {_MISSING} (glamor._C: {ops.import_error()})")
pytestmark = pytest.mark.skipif(bool(_MISSING), reason=_MISSING or "")

DEV = "cuda"


def cuda(inp: PlanningInputs) -> PlanningInputs:
    return PlanningInputs(*(t.to(DEV) for t in inp.tensors()))


def cpu(out):
    return tuple(t.cpu() for t in out) if isinstance(out, tuple) else out.cpu()


# kernel variants: (GLAMOR_CUDA_TILE, GLAMOR_CUDA_W_GLOBAL, GLAMOR_CUDA_BEAM_BLOCKS); "" = auto;
# tile 1: one warp per candidate; 2: two warps per candidate when sampling with the prior (else
# 1); 8: the throughput tile (4 candidates per warp when H > 64)
VARIANTS = {
    "auto": ("", "", ""),
    "tile1": ("1", "", ""),
    "pairs": ("2", "", ""),
    "tile8": ("8", "", ""),
    "tile8-wglobal": ("8", "1", ""),
    "blocks1": ("", "", "1"),
    "wglobal-blocks2": ("", "1", "2"),
    "cluster4": ("", "", "4"),
}
# Each op's variants: those of the settings it reads (csrc/cuda/planner_config.h), so no two run the
# same launch configuration. Sampling reads the tile and W's place; at these sizes (P x width < 2112)
# its automatic choice is the warp pair with the prior and one warp without (tile1 / pairs). Scoring
# has no warp pairs. Beam search has one tile (8, or 4 above H = 64) and reads W's place and the
# cluster size.
OP_VARIANTS = {
    "sample": ["tile1", "pairs", "tile8", "tile8-wglobal"],
    "score": ["tile1", "tile8", "tile8-wglobal"],
    "beam": ["auto", "blocks1", "wglobal-blocks2", "cluster4"],
}


@pytest.fixture
def variant(request, monkeypatch):
    tile, wglobal, blocks = VARIANTS[request.param]
    for name, value in (
        ("GLAMOR_CUDA_TILE", tile),
        ("GLAMOR_CUDA_W_GLOBAL", wglobal),
        ("GLAMOR_CUDA_BEAM_BLOCKS", blocks),
    ):
        monkeypatch.setenv(name, value)
    return request.param


CASES = [
    random_case(5000 + i, max_plans=5, hidden=(1, 3, 8, 16, 17, 32, 33, 48, 64, 65, 100, 128),
                widths=(1, 2, 7, 16, 33, 64, 200))
    for i in range(10)
] + [  # the prior on, few hidden units, many tokens, few candidates: the two-warp path's tightest
    # shared memory (it overran there before; tests/ops/test_planner_cuda_emulated.py)
    dict(M=2, P=1, n=18, H=3, width=50, horizon=10, gamma=0.99, clip=None, seed=5),
    dict(M=2, P=2, n=12, H=4, width=20, horizon=8, gamma=0.9, clip=-1.5, seed=6),
]


@pytest.mark.parametrize("variant", OP_VARIANTS["sample"], indirect=True)
@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_sample_cuda_equals_cpu(case, variant):
    c = case
    inp = random_inputs(c["M"], c["P"], c["n"], c["H"], seed=c["seed"] % 2**31)
    args = (c["width"], c["horizon"], c["seed"], c["gamma"], c["clip"])
    native = ops.sample_plans(inp, *args)
    assert_plans_equal(cpu(ops.sample_plans(cuda(inp), *args)), native)


@pytest.mark.parametrize("variant", OP_VARIANTS["beam"], indirect=True)
@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_beam_cuda_equals_cpu(case, variant):
    c = case
    inp = random_inputs(c["M"], c["P"], c["n"], c["H"], seed=c["seed"] % 2**31 + 1)
    args = (c["width"], c["horizon"], c["gamma"], c["clip"])
    native = ops.beam_search(inp, *args)
    assert_plans_equal(cpu(ops.beam_search(cuda(inp), *args)), native)


@pytest.mark.parametrize("variant", OP_VARIANTS["score"], indirect=True)
@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_score_cuda_equals_cpu(case, variant):
    c = case
    inp = random_inputs(c["M"], c["P"], c["n"], c["H"], seed=c["seed"] % 2**31 + 2)
    actions, lengths = random_sequences(
        c["P"], c["width"], c["horizon"], c["n"], seed=c["seed"] % 2**31
    )
    native = ops.score_plans(inp, actions, lengths, c["gamma"], c["clip"])
    got = ops.score_plans(cuda(inp), actions.to(DEV), lengths.to(DEV), c["gamma"], c["clip"])
    assert_scores_close(got.cpu(), native)


@pytest.mark.parametrize("M", [1, 2])
def test_paper_sizes_equal_cpu_and_reference(M):
    """Hidden 64, 18 actions: CUDA = CPU native at 200 samples / width 200 and horizon 50, and
    the reference run on the GPU (cuBLAS products) = CPU native at the CPU tests' sizes."""
    inp = random_inputs(M, 2, 18, 64, seed=7)
    g = cuda(inp)
    native = ops.sample_plans(inp, 200, 50, 11, 0.99, None)
    assert_plans_equal(cpu(ops.sample_plans(g, 200, 50, 11, 0.99, None)), native)
    native = ops.beam_search(inp, 200, 50, 0.99, None)
    assert_plans_equal(cpu(ops.beam_search(g, 200, 50, 0.99, None)), native)
    native = ops.sample_plans(inp, 48, 20, 11, 0.99, None)
    assert_plans_equal(cpu(reference.sample_plans(g, 48, 20, 11, 0.99, None)), native)
    native = ops.beam_search(inp, 48, 20, 0.99, None)
    assert_plans_equal(cpu(reference.beam_search(g, 48, 20, 0.99, None)), native)


@pytest.mark.parametrize("width", [300, 1000, 2049, 4096])
@pytest.mark.parametrize("blocks", ["", "1", "8"])
def test_wide_beams(width, blocks, monkeypatch):
    """Widths past one block's tiles and past the shared-memory sort (global-memory sort),
    in one block and in clusters."""
    monkeypatch.setenv("GLAMOR_CUDA_BEAM_BLOCKS", blocks)
    inp = random_inputs(2, 2, 18, 64, seed=width)
    native = ops.beam_search(inp, width, 5, 0.95, None)
    assert_plans_equal(cpu(ops.beam_search(cuda(inp), width, 5, 0.95, None)), native)


def test_many_plans_and_samples():
    """64 plans x 200 samples (the throughput configuration, tile 8, several chunks per plan)."""
    inp = random_inputs(2, 64, 18, 64, seed=3)
    native = ops.sample_plans(inp, 200, 20, 9, 0.99, None)
    assert_plans_equal(cpu(ops.sample_plans(cuda(inp), 200, 20, 9, 0.99, None)), native)


@pytest.mark.parametrize("tile", ["1", "2", "8"])
def test_plan_keys_equal_cpu(tile, monkeypatch):
    """Keyed draws (the plan index replaced by plan_keys, low 32 bits) in every sampling kernel
    (one candidate per warp, a warp pair per candidate, 8 per warp); keys on another device
    are refused."""
    monkeypatch.setenv("GLAMOR_CUDA_TILE", tile)
    inp, keys = random_inputs(2, 5, 18, 64, seed=12), torch.tensor([3, 0, (1 << 32) + 9, -4, 2**40])
    native = ops.sample_plans(inp, 200, 20, 9, 0.99, None, keys)
    assert_plans_equal(cpu(ops.sample_plans(cuda(inp), 200, 20, 9, 0.99, None, keys.to(DEV))), native)
    with pytest.raises(ValueError, match="plan_keys"):
        ops.sample_plans(cuda(inp), 200, 20, 9, 0.99, None, keys)


def _first_plan(inp: PlanningInputs) -> PlanningInputs:
    return dataclasses.replace(inp, gate_table=inp.gate_table[:, :1].contiguous(),
                               h0=inp.h0[:, :1].contiguous(), c0=inp.c0[:, :1].contiguous())


@pytest.mark.parametrize("M", [1, 2])
def test_a_plan_is_the_same_alone_and_in_a_batch(M):
    """The launch configuration (one or two warps per candidate for one plan, tiles of 8 for 64)
    follows the batch, but the arithmetic does not: plan 0 planned alone and in a batch of 64
    has the same actions, length and score bits (csrc/cuda/planner_common.cuh: sums in one
    order for every tile, -fmad=false)."""
    inp = cuda(random_inputs(M, 64, 18, 64, seed=21))
    one = _first_plan(inp)
    actions, lengths = random_sequences(64, 200, 12, 18, seed=21)
    actions, lengths = actions.to(DEV), lengths.to(DEV)
    for alone, batch in (
        (ops.sample_plans(one, 200, 30, 4, 0.99, None), ops.sample_plans(inp, 200, 30, 4, 0.99, None)),
        (ops.beam_search(one, 200, 12, 0.99, -3.0), ops.beam_search(inp, 200, 12, 0.99, -3.0)),
        (ops.score_plans(one, actions[:1], lengths[:1], 0.99, None),
         ops.score_plans(inp, actions, lengths, 0.99, None)),
    ):
        alone = alone if isinstance(alone, tuple) else (alone,)
        batch = batch if isinstance(batch, tuple) else (batch,)
        assert_identical(cpu(alone), tuple(t[:1].cpu() for t in batch))


def test_every_tile_plans_the_same_bits(monkeypatch):
    """Forced tiles (one warp per candidate, a warp pair, 8 per warp) agree bit for bit."""
    inp = cuda(random_inputs(2, 3, 18, 64, seed=22))
    actions, lengths = (t.to(DEV) for t in random_sequences(3, 64, 12, 18, seed=22))
    outs = {}
    for tile in ("1", "2", "8"):
        monkeypatch.setenv("GLAMOR_CUDA_TILE", tile)
        outs[tile] = (
            *cpu(ops.sample_plans(inp, 64, 20, 6, 0.99, -3.0)),
            *cpu(ops.beam_search(inp, 64, 10, 0.99, None)),
            cpu(ops.score_plans(inp, actions, lengths, 0.99, None)),
        )
    assert_identical(outs["1"], outs["2"])
    assert_identical(outs["1"], outs["8"])


def test_ties_go_to_the_lowest_index():
    base = random_inputs(1, 3, 18, 8, seed=9)
    inp = cuda(type(base)(*(torch.cat([t, t]) for t in base.tensors())))
    for gamma, width in ((1.0, 5), (0.9, 5), (0.9, 200)):
        out = cpu(ops.beam_search(inp, width, 6, gamma, None))
        assert out[1].tolist() == [1, 1, 1]
        assert out[0][:, 0].tolist() == [0, 0, 0]
        assert torch.allclose(out[2], torch.full((3,), 2 * math.log(gamma)))


def test_plan_scores_equal_scoring_their_actions():
    inp = cuda(random_inputs(2, 3, 5, 16, seed=3))
    for actions, lengths, scores in (
        ops.beam_search(inp, 16, 8, 0.99, None),
        ops.sample_plans(inp, 32, 8, 5, 0.99, None),
    ):
        rescored = ops.score_plans(
            inp, actions.clamp(min=0)[:, None], lengths[:, None], 0.99, None
        )[:, 0]
        assert_scores_close(scores.cpu(), rescored.cpu())


def test_deterministic_and_seeded():
    inp = cuda(random_inputs(2, 4, 5, 16, seed=2))
    a = ops.sample_plans(inp, 64, 10, 123, 0.99, None)
    assert_identical(cpu(a), cpu(ops.sample_plans(inp, 64, 10, 123, 0.99, None)))
    assert not torch.equal(a[2], ops.sample_plans(inp, 64, 10, 124, 0.99, None)[2])
    b = ops.beam_search(inp, 100, 10, 0.99, -2.0)
    assert_identical(cpu(b), cpu(ops.beam_search(inp, 100, 10, 0.99, -2.0)))


@pytest.mark.parametrize("seed", [0, 2**32 - 1, 2**62 + 12345])
def test_uniform_bit_for_bit(seed):
    plan = torch.randint(0, 2**32, (7, 1))
    cand = torch.randint(0, 2**32, (1, 300))
    for step in (0, 49, 2**31 - 1):
        got = ops.uniform(seed, plan.to(DEV), cand.to(DEV), step)
        assert got.device.type == "cuda"
        assert_identical(got.cpu(), uniform(seed, plan, cand, step))


def _calls(inp, actions, lengths):
    return {
        "sample": lambda: ops.sample_plans(inp, 64, 12, 5, 0.99, None),
        "beam": lambda: ops.beam_search(inp, 64, 12, 0.99, -2.0),
        "beam-wide": lambda: ops.beam_search(inp, 1000, 6, 0.99, None),
        "score": lambda: ops.score_plans(inp, actions, lengths, 0.99, None),
        "uniform": lambda: ops.uniform(3, actions[:, :, 0], lengths, 4),
    }


@pytest.mark.parametrize("op", ["sample", "beam", "beam-wide", "score", "uniform"])
def test_cuda_graph_capture(op):
    """Each op is captured in a CUDA graph (no host sync, no uncapturable allocation) and its
    replay gives the eager result ("beam-wide": width 1000, a cluster of blocks per plan)."""
    inp = cuda(random_inputs(2, 3, 6, 64, seed=4))
    acts, lens = random_sequences(3, 40, 9, 6)
    call = _calls(inp, acts.clamp(0, 5).to(DEV), lens.to(DEV))[op]
    eager = cpu(call())
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):  # warm-up on a side stream, as torch.cuda.graphs advises
        call()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        out = call()
    graph.replay()
    torch.cuda.synchronize()
    assert_identical(cpu(out), eager)


@pytest.mark.parametrize("op", ["sample", "beam", "beam-wide", "score"])
def test_non_default_stream(op):
    inp = cuda(random_inputs(2, 3, 6, 32, seed=5))
    acts, lens = random_sequences(3, 40, 9, 6)
    call = _calls(inp, acts.clamp(0, 5).to(DEV), lens.to(DEV))[op]
    eager = cpu(call())
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        out = call()
    s.synchronize()
    assert_identical(cpu(out), eager)


def test_invalid_sequences_score_nan():
    """No host check on CUDA: a length outside [1, L] or an action outside [0, n) within the
    length gives NaN for that sequence; the others are scored as on the CPU."""
    inp = random_inputs(2, 1, 4, 8, seed=1)
    actions = torch.tensor([[[0, 1, 2], [0, 9, 1], [1, 1, 1], [3, 3, 3]]])
    lengths = torch.tensor([[3, 2, 0, 1]])
    got = ops.score_plans(cuda(inp), actions.to(DEV), lengths.to(DEV), 0.99, None).cpu()
    assert torch.isnan(got[0, 1]) and torch.isnan(got[0, 2])
    ok = [0, 3]
    want = ops.score_plans(inp, actions[:, ok], lengths[:, ok], 0.99, None)
    assert_scores_close(got[:, ok], want)


def test_unsupported_sizes_raise_and_auto_plans_them_with_the_reference():
    from glamor import planning

    inp = cuda(random_inputs(1, 1, 3, 129, seed=0))
    with pytest.raises(NotImplementedError, match="H <= 128"):
        ops.beam_search(inp, 4, 3, 0.99, None)
    big = cuda(random_inputs(2, 1, 400, 64, seed=0))
    with pytest.raises(NotImplementedError, match="shared memory"):
        ops.sample_plans(big, 4, 3, 0, 0.99, None)
    with pytest.raises(NotImplementedError, match="shared memory"):
        planning.plan(big, method="sample", width=4, horizon=3, seed=0, backend="native")
    with pytest.warns(RuntimeWarning, match="reference planner: the CUDA planner needs .* shared memory"):
        got = planning.plan(big, method="sample", width=4, horizon=3, seed=0)  # backend="auto"
    want = planning.plan(big, method="sample", width=4, horizon=3, seed=0, backend="reference")
    assert torch.equal(got.actions, want.actions) and got.actions.device.type == "cuda"


def test_a_plan_whose_candidates_all_score_nan_is_refused_when_copied_back():
    """The CUDA ops do not read the weights back to check them (a sync): a plan whose every
    candidate scored NaN comes back with length 0, and planning.on_host (Agent.act and
    open_loop copy plans back through it) refuses it."""
    from glamor import planning

    inp = random_inputs(1, 2, 4, 8, seed=0)
    bad = cuda(PlanningInputs(inp.gate_table, inp.h0, inp.c0, inp.w_hh, inp.head_w * float("nan"), inp.head_b))
    for method in ("beam", "sample"):
        out = planning.Plan(*(ops.beam_search(bad, 4, 3, 0.99, None) if method == "beam"
                              else ops.sample_plans(bad, 4, 3, 0, 0.99, None)))
        assert (out.lengths.cpu() == 0).all() and (out.actions.cpu() == -1).all()
        with pytest.raises(ValueError, match="plan scores are not finite"):
            planning.on_host(out)


def test_mixed_devices_raise():
    inp = random_inputs(2, 2, 4, 8, seed=0)
    t = [x.to(DEV) for x in inp.tensors()]
    t[1] = t[1].cpu()
    with pytest.raises(ValueError, match="h0 must be a CUDA tensor"):
        torch.ops.glamor.beam_search(*t, 8, 5, 0.99, None)


@pytest.mark.parametrize("name", ["score_plans", "sample_plans", "beam_search", "uniform"])
def test_opcheck_cuda(name):
    inp = cuda(random_inputs(2, 2, 4, 8, seed=0))
    actions, lengths = random_sequences(2, 5, 6, 4, seed=0)
    t = inp.tensors()
    args = {
        "score_plans": (*t, actions.clamp(0, 3).to(DEV), lengths.to(DEV), 0.99, None),
        "sample_plans": (*t, 16, 6, 3, 0.99, -2.0),
        "beam_search": (*t, 16, 6, 0.9, None),
        "uniform": (7, torch.arange(3, device=DEV).view(3, 1), torch.arange(5, device=DEV), 2),
    }[name]
    torch.library.opcheck(getattr(torch.ops.glamor, name).default, args)
