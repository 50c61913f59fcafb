"""One process writing a run directory at a time: `RunLock`.

`glamor train` (new, --overwrite or --resume), `train()` / `resume()` in Python, `glamor eval` and
`glamor compare` (evaluating a run's sweeps) hold an exclusive lock on ``RUN/.glamor.lock`` while
they write the run, so a second command on the same run is refused by name instead of
interleaving its checkpoints, metrics and results with the first's (before: both ran, and the
run kept one's checkpoints and the other's config; an evaluation during training replaced the
final eval.json with an older checkpoint's, or two evaluations deleted each other's videos).
`glamor compare` reading a run's eval.json holds a shared lock (``shared=True``): any number of
readers at once, none while a writer holds the run, and no writer while one reads.

No process queues for the lock: one that finds it held is refused at once (RunInUse), except
that a process that finds readers holding it (whose reads take milliseconds), or a holder that
has not yet said what it does, tries again for about a second before it is refused. So a writer is never starved in a queue behind readers; it
is refused only by reads that go on for that second (reads following each other without a gap,
which one compare never makes), and is then run again by the user.

The lock is `fcntl.flock` on a file, removed when the run is released: the system releases the
lock when the holder exits, however it exits, so a killed run's leftover file locks nothing. The
holder writes what it does ("training", "evaluating") into the file and its PID is read from
/proc/locks (Linux), both for the message. `glamor.train.evaluate_checkpoint` in Python writes no
files and takes no lock. Without fcntl (Windows) the lock is a no-op.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from pathlib import Path

try:
    import fcntl
except ImportError:  # not POSIX: no lock
    fcntl = None

LOCK_NAME = ".glamor.lock"
READING = "reading"  # what the holders of a shared lock do


class RunInUse(ValueError):
    """Another process is writing the run directory (the message names its PID and what it does
    when known)."""


class RunLock:
    """A lock on a run directory, held from `acquire` until `release` (or exit): exclusive to
    write the run, shared (`shared=True`) to read it.

        lock = RunLock()
        lock.acquire(run_dir)   # RunInUse when another process holds it (doing="evaluating": what it says)
        ...                     # write the run
        lock.release()          # removes the lock file: a finished run holds none

    A holder removes the file before it lets go (a reader only when no other reader holds it,
    which it learns by taking it exclusively for that moment), so a process that opened the old
    file and locks it after that checks that its file is still the one at the path, and starts
    again.
    """

    def __init__(self) -> None:
        self._fd: int | None = None
        self._path: Path | None = None
        self._shared = False

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self, run_dir: str | Path, doing: str = "training", shared: bool = False) -> None:
        """Lock the existing folder `run_dir` (this lock may hold one folder at a time); `doing`
        (what this process does to the run) is what a refused process is told. `shared`: to read
        the run, beside other readers (what it does is then "reading")."""
        if self._fd is not None:
            raise RuntimeError("this RunLock already holds a run directory")
        if fcntl is None:
            return
        path = Path(run_dir) / LOCK_NAME
        doing = READING if shared else doing
        tries = 0
        while True:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            try:
                fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
            except BlockingIOError:
                theirs = _doing(fd)
                # readers hold it for a moment (one eval.json read, or a reader letting go, `release`):
                # waited out, about a second at most, by readers and writers alike; so is a holder that
                # has not said yet what it does (it writes that as it takes the lock: a reader's first
                # read of a run made its lock file, and says so microseconds later)
                if theirs in (READING, "") and tries < 200:
                    os.close(fd)
                    tries += 1
                    time.sleep(0.005)
                    continue
                holder = _lock_holder(fd)
                os.close(fd)
                who = f"process {holder}" if holder is not None else "another process"
                if theirs in ("evaluating", READING):
                    then = "wait for it to end"
                else:
                    then = "wait for it to end, or stop it (Ctrl-C saves a checkpoint) and resume"
                if doing == "evaluating":
                    then += "; to evaluate its newest checkpoint meanwhile, copy the run folder and evaluate the copy"
                raise RunInUse(f"run directory {run_dir} is in use: {who} is {theirs or 'writing'} it; {then}") from None
            except BaseException:
                os.close(fd)
                raise
            if _same_file(fd, path):
                break
            os.close(fd)  # the holder removed it as we opened it: lock the file now at the path
        try:  # (for a refused process's message only: a full disk leaves it empty)
            if _doing(fd) != doing:  # (readers say the same: one need not clear another's word)
                os.ftruncate(fd, 0)
                os.pwrite(fd, doing.encode(), 0)
        except OSError:
            pass
        self._fd, self._path, self._shared = fd, path, shared

    def moved(self, run_dir: str | Path) -> None:
        """The locked folder was renamed to `run_dir` (an --overwrite moving the old run aside)."""
        if self._path is not None:
            self._path = Path(run_dir) / LOCK_NAME

    def holds(self, run_dir: str | Path) -> bool:
        """Whether this lock holds the folder now at `run_dir` (the lock file there is its own)."""
        return self._fd is not None and _same_file(self._fd, Path(run_dir) / LOCK_NAME)

    def trade(self, other: RunLock) -> None:
        """This lock and `other` swap what they hold (an --overwrite swapping the new folder, which
        `other` locked, in for the old run, which this one did)."""
        mine = self._fd, self._path, self._shared
        self._fd, self._path, self._shared = other._fd, other._path, other._shared
        other._fd, other._path, other._shared = mine

    def release(self) -> None:
        """Let go; never raises. A lock file that cannot be removed (a folder made read-only, a
        full or vanished disk) stays behind and locks nothing; the error that ended the run is
        the one to report, not this."""
        if self._fd is None:
            return
        try:
            # a reader removes the file only when no other reader holds it: taking it exclusively
            # says so (a reader that opens it meanwhile waits that moment out, `acquire`)
            if self._shared:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            if self._path is not None and _same_file(self._fd, self._path):
                self._path.unlink()
        except OSError:  # (BlockingIOError: other readers hold it)
            pass
        finally:
            os.close(self._fd)  # closing the last descriptor releases the flock
            self._fd = self._path = None
            self._shared = False


@contextlib.contextmanager
def holding(run_dir: str | Path, doing: str = "training", shared: bool = False) -> Iterator[RunLock]:
    """The run's lock for a with-block: acquired on entry (RunInUse when another process holds
    it), released on exit however the block ends; `shared`: see `RunLock.acquire`."""
    lock = RunLock()
    lock.acquire(run_dir, doing=doing, shared=shared)
    try:
        yield lock
    finally:
        lock.release()


def _same_file(fd: int, path: Path) -> bool:
    try:
        st = os.stat(path)
    except OSError:
        return False
    own = os.fstat(fd)
    return (st.st_dev, st.st_ino) == (own.st_dev, own.st_ino)


def _doing(fd: int) -> str:
    """What the holder of the lock file open as `fd` said it does ("" when it has not said yet)."""
    try:
        return os.pread(fd, 64, 0).decode(errors="replace").strip()
    except OSError:
        return ""


def _lock_holder(fd: int) -> int | None:
    """The PID holding a flock on the file open as `fd`, from /proc/locks; None when unknown."""
    st = os.fstat(fd)
    ident = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    try:
        lines = Path("/proc/locks").read_text().splitlines()
    except OSError:
        return None
    by_inode = {}  # (an overlay file system may show another device number than stat's)
    for line in lines:
        fields = line.split()
        # "1: FLOCK  ADVISORY  WRITE 12345 08:01:123456 0 EOF"; a waiter's line has "->" after the id
        if "->" in fields or len(fields) < 6 or fields[1] != "FLOCK" or not fields[4].isdigit():
            continue
        if fields[5] == ident:
            return int(fields[4])
        if fields[5].rpartition(":")[2] == str(st.st_ino):
            by_inode[fields[5]] = int(fields[4])
    return next(iter(by_inode.values())) if len(by_inode) == 1 else None
