"""The torch device a config names, checked against this machine."""

from __future__ import annotations

import torch


def resolve_device(name: str) -> torch.device:
    """The torch device a config's `device` names ('auto': cuda when available); a device this
    machine lacks is named in a ValueError."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as e:
        raise ValueError(f"device={name!r} is not a torch device ({e})") from e
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device={name!r} but CUDA is not available (torch {torch.__version__}); "
                             f"use device=cpu or auto")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(f"device={name!r} but this machine has {torch.cuda.device_count()} CUDA device(s)")
    elif device.type != "cpu":
        raise ValueError(f"device={name!r}: glamor runs on cpu or cuda")
    return device
