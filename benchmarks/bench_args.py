"""argparse types shared by the benchmark scripts: counts and durations that must be positive, and
output paths checked before a benchmark runs (not after it has spent its minutes)."""

from __future__ import annotations

import argparse
from pathlib import Path


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number > 0, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def output_file(text: str) -> Path:
    """A file path whose folder exists or can be made (no file stands in its way)."""
    path = Path(text)
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{path} is a folder; name a file")
    _check_folder(path.parent)
    return path


def output_folder(text: str) -> Path:
    path = Path(text)
    _check_folder(path)
    return path


def _check_folder(folder: Path) -> None:
    for p in (folder, *folder.parents):  # the nearest existing one must be a folder
        if p.exists():
            if not p.is_dir():
                where = "" if p == folder else f", so {folder} cannot be a folder"
                raise argparse.ArgumentTypeError(f"{p} is a file, not a folder{where}")
            return
