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
TEMPORARY = re.compile(r"\.(?P<name>.+)\.(?P<pid>[0-9]+)\.tmp[^/]*")


def remove_temporaries(folder: str | Path, names: tuple[str, ...] | None = None) -> list[Path]:
    """Delete the `write_atomically` temporaries left in `folder` and the folders below it by
    writers that were killed before their renames (an evaluation's GIFs, plot or results);
    returns them. `names`: only the temporaries of these files, in `folder` itself (compare's
    --out, in a folder it shares with other files).

    A temporary of a process that is still running (its PID, on this machine) is kept: a process
    may write there without holding the folder (a goal cache, GLAMOR_CACHE, inside a run; a
    second compare with the same --out), and its rename would fail. This process's own are
    removed: call it when no write of this process is under way there."""
    folder = Path(folder)
    found = folder.glob(".*.tmp*") if names is not None else folder.rglob(".*.tmp*")
    gone = []
    for path in found:
        match = TEMPORARY.fullmatch(path.name)
        if match is None or (names is not None and match["name"] not in names):
            continue
        if (path.is_file() or path.is_symlink()) and not _running(int(match["pid"])):
            path.unlink(missing_ok=True)
            gone.append(path)
    return gone


def _running(pid: int) -> bool:
    """Whether `pid` is another process running on this machine (a zombie counts until reaped).
    Unknown where the system cannot tell without harm (Windows: os.kill ends the process): no."""
    if pid == os.getpid() or pid <= 0 or os.name != "posix":
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's
        return True
    except (OverflowError, OSError):  # (a number no PID can be)
        return False
    return True


# How a file is opened to be fsynced by name: Windows' fsync (_commit, FlushFileBuffers) refuses a
# descriptor without write access (EBADF); elsewhere a read-only one syncs the file as well.
FSYNC_OPEN = os.O_WRONLY if os.name == "nt" else os.O_RDONLY


def _fsync_file(path: Path) -> None:
    fd = os.open(path, FSYNC_OPEN)
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
