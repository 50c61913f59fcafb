"""Planning: choose a backend and run beam search, sampling or scoring on `PlanningInputs`.

``reference`` is the readable batched PyTorch planner (`glamor.planning.reference`);
``native`` runs the C++/CUDA ops of `glamor.ops` (same semantics, same draws); ``auto`` picks
native when the extension is built. Python never branches on the device (the ops dispatch),
except that `plan` checks CPU plans' scores are finite (on a GPU that check would cost a sync).
"""

from __future__ import annotations

import contextlib
import functools
import numbers
import warnings
from typing import NamedTuple

import numpy as np
import torch

from glamor import ops
from glamor.planning import reference
from glamor.planning.inputs import PlanningInputs

METHODS = ("beam", "sample")
BACKENDS = ("auto", "reference", "native")


class Plan(NamedTuple):
    """The best plan for each of P problems.

    Attributes:
        actions: int64 (P, horizon), the plan's actions padded with -1.
        lengths: int64 (P,), actions in each plan (1..horizon), END follows them (0 only from
            a CUDA op whose every candidate scored NaN, which `on_host` refuses).
        scores: float32 (P,), each plan's score (equal to `score` of the same actions).
    """

    actions: torch.Tensor
    lengths: torch.Tensor
    scores: torch.Tensor


def autocast_off(device: torch.device):
    """A context in which the caller's torch.autocast is off on `device`: the planners run in
    float32 (the native ops whatever autocast says; the reference's matmuls would otherwise run
    in bfloat16 or float16), and so do the encodings and tables they read."""
    if torch.amp.is_autocast_available(device.type):
        return torch.autocast(device.type, enabled=False)
    return contextlib.nullcontext()


def resolve_backend(backend: str, device: torch.device | None = None) -> str:
    """'auto' -> 'native' when the extension is built and has kernels for `device`, else
    'reference' (on a GPU without them, with a warning: a CPU-only build, or a card older than
    the sm_90 the CUDA kernels are built for)."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if backend == "reference":
        return backend
    missing = native_missing(device)
    if missing is None:
        return "native"
    if backend == "native":
        instead = "backend='auto' or 'reference' plans the same with the PyTorch reference planner"
        if not ops.available():
            raise RuntimeError(f"backend='native' needs the compiled extension: {missing}; {ops.REBUILD_HINT}; "
                               f"{instead}")
        raise RuntimeError(f"backend='native' on {device}: {missing} ({instead})")
    if not ops.available():  # (said once, when glamor.ops was imported)
        return "reference"
    if missing not in _warned:
        _warned.add(missing)
        warnings.warn(f"planning on {device} with the PyTorch reference planner: {missing}", RuntimeWarning,
                      stacklevel=3)
    return "reference"


_warned: set[str] = set()


def native_missing(device: torch.device | None = None) -> str | None:
    """Why the native ops cannot plan on `device` (None: the CPU), or None when they can."""
    if not ops.available():
        return f"glamor._C is not built ({ops.import_error()})"
    if device is not None and device.type == "cuda":
        return _missing_cuda_kernels(device)
    return None


@functools.cache
def _missing_cuda_kernels_on(index: int) -> str | None:
    if not torch._C._dispatch_has_kernel_for_dispatch_key("glamor::sample_plans", "CUDA"):
        return ("glamor._C was built without CUDA kernels (rebuild with nvcc on the PATH or CUDA_HOME set: "
                "`pip install --no-build-isolation -e .`)")
    major, minor = torch.cuda.get_device_capability(index)
    if major < 9:
        return (f"the CUDA kernels need compute capability 9.0 or later (thread-block clusters); "
                f"{torch.cuda.get_device_name(index)} has {major}.{minor}")
    return None


def _missing_cuda_kernels(device: torch.device) -> str | None:
    """Why the native ops cannot run on CUDA `device`, or None when they can."""
    return _missing_cuda_kernels_on(device.index if device.index is not None else torch.cuda.current_device())


MAX_SIZE = 2**31 - 1  # the ops' bound on widths and sample counts (horizons: below it)
# The largest clip_logq (csrc/checks.h's MAX_CLIP_LOGQ): a near-certain token's log q is 0 up to
# float32 rounding, which the CPU, CUDA and reference planners round differently, so a threshold
# in (-0.001, 0] would clip it on one and not another.
MAX_CLIP_LOGQ = -1e-3
REFERENCE_MAX_BYTES = 8 * 2**30  # the reference planner's memory guard (the CPU op's is also 8 GiB)


def check_plan_args(horizon: int, width: int, gamma: float,
                    clip_logq: float | None = None) -> tuple[int, int, float, float | None]:
    """The planner's numbers, checked, as Python numbers (numpy scalars and 0-d tensors or
    arrays are fine):
    (horizon, width, gamma, clip_logq)."""
    horizon = _integer("horizon", horizon, 1, MAX_SIZE)
    width = _integer("width", width, 1, MAX_SIZE + 1)
    gamma, clip_logq = check_score_args(gamma, clip_logq)
    return horizon, width, gamma, clip_logq


def check_score_args(gamma: float, clip_logq: float | None = None) -> tuple[float, float | None]:
    """gamma in (0, 1] and clip_logq None or a log-probability threshold <= MAX_CLIP_LOGQ, as floats."""
    if clip_logq is not None:
        what = f"None or a number <= {MAX_CLIP_LOGQ}"
        clip_logq = _number("clip_logq", clip_logq, f"{what} (a log q threshold)")
        if not clip_logq <= MAX_CLIP_LOGQ:  # NaN too
            raise ValueError(f"clip_logq must be {what} (a log q threshold: a near-certain token's log q is 0 up "
                             f"to float32 rounding, which the planners round differently, and above 0 every "
                             f"token would be clipped), got {clip_logq!r}")
    gamma = _number("gamma", gamma, "in (0, 1]")
    if not 0.0 < gamma <= 1.0:
        raise ValueError(f"gamma must be in (0, 1], got {gamma!r}")
    return gamma, clip_logq


def check_seed(name: str, seed) -> int:
    """An agent's seed: an int in [0, 2**62) (numpy's generator and the sampler's keyed draws
    take it; an agent counts unkeyed planning calls up from it)."""
    return _integer(name, seed, 0, 2**62)


def check_use_prior(use_prior) -> bool:
    if not isinstance(use_prior, (bool, np.bool_)):
        raise ValueError(f"use_prior must be True or False, got {use_prior!r}")
    return bool(use_prior)


def _integer(name: str, value, low: int, high: int | None = None) -> int:
    value = ops.scalar(value)  # a 0-d tensor or array: its number
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low or (
            high is not None and value >= high):
        bound = f"in [{low}, {high})" if high is not None else f">= {low}"
        raise ValueError(f"{name} must be an int {bound}, got {value!r}")
    return int(value)


def checked_plan_keys(keys, num_plans: int, device: torch.device, name: str = "plan_keys") -> torch.Tensor:
    """int64 (P,), dense, on `device` from P integers in [0, 2**32) (a tensor, array or list); errors
    name the argument `name`."""
    if isinstance(keys, torch.Tensor):
        t = keys
        if t.dtype == torch.bool or t.is_floating_point() or t.is_complex():
            raise TypeError(f"{name} must be integers, got {t.dtype}")
    else:
        a = np.asarray(keys)
        if a.size == 0 and a.dtype.kind == "f":  # [] for an empty batch (numpy reads it as float64)
            a = a.astype(np.int64)
        if a.dtype.kind not in "iu":
            raise TypeError(f"{name} must be integers, got {a.dtype}")
        if a.dtype.kind == "u":  # uint64 beyond int64's range: clamp to the first refused value
            a = np.minimum(a.astype(np.uint64), np.uint64(2**32))
        t = torch.from_numpy(a.astype(np.int64))
    if t.shape != (num_plans,):
        raise ValueError(f"{name} must have shape ({num_plans},) (one per plan), got {tuple(t.shape)}")
    # Checked on the CPU: keys given there (for a GPU plan too), and GPU keys for a CPU plan (read
    # back here, where reading them is the plan's own wait); GPU keys for a GPU plan are not, as
    # checking would wait for the device.
    t = t.to(torch.int64)  # (2**32 compared with an int32 tensor wraps)
    if device.type == "cpu":
        t = t.cpu()
    if t.device.type == "cpu" and num_plans and not bool(((t >= 0) & (t < 2**32)).all()):
        raise ValueError(f"{name} must be in [0, 2**32), got values from {int(t.min())} to {int(t.max())}")
    return t.to(device).contiguous()  # the ops take dense keys (a key table's column is not)


def _number(name: str, value, what: str) -> float:
    value = ops.scalar(value)  # a 0-d tensor or array: its number
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be {what}, got {value!r}")
    try:
        return float(value)
    except OverflowError:  # an int beyond float's range
        raise ValueError(f"{name} must be {what}, got {value!r}") from None


def plan(
    inputs: PlanningInputs,
    *,
    method: str = "beam",
    width: int = 200,
    horizon: int = 50,
    gamma: float = 0.99,
    seed: int | None = None,
    clip_logq: float | None = None,
    backend: str = "auto",
    plan_keys=None,
) -> Plan:
    """The best plan per problem by beam search or sampling (see `glamor.planning.reference`).

    `seed` keys the sampler's draws; None draws one from torch's global generator, so
    `torch.manual_seed` reproduces runs. `plan_keys` (P integers in [0, 2**32), a tensor or
    array) name each problem's draws in place of its index in the batch, so a problem samples
    the same candidates whichever batch it is planned in (beam search draws nothing).

    `backend`: "auto" (the compiled ops on their device, else the reference, with a warning),
    "native" or "reference". Under "auto", a size the ops do not take (on the CPU more than 4096
    hidden units or 2**20 actions; on CUDA see README, "CUDA planner") runs on the reference.

    The inputs' values and the scores are checked for NaN/inf here on the CPU only (on a GPU
    the check would wait for it): copy a GPU plan back with `on_host`, which checks the scores.
    On the CPU, finite inputs large enough to overflow float32 planning are refused as well
    (`PlanningInputs.validate`), whatever the backend.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    horizon, width, gamma, clip_logq = check_plan_args(horizon, width, gamma, clip_logq)
    inputs.validate()
    if method == "beam":
        width = check_beam_width(inputs.num_actions, horizon, width)
    requested, backend = backend, resolve_backend(backend, inputs.gate_table.device)
    if method == "sample" and seed is None:
        seed = int(torch.randint(0, 2**62, (1,)).item())
    if seed is not None:
        seed = _integer("seed", seed, 0, 2**63)
    if plan_keys is not None:
        plan_keys = checked_plan_keys(plan_keys, inputs.num_plans, inputs.gate_table.device)
    out = None
    if backend == "native":
        dense = inputs.contiguous()  # the ops take dense tensors; views of them are fine here
        try:
            if method == "beam":
                out = ops.beam_search(dense, width, horizon, gamma, clip_logq)
            else:
                out = ops.sample_plans(dense, width, horizon, seed, gamma, clip_logq, plan_keys)
        except NotImplementedError as e:  # a size the CUDA kernels do not take
            _fall_back(requested, e)
    if out is None:
        _check_reference_memory(inputs, width, horizon)
        # float32 and no autograd graph (the ops are not differentiable: a graph would hold every
        # step's states, far beyond _check_reference_memory's estimate)
        with autocast_off(inputs.gate_table.device), torch.no_grad():
            if method == "beam":
                out = reference.beam_search(inputs, width, horizon, gamma, clip_logq)
            else:
                out = reference.sample_plans(inputs, width, horizon, seed, gamma, clip_logq, plan_keys)
    result = Plan(*out)
    if result.scores.device.type == "cpu":  # on a GPU it would sync: on_host checks plans copied back
        _check_scores(result.scores)
    return result


def check_beam_width(num_actions: int, horizon: int, width: int) -> int:
    """The width beam search runs at, `exhaustive_beam_width`, or ValueError naming the limit:
    each step scores width x num_actions candidates, an int32 index in the ops, so the width it
    runs at must be at most MAX_SIZE // num_actions. A wider `width` is fine where n**horizon
    caps it (few actions, short horizons)."""
    kept = exhaustive_beam_width(num_actions, horizon, width)
    limit = MAX_SIZE // num_actions
    if kept > limit:
        raise ValueError(f"width (plan_width) must be at most {limit:,} for beam search over {num_actions} actions "
                         f"at horizon {horizon} (each step scores width x actions candidates, an int32 index; "
                         f"a width above n**horizon = every plan runs at n**horizon), got {width:,}")
    return kept


def exhaustive_beam_width(num_actions: int, horizon: int, width: int) -> int:
    """min(width, num_actions ** horizon): a beam of num_actions ** horizon keeps every partial
    plan at every step (exhaustive search), so a wider one would plan the same at a higher cost."""
    if num_actions == 1:  # one plan of each length: the loop below would run `horizon` times
        return 1
    kept = 1
    for _ in range(horizon):
        kept *= num_actions
        if kept >= width:
            return width
    return kept


def on_host(p: Plan) -> Plan:
    """`p` on the CPU with its scores checked (a plan made on a GPU is checked here, as it is
    copied back, instead of in `plan`, where the check would wait for the GPU). The CUDA ops
    return a plan of length 0 (actions -1) where every candidate scored NaN; this refuses it."""
    if p.scores.device.type == "cpu":
        return p
    host = Plan(p.actions.cpu(), p.lengths.cpu(), p.scores.cpu())
    _check_scores(host.scores)
    return host


def _check_scores(scores: torch.Tensor) -> None:
    if not torch.isfinite(scores).all():
        raise ValueError("plan scores are not finite: the model's weights or observations overflow float32 "
                         "in planning (are the weights trained, or NaN?)")


def _check_reference_memory(inputs: PlanningInputs, width: int, horizon: int) -> None:
    """Refuse a reference call whose tensors would exceed REFERENCE_MAX_BYTES (an estimate:
    N = width candidates per plan hold their tokens (int64, about three copies in flight), both
    LSTMs' states and gates, and the (n+1)-way scores)."""
    P, M, H, n = inputs.num_plans, inputs.num_models, inputs.hidden, inputs.num_actions
    per_candidate = 3 * 8 * horizon + 4 * M * 8 * H + 4 * 4 * (n + 1)
    need = P * width * per_candidate
    if need > REFERENCE_MAX_BYTES:
        raise ValueError(f"the reference planner would need about {need / 2**30:.1f} GiB for {P} plans x "
                         f"width {width} x horizon {horizon} (at most {REFERENCE_MAX_BYTES // 2**30}): lower "
                         f"the width, horizon or plans, or use backend='native'")


def score(
    inputs: PlanningInputs,
    actions: torch.Tensor,
    lengths: torch.Tensor,
    *,
    gamma: float = 0.99,
    clip_logq: float | None = None,
    backend: str = "auto",
) -> torch.Tensor:
    """Teacher-forced scores (P, N) of N sequences (P, N, L) per problem."""
    gamma, clip_logq = check_score_args(gamma, clip_logq)
    inputs.validate()
    n = inputs.num_actions
    for name, t in (("actions", actions), ("lengths", lengths)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
        if t.device != inputs.gate_table.device:
            raise ValueError(f"{name} is on {t.device}, the planning inputs on {inputs.gate_table.device}")
    if actions.dim() != 3 or actions.shape[0] != inputs.num_plans or actions.shape[2] < 1:
        raise ValueError(
            f"actions must be (P={inputs.num_plans}, N, L >= 1), got {tuple(actions.shape)}"
        )
    if actions.dtype != torch.int64 or lengths.dtype != torch.int64:
        raise ValueError(f"actions and lengths must be int64, got {actions.dtype}, {lengths.dtype}")
    if tuple(lengths.shape) != tuple(actions.shape[:2]):
        raise ValueError(f"lengths must be {tuple(actions.shape[:2])}, got {tuple(lengths.shape)}")
    L = actions.shape[2]
    if ((lengths < 1) | (lengths > L)).any():
        raise ValueError(f"lengths must be in [1, {L}], got {lengths.min()}..{lengths.max()}")
    in_plan = torch.arange(L, device=actions.device) < lengths.unsqueeze(-1)
    used = actions[in_plan]
    if ((used < 0) | (used >= n)).any():
        raise ValueError(f"actions must be in [0, {n}) within each plan's length")
    if resolve_backend(backend, inputs.gate_table.device) == "native":
        try:
            return ops.score_plans(inputs.contiguous(), actions.contiguous(), lengths.contiguous(), gamma, clip_logq)
        except NotImplementedError as e:  # a size the CUDA kernels do not take
            _fall_back(backend, e)
    with autocast_off(inputs.gate_table.device), torch.no_grad():  # float32 and no graph, as the ops
        return reference.score_plans(inputs, actions, lengths, gamma, clip_logq)


def _fall_back(requested: str, error: NotImplementedError) -> None:
    """For a call the native op refused as a size it does not take (the CUDA kernels' limits:
    hidden size, shared memory, plans or candidates per call): when the caller asked for
    'auto', warn once per reason (the call then runs on the reference planner); for
    backend='native', re-raise."""
    if requested != "auto":
        raise error
    reason = str(error).split("\n")[0]
    if reason not in _warned:
        _warned.add(reason)
        warnings.warn(f"planning with the PyTorch reference planner: {reason}", RuntimeWarning, stacklevel=3)
