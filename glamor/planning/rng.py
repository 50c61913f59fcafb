"""Counter-based uniform draws keyed by (seed, plan, candidate, step).

Sampling planners draw one uniform per candidate and step. Keying each draw by its coordinates
(instead of consuming a stream) makes the result independent of thread count and evaluation
order, and lets the native kernels and this readable reference draw the very same numbers.
The plan coordinate is the plan's index in its batch, or a key the caller gives each plan
(`plan_keys`), which makes a plan's draws independent of the batch too; evaluation keys every
draw by goal and step this way (the random policy's actions are candidate 0 at step 0 of their
key; a sampling GCSL policy's are candidate `GCSL_STREAM`, which no planner reaches, so its draws
are not the sampling planner's first candidate's when a comparison evaluates both with one seed).

The hash is Chris Wellons' ``lowbias32`` on uint32 words, chained over the keys:

    h = mix(lo32(seed) + GOLDEN);  h = mix((h ^ hi32(seed)) + GOLDEN)
    h = mix((h ^ plan) + GOLDEN);  h = mix((h ^ candidate) + GOLDEN);  h = mix((h ^ step) + GOLDEN)
    u = (h >> 8) * 2**-24        # float32 in [0, 1), exact

Here it is written with int64 tensors masked to 32 bits (torch has no full uint32 arithmetic);
``csrc/cpu/rng.h`` is the same function on ``uint32_t``.
"""

from __future__ import annotations

import torch

MASK32 = 0xFFFFFFFF
GOLDEN = 0x9E3779B9
MUL1 = 0x7FEB352D
MUL2 = 0x846CA68B
# The candidate coordinate of a sampling GCSL policy's draws: above every planner candidate
# (widths are at most 2**31), so they never repeat a GLAMOR plan's draws of the same seed and key.
GCSL_STREAM = MASK32


def _mul32(x: torch.Tensor, c: int) -> torch.Tensor:
    """(x * c) mod 2**32 for x in [0, 2**32), without overflowing int64."""
    lo, hi = c & 0xFFFF, c >> 16
    return (x * lo + (((x * hi) & 0xFFFF) << 16)) & MASK32


def mix32(x: torch.Tensor) -> torch.Tensor:
    """lowbias32: a bijection on uint32 with good avalanche."""
    x = x ^ (x >> 16)
    x = _mul32(x, MUL1)
    x = x ^ (x >> 15)
    x = _mul32(x, MUL2)
    return x ^ (x >> 16)


def uniform(seed: int, plan: torch.Tensor, candidate: torch.Tensor, step: int) -> torch.Tensor:
    """float32 uniforms in [0, 1), one per broadcast (plan, candidate) pair.

    Args:
        seed: a non-negative int below 2**63.
        plan: int64 plan indices (broadcastable with `candidate`).
        candidate: int64 candidate indices.
        step: the token position.
    """
    if not 0 <= seed < 2**63:
        raise ValueError(f"seed must be in [0, 2**63), got {seed}")
    h = mix32(torch.tensor((seed & MASK32) + GOLDEN, dtype=torch.int64) & MASK32)
    h = mix32(((h ^ (seed >> 32)) + GOLDEN) & MASK32)
    h = mix32(((h ^ plan.to(torch.int64)) + GOLDEN) & MASK32)
    h = mix32(((h ^ candidate.to(torch.int64)) + GOLDEN) & MASK32)
    h = mix32(((h ^ step) + GOLDEN) & MASK32)
    return (h >> 8).to(torch.float32) * (1.0 / (1 << 24))


def key_uniforms(seed: int, keys: torch.Tensor, candidate: int = 0) -> torch.Tensor:
    """float32 (P,): one uniform per int64 key, `candidate` at step 0 of `uniform` (evaluation's
    random policy draws candidate 0 for each (goal, step) key, a sampling GCSL policy
    `GCSL_STREAM`)."""
    return uniform(seed, keys, torch.full_like(keys, candidate), 0)
