"""Several training processes with torch.distributed, started by `torchrun`.

    torchrun --nproc-per-node 2 -m glamor train --preset gridworld --run-dir runs/ddp
    torchrun --nnodes 2 --node-rank 0 --master-addr HOST --nproc-per-node 8 -m glamor train ...

Each process collects its own episodes (its own numpy and agent seeds, the same initial weights),
DistributedDataParallel averages the gradients, and env_step counts the steps of all processes
together, so every process takes the same decisions (learning starts, epsilon, when to stop).
Each rank keeps its own replay and updates `updates_per_episode` times per episode it collects:
the spec's samples per environment step, in 1/W as many optimiser steps of W batches each.
Rank 0 alone logs, evaluates and writes the checkpoint; the other ranks write their own parts
of it first (their replays and random states), and `glamor train --resume` under torchrun with
as many processes gives each rank its part back. The backend is NCCL on GPUs and gloo on
CPUs (`GLAMOR_DIST_BACKEND` overrides); each process uses GPU `LOCAL_RANK` when there are GPUs
(a config's `cuda:N` included). Collectives wait up to `GLAMOR_DIST_TIMEOUT_MIN` minutes (120)
while rank 0 builds goal sets, evaluates or saves; a failure while setting up, saving or
loading a checkpoint on one process is raised on all of them (`all_succeeded`), so none waits
that long for a process that has left, and however a run ends its processes leave together
(`teardown`, which under gloo waits up to a minute for the others). An error that one process
meets alone (its environment raised in the training loop) leaves the others waiting in their next
collective, which breaks only when that process leaves: it prints its error to stderr at once if
the others do not come to leave within REPORT_AFTER_S seconds, and leaves word of it in the
process group's store (torchrun's agent holds it), so that a process whose collective then broke
raises OtherProcessFailed, naming the rank that failed and its error, rather than gloo's
"Connection closed by peer".
Without torchrun's environment (WORLD_SIZE unset or 1) everything here is a no-op.
"""

from __future__ import annotations

import datetime
import math
import os
import sys
import threading
import traceback

import torch
import torch.distributed as dist

from glamor.errors import OtherProcessFailed, mark_printed

# The gloo group in which the processes meet before they leave (`teardown`): their own connections,
# which no other collective uses, made by `setup` (under gloo only: see there).
_leaving = None
LEAVE_TIMEOUT_S = 60.0
# How long a process that failed waits for the others to come to leave before it prints its error
# (`teardown`): those that failed with it (a vote) come at once, and it is raised, and printed, after.
REPORT_AFTER_S = 2.0
# The process groups this process has joined (`setup`): the failures' words of each are their own.
_joined = 0


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def timeout_minutes() -> float:
    """GLAMOR_DIST_TIMEOUT_MIN (default 120, also when empty): minutes a collective waits; a value
    that is not a positive number is refused by name, before any process group starts."""
    text = os.environ.get("GLAMOR_DIST_TIMEOUT_MIN", "").strip() or "120"
    try:
        minutes = float(text)
    except ValueError:
        minutes = math.nan
    if not (math.isfinite(minutes) and minutes > 0):
        raise ValueError(f"GLAMOR_DIST_TIMEOUT_MIN={text!r}: must be a positive number of minutes (default 120)")
    return minutes


def setup(cfg) -> tuple[int, int]:
    """Join the process group that torchrun describes; returns (rank, world size)."""
    if world_size() <= 1:
        return 0, 1
    if not dist.is_initialized():
        use_cuda = torch.cuda.is_available() and (cfg.device == "auto" or cfg.device.startswith("cuda"))
        backend = os.environ.get("GLAMOR_DIST_BACKEND", "nccl" if use_cuda else "gloo")
        if use_cuda:
            local, gpus = int(os.environ.get("LOCAL_RANK", "0")), torch.cuda.device_count()
            if local >= gpus:  # (else CUDA's bare "invalid device ordinal")
                raise ValueError(f"torchrun started this process as LOCAL_RANK {local}, but this machine has {gpus} "
                                 f"GPU(s), one per process: --nproc-per-node at most {gpus}, or --set device='cpu'")
            if cfg.deterministic:  # before set_device starts CUDA (see train.set_determinism)
                os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
            torch.cuda.set_device(local)
        # Rank 0 alone builds the goal sets (up to an hour for a slow control task), evaluates
        # and writes checkpoints while the others wait in a collective: allow for it.
        dist.init_process_group(backend, timeout=datetime.timedelta(minutes=timeout_minutes()))
    global _leaving, _joined
    _joined += 1
    if _leaving is None and dist.get_backend() == "gloo":  # (a collective: every process makes it here)
        # Only under gloo, whose teardown aborted: under NCCL a second, gloo group would need gloo to
        # find a network interface between machines (GLOO_SOCKET_IFNAME), which runs that work with
        # NCCL alone need not have; there teardown leaves as before (after train's barriers).
        _leaving = dist.new_group(backend="gloo", timeout=datetime.timedelta(seconds=LEAVE_TIMEOUT_S))  # (the bound of
        # monitored_barrier's rank 0; the others wait for its answer as long as the group's timeout)
    return dist.get_rank(), dist.get_world_size()


def barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def from_rank_0(value):
    """Rank 0's `value` (any picklable object) on every rank; `value` itself with one process."""
    if not (dist.is_available() and dist.is_initialized()):
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def all_gather(value) -> list:
    """Every rank's `value` (any picklable object), in rank order; `[value]` with one process."""
    if not (dist.is_available() and dist.is_initialized()):
        return [value]
    values = [None] * dist.get_world_size()
    dist.all_gather_object(values, value)
    return values


def all_reduce_int(value: int, op) -> int:
    """`value` reduced with `op` (a dist.ReduceOp) over every rank; `value` itself with one process."""
    if not (dist.is_available() and dist.is_initialized()):
        return value
    device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else None
    t = torch.tensor([value], dtype=torch.int64, device=device)  # NCCL reduces GPU tensors only
    dist.all_reduce(t, op=op)
    return int(t.item())


def all_succeeded(ok: bool) -> bool:
    """Whether `ok` holds on every rank (so a failure on one is raised on all, and none waits in a
    later collective for a rank that has left); `ok` itself with one process."""
    return bool(all_reduce_int(int(ok), dist.ReduceOp.MIN))


def raise_together(error: Exception | None, elsewhere: Exception) -> None:
    """Every process says whether it failed (`error`, or None); if any did, each raises: its own
    error, or `elsewhere` where it had none, so none goes on to wait for the others in a
    collective. They leave together, as after a finished run: a process that tore gloo down
    right after the vote aborted at exit in about 1 of 4 tries ("terminate called without an
    active exception"); with this barrier none did in 12 (`teardown` waits for the others
    again, bounded, however the processes stop). One process: raises `error` if any."""
    if dist.is_available() and dist.is_initialized() and not all_succeeded(error is None):
        error = error or elsewhere
        barrier()
    if error is not None:
        raise error


def teardown(ending: BaseException | None = None) -> None:
    """Leave the process group, together: under gloo each process first waits, at most
    LEAVE_TIMEOUT_S, for the others to get here too. A process that tore gloo down while another was still in its last
    collective (right after the vote in which they agreed to fail, say the model check before
    DistributedDataParallel) aborted at exit now and then ("terminate called without an active
    exception"). One that does not come (it left already, or goes on alone in a collective after
    a failure that the others did not share, which its exit then breaks) is waited for no longer.
    Nor is any when `ending`, the exception that ends the caller's work (None: it finished), is a
    KeyboardInterrupt (Ctrl-C): every process got it, and one still in a collective, where Python
    does not see it, is let go only when this one leaves. (It is passed, not read from
    sys.exc_info(), which also holds a caller's own KeyboardInterrupt when train() runs inside
    its `except KeyboardInterrupt:` block: a finished run then left without the others.)

    A process that ends with an error of its own leaves word of it (its rank and the error's
    first line) in the process group's store, and prints the error with its traceback to stderr
    when the others have not come to leave within REPORT_AFTER_S (they wait in a collective that
    its leaving breaks; before, its error came out only after the whole wait, and a Ctrl-C in it
    lost the error): glamor.errors.printed(ending) then holds, and the command line does not
    print it again.
    A process whose `ending` is a broken collective (gloo's "Connection closed by peer", a
    timeout, a DistError) raises OtherProcessFailed from it, naming the first process that left
    such word (where the store outlives that process, as torchrun's agent's does)."""
    global _leaving
    if not (dist.is_available() and dist.is_initialized()):
        return
    group, _leaving = _leaving, None
    first = report = None
    if isinstance(ending, Exception):
        world = dist.get_world_size()
        if _broken_collective(ending):  # (another's leaving broke it: its word names it)
            first = _first_failure()
        else:  # this process's own error: word of it for the others, and printed if they do not come
            _leave_word(ending)
            if group is not None:
                report = threading.Timer(REPORT_AFTER_S, _print_waiting, args=(ending, dist.get_rank(), world))
                report.daemon = True
                report.start()
    try:
        if group is not None and not isinstance(ending, KeyboardInterrupt):
            dist.monitored_barrier(group=group, timeout=datetime.timedelta(seconds=LEAVE_TIMEOUT_S))
    except Exception:  # noqa: BLE001 - gone or not coming: leave all the same (the error that ends this run is raised)
        pass
    finally:
        if report is not None:
            report.cancel()
            report.join()  # (one that started prints whole, before the error is raised)
        dist.destroy_process_group()
    if first is not None:
        rank, summary = first
        raise OtherProcessFailed(
            f"process rank {rank} of {world} failed first ({summary}; its traceback is in that "
            f"process's output), and this process's collective broke when it left: "
            f"{_first_line(ending)}") from ending


def _first_line(error: BaseException) -> str:
    """`error`'s type and the first line of its message, at most 300 characters."""
    text = str(error).strip().splitlines()
    line = f"{type(error).__name__}: {text[0]}" if text else type(error).__name__
    return line if len(line) <= 300 else line[:297] + "..."


def _broken_collective(error: BaseException) -> bool:
    """Whether `error` is a collective's that broke (another process left: gloo's "Connection
    closed by peer", or a timeout), rather than this process's own."""
    return isinstance(error, dist.DistError) or (type(error) is RuntimeError and "gloo" in str(error))


def _store():
    """The process group's store (a short timeout: a store that is gone fails at once, one that
    does not answer is not waited for), or None."""
    try:
        store = dist.distributed_c10d._get_default_store()
        store.set_timeout(datetime.timedelta(seconds=10))
        return store
    except Exception:  # noqa: BLE001 - no store, no word: the errors stay as they are
        return None


def _key(what: str) -> str:
    attempt = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")  # (torchrun's restarts share its agent's store)
    return f"glamor/failed/{attempt}/{_joined}/{what}"


def _leave_word(error: Exception) -> None:
    """This process's rank and `error`'s first line, for the others (`_first_failure`)."""
    store = _store()
    if store is None:
        return
    try:
        n = store.add(_key("count"), 1)
        store.set(_key(str(n)), f"{dist.get_rank()}\n{_first_line(error)}")
    except Exception:  # noqa: BLE001 - best effort: the error itself is raised anyway
        pass


def _first_failure() -> tuple[int, str] | None:
    """(rank, first line of its error) of the first other process that left word of its failure
    (`_leave_word`), or None (none did, or the store went with it)."""
    store = _store()
    if store is None:
        return None
    try:
        for n in range(1, store.add(_key("count"), 0) + 1):
            if store.check([_key(str(n))]):  # (a word being written: counted, not set yet)
                rank, summary = store.get(_key(str(n))).decode(errors="replace").split("\n", 1)
                if int(rank) != dist.get_rank():
                    return int(rank), summary
    except Exception:  # noqa: BLE001 - the store went with rank 0 (no torchrun agent): no word
        pass
    return None


def _print_waiting(error: Exception, rank: int, world: int) -> None:
    """Print `error` (with its traceback) now, while this process (`rank` of `world`) waits for
    the others to leave."""
    try:
        print(f"glamor: process rank {rank} of {world} stopped with the error below; it waits up to "
              f"{LEAVE_TIMEOUT_S:g} s for the others to leave (any still in a collective leaves when it "
              f"does), then raises it", file=sys.stderr)
        traceback.print_exception(type(error), error, error.__traceback__, file=sys.stderr)
        sys.stderr.flush()
        mark_printed(error)
    except Exception:  # noqa: BLE001 - stderr gone: the error is raised after the wait anyway
        pass
