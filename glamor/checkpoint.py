"""Checkpoints that survive a kill at any moment or a full disk.

A run's checkpoint is `checkpoint.pt` (model, optimiser, counters, random states; small) plus,
for resumable training state, a replay file `replay-<env_step>.npz` (uint8 frames, each once,
compressed) that the checkpoint names. Writing a new checkpoint:

1. the replay goes to a temporary file, is fsynced and renamed to its final name;
2. the checkpoint goes to a temporary file and is fsynced;
3. the current `checkpoint.pt` is renamed to `checkpoint.prev.pt` (unless it is unusable:
   after a resume that fell back to `checkpoint.prev.pt`, that one stays), the new one to
   `checkpoint.pt`, and the folder is fsynced;
4. replay files that neither checkpoint names are deleted.

At every moment at least one of `checkpoint.pt` / `checkpoint.prev.pt` is complete and its
replay file exists; `load_latest` takes the newest one that loads. A failed write (a full
disk) removes its temporary files and leaves the previous checkpoints untouched; a killed one's
are removed by the next save, or before that by the resume (`remove_temporaries`).

Under torchrun, rank 0 writes the checkpoint; every other rank r first writes its own part (its
random states and its replay: `rank<r>-<env_step>.pt` and `replay-<env_step>-rank<r>.npz`,
`save_rank`), which the checkpoint then names in `rank_files`; a checkpoint whose rank files are
missing is not complete. `load_rank` reads a rank's part back; a resume under torchrun in which
one rank's part does not load (a replay file that fails its CRC) passes that checkpoint to
`load_latest` as `unusable`, and every rank goes on from the one before.
"""

from __future__ import annotations

import glob
import io
import os
import warnings
from pathlib import Path

import numpy as np
import torch

from glamor.files import fsync_dir as _fsync_dir
from glamor.files import remove_temporaries as _remove_atomic_temporaries

CHECKPOINT = "checkpoint.pt"
PREVIOUS = "checkpoint.prev.pt"
# Written by glamor.run_dir.undo_start into a failed new run's folder before it swaps the replaced
# run back: where it is stopped before it deletes them, the new run's files lie under the name of
# the replaced run's aside (.NAME.replaced-PID, which the marker holds), and `note_left_aside`
# tells them from a run to restore by it.
UNDONE_MARK = ".glamor-undone-start"


def _write_bytes_atomic(data_writer, path: Path) -> None:
    """Write through `data_writer(file)` to a temporary file, fsync, rename onto `path`."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with open(tmp, "wb") as f:
            data_writer(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_save(obj, path: str | Path) -> None:
    """torch.save `obj` to `path` through a temporary file, fsync and rename."""
    _write_bytes_atomic(lambda f: torch.save(obj, f), Path(path))


def save_arrays(arrays: dict[str, np.ndarray], path: str | Path) -> None:
    """A dict of arrays as one compressed .npz, written atomically."""
    _write_bytes_atomic(lambda f: np.savez_compressed(f, **arrays), Path(path))


def load_arrays(path: str | Path) -> dict[str, np.ndarray]:
    with np.load(path) as f:
        return {k: f[k] for k in f.files}


def save_run(run_dir: str | Path, state: dict, replay: dict[str, np.ndarray] | None = None, *,
             keep_previous: bool = False) -> Path:
    """Write a run's checkpoint (and its replay file) keeping the previous one; see the module
    docstring for the order of operations. Returns the checkpoint's path.

    `keep_previous`: the checkpoint.pt there is known unusable (a resume fell back past it, say
    for a replay file that fails its CRC, which only reading the whole file shows): it is
    removed first, and checkpoint.prev.pt stays."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)  # removed while training (or never made): the work is kept
    if keep_previous:  # before the replay file, which may take its replay's name (the same step again):
        (run_dir / CHECKPOINT).unlink(missing_ok=True)  # a failed save would leave it whole beside that
    state = dict(state)
    if replay is not None:
        name = f"replay-{int(state.get('env_step', 0))}.npz"
        save_arrays(replay, run_dir / name)
        state["replay_file"] = name
    new = run_dir / f".{CHECKPOINT}.new"
    try:
        buf = io.BytesIO()
        torch.save(state, buf)
        _write_bytes_atomic(lambda f: f.write(buf.getbuffer()), new)
        current = run_dir / CHECKPOINT
        behind = _loaded(current)  # what will be checkpoint.prev.pt
        if behind is not None and not keep_previous and _resumable(run_dir, behind):
            os.replace(current, run_dir / PREVIOUS)
        else:  # missing, damaged or incomplete: it must not push out the good one behind it
            behind = _loaded(run_dir / PREVIOUS)
        os.replace(new, current)
        _fsync_dir(run_dir)
    except BaseException:
        new.unlink(missing_ok=True)
        _remove_unreferenced_replays(run_dir)  # the replay file just written, if any
        raise
    _remove_unreferenced_replays(run_dir, {*_named_files(state), *(_named_files(behind) if behind else ())})
    return run_dir / CHECKPOINT


def rank_file_names(rank: int, env_step: int) -> tuple[str, str]:
    """Rank `rank`'s (state file, replay file) in the checkpoint of `env_step` (torchrun)."""
    return f"rank{rank}-{env_step}.pt", f"replay-{env_step}-rank{rank}.npz"


def save_rank(run_dir: str | Path, rank: int, state: dict, replay: dict[str, np.ndarray]) -> None:
    """A torchrun rank's own part of the checkpoint of `state["env_step"]` (written before rank
    0's `save_run` names it in `rank_files`; unnamed, a kill's leftovers go at the next save)."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    name, replay_name = rank_file_names(rank, int(state["env_step"]))
    save_arrays(replay, run_dir / replay_name)
    atomic_save({**state, "replay_file": replay_name}, run_dir / name)


def load_rank(run_dir: str | Path, state: dict, rank: int) -> dict:
    """Rank `rank`'s part of checkpoint `state` (its random states and `replay` arrays) over
    `state`, the checkpoint rank 0 wrote. A part that is missing, damaged or not a part raises
    ValueError (OSError: one the disk refuses), naming its file."""
    run_dir = Path(run_dir)
    names = state.get("rank_files", {}).get(rank)
    if names is None:
        raise ValueError(f"{state.get('path', 'the checkpoint')} has no part for rank {rank} (it was saved by "
                         f"{state.get('world_size', 1)} process(es))")
    part = load(run_dir / names[0])
    replay_file = part.pop("replay_file", None)
    if not isinstance(replay_file, str):
        raise ValueError(f"{part['path']} is not a rank's part of a glamor checkpoint (it names no replay file)")
    try:
        part["replay"] = load_arrays(run_dir / replay_file)
    except MemoryError:  # (the machine's, not the file's: no reason to fall back to the checkpoint before)
        raise
    except Exception as e:  # noqa: BLE001 - zlib.error, BadZipFile (a CRC): named, and a ValueError the ranks agree on
        raise ValueError(f"{part['path']} is unusable: its replay file {replay_file} is unusable "
                         f"({type(e).__name__}: {str(e)[:200]})") from e
    del part["path"]
    return {**state, **part}


def _named_files(state: dict) -> list[str]:
    """The files a checkpoint needs beside it: its replay and its ranks' parts."""
    names = [state["replay_file"]] if state.get("replay_file") else []
    for files in state.get("rank_files", {}).values():
        names += files
    return names


def _resumable(run_dir: Path, state: dict) -> bool:
    """Whether `load_latest` would resume from a checkpoint it read: the files it names are
    there and its optimiser state is sound."""
    if not all((run_dir / name).exists() for name in _named_files(state)):
        return False
    try:
        check_optimizer_state(state)
    except ValueError:
        return False
    return True


def _loaded(path: Path) -> dict | None:
    """The checkpoint at `path`, or None when it is missing or damaged."""
    try:
        return load(path)
    except Exception:  # noqa: BLE001 - missing or damaged
        return None


def _remove_unreferenced_replays(run_dir: Path, keep: set[str] | None = None) -> None:
    """Replay files and ranks' parts that neither checkpoint names (`keep`, when the caller
    knows them), and temporary files."""
    if keep is None:
        keep = {name for file in (CHECKPOINT, PREVIOUS) for name in _named_files(_loaded(run_dir / file) or {})}
    for pattern in ("replay-*.npz", "rank*-*.pt"):
        for path in run_dir.glob(pattern):
            if path.name not in keep:
                path.unlink(missing_ok=True)
    remove_temporaries(run_dir)


# What checkpoint writes killed before their renames leave: the temporary files of
# `_write_bytes_atomic` (replays, ranks' parts, the new checkpoint) and the new checkpoint itself.
TEMPORARIES = (".replay-*.npz.tmp", ".rank*-*.pt.tmp", f"..{CHECKPOINT}.new.tmp", f".{CHECKPOINT}.new")


def remove_temporaries(run_dir: str | Path) -> None:
    """Delete the files writes that were killed (kill -9, power loss) left in `run_dir`:
    checkpoint writes' (`TEMPORARIES`; a replay's can be gigabytes) and those of every
    `glamor.files.write_atomically` in the run and its folders (an evaluation's eval.json,
    success.png, videos; those of a process still running are kept, see
    `glamor.files.remove_temporaries`). Nothing names them, and no write of the run may be under
    way: call it only from the process that holds the run (`glamor.run_lock`)."""
    for pattern in TEMPORARIES:
        for path in Path(run_dir).glob(pattern):
            path.unlink(missing_ok=True)
    _remove_atomic_temporaries(run_dir)


def load(path: str | Path, map_location="cpu") -> dict:
    """One checkpoint file (no fallback)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        state = torch.load(path, map_location=map_location, weights_only=False)
    except (OSError, MemoryError):  # (the disk's or the machine's, not the file's)
        raise
    except RuntimeError as e:
        if _out_of_memory(e):  # torch's allocators say so as a RuntimeError: the machine's too
            raise MemoryError(f"{path}: out of memory loading it (torch.load: {_first_line(e)})") from e
        raise ValueError(f"{path} is not a glamor checkpoint, or is damaged (torch.load: {_first_line(e)})") from e
    except ImportError as e:  # (numpy 2's pickles name numpy._core, which numpy 1 lacks): not damaged
        raise ValueError(f"{path} was written with a module this Python lacks (torch.load: {_first_line(e)}): "
                         f"by another version of numpy, torch or glamor, or it is not a glamor checkpoint") from e
    except Exception as e:  # noqa: BLE001 - UnpicklingError, EOFError, RuntimeError, or what unpickling a file
        # of another program raises (AttributeError): the file's fault, named
        raise ValueError(f"{path} is not a glamor checkpoint, or is damaged (torch.load: {_first_line(e)})") from e
    if not isinstance(state, dict):
        raise ValueError(f"{path} is not a glamor checkpoint (it holds a {type(state).__name__}, not a dict)")
    state["path"] = str(path)  # where messages say it came from
    return state


def _out_of_memory(error: RuntimeError) -> bool:
    """Whether torch raised `error` for want of memory (the CPU allocator's "can't allocate
    memory", a GPU's OutOfMemoryError), not for the file."""
    return isinstance(error, torch.cuda.OutOfMemoryError) or "can't allocate memory" in str(error)


def _first_line(error: BaseException) -> str:
    """An exception's first line without torch's plea for a better message."""
    lines = str(error).strip().splitlines() or [type(error).__name__]
    return lines[0].split("  (Could this error message be improved?")[0].strip()


def model_meta(state: dict) -> dict | None:
    """A checkpoint's model_meta as {"num_actions": int, "frame_stack": int, "image_hw": [int, int]}
    (older checkpoints hold numpy ints), None when it has none; a damaged one is named."""
    meta = state.get("model_meta")
    if meta is None:
        return None
    try:
        return {"num_actions": int(meta["num_actions"]), "frame_stack": int(meta["frame_stack"]),
                "image_hw": [int(x) for x in meta["image_hw"]]}
    except (KeyError, TypeError, ValueError) as e:
        where = state.get("path", "the checkpoint")
        raise ValueError(f"{where}'s model_meta must name num_actions, frame_stack and image_hw (ints), got "
                         f"{meta!r} ({type(e).__name__}: {e})") from None


def check_optimizer_state(state: dict) -> None:
    """Refuse a checkpoint whose optimiser state is damaged: NaN or infinite moments, or a
    negative second moment (AdamW's exp_avg_sq), which torch.load does not notice (it does not
    check the file's CRCs) and which would surface updates later as a non-finite loss."""
    where = state.get("path", "the checkpoint")
    for index, moments in state.get("optimizer", {}).get("state", {}).items():
        for name, t in moments.items():
            if not isinstance(t, torch.Tensor) or not t.is_floating_point():
                continue
            if not torch.isfinite(t).all() or (name == "exp_avg_sq" and (t < 0).any()):
                raise ValueError(f"{where} is damaged: its optimiser state ({name} of parameter {index}) holds "
                                 f"NaN, infinite or negative values")


def load_weights(model: torch.nn.Module, state: dict) -> None:
    """A checkpoint's model weights into `model`; weights of another architecture (a
    checkpoint copied beside another run's config.json) are named, not a size-mismatch dump."""
    where = state.get("path", "the checkpoint")
    if "model" not in state:
        raise ValueError(f"{where} holds no model weights")
    bad = [name for name, w in state["model"].items() if w.is_floating_point() and not torch.isfinite(w).all()]
    if bad:
        raise ValueError(f"{where} holds NaN or infinite weights ({', '.join(bad[:3])}{', ...' if len(bad) > 3 else ''}): "
                         f"a model that diverged cannot plan or train on")
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as e:
        first = next((line.strip() for line in str(e).splitlines() if "size mismatch" in line or "Missing" in line),
                     str(e).splitlines()[0])
        raise ValueError(f"{where} holds weights of another model than the config describes ({first}); "
                         f"was it copied from another run?") from e


def note_left_aside(run_dir: Path, stacklevel: int = 4, ours_are_stale: bool = False) -> None:
    """Warn of runs an --overwrite of `run_dir` moved aside and, killed before the new run's
    first checkpoint, never put back or removed: they are kept for the user to decide.
    `stacklevel` points the warning at the user's call (4: two calls above this one).
    `ours_are_stale`: one named with this process's PID was left by an earlier process of that PID
    (the caller is about to replace the run and has moved nothing aside)."""
    real = Path(run_dir).resolve()
    for kind in ("replaced", "deleting"):
        for aside in real.parent.glob(f".{glob.escape(real.name)}.{kind}-*"):  # (a name may hold [ ] * ?)
            pid = aside.name.rpartition("-")[2]
            if not pid.isdigit() or not ((ours_are_stale and int(pid) == os.getpid()) or not _process_alive(int(pid))):
                continue
            if kind == "replaced" and _holds_no_run(aside):  # (the new folder, killed before it was swapped in)
                continue
            if kind == "replaced" and _undone_start(aside):  # (killed as it went, after the old run was back)
                warnings.warn(f"{aside} holds the files of a new run that an `--overwrite` of {run_dir} started and "
                              f"that failed before its first checkpoint; {run_dir} holds the run it was replacing "
                              f"again (their deletion was interrupted): delete {aside}", RuntimeWarning,
                              stacklevel=stacklevel)
            elif kind == "replaced":
                warnings.warn(f"{aside} holds the run an interrupted `--overwrite` of {run_dir} was replacing; to "
                              f"restore it, move {run_dir} (the interrupted new run) away, then mv {aside} {run_dir}; "
                              f"or delete it", RuntimeWarning, stacklevel=stacklevel)
            else:  # (run_dir.settle_start was cut short: part of the old run's files are gone)
                warnings.warn(f"{aside} is what is left of the run an `--overwrite` of {run_dir} replaced (its "
                              f"deletion was interrupted; the new run had its first checkpoint): delete it",
                              RuntimeWarning, stacklevel=stacklevel)


def _holds_no_run(aside: Path) -> bool:
    """Whether the `.NAME.replaced-PID` folder `aside` is an --overwrite's new folder, made and locked
    there to be swapped in for the old run (glamor.run_dir) by a process killed before the swap: it
    holds its lock file alone, which no process holds, and goes (told to restore it, a user would
    have moved the run, still in its place, away for an empty folder)."""
    from glamor.run_lock import LOCK_NAME, RunInUse, RunLock

    try:
        if aside.is_symlink() or sorted(p.name for p in aside.iterdir()) not in ([LOCK_NAME], [UNDONE_MARK, LOCK_NAME]):
            return False  # (the mark: one whose start failed at once, its undoing killed after the swap back)
        lock = RunLock()
        lock.acquire(aside)  # (refused where a process of the same PID, in another container, holds it)
        lock.release()  # (which removes the lock file)
        (aside / UNDONE_MARK).unlink(missing_ok=True)
        aside.rmdir()
    except (OSError, RunInUse):  # (kept, and warned about, where it cannot be removed)
        return False
    return True


def _undone_start(aside: Path) -> bool:
    """Whether the `.NAME.replaced-PID` folder `aside` holds a failed new run's files that
    `undo_start` swapped there for the run it was replacing, and was stopped before deleting: it
    holds `UNDONE_MARK`, naming this folder, and no checkpoint (a new run is undone only before its
    first)."""
    try:
        mark = (aside / UNDONE_MARK).read_text()
    except (OSError, UnicodeDecodeError):
        return False
    return mark == aside.name and not any((aside / name).exists() for name in (CHECKPOINT, PREVIOUS))


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


class UnusableCheckpoints(ValueError):
    """A run's checkpoint files exist but none loads; `reasons` holds one line per file."""

    def __init__(self, run_dir: Path, reasons: list[str]):
        self.run_dir, self.reasons = run_dir, reasons
        super().__init__(f"{run_dir} has checkpoints but none loads ({'; '.join(reasons)})")


def load_latest(run_dir: str | Path, map_location="cpu", with_replay: bool = True, stacklevel: int = 3,
                unusable: dict[str, str] | None = None) -> dict | None:
    """The newest complete checkpoint of a run, or None when it has none.

    Tries `checkpoint.pt`, then `checkpoint.prev.pt`; a file that fails to load or whose replay
    file is missing is skipped, with a warning when the previous one is used instead. When the
    run has checkpoint files but none loads, raises `UnusableCheckpoints` naming each one's
    reason; a MemoryError, the machine's and not a file's, is raised (a fallback would give up the
    newest checkpoint for an older one that merely fits, and the next save would remove the newest).
    With `with_replay`, the replay arrays are read into `state["replay"]`. Warnings point
    `stacklevel` frames up (as `warnings.warn`'s: 3, the call of the function that called this one).
    `unusable`: checkpoint files (name: reason) the caller found unusable, skipped as such (a
    torchrun rank's part that does not load, which only that rank reads).
    """
    run_dir = Path(run_dir)
    note_left_aside(run_dir, stacklevel + 1)
    reasons = []
    for name in (CHECKPOINT, PREVIOUS):
        path = run_dir / name
        if not path.exists():
            continue
        if unusable and name in unusable:
            reasons.append(unusable[name])
            continue
        try:
            state = load(path, map_location)
            replay_file = state.get("replay_file")
            if with_replay and replay_file:
                try:
                    state["replay"] = load_arrays(run_dir / replay_file)
                except MemoryError:
                    raise
                except Exception as e:  # noqa: BLE001 - named as the replay's, not the checkpoint's
                    raise ValueError(f"{path} is unusable: its replay file {replay_file} is unusable "
                                     f"({type(e).__name__}: {str(e)[:200]})") from e
            missing = [name for name in _named_files(state) if not (run_dir / name).exists()]
            if with_replay and missing:  # a torchrun rank's part
                raise ValueError(f"{path} is unusable: {', '.join(missing)} missing")
            if with_replay:  # (to resume: the optimiser state is read too)
                check_optimizer_state(state)
        except MemoryError:  # the machine's, not the file's: falling back would give up the newest checkpoint
            raise  # (replaced by the next save) for an older one that merely fits, its replay not yet as large
        except ValueError as e:  # load's own message names the file
            reasons.append(str(e))
            continue
        except Exception as e:  # noqa: BLE001 - fall back to the previous checkpoint
            reasons.append(f"{path} is unusable ({type(e).__name__}: {e})")
            continue
        if reasons:
            warnings.warn(f"{reasons[0]}; using {path.name}, the checkpoint before it", stacklevel=stacklevel)
        return state
    if reasons:
        raise UnusableCheckpoints(run_dir, reasons)
    return None
