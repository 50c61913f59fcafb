"""glamor: goal reaching from pixels with inverse dynamics models (GLAMOR, ICLR 2021).

Example:
    >>> import torch, glamor
    >>> model = glamor.GlamorModel(num_actions=4, frame_stack=1, image_hw=(22, 22),
    ...                            encoder_channels=(4, 8, 8), embed_dim=32, lstm_hidden=16)
    >>> obs = torch.zeros(2, 1, 22, 22, dtype=torch.uint8)
    >>> plan = model.plan(obs, obs[:, -1:], method="beam", width=8, horizon=5)
    >>> plan.actions.shape
    torch.Size([2, 5])
"""

from __future__ import annotations

import importlib
import importlib.util

__version__ = "0.1.0"

# The public names load on first use (PEP 562), so `import glamor.cli` (the `glamor` script's first
# line) loads no torch, and a Ctrl-C while torch loads reaches the CLI's handler.
_PUBLIC = {"Agent": "glamor.agent", "load_agent": "glamor.agent", "Config": "glamor.config", "preset": "glamor.config",
           "GlamorModel": "glamor.model", "Plan": "glamor.planning"}


def __getattr__(name: str):
    if name in _PUBLIC:
        value = getattr(importlib.import_module(_PUBLIC[name]), name)
    elif not name.startswith("_") and importlib.util.find_spec(f"glamor.{name}") is not None:
        value = importlib.import_module(f"glamor.{name}")  # glamor.ops after a bare `import glamor`
    else:
        raise AttributeError(f"module 'glamor' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_PUBLIC))


__all__ = ["Agent", "Config", "GlamorModel", "Plan", "load_agent", "preset", "__version__"]
