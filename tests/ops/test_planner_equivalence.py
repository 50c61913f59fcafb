"""The native planner ops equal their readable twins (glamor.planning.reference).

Randomized sizes (plans, width, horizon, hidden size, actions, prior on and off, gamma, clip)
on fresh random inputs, on every instruction set this CPU runs: identical actions and
lengths, scores within 1e-4 relative. Sampling consumes the same counter-based draws as the
reference, so it is compared exactly too.
"""

from __future__ import annotations

import itertools
import math

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

pytestmark = pytest.mark.skipif(
    not ops.available(), reason=f"glamor._C not built: {ops.import_error()}"
)


def _isas():
    if not ops.available():
        return ["auto"]
    best = ops.cpu_isa()
    return {"avx512": ["avx512", "avx2", "scalar"], "avx2": ["avx2", "scalar"]}.get(
        best, ["scalar"]
    )


@pytest.fixture(params=_isas())
def isa(request, monkeypatch):
    monkeypatch.setenv("GLAMOR_CPU_ISA", request.param)
    assert ops.cpu_isa() == request.param
    return request.param


# Case i's sizes and options (reproducible, different for every i).
CASES = [
    random_case(1000 + i, max_plans=4, hidden=(1, 3, 8, 16, 17, 32, 64), widths=(1, 2, 7, 16, 33, 64))
    for i in range(12)
]


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_sample_plans_matches_reference(case, isa):
    c = case
    inp = random_inputs(c["M"], c["P"], c["n"], c["H"], seed=c["seed"] % 2**31)
    args = (c["width"], c["horizon"], c["seed"], c["gamma"], c["clip"])
    assert_plans_equal(ops.sample_plans(inp, *args), reference.sample_plans(inp, *args))


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_beam_search_matches_reference(case, isa):
    c = case
    inp = random_inputs(c["M"], c["P"], c["n"], c["H"], seed=c["seed"] % 2**31 + 1)
    args = (c["width"], c["horizon"], c["gamma"], c["clip"])
    assert_plans_equal(ops.beam_search(inp, *args), reference.beam_search(inp, *args))


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_score_plans_matches_reference(case, isa):
    c = case
    inp = random_inputs(c["M"], c["P"], c["n"], c["H"], seed=c["seed"] % 2**31 + 2)
    actions, lengths = random_sequences(
        c["P"], c["width"], c["horizon"], c["n"], seed=c["seed"] % 2**31
    )
    native = ops.score_plans(inp, actions, lengths, c["gamma"], c["clip"])
    assert_scores_close(native, reference.score_plans(inp, actions, lengths, c["gamma"], c["clip"]))


@pytest.mark.parametrize("M", [1, 2])
def test_paper_sizes(M):
    """The paper's sizes (hidden 64, 18 actions) with fewer candidates, to keep it quick."""
    inp = random_inputs(M, 2, 18, 64, seed=7)
    assert_plans_equal(
        ops.sample_plans(inp, 48, 20, 11, 0.99, None),
        reference.sample_plans(inp, 48, 20, 11, 0.99, None),
    )
    assert_plans_equal(
        ops.beam_search(inp, 48, 20, 0.99, None), reference.beam_search(inp, 48, 20, 0.99, None)
    )


@pytest.mark.parametrize("M", [1, 2])
def test_wide_beam(M):
    """Many expansions (width x n > 2048) take the thresholded top-B selection path."""
    inp = random_inputs(M, 2, 18, 16, seed=12)
    assert_plans_equal(
        ops.beam_search(inp, 300, 6, 0.95, None), reference.beam_search(inp, 300, 6, 0.95, None)
    )


def test_plan_scores_equal_scoring_their_actions():
    """A plan's score is the teacher-forced score of its actions (native on both sides)."""
    inp = random_inputs(2, 3, 5, 16, seed=3)
    for actions, lengths, scores in (
        ops.beam_search(inp, 16, 8, 0.99, None),
        ops.sample_plans(inp, 32, 8, 5, 0.99, None),
    ):
        rescored = ops.score_plans(
            inp, actions.clamp(min=0)[:, None], lengths[:, None], 0.99, None
        )[:, 0]
        assert_scores_close(scores, rescored)


def test_exhaustive_beam_finds_the_best_sequence():
    """With width >= n**horizon beam search is exhaustive: it returns the best of all plans
    (the shortest on ties, as END only replaces a strictly worse plan)."""
    n, T = 3, 3
    inp = random_inputs(2, 2, n, 8, seed=5)
    seqs = [s for L in range(1, T + 1) for s in itertools.product(range(n), repeat=L)]
    actions = (
        torch.tensor([list(s) + [0] * (T - len(s)) for s in seqs]).expand(2, -1, -1).contiguous()
    )
    lengths = torch.tensor([len(s) for s in seqs]).expand(2, -1).contiguous()
    all_scores = ops.score_plans(inp, actions, lengths, 0.9, None)  # (P, #seqs)
    plan = ops.beam_search(inp, n**T, T, 0.9, None)
    for p in range(2):
        best = int(all_scores[p].argmax())
        assert plan[1][p] == lengths[p, best]
        assert torch.equal(plan[0][p, : plan[1][p]], actions[p, best, : lengths[p, best]])
        assert math.isclose(
            plan[2][p].item(), all_scores[p, best].item(), rel_tol=1e-5, abs_tol=1e-5
        )


def test_ties_go_to_the_lowest_index():
    """Identical IDM and prior: every token scores exactly log(gamma), so all plans of a
    length tie. The lowest index wins: beam search keeps action 0, END at t = 1 wins."""
    base = random_inputs(1, 3, 18, 8, seed=9)
    inp = type(base)(*(torch.cat([t, t]) for t in base.tensors()))
    for gamma, width in ((1.0, 5), (0.9, 5), (0.9, 200)):
        for out in (
            ops.beam_search(inp, width, 6, gamma, None),
            reference.beam_search(inp, width, 6, gamma, None),
        ):
            assert out[1].tolist() == [1, 1, 1]
            assert out[0][:, 0].tolist() == [0, 0, 0]
            assert torch.allclose(out[2], torch.full((3,), 2 * math.log(gamma)))
    assert_plans_equal(
        ops.sample_plans(inp, 9, 6, 3, 0.9, None), reference.sample_plans(inp, 9, 6, 3, 0.9, None)
    )


def test_a_zero_lstm_state_stays_exactly_zero(isa):
    """A zero state with zero gate pre-activations: c = sig(f) 0 + sig(i) tanh(0) = 0 and h = 0
    exactly, so the logits are the bias alone whatever the head weights. The AVX2 kernels
    computed tanh(0) as 2 recip(2) - 1 = -6e-8 (an approximate reciprocal), and head weights of
    1e9 read that as logits in the tens: scores off by up to 400 and other plans than the
    reference's. (1 - e) / (1 + e) gives 0 exactly on every instruction set."""
    M, P, n, H = 2, 2, 3, 16
    g = torch.Generator().manual_seed(5)
    zeros = torch.zeros
    head_w = torch.randn(M, n + 2, H, generator=g) * 1e9
    head_b = torch.randn(M, n + 2, generator=g)
    inp = PlanningInputs(gate_table=zeros(M, P, n + 1, 4 * H), h0=zeros(M, P, H), c0=zeros(M, P, H),
                         w_hh=zeros(M, 4 * H, H), head_w=head_w, head_b=head_b)
    actions, lengths = random_sequences(P, 8, 4, n, seed=5)
    native = ops.score_plans(inp, actions, lengths, 0.9, None)
    assert_scores_close(native, reference.score_plans(inp, actions, lengths, 0.9, None))
    assert_plans_equal(ops.beam_search(inp, 8, 4, 0.9, None), reference.beam_search(inp, 8, 4, 0.9, None))
    assert_plans_equal(ops.sample_plans(inp, 8, 4, 1, 0.9, None), reference.sample_plans(inp, 8, 4, 1, 0.9, None))


def test_tanh_saturates_at_minus_one_far_below_zero(isa):
    """A saturated LSTM: cell states of -50 and beyond (kept by a forget gate of 1) and g gate
    pre-activations of -100, so tanh is -1 in both places and h = sig(o) tanh(c) = -sig(o). On
    AVX2, tanh from e = 2**(-2 log2(e) x) divided by 1 + e of about 2**126 (vexp2's cap), where
    the approximate reciprocal is 0: tanh(x) read 0 for every x below -43.7, other scores and
    plans than the reference's."""
    M, P, n, H = 2, 2, 3, 16
    g = torch.Generator().manual_seed(6)
    gate_table = torch.randn(M, P, n + 1, 4 * H, generator=g)
    gate_table[..., H : 2 * H] = 30.0  # f: keep the cell state
    gate_table[..., 2 * H : 3 * H] = -100.0  # g: tanh(g) = -1
    c0 = -50.0 - 1e4 * torch.rand(M, P, H, generator=g)
    inp = PlanningInputs(gate_table=gate_table, h0=torch.zeros(M, P, H), c0=c0,
                         w_hh=torch.zeros(M, 4 * H, H), head_w=torch.randn(M, n + 2, H, generator=g),
                         head_b=torch.randn(M, n + 2, generator=g))
    actions, lengths = random_sequences(P, 8, 4, n, seed=6)
    native = ops.score_plans(inp, actions, lengths, 0.9, None)
    assert_scores_close(native, reference.score_plans(inp, actions, lengths, 0.9, None))
    assert_plans_equal(ops.beam_search(inp, 8, 4, 0.9, None), reference.beam_search(inp, 8, 4, 0.9, None))
    assert_plans_equal(ops.sample_plans(inp, 8, 4, 1, 0.9, None), reference.sample_plans(inp, 8, 4, 1, 0.9, None))


@pytest.mark.parametrize("op", ["sample", "beam", "score"])
def test_results_do_not_depend_on_threads(op):
    inp = random_inputs(2, 3, 6, 24, seed=4)
    actions, lengths = random_sequences(3, 40, 9, 6)
    call = {
        "sample": lambda: ops.sample_plans(inp, 100, 12, 42, 0.99, None),
        "beam": lambda: ops.beam_search(inp, 100, 12, 0.99, -2.0),
        "score": lambda: ops.score_plans(inp, actions, lengths, 0.99, None),
    }[op]
    before = torch.get_num_threads()
    try:
        results = []
        for threads in (1, 2, 3):
            torch.set_num_threads(threads)
            results.append(call())
    finally:
        torch.set_num_threads(before)
    for r in results[1:]:
        assert_identical(results[0], r)
    if op == "beam":  # one plan, its rows shared by all threads, equals it planned in a batch
        alone = PlanningInputs(
            inp.gate_table[:, 1:2].contiguous(),
            inp.h0[:, 1:2].contiguous(),
            inp.c0[:, 1:2].contiguous(),
            inp.w_hh,
            inp.head_w,
            inp.head_b,
        )
        assert_identical(
            tuple(x[1:2] for x in results[0]), ops.beam_search(alone, 100, 12, 0.99, -2.0)
        )


def test_same_seed_same_plans_other_seed_other_draws():
    inp = random_inputs(2, 4, 5, 16, seed=2)
    a = ops.sample_plans(inp, 64, 10, 123, 0.99, None)
    assert_identical(a, ops.sample_plans(inp, 64, 10, 123, 0.99, None))
    b = ops.sample_plans(inp, 64, 10, 124, 0.99, None)
    assert not torch.equal(a[2], b[2])


def test_dispatcher_uses_native():
    """backend='auto' resolves to the native ops when the extension is built."""
    from glamor import planning

    assert planning.resolve_backend("auto") == "native"
    inp = random_inputs(2, 2, 4, 8, seed=1)
    p = planning.plan(inp, method="sample", width=16, horizon=5, seed=3)
    assert_plans_equal(tuple(p), reference.sample_plans(inp, 16, 5, 3, 0.99, None))


def _plans(inp: PlanningInputs, index: torch.Tensor) -> PlanningInputs:
    """The problems `index` of `inp`, in that order (the shared weights as they are)."""
    return PlanningInputs(
        inp.gate_table[:, index].contiguous(), inp.h0[:, index].contiguous(), inp.c0[:, index].contiguous(),
        inp.w_hh, inp.head_w, inp.head_b,
    )


def _keys(P: int, seed: int) -> torch.Tensor:
    """P distinct int64 keys, some beyond 32 bits and negative (the ops read the low 32 bits)."""
    g = torch.Generator().manual_seed(seed)
    return torch.randperm(1 << 16, generator=g)[:P] * 65599 + torch.tensor([0, 1 << 32, -(1 << 33)])[
        torch.randint(0, 3, (P,), generator=g)]


@pytest.mark.parametrize("case", CASES[:6], ids=case_id)
def test_keyed_sample_plans_matches_reference(case, isa):
    c = case
    inp = random_inputs(c["M"], c["P"], c["n"], c["H"], seed=c["seed"] % 2**31 + 3)
    args = (c["width"], c["horizon"], c["seed"], c["gamma"], c["clip"], _keys(c["P"], c["seed"] % 2**31))
    assert_plans_equal(ops.sample_plans(inp, *args), reference.sample_plans(inp, *args))


def test_plan_keys_default_to_the_plan_index():
    inp = random_inputs(2, 5, 6, 16, seed=8)
    default = ops.sample_plans(inp, 40, 7, 11, 0.99, None)
    assert_identical(default, ops.sample_plans(inp, 40, 7, 11, 0.99, None, torch.arange(5)))
    assert_identical(default, ops.sample_plans(inp, 40, 7, 11, 0.99, None, torch.arange(5) + (3 << 32)))
    other = ops.sample_plans(inp, 40, 7, 11, 0.99, None, torch.arange(5) + 1)
    assert not torch.equal(default[2], other[2])


def test_a_keyed_plan_draws_the_same_wherever_it_sits():
    """Reordering the problems with their keys reorders the plans; a problem planned alone, or
    in another batch, gets the plan it got in the first (what evaluation relies on to give the
    same results for every eval_batch)."""
    P = 7
    inp, keys = random_inputs(2, P, 5, 16, seed=21), _keys(P, 4)
    whole = ops.sample_plans(inp, 48, 9, 5, 0.99, -3.0, keys)
    order = torch.randperm(P, generator=torch.Generator().manual_seed(1))
    shuffled = ops.sample_plans(_plans(inp, order), 48, 9, 5, 0.99, -3.0, keys[order])
    assert_identical(shuffled, tuple(x[order] for x in whole))
    for p in (0, 4):
        alone = ops.sample_plans(_plans(inp, torch.tensor([p])), 48, 9, 5, 0.99, -3.0, keys[p:p + 1])
        assert_identical(alone, tuple(x[p:p + 1] for x in whole))
    # without keys a problem's draws follow its position: moving it changes its candidates
    moved = ops.sample_plans(_plans(inp, order), 48, 9, 5, 0.99, -3.0)
    unkeyed = ops.sample_plans(inp, 48, 9, 5, 0.99, -3.0)
    assert not torch.equal(moved[2], unkeyed[2][order])


def test_plan_keys_errors_name_the_argument():
    inp = random_inputs(1, 3, 4, 8, seed=2)
    with pytest.raises(ValueError, match="plan_keys must have shape"):
        ops.sample_plans(inp, 8, 4, 1, 0.99, None, torch.arange(4))
    with pytest.raises(TypeError, match="plan_keys must be Long"):
        ops.sample_plans(inp, 8, 4, 1, 0.99, None, torch.arange(3.0))
    with pytest.raises(ValueError, match="plan_keys must be contiguous"):
        ops.sample_plans(inp, 8, 4, 1, 0.99, None, torch.arange(6)[::2])
    with pytest.raises(TypeError, match="plan_keys must be an int64 tensor"):
        reference.sample_plans(inp, 8, 4, 1, 0.99, None, torch.arange(3.0))
    with pytest.raises(ValueError, match=r"plan_keys must have shape \(3,\)"):
        reference.sample_plans(inp, 8, 4, 1, 0.99, None, torch.arange(4))
