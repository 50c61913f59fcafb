"""Thin wrappers over the native ops ``torch.ops.glamor.*`` (C++ on the CPU, CUDA on GPUs).

Each op has a plain-PyTorch twin in `glamor.planning.reference` with the same semantics; the
tests in ``tests/ops`` compare the two on fresh random inputs. The ops take the six tensors of
`PlanningInputs` (M = 2 with the prior, 1 without; P plans; n actions; H hidden), all float32,
contiguous and on one device:

    gate_table (M, P, n+1, 4H)   h0, c0 (M, P, H)   w_hh (M, 4H, H)   head_w (M, n+2, H)   head_b (M, n+2)

and check every argument at the boundary (dtype, device, shape, contiguity, finite weights
(on the CPU; gate_table and w_hh also below 2^126 in magnitude), ranges), raising ValueError or
TypeError that names it. Results do not depend on the number of
threads (``torch.set_num_threads``).

The compiled module ``glamor._C`` is optional. Without it ``available()`` is False, the
planners fall back to the readable reference, and importing this module (the model and the
planners do) warns once, naming the command that rebuilds it.
"""

from __future__ import annotations

import numbers
import warnings
from pathlib import Path

import numpy as np
import torch

from glamor.native_build import stale_reason

REBUILD_HINT = "rebuild it with `.venv/bin/pip install --no-build-isolation -e .` (or `make build`)"

try:
    from glamor import _C  # registers torch.ops.glamor.*

    _IMPORT_ERROR: Exception | None = None
except ImportError as e:  # not built, or built against another torch
    _C = None
    _IMPORT_ERROR = e
    warnings.warn(f"glamor._C is not built: planning uses the slower PyTorch reference; {REBUILD_HINT}",
                  RuntimeWarning, stacklevel=2)
else:  # an extension left from before an edit or a `git pull` of csrc/ (glamor.native_build)
    _STALE = stale_reason(Path(__file__).resolve().parent.parent)
    if _STALE is not None:
        warnings.warn(f"{_STALE}; {REBUILD_HINT}", RuntimeWarning, stacklevel=2)


def available() -> bool:
    """True when the compiled ops are loaded."""
    return _IMPORT_ERROR is None


def import_error() -> Exception | None:
    return _IMPORT_ERROR


def _require():
    if _IMPORT_ERROR is not None:
        raise RuntimeError(f"glamor._C is not available ({_IMPORT_ERROR}); {REBUILD_HINT}")


def cpu_isa() -> str:
    """The instruction set of the CPU kernels: 'avx512', 'avx2' or 'scalar'.

    The best the CPU has, chosen at run time; the environment variable ``GLAMOR_CPU_ISA``
    (auto, avx512, avx2, scalar) forces one, read at every call.
    """
    _require()
    return _C.cpu_isa()


def _clip(clip_logq: float | None) -> float | None:
    return None if clip_logq is None else _float("clip_logq", clip_logq)


def scalar(value):
    """`value` as a Python number when it is a 0-d tensor or numpy array (a gamma or seed read
    off a tensor), else unchanged; the argument checks (here and in `glamor.planning`) then
    accept or refuse the number as they would a Python one."""
    if isinstance(value, (torch.Tensor, np.ndarray)) and value.ndim == 0:
        try:
            return value.item()
        except RuntimeError:  # a meta tensor has no value: refused as not a number
            return value
    return value


def _int(name: str, value) -> int:
    """An integer argument as a Python int in int64's range (the op checks its own bounds)."""
    value = scalar(value)
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not -2**63 <= value < 2**63:
        raise ValueError(f"{name} must be an int (int64), got {value!r}")
    return int(value)


def _tensors(**named) -> None:
    for name, t in named.items():
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")


def _float(name: str, value) -> float:
    value = scalar(value)
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a number, got {value!r}")
    try:
        return float(value)
    except OverflowError:  # an int beyond float's range
        raise ValueError(f"{name} must be a number in float's range, got {value!r}") from None


def score_plans(inputs, actions, lengths, gamma, clip_logq):
    """Teacher-forced plan scores through both LSTMs; twin of `reference.score_plans`.

    Schema: ``glamor::score_plans(Tensor gate_table, Tensor h0, Tensor c0, Tensor w_hh,
    Tensor head_w, Tensor head_b, Tensor actions, Tensor lengths, float gamma,
    float? clip_logq) -> Tensor``

    Args:
        inputs: `PlanningInputs` of P plans.
        actions: int64 (P, N, L), N sequences per plan (L below 2**31 - 1, as a horizon);
            actions in [0, n) within each length.
        lengths: int64 (P, N), in [1, L].
        gamma: discount in (0, 1]; clip_logq: None (no clip) or the log q threshold.

    Returns:
        float32 (P, N): each sequence's score with END after its last action.
    """
    _require()
    _tensors(actions=actions, lengths=lengths)
    return torch.ops.glamor.score_plans(
        *inputs.tensors(), actions, lengths, _float("gamma", gamma), _clip(clip_logq)
    )


def sample_plans(inputs, num_samples, horizon, seed, gamma, clip_logq, plan_keys=None):
    """Random shooting, N candidates per plan; twin of `reference.sample_plans`.

    Schema: ``glamor::sample_plans(Tensor gate_table, Tensor h0, Tensor c0, Tensor w_hh,
    Tensor head_w, Tensor head_b, int num_samples, int horizon, int seed, float gamma,
    float? clip_logq, Tensor? plan_keys=None) -> (Tensor actions, Tensor lengths, Tensor scores)``

    Draws are keyed by (seed, plan, candidate, step) (`glamor.planning.rng`), so the result
    equals the reference's for the same seed. The plan coordinate is the plan's index, or
    `plan_keys[p]` (int64 (P,) on the inputs' device, its low 32 bits) when given, so a plan
    draws the same numbers wherever it sits in the batch.

    Returns:
        actions int64 (P, horizon) padded with -1, lengths int64 (P,), scores float32 (P,).
    """
    _require()
    if plan_keys is not None:
        _tensors(plan_keys=plan_keys)
    return torch.ops.glamor.sample_plans(
        *inputs.tensors(), _int("num_samples", num_samples), _int("horizon", horizon), _int("seed", seed),
        _float("gamma", gamma), _clip(clip_logq), plan_keys,
    )


def beam_search(inputs, width, horizon, gamma, clip_logq):
    """Beam search of width B per plan; twin of `reference.beam_search`.

    Schema: ``glamor::beam_search(Tensor gate_table, Tensor h0, Tensor c0, Tensor w_hh,
    Tensor head_w, Tensor head_b, int width, int horizon, float gamma, float? clip_logq)
    -> (Tensor actions, Tensor lengths, Tensor scores)``

    Returns:
        actions int64 (P, horizon) padded with -1, lengths int64 (P,), scores float32 (P,).
    """
    _require()
    return torch.ops.glamor.beam_search(
        *inputs.tensors(), _int("width", width), _int("horizon", horizon), _float("gamma", gamma), _clip(clip_logq)
    )


def uniform(seed: int, plan: torch.Tensor, candidate: torch.Tensor, step: int) -> torch.Tensor:
    """The sampler's draws; twin of `glamor.planning.rng.uniform` (bit for bit).

    Schema: ``glamor::uniform(int seed, Tensor plan, Tensor candidate, int step) -> Tensor``
    (plan and candidate int64, broadcast; float32 out).
    """
    _require()
    _tensors(plan=plan, candidate=candidate)
    try:
        torch.broadcast_shapes(plan.shape, candidate.shape)
    except RuntimeError:
        raise ValueError(f"plan {tuple(plan.shape)} and candidate {tuple(candidate.shape)} must broadcast "
                         f"together") from None
    return torch.ops.glamor.uniform(_int("seed", seed), plan, candidate, _int("step", step))


# ---- fake (meta) implementations: shapes only, for torch.compile and FakeTensor ------------
# They also run when one argument is on the 'meta' device and the rest are not (the dispatcher
# picks the meta kernel for the call), so they check the devices: the outputs would be
# allocated on gate_table's device and never filled.


def _one_device(**named) -> None:
    """ValueError naming the first tensor of `named` (None: absent) on another device than the first's."""
    tensors = [(name, t) for name, t in named.items() if t is not None]
    first_name, first = tensors[0]
    for name, t in tensors[1:]:
        if t.device != first.device:
            raise ValueError(f"{name} is on {t.device}, {first_name} on {first.device}: the planner ops take "
                             f"tensors on one device")


def _check_size(name: str, value: int, low: int = 1) -> None:
    torch._check(value >= low, lambda: f"{name} must be at least {low}, got {value}")


if available():

    @torch.library.register_fake("glamor::score_plans")
    def _score_plans_fake(
        gate_table, h0, c0, w_hh, head_w, head_b, actions, lengths, gamma, clip_logq
    ):
        _one_device(gate_table=gate_table, h0=h0, c0=c0, w_hh=w_hh, head_w=head_w, head_b=head_b,
                    actions=actions, lengths=lengths)
        torch._check(
            actions.dim() == 3 and actions.shape[0] == gate_table.shape[1],
            lambda: f"actions must be (P={gate_table.shape[1]}, N, L), got {tuple(actions.shape)}",
        )
        return gate_table.new_empty((actions.shape[0], actions.shape[1]))

    def _plan_fake(gate_table, horizon, **others):
        _one_device(gate_table=gate_table, **others)
        _check_size("horizon", horizon)
        P = gate_table.shape[1]
        actions = gate_table.new_empty((P, horizon), dtype=torch.int64)
        return actions, gate_table.new_empty((P,), dtype=torch.int64), gate_table.new_empty((P,))

    @torch.library.register_fake("glamor::sample_plans")
    def _sample_plans_fake(
        gate_table, h0, c0, w_hh, head_w, head_b, num_samples, horizon, seed, gamma, clip_logq, plan_keys=None
    ):
        _check_size("num_samples", num_samples)
        return _plan_fake(gate_table, horizon, h0=h0, c0=c0, w_hh=w_hh, head_w=head_w, head_b=head_b,
                          plan_keys=plan_keys)

    @torch.library.register_fake("glamor::beam_search")
    def _beam_search_fake(
        gate_table, h0, c0, w_hh, head_w, head_b, width, horizon, gamma, clip_logq
    ):
        _check_size("width", width)
        return _plan_fake(gate_table, horizon, h0=h0, c0=c0, w_hh=w_hh, head_w=head_w, head_b=head_b)

    @torch.library.register_fake("glamor::uniform")
    def _uniform_fake(seed, plan, candidate, step):
        _one_device(plan=plan, candidate=candidate)
        shape = torch.broadcast_shapes(plan.shape, candidate.shape)
        return plan.new_empty(shape, dtype=torch.float32)
