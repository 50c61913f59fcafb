"""Errors glamor raises for conditions of the machine rather than of the caller's arguments.

The command line prints them as one line (`glamor train: error: ...`), as it does ValueError
and OSError; they are RuntimeErrors, so `except RuntimeError` still catches them.
"""

from __future__ import annotations


class EnvironmentUnavailable(RuntimeError):
    """An environment cannot be made or kept running here: headless rendering that does not
    work (DeepMind Control needs EGL or OSMesa), or an environment worker that failed every
    restart. The message names the cause (for rendering, also the packages that fix it)."""
