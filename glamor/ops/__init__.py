"""Thin wrappers over the native ops ``torch.ops.glamor.*`` (C++ on the CPU, CUDA on GPUs).

The compiled module ``glamor._C`` is optional. Without it ``available()`` is False, the
planners fall back to the readable reference (`glamor.planning.reference`), and
``import glamor`` warns once, naming the command that rebuilds it.
"""

from __future__ import annotations

REBUILD_HINT = "rebuild it with `.venv/bin/pip install --no-build-isolation -e .` (or `make build`)"

try:
    from glamor import _C  # noqa: F401  (registers torch.ops.glamor.*)

    _IMPORT_ERROR: Exception | None = None
except ImportError as e:  # not built, or built against another torch
    _IMPORT_ERROR = e


def available() -> bool:
    """True when the compiled ops are loaded."""
    return _IMPORT_ERROR is None


def import_error() -> Exception | None:
    return _IMPORT_ERROR


def _require():
    if _IMPORT_ERROR is not None:
        raise RuntimeError(f"glamor._C is not available ({_IMPORT_ERROR}); {REBUILD_HINT}")


def score_plans(inputs, actions, lengths, gamma, clip_logq):
    _require()
    raise NotImplementedError("native score_plans is not registered yet")


def sample_plans(inputs, num_samples, horizon, seed, gamma, clip_logq):
    _require()
    raise NotImplementedError("native sample_plans is not registered yet")


def beam_search(inputs, width, horizon, gamma, clip_logq):
    _require()
    raise NotImplementedError("native beam_search is not registered yet")
