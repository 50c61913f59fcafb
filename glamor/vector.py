"""Environments for data collection: in the training process ("sync") or one worker process
each ("async"), behind one interface.

Collection is open loop: every environment resets with a seed and a goal, the agent plans once
for all of them (one batched plan call), and each environment then runs its whole action
sequence. So a worker gets two messages per episode: `reset(seed, goal)` (returns the first
observation) and `rollout(actions)` (returns the episode's newest frames and the actions taken
until the episode ended).

Workers are started with the "spawn" method: each builds its own environment, so DeepMind
Control's GL context is created inside the worker and never forked. A worker that dies (or whose
environment raises, or that does not answer in `REPLY_TIMEOUT_S`) is restarted, the restart is
counted and warned about, and the interrupted call is replayed from the last reset (an unseeded
one, seed None, from the random state it started from, which the worker reports), which gives the
same episode: collection goes on. A worker whose parent dies (SIGKILLed by the out-of-memory
killer or a scheduler) exits at once, even mid-episode or in a hung environment (see
`_exit_with_parent`). A worker that cannot build its environment the first time is
not restarted: the pool raises `EnvironmentUnavailable` with the worker's traceback; nor is one
whose start itself failed (spawn imports the main module again: a script must make the pool under
`if __name__ == "__main__":`), which the error says. A worker that cannot be started (the system
refusing a process) fails the pool's construction with `EnvironmentUnavailable` naming it; the
workers started before it are stopped at once. A call that such an error (or a KeyboardInterrupt)
cuts short leaves the pool unusable: its next call raises `EnvironmentUnavailable` saying so (the
replies left unread would answer it), and close() still stops the workers.

Example:
    >>> from glamor.config import preset
    >>> pool = make_pool(preset("debug"), 2)
    >>> obs = pool.reset([1, 2], [None, None])
    >>> episodes = pool.rollout(np.zeros((2, 3), np.int64))
    >>> [len(acts) for _, acts in episodes]
    [3, 3]
    >>> pool.close()
"""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing as mp
import multiprocessing.connection as mp_connection
import multiprocessing.resource_tracker as mp_resource_tracker
import multiprocessing.util as mp_util
import os
import signal
import sys
import threading
import time
import traceback
import warnings

import numpy as np

from glamor import envs, sysinfo
from glamor.errors import EnvironmentUnavailable

try:
    import resource
except ImportError:  # (not on Windows)
    resource = None


def _rollout(env: envs.GoalEnv, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Run `actions` from the env's current state until they run out or the episode ends.

    Returns:
        frames uint8 (L+1, H, W) (each observation's newest frame), actions int64 (L,).
    """
    frames, taken = [env._frames[-1]], []
    for a in actions:
        o, _, terminated, truncated, _ = env.step(int(a))
        frames.append(o["observation"][-1])
        taken.append(int(a))
        if terminated or truncated:
            break
    return np.stack(frames), np.asarray(taken, dtype=np.int64)


def _rng_state(env: envs.GoalEnv):
    return None if env._np_random is None else env.np_random.bit_generator.state


def _set_rng_state(env: envs.GoalEnv, state) -> None:
    if state is not None:
        env.np_random.bit_generator.state = state


def _reset(env: envs.GoalEnv, seed: int | None, goal):
    return env.reset(seed=seed, options={"goal": goal} if goal is not None else None)[0]


def _replayable_reset(env: envs.GoalEnv, seed: int | None, goal, state) -> tuple:
    """A reset that a restarted worker can do again: after setting `state` (an np_random state,
    or None), it returns (the random state an unseeded reset started from, or None for a seeded
    one, the observation). A GoalEnv draws everything from np_random, so an unseeded reset
    replayed from that state gives the same episode."""
    _set_rng_state(env, state)
    before = env.np_random.bit_generator.state if seed is None else None  # (np_random made if the env has none)
    return before, _reset(env, seed, goal)


def _handle(env: envs.GoalEnv, cmd: str, arg):
    if cmd == "reset":
        return _reset(env, *arg)
    if cmd == "replayable_reset":
        return _replayable_reset(env, *arg)
    if cmd == "rollout":
        return _rollout(env, arg)
    if cmd == "get_rng":
        return _rng_state(env)
    if cmd == "set_rng":
        return _set_rng_state(env, arg)
    raise ValueError(f"unknown command {cmd!r}")


# prctl's option (linux/prctl.h): the signal this process gets when the thread that started it ends
_PR_SET_PDEATHSIG = 1
# How often a worker looks whether its parent is still there (where the kernel cannot tell it)
PARENT_CHECK_S = 1.0


def _watch_parent(parent_pid: int) -> None:
    while True:
        time.sleep(PARENT_CHECK_S)
        if os.getppid() != parent_pid:
            os._exit(1)


def _exit_with_parent(parent_pid: int, kernel: bool) -> None:
    """End this worker as soon as the process that started it (`parent_pid`) dies, however it
    dies. A worker ignores SIGINT and SIGTERM, and one whose parent was SIGKILLed (the
    out-of-memory killer, a scheduler past its grace period) mid-rollout saw the closed pipe
    only when its episode ended, and one in a hung or slow environment never: it went on alone
    holding its memory (an Atari or control environment's hundreds of MiB, a GL context) and a
    CPU. With `kernel` (Linux, a pool started from the main thread) the kernel SIGKILLs it
    when the parent dies (prctl PR_SET_PDEATHSIG, which fires when the starting *thread* ends:
    hence the main thread only); a daemon thread also checks every PARENT_CHECK_S seconds
    whether its parent changed (enough unless the environment holds the GIL). That check works
    on Linux and macOS, where an orphan gets a new parent; on Windows os.getppid() keeps the dead
    parent's pid, so there only the closed pipe ends a worker, when it next sends or receives."""
    if kernel and sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):  # (no libc to load: the thread below still watches)
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
    if os.getppid() != parent_pid:  # died before the prctl: nobody will signal us
        os._exit(1)
    threading.Thread(target=_watch_parent, args=(parent_pid,), name="glamor-parent-watch", daemon=True).start()


# The signals a worker ignores: the parent owns its lifetime (see `_worker`).
_WORKER_IGNORES = (signal.SIGINT, signal.SIGTERM)


@contextlib.contextmanager
def _signals_held():
    """Within the block, this thread holds back (blocks) SIGINT and SIGTERM, and so does a process
    it starts, which inherits the mask through fork and exec: a spawned worker ignores them only
    once `_worker` runs, after its interpreter has started and imported numpy, glamor and the main
    module, and a Ctrl-C to the process group (or a scheduler's SIGTERM) in that time killed it
    (a KeyboardInterrupt traceback, and one restart more). Held, they wait until `_worker` ignores
    them. This process still gets its own: another thread takes it, or it comes when the block ends
    (Python runs the handler in the main thread either way). Nothing is held where
    pthread_sigmask is missing (Windows)."""
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    # (multiprocessing's resource tracker, started with a process's first spawn, unblocks these
    # signals after starting: started first, it leaves the mask alone)
    with contextlib.suppress(Exception):
        mp_resource_tracker.ensure_running()
    before = signal.pthread_sigmask(signal.SIG_BLOCK, _WORKER_IGNORES)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, before)


def _worker(conn, env_id: str, episode_length: int, env_kwargs: dict, parent_pid: int | None = None,
            kernel_watch: bool = False) -> None:
    # The parent owns our lifetime: a Ctrl-C or SIGTERM sent to the whole process group lets it
    # finish its round and save (glamor/interrupt.py); we exit when it closes the pipe or dies.
    # (The parent started us with them held, `_signals_held`: one that came meanwhile is dropped.)
    for s in _WORKER_IGNORES:
        signal.signal(s, signal.SIG_IGN)
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _WORKER_IGNORES)
    if parent_pid is not None:
        _exit_with_parent(parent_pid, kernel_watch)
    try:
        env = envs.make(env_id, episode_length, **env_kwargs)
    except Exception:  # noqa: BLE001 - the parent's first command is answered with why
        why = traceback.format_exc()  # (dying here would leave it "Connection reset by peer")
        try:
            conn.recv()
            conn.send(("make_error", why))
        except (EOFError, OSError):  # the parent is gone
            pass
        conn.close()
        return
    try:
        while True:
            cmd, arg = conn.recv()
            if cmd == "close":
                break
            try:
                conn.send(("ok", _handle(env, cmd, arg)))
            except Exception:  # noqa: BLE001 - reported to the parent, which restarts us
                conn.send(("error", traceback.format_exc()))
    except (EOFError, OSError):  # the parent is gone (EOF, or a broken pipe under the reply)
        pass
    finally:
        env.close()
        conn.close()


class WorkerCrashed(RuntimeError):
    pass


# A worker's longest wait for one reply (a reset, or a whole episode's rollout, which takes well
# under a second; the first reply includes building the environment): past it, the worker is
# taken to be hung and is restarted like a crashed one.
REPLY_TIMEOUT_S = 600.0
# How long `ProcessEnvPool.close` waits for all the workers together to exit before killing them.
CLOSE_TIMEOUT_S = 5.0


# What one worker costs, for `check_worker_count`: file descriptors held by this process (its pipe,
# its sentinel and the pipe its start data went through), memory of its own (a gridworld worker's
# interpreter, numpy and environment: about 22 MiB; Atari's and control's take more), and at most
# this many workers per CPU: they start together, each taking 0.4 (gridworld) to a few (control)
# CPU-seconds to import and build its environment, and the first command's reply must come within
# REPLY_TIMEOUT_S (10 min).
FDS_PER_WORKER = 3
FDS_KEPT = 64  # for the rest of the process: logs, checkpoints, TensorBoard, torch
WORKER_MEMORY = 20 * 2**20
MAX_WORKERS_PER_CPU = 64


def _machine_cpus() -> int:
    return os.cpu_count() or 1


def _cpus() -> int:
    """The CPUs this process may run on (its workers inherit them)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _open_fds() -> int:
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return 0


def check_worker_count(num_envs: int, env_id: str = "") -> None:
    """Refuse, naming num_envs, a number of worker processes this machine cannot run: more than
    MAX_WORKERS_PER_CPU per CPU (their start would outlast the first reply's timeout), than its
    memory holds, than the process limit or the file descriptors left to this process allow.
    Under torchrun every process of the machine (LOCAL_WORLD_SIZE) starts as many. Without it, vector='async' with num_envs=10000 started processes until the system refused one
    (too many open files, after minutes of thousands of interpreters importing side by side) or
    the kernel's out-of-memory killer stepped in."""
    processes = int(os.environ.get("LOCAL_WORLD_SIZE", 1))
    workers = num_envs * processes
    on = f" (x {processes} processes on this machine: {workers:,} workers)" if processes > 1 else ""
    what = (f"vector='async' with num_envs={num_envs:,}{f' ({env_id})' if env_id else ''} starts one worker "
            f"process per environment{on}")
    fix = "use fewer environments (num_envs), or vector='sync'"
    # this process's workers on the CPUs it may use (torchrun ranks may each be pinned to a few),
    # and every process's on the machine's
    for count, cpus, where in ((num_envs, _cpus(), "this process may run on"),
                               (workers, max(_machine_cpus(), _cpus()), "this machine has")):
        if count > MAX_WORKERS_PER_CPU * cpus:
            raise ValueError(f"{what}, but {where} {cpus} CPU(s): at most {MAX_WORKERS_PER_CPU} workers per CPU "
                             f"({MAX_WORKERS_PER_CPU * cpus:,}) can start before the first reply is due (more only "
                             f"take turns on the CPUs, no faster); {fix}")
    available = sysinfo.available_memory()
    if available is not None and workers * WORKER_MEMORY > available:
        raise ValueError(f"{what}, but each takes {WORKER_MEMORY // 2**20} MiB or more and this machine has "
                         f"{available / 2**30:.1f} GiB available: at most {available // WORKER_MEMORY:,} workers; {fix}")
    if resource is not None:
        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        if soft != resource.RLIM_INFINITY:
            left = soft - _open_fds() - FDS_KEPT
            if num_envs * FDS_PER_WORKER > left:
                raise ValueError(f"{what}, but this process may open {soft:,} files (RLIMIT_NOFILE) and each worker "
                                 f"holds {FDS_PER_WORKER}: at most {max(left // FDS_PER_WORKER, 0):,} workers; {fix}, "
                                 f"or raise the limit (`ulimit -n`)")
        nproc = resource.getrlimit(resource.RLIMIT_NPROC)[0]
        if nproc != resource.RLIM_INFINITY and workers >= nproc:
            raise ValueError(f"{what}, but this user may run {nproc:,} processes (RLIMIT_NPROC); {fix}, or raise the "
                             f"limit (`ulimit -u`)")


def _kill(proc) -> None:
    if proc is not None and proc.is_alive():
        proc.kill()
    if proc is not None:
        proc.join(timeout=5)


def _kill_workers(procs: list) -> None:
    for proc in procs:
        _kill(proc)


def build_envs(env_id: str, episode_length: int, env_kwargs: dict, count: int) -> list[envs.GoalEnv]:
    """`count` environments; when building one fails, those built before it are closed (a
    control task's each hold a MuJoCo model and a GL context) and the error goes on."""
    built: list[envs.GoalEnv] = []
    try:
        for _ in range(count):
            built.append(envs.make(env_id, episode_length, **env_kwargs))
    except BaseException:
        with contextlib.suppress(Exception):  # (the build's error is the one to report)
            close_envs(built)
        raise
    return built


def close_envs(envs_: list) -> None:
    """Close every environment (or pool), all of them even when one's close raises (the first
    error is raised after)."""
    errors = []
    for env in envs_:
        try:
            env.close()
        except Exception as e:  # noqa: BLE001 - raised below, once the others are closed
            errors.append(e)
    if errors:
        raise errors[0]


class EnvPool:
    """N environments run in this process, one after the other."""

    def __init__(self, env_id: str, episode_length: int, env_kwargs: dict, num_envs: int):
        self.env_id, self.episode_length, self.env_kwargs = env_id, episode_length, dict(env_kwargs)
        self.num_envs = num_envs
        self.restarts = 0
        self._envs = build_envs(env_id, episode_length, env_kwargs, num_envs)

    def __len__(self) -> int:
        return self.num_envs

    def _call(self, i: int, cmd: str, arg=None):
        return _handle(self._envs[i], cmd, arg)

    def _call_all(self, cmd: str, args: list) -> list:
        return [self._call(i, cmd, a) for i, a in enumerate(args)]

    def _one_each(self, name: str, values) -> list:
        """`values` as a list of one per environment, or ValueError naming `name` (a shorter
        list set some environments and left the others, silently)."""
        values = list(values)
        if len(values) != self.num_envs:
            raise ValueError(f"{name}: one per environment, {self.num_envs}, got {len(values)}")
        return values

    def reset(self, seeds: list[int], goals: list) -> list[dict]:
        """Reset environment i with seeds[i] and goals[i] (a Goal, or None for its own)."""
        self._last_reset = list(zip(self._one_each("seeds", seeds), self._one_each("goals", goals)))
        return self._call_all("reset", self._last_reset)

    def rollout(self, actions: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        """Environment i runs actions[i] (N, k) from its reset; see `_rollout`."""
        return self._call_all("rollout", self._one_each("actions", actions))

    def rng_states(self) -> list:
        """Each environment's np_random state (None where it has none yet)."""
        return self._call_all("get_rng", [None] * self.num_envs)

    def set_rng_states(self, states: list) -> None:
        self._call_all("set_rng", self._one_each("states", states))

    def close(self) -> None:
        close_envs(self._envs)


class ProcessEnvPool(EnvPool):
    """N environments, one per worker process, driven through Pipes; crashed workers restart."""

    def __init__(self, env_id: str, episode_length: int, env_kwargs: dict, num_envs: int,
                 max_restarts_per_call: int = 3, reply_timeout_s: float = REPLY_TIMEOUT_S):
        check_worker_count(num_envs, env_id)  # (before anything starts)
        self.env_id, self.episode_length, self.env_kwargs = env_id, episode_length, dict(env_kwargs)
        self.num_envs, self.restarts, self.max_restarts_per_call = num_envs, 0, max_restarts_per_call
        self.reply_timeout_s = reply_timeout_s
        self._ctx = mp.get_context("spawn")
        self._procs: list = [None] * num_envs
        self._conns: list = [None] * num_envs
        self._last_reset: list = [None] * num_envs
        self._rng: list = [None] * num_envs  # states to restore into a restarted worker
        self._built = [False] * num_envs  # whether worker i's environment was ever built
        self._broken: str | None = None  # why the pool is unusable (a round cut short), see _call_all
        # The workers ignore SIGTERM (the parent owns their lifetime), so multiprocessing's exit
        # hook, which SIGTERMs daemon children and then waits for them, would wait forever on a
        # pool nobody closed (an exception on the way out): kill them before it runs.
        self._finalizer = mp_util.Finalize(self, _kill_workers, args=(self._procs,), exitpriority=10)
        i = 0
        try:
            for i in range(num_envs):
                self._start(i)
        except BaseException as e:  # the workers already started are stopped now, not at exit
            self._stop_started()
            if not isinstance(e, Exception):  # (a KeyboardInterrupt goes on as it is)
                raise
            raise EnvironmentUnavailable(f"could not start environment worker {i} of {num_envs} ({env_id}): "
                                         f"{type(e).__name__}: {e}") from e

    def _stop_started(self) -> None:
        """Kill the workers started so far and close their pipes (a pool whose start failed)."""
        _kill_workers(self._procs)
        for conn in self._conns:
            if conn is not None:
                conn.close()
        self._finalizer.cancel()

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self._procs]

    def _start(self, i: int) -> None:
        parent, child = self._ctx.Pipe()
        # (the kernel's watch is tied to the starting thread: the main thread's lasts as long as this process)
        kernel_watch = threading.current_thread() is threading.main_thread()
        proc = self._ctx.Process(target=_worker, args=(child, self.env_id, self.episode_length, self.env_kwargs,
                                                       os.getpid(), kernel_watch),
                                 daemon=True, name=f"glamor-env-{i}")
        try:
            with _signals_held():  # (until the worker ignores them)
                proc.start()
        except BaseException:
            parent.close()  # (the pipe's two ends would stay open until collected)
            raise
        finally:
            child.close()
        self._procs[i], self._conns[i] = proc, parent

    def _restart(self, i: int, why: str) -> None:
        proc = self._procs[i]
        _kill(proc)
        self._conns[i].close()
        self.restarts += 1
        warnings.warn(f"environment worker {i} (pid {proc.pid}) {why}; restarted it "
                      f"({self.restarts} restart(s) so far)", RuntimeWarning, stacklevel=3)
        self._start(i)

    def _send(self, i: int, cmd: str, arg) -> None:
        self._conns[i].send((cmd, arg))

    def _recv(self, i: int):
        if not self._conns[i].poll(self.reply_timeout_s):  # a hung environment: restarted like a crashed one
            raise WorkerCrashed(f"did not answer in {self.reply_timeout_s:g} s")
        status, value = self._conns[i].recv()
        if status != "make_error":  # (an environment that raised had been built)
            self._built[i] = True
        if status == "ok":
            return value
        # value: the worker's traceback, its last line the exception
        lines = value.strip().splitlines()
        why = f"{lines[-1] if lines else 'an error'}\n{value}"
        if status == "make_error" and not self._built[i]:  # not a crash: restarting would fail alike
            raise EnvironmentUnavailable(f"environment worker {i} could not build {self.env_id}: {why}")
        raise WorkerCrashed(f"its environment raised {why}")

    def _check_started(self, i: int, error: Exception) -> None:
        """A worker that never answered and exited with status 1 (an uncaught Python error) got no
        further than its start: `_worker` reports its own errors, so spawn's start itself failed
        (importing the main module again, unpickling its arguments), and a restart would fail
        alike. The pool raises EnvironmentUnavailable saying so, and what usually causes it
        (before: three restarts, each printing the same traceback, then "failed 3 restarts in a
        row: Connection reset by peer")."""
        proc = self._procs[i]
        if self._built[i] or not isinstance(error, (EOFError, OSError)) or proc is None:
            return
        proc.join(timeout=5)  # (it has closed its pipe: exiting)
        if proc.exitcode == 1:
            raise EnvironmentUnavailable(
                f"environment worker {i} ({self.env_id}) exited with status 1 before answering its first command, "
                f"while starting (its traceback is above): a worker is a spawned process, which imports the main "
                f"module again, so a script that makes a vector='async' pool (or trains with one) must do it under "
                f"`if __name__ == '__main__':`, and the pool's arguments must be importable") from error

    def _recover(self, i: int, cmd: str, arg, error: Exception):
        """Restart worker i and replay its last reset (an unseeded one from the random state it
        started from), then the random state set after it (a seeded reset would draw over one set
        before it), then the failed command. An unseeded reset that itself failed cannot be
        replayed (its starting state died with the worker): that is warned about."""
        for _ in range(self.max_restarts_per_call):
            self._check_started(i, error)
            try:  # (a worker the system would not start counts as a failed restart)
                self._restart(i, "died" if isinstance(error, (EOFError, OSError)) else str(error).splitlines()[0])
                if cmd != "replayable_reset" and self._last_reset[i] is not None:
                    self._send(i, "replayable_reset", self._last_reset[i])
                    self._recv(i)
                elif cmd == "replayable_reset" and arg[0] is None and arg[2] is None:
                    warnings.warn(f"environment worker {i} died in an unseeded reset (seed None), whose random state "
                                  f"died with it: the restarted worker starts that episode from a fresh random "
                                  f"state (reset with seeds for episodes that a restart replays exactly)",
                                  RuntimeWarning, stacklevel=4)
                if self._rng[i] is not None and cmd != "set_rng":
                    self._send(i, "set_rng", self._rng[i])
                    self._recv(i)
                self._send(i, cmd, arg)
                return self._recv(i)
            except (EOFError, OSError, WorkerCrashed) as e:
                error = e
        raise EnvironmentUnavailable(f"environment worker {i} failed {self.max_restarts_per_call} restarts in a row: "
                           f"{error}") from error

    def _call_all(self, cmd: str, args: list) -> list:
        """Send `cmd` with args[i] to every worker, then read every reply (recovering crashed
        workers). A round an exception cuts short (a worker past its restarts, an environment
        that cannot build, a KeyboardInterrupt) leaves the later workers' replies unread in their
        pipes, where the next call would read them as its own answers: the pool is then broken,
        and every later call raises EnvironmentUnavailable naming why (close() still works)."""
        if self._broken is not None:
            raise EnvironmentUnavailable(f"this pool of {self.num_envs} {self.env_id} workers is unusable: "
                                         f"{self._broken}; close it and make a new pool")
        try:
            return self._round(cmd, args)
        except BaseException as e:
            first = (str(e).splitlines() or [""])[0]
            self._broken = (f"an earlier {cmd!r} call failed ({type(e).__name__}{': ' + first if first else ''}) "
                            f"and left replies unread that a later call would take for its own")
            raise

    def _round(self, cmd: str, args: list) -> list:
        sent = []
        for i, a in enumerate(args):  # send everything first: the workers run side by side
            try:
                self._send(i, cmd, a)
                sent.append(None)
            except OSError as e:
                sent.append(e)
        out = []
        for i, a in enumerate(args):
            try:
                if sent[i] is not None:
                    raise sent[i]
                out.append(self._recv(i))
            except (EOFError, OSError, WorkerCrashed) as e:
                out.append(self._recover(i, cmd, a, e))
        return out

    def reset(self, seeds: list[int], goals: list) -> list[dict]:
        args = [(seed, goal, None) for seed, goal in zip(self._one_each("seeds", seeds), self._one_each("goals", goals))]
        self._rng = [None] * self.num_envs  # a reset fixes the state by itself (from the one it started with)
        self._last_reset = [None] * self.num_envs  # (a reset of this round that fails is replayed as it was sent)
        replies = self._call_all("replayable_reset", args)
        # replayed by a restarted worker: a seeded reset as it was, an unseeded one from the state it started from
        self._last_reset = [(seed, goal, before) for (seed, goal, _), (before, _) in zip(args, replies)]
        return [obs for _, obs in replies]

    def rng_states(self) -> list:
        return self._call_all("get_rng", [None] * self.num_envs)

    def set_rng_states(self, states: list) -> None:
        self._rng = self._one_each("states", states)
        self._call_all("set_rng", list(self._rng))

    def close(self) -> None:
        """Ask every worker to close its environment and exit; kill those still running after
        `CLOSE_TIMEOUT_S` (all together). Replies nobody read (a round an exception cut short)
        are drained meanwhile: a worker blocked writing one would never read the request."""
        for conn in self._conns:
            try:
                conn.send(("close", None))
            except OSError:
                pass
        deadline = time.monotonic() + CLOSE_TIMEOUT_S
        open_conns = {id(c): c for c in self._conns if not c.closed}
        while any(p.is_alive() for p in self._procs) and (left := deadline - time.monotonic()) > 0:
            waiting = [p.sentinel for p in self._procs if p.is_alive()] + list(open_conns.values())
            for ready in mp_connection.wait(waiting, timeout=min(left, 1.0)):
                if id(ready) in open_conns:
                    try:
                        ready.recv()  # an unread reply: dropped
                    except (EOFError, OSError):  # the worker has closed its end
                        del open_conns[id(ready)]
        for proc, conn in zip(self._procs, self._conns):
            if proc.is_alive():
                proc.kill()
            proc.join()
            conn.close()

    def __del__(self):
        try:
            if any(p is not None and p.is_alive() for p in self._procs):
                self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass


def make_pool(cfg, num_envs: int | None = None) -> EnvPool:
    """The collection environments of a config: `cfg.vector` "sync" (in process) or "async"
    (worker processes)."""
    n = cfg.num_envs if num_envs is None else num_envs
    pools = {"sync": EnvPool, "async": ProcessEnvPool}
    if cfg.vector not in pools:
        raise ValueError(f"vector must be one of {sorted(pools)}, got {cfg.vector!r}")
    cls = pools[cfg.vector]
    return cls(cfg.env_id, cfg.episode_length, cfg.env_kwargs, n)
