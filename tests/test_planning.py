"""The readable planners: exhaustive beam search, plan scores equal to teacher-forced scores,
seeds, and clear errors at the public API."""

import itertools
import time

import numpy as np
import pytest
import torch
from conftest import nn_lstm_logits, random_images, tiny_model

from glamor.planning import reference as R
from glamor.planning.inputs import PlanningInputs
from glamor.planning.rng import uniform


def all_plans(n, horizon):
    """Every plan of 1..horizon actions: actions (K, horizon) padded with 0, lengths (K,)."""
    seqs, lens = [], []
    for L in range(1, horizon + 1):
        for a in itertools.product(range(n), repeat=L):
            seqs.append(list(a) + [0] * (horizon - L))
            lens.append(L)
    return torch.tensor(seqs), torch.tensor(lens)


@pytest.mark.parametrize("use_prior", [True, False])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_wide_beam_search_is_exhaustive(use_prior, seed):
    m = tiny_model(num_actions=3, seed=seed)
    obs, goal = random_images(4, 2, (24, 24), seed), random_images(4, 1, (24, 24), seed + 9)
    plan = m.plan(obs, goal, method="beam", width=27, horizon=3, use_prior=use_prior, backend="reference")
    acts, lens = all_plans(3, 3)  # 39 plans; width 27 = 3**3 keeps every partial sequence
    inp = m.planning_inputs(obs, goal, use_prior)
    scores = R.score_plans(inp, acts.expand(4, -1, -1).contiguous(), lens.expand(4, -1).contiguous())
    best = scores.argmax(1)
    for p in range(4):
        L = int(lens[best[p]])
        assert plan.lengths[p] == L
        assert plan.actions[p, :L].tolist() == acts[best[p], :L].tolist()
        assert (plan.actions[p, L:] == -1).all()
    torch.testing.assert_close(plan.scores, scores.max(1).values, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("method", ["beam", "sample"])
@pytest.mark.parametrize("use_prior", [True, False])
def test_plan_scores_equal_score_of_returned_plans(method, use_prior):
    m = tiny_model(num_actions=4, seed=3)
    obs, goal = random_images(5, 2, (24, 24), 1), random_images(5, 1, (24, 24), 2)
    p = m.plan(obs, goal, method=method, width=16, horizon=6, use_prior=use_prior, gamma=0.9, seed=11,
               backend="reference")
    assert ((p.lengths >= 1) & (p.lengths <= 6)).all()
    s = m.score(obs, goal, p.actions, p.lengths, use_prior=use_prior, gamma=0.9, backend="reference")
    torch.testing.assert_close(p.scores, s, rtol=1e-5, atol=1e-5)


def test_score_is_the_spec_formula():
    m = tiny_model(num_actions=3, seed=4)
    obs, goal = random_images(1, 2, (24, 24), 5), random_images(1, 1, (24, 24), 6)
    actions, lengths = torch.tensor([[2, 0]]), torch.tensor([2])
    state_mix, obs_rep = m.conditioning(obs, goal)
    prev = torch.tensor([[3, 2, 0]])  # start, a0, a1
    toks = torch.tensor([2, 0, 3])  # a0, a1, END
    # torch.nn.LSTM with the model's weights: independent of the planners' LSTM step
    logq = torch.log_softmax(nn_lstm_logits(m.idm, state_mix, prev)[0][0, :, :4], -1)[torch.arange(3), toks]
    logp = torch.log_softmax(nn_lstm_logits(m.prior, obs_rep, prev)[0][0, :, :4], -1)[torch.arange(3), toks]
    expected = 3 * torch.log(torch.tensor(0.99)) + (logq - logp).sum()
    got = m.score(obs, goal, actions, lengths, backend="reference")
    torch.testing.assert_close(got, expected.reshape(1), rtol=1e-5, atol=1e-5)
    no_prior = m.score(obs, goal, actions, lengths, use_prior=False, backend="reference")
    torch.testing.assert_close(no_prior, (3 * torch.log(torch.tensor(0.99)) + logq.sum()).reshape(1), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("backend", ["reference", "native"])
@pytest.mark.parametrize("seed", [0, 1])
def test_scores_of_random_plans_equal_the_teacher_forced_lstms(backend, seed):
    """Both planners' step-by-step scoring against torch.nn.LSTM teacher-forced with the model's
    weights (code the planners do not share), for plans of random lengths."""
    if backend == "native" and not __import__("glamor").ops.available():
        pytest.skip("glamor._C is not built")
    n, L, P, gamma = 4, 7, 6, 0.9
    m = tiny_model(num_actions=n, seed=10 + seed)
    obs, goal = random_images(P, 2, (24, 24), 20 + seed), random_images(P, 1, (24, 24), 30 + seed)
    g = torch.Generator().manual_seed(seed)
    actions = torch.randint(0, n, (P, L), generator=g)
    lengths = torch.randint(1, L + 1, (P,), generator=g)
    got = m.score(obs, goal, actions, lengths, gamma=gamma, backend=backend)
    got_no_prior = m.score(obs, goal, actions, lengths, use_prior=False, gamma=gamma, backend=backend)
    state_mix, obs_rep = m.conditioning(obs, goal)
    prev = torch.cat([torch.full((P, 1), n), actions], 1)  # (P, L + 1): the start row (n), then the actions
    logq = torch.log_softmax(nn_lstm_logits(m.idm, state_mix, prev)[0][..., : n + 1], -1)  # (P, L + 1, n + 1)
    logp = torch.log_softmax(nn_lstm_logits(m.prior, obs_rep, prev)[0][..., : n + 1], -1)
    for i in range(P):
        k = int(lengths[i])
        toks = torch.cat([actions[i, :k], torch.tensor([n])])  # the actions, then END
        q, p = logq[i, torch.arange(k + 1), toks], logp[i, torch.arange(k + 1), toks]
        base = (k + 1) * torch.log(torch.tensor(gamma))
        torch.testing.assert_close(got[i], base + (q - p).sum(), rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(got_no_prior[i], base + q.sum(), rtol=1e-4, atol=1e-4)


def test_clip_replaces_unlikely_tokens_by_a_fixed_score():
    m = tiny_model(num_actions=3, seed=4)
    obs, goal = random_images(1, 2, (24, 24), 5), random_images(1, 1, (24, 24), 6)
    a, L = torch.tensor([[2, 0]]), torch.tensor([2])
    clipped = m.score(obs, goal, a, L, clip_logq=-1e-3, backend="reference")  # every log q < -0.001
    torch.testing.assert_close(clipped, torch.tensor([3 * (torch.log(torch.tensor(0.99)).item() - 20.0)]))


def test_sampling_is_reproducible_and_seeded():
    m = tiny_model(num_actions=4, seed=5)
    obs, goal = random_images(3, 2, (24, 24), 1), random_images(3, 1, (24, 24), 2)
    kw = dict(method="sample", width=32, horizon=8, backend="reference")
    a, b, c = (m.plan(obs, goal, seed=s, **kw) for s in (7, 7, 8))
    assert torch.equal(a.actions, b.actions) and torch.equal(a.scores, b.scores)
    assert not torch.equal(a.actions, c.actions)
    torch.manual_seed(0)
    d = m.plan(obs, goal, **kw)
    torch.manual_seed(0)
    e = m.plan(obs, goal, **kw)
    assert torch.equal(d.actions, e.actions)


def test_sampling_follows_the_token_distribution():
    """With one action step allowed (horizon 1) every plan is one action then forced END; the
    first action is drawn from softmax(s) with END masked, so frequencies match it."""
    m = tiny_model(num_actions=3, seed=6, scale=0.3)
    obs, goal = random_images(1, 2, (24, 24), 1), random_images(1, 1, (24, 24), 2)
    inp = m.planning_inputs(obs, goal)
    h, c = R._initial_state(inp, 1)
    h, c = R._advance(inp, h, c, torch.full((1, 1), 3))
    s = R.token_scores(inp, h, None)[0, 0, :3]
    probs = torch.softmax(s, 0)
    n = 20000
    counts = torch.zeros(3)
    u = uniform(123, torch.zeros(1, 1, dtype=torch.int64), torch.arange(n).view(1, n), 0)[0]
    cdf = torch.cumsum(probs, 0)
    for tok in (u[:, None] >= cdf[None]).sum(1).clamp(max=2):
        counts[tok] += 1
    torch.testing.assert_close(counts / n, probs, atol=0.015, rtol=0)
    # and the planner draws exactly those tokens: with one candidate its plan is that draw, so
    # over seeds every plan equals the inverse-CDF token of its seed's uniform, and the plans'
    # frequencies follow softmax(s)
    zero = torch.zeros(1, 1, dtype=torch.int64)
    drawn = torch.zeros(3)
    for seed in range(600):
        acts, lens, _ = R.sample_plans(inp, 1, 1, seed=seed)
        want = int((uniform(seed, zero, zero, 0)[0, 0] >= cdf).sum().clamp(max=2))
        assert lens.tolist() == [1] and int(acts[0, 0]) == want, seed
        drawn[want] += 1
    torch.testing.assert_close(drawn / drawn.sum(), probs, atol=0.06, rtol=0)


def test_uniform_draws_are_in_range_and_keyed():
    u = uniform(5, torch.arange(4).view(4, 1), torch.arange(1000).view(1, 1000), 3)
    assert u.shape == (4, 1000) and float(u.min()) >= 0 and float(u.max()) < 1
    assert abs(float(u.mean()) - 0.5) < 0.02
    assert not torch.equal(u, uniform(5, torch.arange(4).view(4, 1), torch.arange(1000).view(1, 1000), 4))
    assert not torch.equal(u, uniform(6, torch.arange(4).view(4, 1), torch.arange(1000).view(1, 1000), 3))


def test_end_is_forced_after_horizon_and_never_first():
    m = tiny_model(num_actions=2, seed=7)
    obs, goal = random_images(2, 2, (24, 24), 1), random_images(2, 1, (24, 24), 2)
    for method in ("beam", "sample"):
        p = m.plan(obs, goal, method=method, width=8, horizon=1, seed=0, backend="reference")
        assert p.lengths.tolist() == [1, 1] and p.actions.shape == (2, 1) and (p.actions >= 0).all()


def test_plan_keys_take_any_integer_container_and_are_checked():
    """model.plan's plan_keys: a list, array or tensor gives the same plans (keys 0..P-1 the
    unkeyed ones); beam search reads none; bad keys are named."""
    import numpy as np

    m = tiny_model(num_actions=4, seed=2)
    obs, goal = random_images(3, 2, (24, 24), 4), random_images(3, 1, (24, 24), 5)
    kw = dict(method="sample", width=16, horizon=6, seed=3, backend="reference")
    unkeyed = m.plan(obs, goal, **kw)
    for keys in ([0, 1, 2], np.arange(3, dtype=np.uint32), torch.arange(3, dtype=torch.int32)):
        assert torch.equal(m.plan(obs, goal, plan_keys=keys, **kw).actions, unkeyed.actions)
    beam = dict(kw, method="beam")
    assert torch.equal(m.plan(obs, goal, plan_keys=[9, 8, 7], **beam).actions, m.plan(obs, goal, **beam).actions)
    for keys, err, match in (([0, 1], ValueError, r"plan_keys must have shape \(3,\)"),
                             ([0, 1, 2**32], ValueError, r"plan_keys must be in \[0, 2\*\*32\)"),
                             ([0.0, 1.0, 2.0], TypeError, "plan_keys must be integers"),
                             (torch.ones(3, dtype=torch.bool), TypeError, "plan_keys must be integers")):
        with pytest.raises(err, match=match):
            m.plan(obs, goal, plan_keys=keys, **kw)


@pytest.mark.parametrize("keys", [[0, -1, 2], np.array([0, 1, 2**32]), torch.tensor([2**40, 0, 1])])
def test_plan_keys_given_on_the_host_are_checked_for_a_device_plan_too(keys):
    """Keys given as a list, array or CPU tensor for a plan on another device were moved there
    first and then not checked (a check on the GPU would wait for it): the CUDA op kept their low
    32 bits. The meta device stands in for a GPU."""
    from glamor.planning import checked_plan_keys

    with pytest.raises(ValueError, match=r"plan_keys must be in \[0, 2\*\*32\)"):
        checked_plan_keys(keys, 3, torch.device("meta"))
    assert checked_plan_keys([0, 5, 2**32 - 1], 3, torch.device("meta")).device.type == "meta"


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(horizon=0), r"horizon must be an int in \[1, 2147483647\), got 0"),
        (dict(width=0), r"width must be an int in \[1, 2147483648\), got 0"),
        (dict(horizon=None), "horizon must be an int in .*got None"),
        (dict(width=None, backend="reference"), "width must be an int in .*got None"),
        (dict(horizon=2**63), "horizon must be an int in"),
        (dict(width=2**31, method="sample"), "width must be an int in"),  # the op's num_samples
        (dict(width=2**63, backend="reference"), "width must be an int in"),
        (dict(method="greedy"), "method must be one of"),
        (dict(backend="gpu"), "backend must be one of"),
        (dict(gamma=1.5), "gamma must be in"),
        (dict(method="sample", seed=-1), r"seed must be an int in \[0, "),
        (dict(clip_logq=float("nan")), "clip_logq must be None or a number <= -0.001"),
        (dict(clip_logq=float("nan"), backend="reference"), "clip_logq must be None or a number <= -0.001"),
        (dict(clip_logq=5.0), "above 0 every token would be clipped"),
        (dict(clip_logq=0.0), "a near-certain token's log q is 0 up to float32 rounding"),
        (dict(clip_logq=-1e-6, backend="reference"), r"clip_logq must be None or a number <= -0.001 .*got -1e-06"),
        (dict(gamma=10**400), "gamma must be in"),
        (dict(horizon=2**31 - 1), r"horizon must be an int in \[1, 2147483647\)"),  # the ops' bound
        (dict(clip_logq="-1"), "clip_logq must be None or a number <= -0.001"),
        (dict(use_prior="no"), "use_prior must be True or False, got 'no'"),
        (dict(use_prior=None, backend="reference"), "use_prior must be True or False, got None"),
        (dict(gamma="0.5"), "gamma must be in"),
        (dict(method="sample", seed=1.5), "seed must be an int"),
        (dict(width=True), "width must be an int"),
        (dict(width=5 * 10**8, horizon=30, backend="reference"), r"reference planner would need about .* GiB"),  # < 3**30
        (dict(width=10**9, method="sample", backend="reference"), r"reference planner would need about .* GiB"),
    ],
)
def test_bad_plan_arguments_are_named(kwargs, match):
    m = tiny_model()
    obs, goal = random_images(1, 2, (24, 24)), random_images(1, 1, (24, 24))
    with pytest.raises(ValueError, match=match):
        m.plan(obs, goal, **{"width": 4, "horizon": 3, **kwargs})


def test_numpy_numbers_are_plan_arguments():
    import numpy as np

    m = tiny_model()
    obs, goal = random_images(2, 2, (24, 24)), random_images(2, 1, (24, 24))
    args = dict(method="sample", width=4, horizon=3, gamma=0.9, seed=7, clip_logq=-3.0)
    numpy_args = dict(method="sample", width=np.int64(4), horizon=np.int32(3), gamma=np.float32(0.9),
                      seed=np.uint64(7), clip_logq=np.float64(-3.0))
    for backend in ("reference", "native") if __import__("glamor").ops.available() else ("reference",):
        a, b = m.plan(obs, goal, backend=backend, **args), m.plan(obs, goal, backend=backend, **numpy_args)
        assert torch.equal(a.actions, b.actions) and torch.equal(a.lengths, b.lengths)


def test_zero_dim_tensors_and_arrays_are_plan_arguments():
    """A gamma, seed or width read off a tensor (0-d) plans like its number (0.5: exact in
    float32); a 0-d float width or a bool tensor is refused as the number would be."""
    from glamor import ops

    m = tiny_model()
    obs, goal = random_images(2, 2, (24, 24)), random_images(2, 1, (24, 24))
    args = dict(method="sample", width=4, horizon=3, gamma=0.5, seed=7, clip_logq=-3.0)
    zero_dim = dict(method="sample", width=torch.tensor(4), horizon=np.array(3), gamma=torch.tensor(0.5),
                    seed=torch.tensor(7), clip_logq=np.array(-3.0))
    for backend in ("reference", "native") if ops.available() else ("reference",):
        a, b = m.plan(obs, goal, backend=backend, **args), m.plan(obs, goal, backend=backend, **zero_dim)
        assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
        acts, lens = torch.tensor([[0, 1]]).expand(2, -1), torch.tensor([2, 1])
        assert torch.equal(m.score(obs, goal, acts, lens, gamma=0.5, backend=backend),
                           m.score(obs, goal, acts, lens, gamma=torch.tensor(0.5), backend=backend))
    with pytest.raises(ValueError, match=r"width must be an int in .*got 4\.0"):
        m.plan(obs, goal, width=torch.tensor(4.0), horizon=3)
    with pytest.raises(ValueError, match="gamma must be in .*got True"):
        m.plan(obs, goal, width=4, horizon=3, gamma=torch.tensor(True))


def test_bad_score_arguments_are_named():
    m = tiny_model()
    obs, goal = random_images(1, 2, (24, 24)), random_images(1, 1, (24, 24))
    with pytest.raises(ValueError, match=r"actions must be in \[0, 3\)"):
        m.score(obs, goal, torch.tensor([[0, 5]]), torch.tensor([2]))
    with pytest.raises(ValueError, match=r"lengths must be in \[1, 2\]"):
        m.score(obs, goal, torch.tensor([[0, 1]]), torch.tensor([0]))
    with pytest.raises(ValueError, match="int64"):
        m.score(obs, goal, torch.tensor([[0.0, 1.0]]), torch.tensor([2]))
    with pytest.raises(ValueError, match=r"one plan per observation: obs has P=1, actions \(1, 2\) \(P, L\) and lengths \(3,\)"):
        m.score(obs, goal, torch.tensor([[0, 1]]), torch.tensor([2, 2, 2]))
    with pytest.raises(ValueError, match=r"actions must be an int64 tensor \(P, L\) with L >= 1, got \(1, 0\)"):
        m.score(obs, goal, torch.zeros(1, 0, dtype=torch.int64), torch.tensor([1]))
    long = np.zeros((1, 1000), np.int64)  # numpy: named by its type, not by a screenful of its values
    with pytest.raises(ValueError, match=r"actions must be an int64 tensor \(P, L\) with L >= 1, got a ndarray$"):
        m.score(obs, goal, long, torch.tensor([1]))
    with pytest.raises(ValueError, match=r"lengths must be an int64 tensor \(P,\), got a list$"):
        m.score(obs, goal, torch.tensor([[0, 1]]), [2] * 1000)
    with pytest.raises(ValueError, match="above 0 every token would be clipped"):
        m.score(obs, goal, torch.tensor([[0, 1]]), torch.tensor([2]), clip_logq=0.5)
    with pytest.raises(ValueError, match="use_prior must be True or False"):
        m.score(obs, goal, torch.tensor([[0, 1]]), torch.tensor([2]), use_prior="yes")


@pytest.mark.parametrize("dtype", [torch.float64, torch.float16, torch.bfloat16])
def test_a_model_of_another_dtype_is_told_to_plan_in_float32(dtype):
    m = tiny_model().to(dtype)
    obs, goal = random_images(1, 2, (24, 24)), random_images(1, 1, (24, 24))
    with pytest.raises(ValueError, match=f"weights are {dtype}: plan with a float32 copy"):
        m.plan(obs, goal, width=4, horizon=3)
    assert m.float().plan(obs, goal, width=4, horizon=3).lengths.shape == (1,)


def test_planning_inputs_reject_nan_weights():
    m = tiny_model()
    inp = m.planning_inputs(random_images(1, 2, (24, 24)), random_images(1, 1, (24, 24)))
    bad = PlanningInputs(inp.gate_table, inp.h0, inp.c0, inp.w_hh * float("nan"), inp.head_w, inp.head_b)
    with pytest.raises(ValueError, match="w_hh has NaN"):
        bad.validate()


@pytest.mark.parametrize("backend", ["reference", "native"])
def test_views_plan_and_score_like_dense_tensors(backend):
    """Sliced or transposed actions, lengths and planning inputs: the same results as dense copies."""
    from glamor import ops, planning

    if backend == "native" and not ops.available():
        pytest.skip("glamor._C is not built")
    m = tiny_model()
    obs, goal = random_images(4, 2, (24, 24)), random_images(4, 1, (24, 24), seed=1)
    actions = torch.randint(0, 3, (5, 4)).T  # (4, 5), transposed
    lengths = torch.randint(1, 6, (4, 2))[:, 0]  # strided
    assert not actions.is_contiguous() and not lengths.is_contiguous()
    want = m.score(obs, goal, actions.contiguous(), lengths.contiguous(), backend="reference")
    torch.testing.assert_close(m.score(obs, goal, actions, lengths, backend=backend), want, rtol=1e-4, atol=1e-4)
    inp = m.planning_inputs(obs, goal)
    every_other = PlanningInputs(inp.gate_table[:, ::2], inp.h0[:, ::2], inp.c0[:, ::2],  # plans 0 and 2, views
                                 inp.w_hh, inp.head_w, inp.head_b)
    assert not every_other.gate_table.is_contiguous()
    dense = every_other.contiguous()
    for method in ("beam", "sample"):
        got = planning.plan(every_other, method=method, width=8, horizon=4, seed=3, backend=backend)
        ref = planning.plan(dense, method=method, width=8, horizon=4, seed=3, backend="reference")
        assert torch.equal(got.actions, ref.actions) and torch.equal(got.lengths, ref.lengths)


def test_reference_scores_are_float32_under_a_float64_default_dtype():
    """torch.set_default_dtype(torch.float64) must not make the reference accumulate or return
    float64 scores (the native ops and `Plan` are float32; a float64 sum ranks near ties
    otherwise)."""
    from glamor import planning

    m = tiny_model()
    obs, goal = random_images(4, 2, (24, 24)), random_images(4, 1, (24, 24), seed=1)
    inp = m.planning_inputs(obs, goal)
    actions, lengths = torch.randint(0, 3, (4, 3, 5)), torch.randint(1, 6, (4, 3))
    kw = dict(width=8, horizon=5, seed=3, gamma=0.9, backend="reference")
    want = [planning.plan(inp, method=method, **kw) for method in ("beam", "sample")]
    want_scores = planning.score(inp, actions, lengths, gamma=0.9, backend="reference")
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        got = [planning.plan(inp, method=method, **kw) for method in ("beam", "sample")]
        got_scores = planning.score(inp, actions, lengths, gamma=0.9, backend="reference")
    finally:
        torch.set_default_dtype(default)
    for g, w in zip(got, want):
        assert g.scores.dtype == torch.float32
        assert torch.equal(g.scores, w.scores) and torch.equal(g.actions, w.actions)
    assert got_scores.dtype == torch.float32 and torch.equal(got_scores, want_scores)


@pytest.mark.parametrize("backend", ["reference", "native"])
def test_planning_under_a_callers_autocast_runs_in_float32(backend):
    """The reference planner's matmuls ran in bfloat16 under a caller's torch.autocast (scores off
    by ~1e-3, plans free to differ from the native ops', which autocast does not touch)."""
    from glamor import ops, planning

    if backend == "native" and not ops.available():
        pytest.skip("glamor._C is not built")
    m = tiny_model()
    obs, goal = random_images(4, 2, (24, 24)), random_images(4, 1, (24, 24), seed=1)
    inp = m.planning_inputs(obs, goal)
    actions, lengths = torch.randint(0, 3, (4, 3, 5)), torch.randint(1, 6, (4, 3))
    kw = dict(width=8, horizon=5, seed=3, backend=backend)
    want = [planning.plan(inp, method=method, **kw) for method in ("beam", "sample")]
    want_scores = planning.score(inp, actions, lengths, backend=backend)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = [planning.plan(inp, method=method, **kw) for method in ("beam", "sample")]
        got_scores = planning.score(inp, actions, lengths, backend=backend)
    for g, w in zip(got, want):
        assert torch.equal(g.actions, w.actions) and torch.equal(g.scores, w.scores)
    assert torch.equal(got_scores, want_scores)


@pytest.mark.parametrize("backend", ["reference", "native"])
def test_plans_and_scores_of_inputs_that_require_grad_do_not(backend):
    """Planning inputs that require grad (weights taken from a model outside no_grad): the native
    ops' outputs never require grad, but the reference's did, holding every step's states in an
    autograd graph (memory far beyond its guard's estimate)."""
    from glamor import ops, planning

    if backend == "native" and not ops.available():
        pytest.skip("glamor._C is not built")
    m = tiny_model()
    obs, goal = random_images(4, 2, (24, 24)), random_images(4, 1, (24, 24), seed=1)
    inp = PlanningInputs(*(t.clone().requires_grad_() for t in m.planning_inputs(obs, goal).tensors()))
    for method in ("beam", "sample"):
        assert not planning.plan(inp, method=method, width=8, horizon=5, seed=3, backend=backend).scores.requires_grad
    actions, lengths = torch.randint(0, 3, (4, 3, 5)), torch.randint(1, 6, (4, 3))
    assert not planning.score(inp, actions, lengths, backend=backend).requires_grad


def test_planning_on_a_gpu_without_usable_kernels_falls_back_to_the_reference(monkeypatch):
    """backend='auto' on a CUDA device whose kernels are missing (a CPU-only build of glamor._C,
    or a card older than sm_90) plans with the reference and warns once; 'native' says why not."""
    import warnings

    from glamor import ops, planning

    if not ops.available():
        pytest.skip("glamor._C not built")
    cuda = torch.device("cuda", 0)
    monkeypatch.setattr(planning, "_warned", set())
    monkeypatch.setattr(planning, "_missing_cuda_kernels", lambda device: "no kernels here")
    with pytest.warns(RuntimeWarning, match="reference planner: no kernels here"):
        assert planning.resolve_backend("auto", cuda) == "reference"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # once is enough
        assert planning.resolve_backend("auto", cuda) == "reference"
    with pytest.raises(RuntimeError, match="backend='native' on cuda:0: no kernels here"):
        planning.resolve_backend("native", cuda)
    assert planning.resolve_backend("auto", torch.device("cpu")) == "native"


def test_sizes_the_native_op_does_not_take_fall_back_to_the_reference_under_auto(monkeypatch):
    """The CUDA ops refuse some sizes the CPU op takes (H > 128, too little shared memory for
    many actions, over 65535 plans) with NotImplementedError: backend='auto' then plans and
    scores with the reference (the same plans) and warns once per reason; 'native' raises."""
    import warnings

    from glamor import ops, planning

    if not ops.available():
        pytest.skip("glamor._C not built")
    why = "the CUDA planner supports hidden sizes H <= 128, got H = 129 (the CPU op has no such limit)"

    def refuse(*args, **kwargs):
        raise NotImplementedError(why)

    for name in ("beam_search", "sample_plans", "score_plans"):
        monkeypatch.setattr(ops, name, refuse)
    monkeypatch.setattr(planning, "_warned", set())
    m = tiny_model()
    inp = m.planning_inputs(random_images(3, 2, (24, 24)), random_images(3, 1, (24, 24), seed=1))
    actions, lengths = torch.randint(0, 3, (3, 5, 4)), torch.randint(1, 5, (3, 5))
    with pytest.warns(RuntimeWarning, match=r"reference planner: the CUDA planner supports hidden sizes H <= 128"):
        got = planning.plan(inp, method="sample", width=8, horizon=4, seed=3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # once per reason
        beam = planning.plan(inp, method="beam", width=8, horizon=4)
        scores = planning.score(inp, actions, lengths)
    for method, plan in (("sample", got), ("beam", beam)):
        want = planning.plan(inp, method=method, width=8, horizon=4, seed=3, backend="reference")
        assert torch.equal(plan.actions, want.actions) and torch.equal(plan.lengths, want.lengths)
    assert torch.equal(scores, planning.score(inp, actions, lengths, backend="reference"))
    for call in (lambda: planning.plan(inp, width=8, horizon=4, backend="native"),
                 lambda: planning.score(inp, actions, lengths, backend="native")):
        with pytest.raises(NotImplementedError, match="H <= 128"):
            call()


def test_the_reasons_the_cuda_kernels_cannot_run(monkeypatch):
    from glamor import planning

    has = {"value": False}
    monkeypatch.setattr(torch._C, "_dispatch_has_kernel_for_dispatch_key", lambda op, key: has["value"])
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda i: (8, 0))
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda i: "NVIDIA A100")
    planning._missing_cuda_kernels_on.cache_clear()
    try:
        assert "built without CUDA kernels" in planning._missing_cuda_kernels(torch.device("cuda", 0))
        has["value"] = True
        planning._missing_cuda_kernels_on.cache_clear()
        assert "compute capability 9.0 or later" in planning._missing_cuda_kernels(torch.device("cuda", 0))
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda i: (9, 0))
        planning._missing_cuda_kernels_on.cache_clear()
        assert planning._missing_cuda_kernels(torch.device("cuda", 0)) is None
    finally:
        planning._missing_cuda_kernels_on.cache_clear()


def test_the_deterministic_token_cdf_equals_cumsum_bit_for_bit():
    from glamor.planning.reference import token_cdf

    g = torch.Generator().manual_seed(0)
    for scale in (1e-3, 1.0, 30.0):
        probs = torch.rand(4, 9, 19, generator=g) * scale
        assert torch.equal(token_cdf(probs, loop=True), torch.cumsum(probs, dim=-1))


def test_a_beam_wider_than_every_plan_runs_at_the_width_that_keeps_them_all(monkeypatch):
    """Beam search of width n**horizon keeps every partial plan, so a wider beam plans the same:
    it is run at that width (a width of 10**6 over 12 plans took 1.8 s native, 20 s reference)."""
    import glamor.planning as planning
    from glamor import ops

    m = tiny_model(num_actions=3, seed=6)
    obs, goal = random_images(3, 2, (24, 24), 7), random_images(3, 1, (24, 24), 8)
    asked = []
    for name, module in (("beam_search", ops), ("beam_search", R)):
        real = getattr(module, name)
        monkeypatch.setattr(module, name, lambda inp, width, *a, real=real: asked.append(width) or real(inp, width, *a))
    for backend in ("native", "reference"):
        asked.clear()
        exhaustive = m.plan(obs, goal, method="beam", width=27, horizon=3, backend=backend)
        for width in (28, 10**6):
            wide = m.plan(obs, goal, method="beam", width=width, horizon=3, backend=backend)
            assert torch.equal(wide.actions, exhaustive.actions) and torch.equal(wide.lengths, exhaustive.lengths)
            assert torch.equal(wide.scores, exhaustive.scores)
        assert asked == [27, 27, 27]
    assert planning.exhaustive_beam_width(3, 3, 26) == 26 and planning.exhaustive_beam_width(1, 50, 9) == 1
    assert planning.exhaustive_beam_width(18, 50, 2**31 - 1) == 2**31 - 1
    started = time.perf_counter()  # one action: one plan of each length, at any horizon, at once
    assert planning.exhaustive_beam_width(1, 2**31 - 2, 9) == 1 and time.perf_counter() - started < 1


@pytest.mark.parametrize("backend", ["reference", "native"])
def test_strided_plan_keys_plan_like_dense_ones(backend):
    """A column of a (P, steps) key table is a strided view: the native op takes only dense
    keys, so plan() hands it a dense copy (it raised 'plan_keys must be contiguous')."""
    from glamor import ops

    if backend == "native" and not ops.available():
        pytest.skip("glamor._C is not built")
    m = tiny_model()
    obs, goal = random_images(3, 2, (24, 24)), random_images(3, 1, (24, 24), seed=1)
    keys = torch.arange(30).view(3, 10)[:, 4]
    assert not keys.is_contiguous()
    kw = dict(method="sample", width=8, horizon=4, seed=3)
    got = m.plan(obs, goal, plan_keys=keys, backend=backend, **kw)
    want = m.plan(obs, goal, plan_keys=keys.contiguous(), backend="reference", **kw)
    assert torch.equal(got.actions, want.actions) and torch.equal(got.lengths, want.lengths)


def test_an_empty_batch_plans_and_scores_on_the_reference_without_stepping(monkeypatch):
    """P = 0 (or no sequences to score) returns empty results at once, as the native ops: the
    reference used to run all horizon + 1 steps on empty tensors (a horizon of 2**31 - 2, which
    the memory guard lets through for no plans, hung for hours)."""
    from glamor.planning import plan, score

    def no_steps(*args):
        raise AssertionError("the reference stepped an empty batch")

    monkeypatch.setattr(R, "_advance", no_steps)
    g = torch.Generator().manual_seed(0)
    M, n, H = 2, 3, 5
    empty = PlanningInputs(torch.randn(M, 0, n + 1, 4 * H, generator=g), torch.randn(M, 0, H, generator=g),
                           torch.randn(M, 0, H, generator=g), torch.randn(M, 4 * H, H, generator=g),
                           torch.randn(M, n + 2, H, generator=g), torch.randn(M, n + 2, generator=g))
    horizon = 2**31 - 2
    for method, width in (("beam", (2**31 - 1) // n), ("sample", 2**31 - 1)):  # a beam's bound is per action
        p = plan(empty, method=method, width=width, horizon=horizon, seed=1, backend="reference",
                 plan_keys=torch.zeros(0, dtype=torch.int64))
        assert p.actions.shape == (0, horizon) and p.actions.dtype == torch.int64
        assert p.lengths.shape == (0,) and p.lengths.dtype == torch.int64
        assert p.scores.shape == (0,) and p.scores.dtype == torch.float32
    out = score(empty, torch.zeros(0, 2, 1000, dtype=torch.int64), torch.ones(0, 2, dtype=torch.int64),
                backend="reference")
    assert out.shape == (0, 2) and out.dtype == torch.float32
    full = PlanningInputs(torch.randn(M, 2, n + 1, 4 * H, generator=g), torch.randn(M, 2, H, generator=g),
                          torch.randn(M, 2, H, generator=g), *empty.tensors()[3:])
    none = torch.zeros(2, 0, 1000, dtype=torch.int64)
    out = score(full, none, torch.ones(2, 0, dtype=torch.int64), backend="reference")
    assert out.shape == (2, 0) and out.dtype == torch.float32


@pytest.mark.parametrize("scaled,top,match", [
    ("h0", 3e38, "gate_table, w_hh and h0 give LSTM gate pre-activations up to"),  # h0 @ w_hh overflows
    ("gate_table", 1e38, "gate_table, w_hh and h0 give LSTM gate pre-activations up to"),
    ("w_hh", 1e38, "gate_table, w_hh and h0 give LSTM gate pre-activations up to"),
    ("head_w", 1e38, "head_w and head_b give logits up to"),
])
def test_finite_inputs_that_overflow_float32_planning_are_refused_by_every_backend(scaled, top, match):
    """Huge finite planning inputs: the reference planned (or gave NaN scores, refused as not
    finite) where the native CPU ops refused a gate_table or w_hh element of 2^126 or more, or
    clamped NaN gates (inf - inf from h0 @ w_hh) back into range and returned a plan made of them.
    Every backend now refuses them before planning, naming the tensors, for plan and score."""
    from glamor import ops
    from glamor.planning import plan, score

    g = torch.Generator().manual_seed(3)
    M, P, n, H = 2, 3, 4, 4
    tensors = dict(gate_table=torch.randn(M, P, n + 1, 4 * H, generator=g) * 0.5,
                   h0=torch.randn(M, P, H, generator=g) * 0.5, c0=torch.randn(M, P, H, generator=g) * 0.5,
                   w_hh=torch.randn(M, 4 * H, H, generator=g) * 0.5, head_w=torch.randn(M, n + 2, H, generator=g),
                   head_b=torch.randn(M, n + 2, generator=g) * 0.5)
    unit = tensors[scaled] / tensors[scaled].abs().max()
    tensors[scaled] = unit * top  # its largest element `top`
    assert all(torch.isfinite(t).all() for t in tensors.values())
    inputs = PlanningInputs(**tensors)
    backends = ("reference", "native") if ops.available() else ("reference",)
    for backend in backends:
        for method in ("beam", "sample"):
            with pytest.raises(ValueError, match=match):
                plan(inputs, method=method, width=8, horizon=3, seed=0, backend=backend)
        with pytest.raises(ValueError, match=match):
            score(inputs, torch.zeros(P, 1, 2, dtype=torch.int64), torch.ones(P, 1, dtype=torch.int64),
                  backend=backend)
    fine = PlanningInputs(**{**tensors, scaled: unit * 1e6})  # large, but far from 2^126
    for backend in backends:
        assert torch.isfinite(plan(fine, width=8, horizon=3, backend=backend).scores).all()


def test_a_huge_initial_state_that_no_recurrent_weight_reads_still_plans():
    """The overflow bound is exact, not a product of maxima: an h0 unit of 3e38 whose w_hh column
    is zero adds nothing to any gate, so it plans, alike on every backend."""
    from glamor import ops
    from glamor.planning import plan

    g = torch.Generator().manual_seed(4)
    M, P, n, H = 2, 2, 3, 4
    h0, w_hh = torch.randn(M, P, H, generator=g) * 0.5, torch.randn(M, 4 * H, H, generator=g) * 0.5
    h0[..., 0], w_hh[..., 0] = 3e38, 0.0
    inputs = PlanningInputs(torch.randn(M, P, n + 1, 4 * H, generator=g), h0, torch.randn(M, P, H, generator=g),
                            w_hh, torch.randn(M, n + 2, H, generator=g), torch.randn(M, n + 2, generator=g))
    plans = [plan(inputs, width=27, horizon=3, backend=b) for b in (("reference", "native") if ops.available()
                                                                     else ("reference",))]
    assert all(torch.isfinite(p.scores).all() for p in plans)
    assert all(p.actions.tolist() == plans[0].actions.tolist() for p in plans)
