"""Checkpoints written atomically: a temporary file in the same folder, fsync, then rename.

A process killed at any moment leaves either the previous checkpoint or the new one, never a
half-written file under the checkpoint's name.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch


def atomic_save(obj, path: str | Path) -> None:
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as f:
        torch.save(obj, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def load(path: str | Path, map_location="cpu") -> dict:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint at {path}")
    return torch.load(path, map_location=map_location, weights_only=False)
