"""Run directories: making a new run's folder, replacing an old run safely, undoing a failed start.

`prepare_run_dir` gives `glamor train` an empty, locked folder (`glamor.run_lock`). With
--overwrite the old run is moved aside, not deleted: `settle_start` deletes it once the new run
has its first checkpoint (renamed .NAME.deleting-PID while it goes), and `undo_start` puts it back
if the new run fails before that. Only a run is ever replaced: a folder without config.json, or
one holding other runs, is refused, and so is a mount point (a volume: it cannot be moved aside).
The new folder, locked first, and the old run trade places in one rename (and back, in
`undo_start`), so the path is never missing or unlocked for another start to take between the
two (where the system can: Linux's renameat2).
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import sys
from pathlib import Path

from glamor import checkpoint
from glamor.run_lock import LOCK_NAME, RunLock


def prepare_run_dir(run_dir: str | Path, overwrite: bool, lock: RunLock | None = None) -> tuple[Path, Path | None]:
    """An empty run directory, locked by `lock` when given (see `glamor.run_lock`: the caller
    releases it) before anything in it changes. With `overwrite`, an existing run is moved aside
    rather than deleted: returns (run_dir, where the old run went, or None); it is deleted once
    the new run has written its first checkpoint, or put back (`undo_start`) if the new one
    fails before. Only a run is replaced: a folder without config.json, or one that holds other
    runs, is refused."""
    own = RunLock() if lock is None else lock
    try:
        return _prepare_run_dir(run_dir, overwrite, own)
    finally:
        if lock is None:
            own.release()


def _free_aside_name(real: Path) -> Path:
    """Where an --overwrite moves the run at `real`: .NAME.replaced-PID, or .NAME.replaced-K-PID
    where one of that name is there, left by an earlier process of the same PID (a container's
    glamor is often PID 1 every time): renaming onto it failed with 'Directory not empty'."""
    pid = os.getpid()
    aside, k = real.with_name(f".{real.name}.replaced-{pid}"), 1
    while aside.exists() or aside.is_symlink():
        aside, k = real.with_name(f".{real.name}.replaced-{k}-{pid}"), k + 1
    return aside


def _prepare_run_dir(run_dir: str | Path, overwrite: bool, lock: RunLock) -> tuple[Path, Path | None]:
    if str(run_dir) == "":
        raise ValueError("the run directory is an empty path: name a folder")
    run_dir = Path(run_dir)
    if run_dir.is_symlink() and not run_dir.exists():
        raise FileExistsError(f"run directory {run_dir} is a link to {os.readlink(run_dir)}, which does not "
                              f"exist: create that folder, or remove the link")
    if run_dir.exists() and not run_dir.is_dir():
        raise FileExistsError(f"run directory {run_dir} is a file, not a directory")
    for parent in run_dir.parents:
        if parent.exists() and not parent.is_dir():
            raise FileExistsError(f"run directory {run_dir} cannot be made: {parent} is a file")
    checkpoint.note_left_aside(run_dir, ours_are_stale=True)  # (this process has moved nothing aside yet)
    aside = old = None  # (where the old run goes, and its folder's identity, told apart from the new one's)
    try:
        if run_dir.exists():
            lock.acquire(run_dir)  # a run another process is writing is refused before anything moves
            held = sorted(p.name for p in run_dir.iterdir() if p.name != LOCK_NAME)
            if held:
                _check_replaceable(run_dir, held, overwrite)
                real = run_dir.resolve()  # through a symlink: replace what it points to, keep the link
                if real == Path.cwd().resolve() or real in Path.cwd().resolve().parents:
                    raise FileExistsError(f"--overwrite cannot replace {run_dir}: it holds the current directory")
                if os.path.ismount(real):  # (a container's volume: the kernel refuses to rename it, EBUSY or EXDEV)
                    raise FileExistsError(f"--overwrite cannot replace {run_dir}: it is a mount point (a volume), "
                                          f"which cannot be moved aside to be kept until the new run saves; empty "
                                          f"it yourself, or name a folder inside it")
                aside, old = _free_aside_name(real), _identity(real)
                run_dir = real
                if not _swap_in_empty_folder(real, aside, lock):  # (the system cannot swap two folders)
                    real.rename(aside)
                    lock.moved(aside)  # (its lock file went with it, and goes now: the new folder gets its own)
                    lock.release()  # (a new run started here before the lock below takes the folder: refused)
        run_dir.mkdir(parents=True, exist_ok=True)
        if not lock.held:
            lock.acquire(run_dir)
        # looked at again under the lock: a folder another process renamed here since the look above
        # (an --overwrite putting its old run back) is not taken for the new, empty one and trained over
        came = sorted(p.name for p in run_dir.iterdir() if p.name != LOCK_NAME)
        if came:
            raise FileExistsError(f"run directory {run_dir} was filled by another process as this one took it (it "
                                  f"now holds {', '.join(came[:5])}{' ...' if len(came) > 5 else ''}): run the "
                                  f"command again")
    except BaseException as e:  # (a full disk: a new folder, or its lock file, needs room) the old run goes back
        if old is not None and not _put_back(run_dir, aside, old, lock):  # (another process took the folder)
            e.hint = f"the run it was replacing is kept at {aside}"  # (the command line prints it)
            if hasattr(e, "add_note"):  # (Python 3.11+: in a traceback too)
                e.add_note(e.hint)
        raise
    return run_dir, aside


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _put_back(run_dir: Path, aside: Path, old: tuple[int, int], lock: RunLock) -> bool:
    """After a failed start of an --overwrite: the replaced run (the folder of identity `old`) at
    `run_dir`, still there or back from `aside`, where this process left its new folder, empty
    but for the lock file `lock` holds (the swap's, or the fallback's once it took the folder), or
    none. False, with the run kept aside, where another process has the folder (refusing this
    one: RunInUse) or something is in it."""
    try:
        if _identity(run_dir) == old:  # (it failed before the old run moved)
            return True
        if _identity(aside) != old:
            return False
        if run_dir.exists():
            left = sorted(p.name for p in run_dir.iterdir())
            ours = left == [LOCK_NAME] and lock.holds(run_dir)
            if ours and _swap(aside, run_dir):  # in one step, as it went: the folder is never missing
                lock.release()  # (its file, and the empty folder, are now at `aside`)
                shutil.rmtree(aside, ignore_errors=True)
                return True
            if ours:
                lock.release()  # (which removes its lock file)
            run_dir.rmdir()  # (OSError where another process's lock file or files are in it)
        aside.rename(run_dir)
    except OSError:  # kept aside, and named by note_left_aside once this process has ended
        return False
    return True


def _swap_in_empty_folder(real: Path, aside: Path, lock: RunLock) -> bool:
    """Move the run at `real`, which `lock` holds, to `aside` and leave at `real` an empty folder
    that `lock` holds, with no moment at which `real` is missing or unlocked: the new folder is made
    and locked at `aside`, then the two are swapped in one rename. (Renaming the old run aside, then
    making and locking the new folder, left a moment when a new run started at `real` found no
    folder and took it: this overwrite was then refused, its old run hidden aside.)
    False, with nothing changed, where the system cannot swap two folders (`_swap`)."""
    new = RunLock()
    try:
        aside.mkdir()
        new.acquire(aside)
        swapped = _swap(aside, real)
    except BaseException:  # (a full disk: the folder or its lock file) the old run is as it was,
        if new.holds(real):  # unless a Ctrl-C came as the swap was done: `lock` takes the new folder
            _take_swapped(real, aside, lock, new)  # (and the caller puts the old run back)
        new.release()
        with contextlib.suppress(OSError):
            aside.rmdir()
        raise
    if not swapped:
        new.release()
        with contextlib.suppress(OSError):
            aside.rmdir()
        return False
    _take_swapped(real, aside, lock, new)
    return True


def _take_swapped(real: Path, aside: Path, lock: RunLock, new: RunLock) -> None:
    """`lock` (the old run's) and `new` (the new folder's) trade places as their folders did."""
    new.moved(real)
    lock.moved(aside)
    lock.trade(new)  # `lock` holds the new folder at `real`, `new` the old run's lock file
    new.release()  # (which goes: the old run, put back, gets a new one when it is taken up)


def _swap(a: Path, b: Path) -> bool:
    """Swap the paths `a` and `b` (two folders) in one step, Linux's renameat2(RENAME_EXCHANGE);
    False where the system or the file system cannot (not Linux, a C library without renameat2,
    a network or FUSE file system: ENOSYS, EINVAL, ENOTSUP)."""
    try:
        _renameat2_exchange(a, b)
    except OSError as e:
        if e.errno in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP):
            return False
        raise
    return True


def _renameat2_exchange(a: Path, b: Path) -> None:
    if not sys.platform.startswith("linux"):
        raise OSError(errno.ENOSYS, "no renameat2 on this system")
    import ctypes

    try:
        call = ctypes.CDLL(None, use_errno=True).renameat2  # (glibc 2.28 and later, musl 1.2.2)
    except (OSError, AttributeError):
        raise OSError(errno.ENOSYS, "the C library has no renameat2") from None
    call.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    call.restype = ctypes.c_int
    at_fdcwd, rename_exchange = -100, 2
    if call(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code), str(a), None, str(b))


def _check_replaceable(run_dir: Path, held: list[str], overwrite: bool) -> None:
    """Refuse to start a run in the non-empty folder `run_dir` (its entries `held`) unless
    `overwrite` and it is one run: --overwrite of a folder of runs, or of other files, would
    delete them once the new run saves."""
    shown = ", ".join(held[:5]) + (f" and {len(held) - 5} more" if len(held) > 5 else "")
    is_run = "config.json" in held
    runs_inside = [name for name in held if (run_dir / name / "config.json").is_file()]
    if not overwrite:
        if is_run:
            raise FileExistsError(f"run directory {run_dir} is not empty; pass --overwrite to replace it "
                                  f"(train(..., overwrite=True) in Python), or `glamor train --resume {run_dir}` "
                                  f"to continue it")
        raise FileExistsError(f"run directory {run_dir} is not empty and is not a glamor run (it holds {shown}): "
                              f"name a new or empty folder")
    if runs_inside:
        raise FileExistsError(f"--overwrite would delete {run_dir}, which holds other runs "
                              f"({', '.join(runs_inside[:5])}{' ...' if len(runs_inside) > 5 else ''}): name one run's "
                              f"folder, or a new one")
    if not is_run:
        raise FileExistsError(f"--overwrite replaces a glamor run, and {run_dir} is not one (no config.json; it "
                              f"holds {shown}): name a new or empty folder, or delete it yourself")


RUN_SEARCH_DEPTH = 3  # levels below a folder that an error looks for the runs it holds


def check_is_run(run_dir: str | Path, command: str) -> Path:
    """`run_dir` as a Path when it holds a run (its config.json); otherwise a FileNotFoundError
    that says what the path is instead and what `command` takes: a folder that does not exist, a
    checkpoint file (the run is the folder it lies in), or a folder of runs (name one of them)."""
    run_dir = Path(run_dir)
    if (run_dir / "config.json").exists():  # (one that cannot be read is named by its reader)
        return run_dir
    if not run_dir.exists():
        raise FileNotFoundError(f"no run directory {run_dir}: {command} takes the folder a run was trained in "
                                f"(glamor train --run-dir)")
    if run_dir.is_file():
        folder = (f"the run's folder, {run_dir.parent}" if (run_dir.parent / "config.json").is_file()
                  else "the folder a run was trained in")
        raise FileNotFoundError(f"{run_dir} is a file, not a run directory: {command} takes {folder}")
    runs = runs_under(run_dir)
    hint = (f"; it holds the runs {', '.join(runs[:5])}{' ...' if len(runs) > 5 else ''}: name one of them"
            if runs else " (is it a glamor run directory?)")
    raise FileNotFoundError(f"run directory {run_dir} has no config.json{hint}")


def runs_under(folder: Path, depth: int = RUN_SEARCH_DEPTH) -> list[str]:
    """The runs (folders with a config.json) inside `folder`, as paths relative to it, the
    shallowest first, looked for `depth` levels down: `glamor compare` keeps its runs at
    RUNS_DIR/ENV/METHOD-SETTING/seedN, three levels below the --runs-dir a user may name."""
    for level in range(1, depth + 1):
        found = sorted(str(p.parent.relative_to(folder)) for p in folder.glob("/".join(["*"] * level + ["config.json"]))
                       if p.is_file())
        if found:
            return found
    return []


def settle_start(aside: Path | None) -> None:
    """A new run wrote its first checkpoint: the run it replaced (if any) goes. It is renamed
    `.NAME.deleting-PID` first, so a deletion cut short (a second Ctrl-C; a kill) leaves a folder
    named for what it is, not a half-deleted run that `note_left_aside` would offer to restore."""
    if aside is not None:
        _delete_named_deleting(aside)


def _delete_named_deleting(folder: Path) -> Path:
    """Delete `folder` (.NAME.replaced-PID), renamed `deleting_name(folder)` first where it can
    be; returns the path it was deleted from, which still exists where a file could not go."""
    going = deleting_name(folder)
    try:
        folder.rename(going)
    except OSError:
        going = folder
    shutil.rmtree(going, ignore_errors=True)
    return going


def deleting_name(aside: Path) -> Path:
    """Where `settle_start` deletes the replaced run at `aside` (.NAME.replaced-PID) from:
    .NAME.deleting-PID."""
    prefix, _, rest = aside.name.rpartition(".replaced-")
    return aside.with_name(f"{prefix}.deleting-{rest}")


def undo_start(run_dir: Path, aside: Path | None, made: bool) -> tuple[bool, str]:
    """A new run that failed before its first checkpoint: remove it and put back what was there
    (nothing, an empty folder unless the run `made` it, or the run it was replacing). Returns
    (whether all of that was done, what was done, for a message); never raises: the error that
    ended the start is the one to report."""
    # A link to an existing folder (prepare_run_dir keeps the link's path when it replaces nothing):
    # its folder is emptied and the link kept (rmtree refuses a link, which left the run's files).
    folder = run_dir.resolve() if run_dir.is_symlink() else run_dir
    swapped = False
    if aside is not None and folder.is_dir():
        # The replaced run is swapped back in one rename, the new run's files then deleted from beside
        # it (named as being deleted): deleting them first left the path missing for a moment, in which
        # a new run started there took it and the replaced run stayed aside. They are marked first:
        # stopped between the swap and their renaming (a Ctrl-C, a kill), they lie under the replaced
        # run's name, and the next command would offer them for restoring over the run, back in place.
        mark = folder / checkpoint.UNDONE_MARK
        with contextlib.suppress(OSError):
            mark.write_text(aside.name)
        try:
            with contextlib.suppress(OSError):
                swapped = _swap(aside, folder)
        finally:
            if not swapped:  # (not swapped, the mark is still in the new run's folder, at the run's path;
                with contextlib.suppress(OSError):  # swapped, it went with it and the old run has none)
                    mark.unlink(missing_ok=True)
    if swapped:
        going = _delete_named_deleting(aside)  # (the new run's files, now at `aside`)
        if going.exists():  # (files made read-only)
            return False, f"{run_dir} holds the run it was replacing again; delete the new run's files left in {going}"
        return True, f"{run_dir} holds the run it was replacing again"
    shutil.rmtree(folder, ignore_errors=True)
    if folder.exists():  # (a folder made read-only)
        return False, (f"could not remove {run_dir}: delete it before running again"
                       + (f"; the run it was replacing is kept at {aside}" if aside is not None else ""))
    try:
        if aside is not None:
            aside.rename(folder)
            return True, f"{run_dir} holds the run it was replacing again"
        if not made:
            folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        return False, (f"the run it was replacing is kept at {aside}, moving it back failed ({e.strerror})"
                       if aside is not None else f"removed {run_dir}")
    return True, f"removed {run_dir}" if made else f"emptied {run_dir}"
