"""Shared helpers of the native-planner tests: random planning inputs and strict comparisons."""

from __future__ import annotations

import math
import random
from collections.abc import Sequence

import torch

from glamor.planning.inputs import PlanningInputs

# Scores are float32 sums of up to horizon+1 terms computed in another order than the
# reference: 1e-4 relative, with the same bound absolute for scores near 0.
RTOL = 1e-4
ATOL = 1e-4


def random_case(seed: int, max_plans: int, hidden: Sequence[int], widths: Sequence[int]) -> dict:
    """Sizes and options of one randomized planner case, reproducible from `seed`: prior on
    (M = 2) or off, 1..max_plans plans, actions, a hidden size from `hidden`, a width from
    `widths`, horizon, gamma, clip and the sampler's seed."""
    r = random.Random(seed)
    return dict(
        M=r.choice([1, 2]),
        P=r.randint(1, max_plans),
        n=r.choice([1, 2, 3, 5, 8, 18]),
        H=r.choice(list(hidden)),
        width=r.choice(list(widths)),
        horizon=r.randint(1, 12),
        gamma=r.choice([1.0, 0.99, 0.9, 0.5]),
        clip=r.choice([None, None, -3.0, -1.5]),
        seed=r.randrange(2**62),
    )


def case_id(c: dict) -> str:
    return "M{M}-P{P}-n{n}-H{H}-w{width}-T{horizon}-g{gamma}-clip{clip}".format(**c)


def random_inputs(M: int, P: int, n: int, H: int, seed: int = 0) -> PlanningInputs:
    """PlanningInputs with weights spread enough that token distributions are neither
    uniform nor peaked (the LSTM state moves, s spans a few nats)."""
    g = torch.Generator().manual_seed(seed)

    def r(*shape, scale=1.0):
        return torch.randn(*shape, generator=g) * scale

    return PlanningInputs(
        gate_table=r(M, P, n + 1, 4 * H, scale=0.5),
        h0=r(M, P, H, scale=0.5),
        c0=r(M, P, H, scale=0.5),
        w_hh=r(M, 4 * H, H, scale=1.0 / math.sqrt(H)),
        head_w=r(M, n + 2, H, scale=2.0 / math.sqrt(H)),
        head_b=r(M, n + 2, scale=0.5),
    )


def diff_report(native: torch.Tensor, ref: torch.Tensor) -> str:
    d = (native.double() - ref.double()).abs()
    return f"max |diff| {d.max().item():.3g}, mean {d.mean().item():.3g}"


def assert_scores_close(native: torch.Tensor, ref: torch.Tensor, what: str = "scores") -> None:
    assert native.dtype == torch.float32 and native.shape == ref.shape, (
        native.dtype,
        native.shape,
        ref.shape,
    )
    ok = torch.isclose(native, ref, rtol=RTOL, atol=ATOL)
    assert bool(ok.all()), (
        f"{what} differ ({diff_report(native, ref)}) at {(~ok).nonzero().tolist()[:8]}: "
        f"native {native[~ok][:8].tolist()} reference {ref[~ok][:8].tolist()}"
    )


def assert_plans_equal(native, ref) -> None:
    """Identical actions and lengths, scores within tolerance."""
    (na, nl, ns), (ra, rl, rs) = native, ref
    assert na.dtype == torch.int64 and nl.dtype == torch.int64, (na.dtype, nl.dtype)
    bad = (na != ra).any(dim=1) | (nl != rl)
    assert not bool(bad.any()), (
        f"plans differ for problems {bad.nonzero().flatten().tolist()}: native lengths "
        f"{nl[bad].tolist()} actions {na[bad].tolist()}; reference lengths {rl[bad].tolist()} "
        f"actions {ra[bad].tolist()}; scores native {ns[bad].tolist()} reference {rs[bad].tolist()}"
    )
    assert_scores_close(ns, rs)


def assert_identical(a, b) -> None:
    """Bit-identical outputs (tuples of tensors, or one tensor)."""
    a = a if isinstance(a, tuple) else (a,)
    b = b if isinstance(b, tuple) else (b,)
    for x, y in zip(a, b, strict=True):
        assert x.dtype == y.dtype and x.shape == y.shape
        assert torch.equal(x, y), diff_report(x, y) if x.is_floating_point() else (x, y)


def random_sequences(P: int, N: int, L: int, n: int, seed: int = 0):
    """int64 actions (P, N, L) with lengths (P, N) in [1, L]; entries past a length are junk
    (including out-of-range values), which scoring must ignore."""
    g = torch.Generator().manual_seed(seed)
    actions = torch.randint(0, n, (P, N, L), generator=g)
    lengths = torch.randint(1, L + 1, (P, N), generator=g)
    past = torch.arange(L) >= lengths.unsqueeze(-1)
    junk = torch.randint(-5, n + 5, (P, N, L), generator=g)
    return torch.where(past, junk, actions), lengths
