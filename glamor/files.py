"""Files written whole or not at all: `write_atomically` writes a temporary file beside the
target, fsyncs it, renames it onto the target and fsyncs the folder, so a reader (or a run
killed mid-write, or a power cut) sees the old file or the new one, never a part or an empty
file. Checkpoints do the same in glamor/checkpoint.py."""

from __future__ import annotations

import csv
import errno
import os
import re
import tempfile
from collections.abc import Callable
from pathlib import Path


def write_atomically(path: str | Path, write: Callable[[Path], object], suffix: str = "") -> Path:
    """`write(tmp)`, then `tmp` fsynced and renamed onto `path`, and the folder fsynced. `tmp`
    lies beside `path`, is this process's own (two processes may write the same file at once)
    and ends in `suffix` (for writers that pick a format from it, or add their own: numpy's,
    matplotlib's). A failed write removes it and leaves `path` as it was.

    Without the fsync a power cut (or a kernel crash) after the rename could leave `path` empty
    or short on file systems that write data after metadata (XFS, btrfs, ext4 without
    auto_da_alloc): the rename is durable, the data not yet."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp{suffix}")  # (TEMPORARY names it)
    try:
        write(tmp)
        _fsync_file(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)
    return path


# The temporary file of a `write_atomically` (.NAME.PID.tmpSUFFIX): a kill -9 or a power cut
# before its rename leaves it, and nothing names it.
TEMPORARY = re.compile(r"\..+\.[0-9]+\.tmp[^/]*")


def remove_temporaries(folder: str | Path) -> list[Path]:
    """Delete the `write_atomically` temporaries left in `folder` and the folders below it by
    writers that were killed before their renames (an evaluation's GIFs, plot or results);
    returns them. No write may be under way there: call it only from the process that holds the
    folder (a run's lock, `glamor.run_lock`)."""
    gone = []
    for path in Path(folder).rglob(".*.tmp*"):
        if TEMPORARY.fullmatch(path.name) and (path.is_file() or path.is_symlink()):
            path.unlink(missing_ok=True)
            gone.append(path)
    return gone


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(folder: str | Path) -> None:
    """Make a rename or a new file in `folder` durable (nothing where the platform has no
    directory descriptors, or the file system cannot fsync a folder: some network and FUSE
    file systems answer EINVAL, after the rename has been done)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError as e:
        if e.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF):
            raise
    finally:
        os.close(fd)


def write_text_atomically(path: str | Path, text: str) -> Path:
    return write_atomically(path, lambda tmp: tmp.write_text(text))


def write_csv_atomically(path: str | Path, rows) -> Path:
    """`rows` (lists of cells, the header first) as a CSV file."""
    def write(tmp: Path) -> None:
        with open(tmp, "w", newline="") as f:
            csv.writer(f).writerows(rows)

    return write_atomically(path, write)


def can_write(path: str | Path) -> bool:
    """Whether a file can be written in the folder `path` (or the file `path` appended to):
    os.access, then a real try, since root passes os.access where a write still fails (/proc,
    a read-only mount). Leaves nothing behind."""
    path = Path(path)
    if not os.access(path, os.W_OK | (os.X_OK if path.is_dir() else 0)):
        return False
    try:
        if path.is_dir():
            fd, probe = tempfile.mkstemp(dir=path, prefix=".glamor-probe-")
            os.close(fd)
            os.unlink(probe)
        else:
            open(path, "ab").close()
    except OSError:
        return False
    return True
