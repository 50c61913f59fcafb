"""What the benchmark scripts share: argparse types for counts and durations that must be positive
and for output paths checked before a benchmark runs (not after it has spent its minutes),
`write_results`, which writes a results file and its table whole or not at all, and `updating`,
which gives one process at a time a results file to read, change and write back."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
from pathlib import Path

try:
    import fcntl
except ImportError:  # not POSIX: no lock
    fcntl = None

from glamor.files import can_write as _can_write
from glamor.files import write_text_atomically


def write_results(path: Path, result: dict, table_text: str, say: bool = True) -> None:
    """The numbers to `path` (JSON) and the table beside it (`.md`), each written atomically
    (glamor.files): a run killed mid-write, or a full disk, leaves the earlier file whole (the
    one README cites, the one random_baseline.py reads back), never a truncated one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomically(path, json.dumps(result, indent=2) + "\n")
    write_text_atomically(path.with_suffix(".md"), table_text.rstrip("\n") + "\n")
    if say:
        print(f"wrote {path} and {path.with_suffix('.md')}")


@contextlib.contextmanager
def updating(path: Path):
    """Hold the results file `path` for a read, change and write back: a second process (another
    environment's benchmark writing the same file) waits until this one has written, then reads
    what it wrote (before, both read the old rows and the last to write dropped the other's).
    The lock is an flock on the folder that holds it (no lock file is left beside the results),
    released however the holder ends; none where the platform or file system has no flock."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path.parent, os.O_RDONLY) if fcntl is not None else None
    try:
        if fd is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
            except OSError:  # (a file system that cannot lock a folder: as before, unlocked)
                pass
        yield
    finally:
        if fd is not None:
            os.close(fd)  # releases the flock


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
