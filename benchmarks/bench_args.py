"""argparse types shared by the benchmark scripts: counts and durations that must be positive, and
output paths checked before a benchmark runs (not after it has spent its minutes)."""

from __future__ import annotations

import argparse
from pathlib import Path

from glamor.files import can_write as _can_write


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
    """A file path that can be written: its folder exists or can be made (no file stands in its
    way) and is writable, and the file, if there, is a writable file. The same holds for the
    Markdown table the benchmarks write beside it (`path.with_suffix(".md")`)."""
    path = Path(text)
    if path.is_dir():  # (first: "." has no suffix to replace)
        raise argparse.ArgumentTypeError(f"{path} is a folder; name a file")
    for p in dict.fromkeys((path, path.with_suffix(".md"))):
        if p.is_dir():
            raise argparse.ArgumentTypeError(f"{p} is a folder; name a file")
        if p.is_file() and not _can_write(p):
            raise argparse.ArgumentTypeError(f"{p} is not writable")
    _check_folder(path.parent, f"so {path} cannot be written", always=True)
    return path


def output_folder(text: str) -> Path:
    path = Path(text)
    _check_folder(path, f"so {path} cannot be made")
    return path


def _check_folder(folder: Path, then: str, always: bool = False) -> None:
    """The nearest existing one of `folder` and its parents must be a folder that can be written in
    (`then` says what follows, when that is a parent or `always`)."""
    for p in (folder, *folder.parents):
        if p.exists():
            if not p.is_dir():
                where = "" if p == folder else f", so {folder} cannot be a folder"
                raise argparse.ArgumentTypeError(f"{p} is a file, not a folder{where}")
            if not _can_write(p):
                raise argparse.ArgumentTypeError(f"{p} is not a writable folder"
                                                 + (f", {then}" if always or p != folder else ""))
            return
