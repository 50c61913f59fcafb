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

import warnings

from glamor import ops
from glamor.agent import Agent
from glamor.config import Config, preset
from glamor.model import GlamorModel
from glamor.planning import Plan

__version__ = "0.1.0"

if not ops.available():
    warnings.warn(
        f"glamor._C is not built: planning uses the slower PyTorch reference; {ops.REBUILD_HINT}",
        RuntimeWarning,
        stacklevel=2,
    )

__all__ = ["Agent", "Config", "GlamorModel", "Plan", "preset", "__version__"]
