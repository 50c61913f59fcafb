"""Collection environments in worker processes: the same episodes as in process, and a crashed
worker is restarted (counted, warned about) while collection goes on with the same episode."""

import contextlib
import os
import signal
import warnings

import numpy as np
import pytest

from glamor.config import preset
from glamor.errors import EnvironmentUnavailable
from glamor.vector import EnvPool, ProcessEnvPool, close_envs, make_pool

CFG = preset("debug", progress=False)


def _episodes(pool, actions):
    obs = pool.reset([11, 12], [None, None])
    return obs, pool.rollout(actions)


def test_worker_processes_give_the_episodes_of_in_process_envs():
    actions = np.random.default_rng(0).integers(4, size=(2, CFG.episode_length))
    sync, workers = make_pool(CFG, 2), make_pool(CFG.replace(vector="async"), 2)
    assert isinstance(sync, EnvPool) and isinstance(workers, ProcessEnvPool)
    try:
        (o1, e1), (o2, e2) = _episodes(sync, actions), _episodes(workers, actions)
        for a, b in zip(o1, o2):
            np.testing.assert_array_equal(a["observation"], b["observation"])
        for (f1, a1), (f2, a2) in zip(e1, e2):
            np.testing.assert_array_equal(f1, f2)
            np.testing.assert_array_equal(a1, a2)
        states = workers.rng_states()
        assert states == sync.rng_states()
        workers.set_rng_states(states)
    finally:
        sync.close(), workers.close()


def test_a_killed_worker_is_restarted_and_collection_goes_on():
    actions = np.random.default_rng(1).integers(4, size=(2, CFG.episode_length))
    ref = make_pool(CFG, 2)
    _, expected = _episodes(ref, actions)
    pool = make_pool(CFG.replace(vector="async"), 2)
    try:
        pool.reset([11, 12], [None, None])
        victim = pool.pids[1]
        os.kill(victim, signal.SIGKILL)
        with pytest.warns(RuntimeWarning, match="worker 1 .* died; restarted"):
            got = pool.rollout(actions)
        assert pool.restarts == 1 and pool.pids[1] != victim
        for (f1, a1), (f2, a2) in zip(expected, got):  # replayed from the seeded reset
            np.testing.assert_array_equal(f1, f2)
            np.testing.assert_array_equal(a1, a2)
        os.kill(pool.pids[0], signal.SIGKILL)  # dead before a reset this time
        with pytest.warns(RuntimeWarning, match="worker 0"):
            pool.reset([11, 12], [None, None])
        assert pool.restarts == 2
    finally:
        pool.close(), ref.close()


def test_a_worker_that_stops_answering_is_restarted_and_collection_goes_on():
    """A hung environment (here a stopped worker) is restarted like a crashed one once it has
    not answered for reply_timeout_s, and the episode is replayed (before: a wait forever)."""
    actions = np.random.default_rng(2).integers(4, size=(2, CFG.episode_length))
    ref = make_pool(CFG, 2)
    _, expected = _episodes(ref, actions)
    # 5 s: the restarted worker's first reply (a fresh process importing glamor, building its
    # environment) must come within it too, and took over 2 s on a loaded 2-core machine
    pool = ProcessEnvPool(CFG.env_id, CFG.episode_length, CFG.env_kwargs, 2, reply_timeout_s=5.0)
    try:
        pool.reset([11, 12], [None, None])
        hung = pool.pids[0]
        os.kill(hung, signal.SIGSTOP)
        with pytest.warns(RuntimeWarning, match=r"worker 0 .* did not answer in 5 s; restarted"):
            got = pool.rollout(actions)
        assert pool.restarts == 1 and pool.pids[0] != hung
        for (f1, a1), (f2, a2) in zip(expected, got):
            np.testing.assert_array_equal(f1, f2)
            np.testing.assert_array_equal(a1, a2)
    finally:
        pool.close(), ref.close()


def test_close_after_a_round_cut_short_lets_every_worker_exit_at_once(monkeypatch):
    """A round an exception cut short (a worker past its restarts, a KeyboardInterrupt) leaves
    replies unread; a worker whose reply outgrew the pipe's buffer (an Atari episode's frames do)
    blocked writing it and never read the request to close: close() waited 5 s for each worker
    in turn (a minute for a dozen), then killed it, its environment never closed."""
    import glamor.vector

    monkeypatch.setattr(glamor.vector, "CLOSE_TIMEOUT_S", 60.0, raising=False)  # no kill within the test
    big = {"cell_px": 20}  # 220x220 frames: a 12-step episode is 0.6 MB, past any pipe buffer
    pool = ProcessEnvPool(CFG.env_id, 12, big, 3)
    try:
        pool.reset([1, 2, 3], [None] * 3)
        for i in range(3):
            pool._send(i, "rollout", np.zeros(12, np.int64))  # the replies are never read
    finally:
        pool.close()
    assert [p.exitcode for p in pool._procs] == [0, 0, 0]  # each exited by itself, not killed
    pool.close()  # a second close is harmless


def test_trainer_collects_with_worker_processes(tmp_path):
    from glamor.train import Trainer

    tr = Trainer(CFG.replace(vector="async", num_envs=2), tmp_path)
    try:
        taken = tr.collect_round()
        assert taken == 2 * CFG.episode_length and tr.replay.episodes_added == 2
    finally:
        tr.close()


def test_unknown_vector_mode_is_named():
    with pytest.raises(ValueError, match="vector"):
        make_pool(CFG.replace(vector="threads"))


BOOM_ENV = '''
import gymnasium as gym
import numpy as np
from glamor.envs import GoalEnv


class Boom(GoalEnv):
    def __init__(self, episode_length=6):
        super().__init__((8, 8), 1, episode_length, np.ones(1))
        self.action_space = gym.spaces.Discrete(4)
        self.x = 0

    def _reset_state(self):
        self.x = 0

    def _step_state(self, action):
        if action == 3 and self._t >= 1:
            raise ValueError(f"boom at step {self._t}")
        self.x = (self.x + action) % 8
        return False

    def _frame(self):
        return np.full((8, 8), self.x, np.uint8)

    def _labels(self):
        return np.array([self.x], np.float64)

    def _get_state(self):
        return self.x

    def _set_state(self, state):
        self.x = state


gym.register("Boom-v0", entry_point=Boom)
'''


def _worker_pool(tmp_path, monkeypatch, module: str, source: str, env_id: str, **cfg):
    """A one-worker pool of `env_id`, registered by `source` written as tmp_path/module.py (on
    the path of this process and of its spawned workers)."""
    (tmp_path / f"{module}.py").write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("PYTHONPATH", f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    return make_pool(preset("debug", progress=False, env_id=f"{module}:{env_id}", vector="async", **cfg), 1)


def test_an_error_in_a_workers_environment_is_named_in_the_warnings_and_the_error(tmp_path, monkeypatch):
    pool = _worker_pool(tmp_path, monkeypatch, "boom_env", BOOM_ENV, "Boom-v0", env_kwargs={}, episode_length=6)
    try:
        pool.reset([1], [None])
        with pytest.warns(RuntimeWarning, match=r"its environment raised ValueError: boom at step 1; restarted"):
            with pytest.raises(EnvironmentUnavailable, match=r"failed 3 restarts in a row: its environment raised ValueError: "
                                                   r"boom at step 1\n(.|\n)*boom_env.py"):
                pool.rollout(np.full((1, 6), 3))
    finally:
        pool.close()


WORKERLESS_ENV = '''
import multiprocessing

import gymnasium as gym
from glamor.envs.gridworld import GridWorld


class ParentOnly(GridWorld):
    def __init__(self, **kwargs):
        if multiprocessing.current_process().name.startswith("glamor-env"):
            raise RuntimeError("no display in a worker")
        super().__init__(**kwargs)


gym.register("ParentOnly-v0", entry_point=ParentOnly)
'''


def test_a_worker_that_cannot_make_its_environment_says_why(tmp_path, monkeypatch):
    """A worker whose environment fails to build answers the first command with the error (it
    died, and the parent saw only 'Connection reset by peer'), and is not restarted three times
    to fail alike (three warnings before the error)."""
    pool = _worker_pool(tmp_path, monkeypatch, "parent_only_env", WORKERLESS_ENV, "ParentOnly-v0", env_kwargs={})
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", RuntimeWarning)  # a restart warns: there must be none
            with pytest.raises(EnvironmentUnavailable, match=r"environment worker 0 could not build parent_only_env:"
                                                             r"ParentOnly-v0: RuntimeError: no display in a worker\n"
                                                             r"(.|\n)*envs.make"):
                pool.reset([1], [None])
        assert pool.restarts == 0
    finally:
        pool.close()


def test_a_script_that_makes_a_pool_outside_its_main_guard_is_told_so(tmp_path):
    """Spawned workers import the main script again, and one that makes the pool at its top level
    fails the workers' start: the pool restarted each three times (the same traceback every time)
    and then said only "failed 3 restarts in a row: Connection reset by peer"."""
    import subprocess
    import sys

    from test_resume import subprocess_env

    script = tmp_path / "collect.py"
    script.write_text("from glamor.config import preset\nfrom glamor.vector import make_pool\n"
                      "pool = make_pool(preset('debug', vector='async'), 1)\npool.reset([1], [None])\n")
    env = {**subprocess_env(), "PYTHONWARNINGS": "default"}  # (a restart would warn)
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=120)
    last = done.stderr.strip().splitlines()[-1]
    assert done.returncode == 1 and last.startswith("glamor.errors.EnvironmentUnavailable: environment worker 0 "), \
        done.stderr[-3000:]
    assert "exited with status 1 before answering its first command" in last
    assert "`if __name__ == '__main__':`" in last and "restarted" not in done.stderr


ONCE_ONLY_ENV = BOOM_ENV.replace("Boom-v0", "OnceOnly-v0").replace(
    "        super().__init__((8, 8), 1, episode_length, np.ones(1))",
    """        import os
        flag = os.path.join(os.path.dirname(__file__), "built")
        if os.path.exists(flag):
            raise RuntimeError("built once already")
        open(flag, "w").close()
        super().__init__((8, 8), 1, episode_length, np.ones(1))""")


def test_a_restarted_worker_that_cannot_build_is_restarted_again(tmp_path, monkeypatch):
    """Building failed only after the worker had built once (a crash, then a restart that fails:
    maybe passing): that is a crash like any other, restarted up to max_restarts_per_call."""
    pool = _worker_pool(tmp_path, monkeypatch, "once_only_env", ONCE_ONLY_ENV, "OnceOnly-v0", env_kwargs={},
                        episode_length=6)
    try:
        pool.reset([1], [None])
        with pytest.warns(RuntimeWarning, match=r"its environment raised RuntimeError: built once already; restarted"):
            with pytest.raises(EnvironmentUnavailable, match=r"failed 3 restarts in a row: its environment raised "
                                                             r"RuntimeError: built once already"):
                pool.rollout(np.full((1, 6), 3))
        assert pool.restarts == 3
    finally:
        pool.close()


def test_a_worker_whose_environment_raised_at_its_first_command_was_built(tmp_path, monkeypatch):
    """An environment that raised at the worker's first command had been built (its error is an
    "error", not a "make_error" reply): a restart that then cannot build is restarted again, not
    taken for a worker that never could build its environment."""
    source = ONCE_ONLY_ENV.replace("OnceOnly-v0", "OnceThenBoom-v0").replace(
        "    def _reset_state(self):\n        self.x = 0",
        "    def _reset_state(self):\n        raise ValueError('boom in reset')")
    pool = _worker_pool(tmp_path, monkeypatch, "once_then_boom_env", source, "OnceThenBoom-v0", env_kwargs={},
                        episode_length=6)
    try:
        with pytest.warns(RuntimeWarning, match=r"its environment raised ValueError: boom in reset; restarted"):
            with pytest.raises(EnvironmentUnavailable, match=r"failed 3 restarts in a row: its environment raised "
                                                             r"RuntimeError: built once already"):
                pool.reset([1], [None])
        assert pool.restarts == 3
    finally:
        pool.close()


def test_a_pool_whose_ith_environment_fails_to_build_closes_the_ones_built(monkeypatch):
    from glamor import envs

    built, real_make = [], envs.make

    def make(*args, **kwargs):
        if len(built) == 2:
            raise RuntimeError("no display for the third")
        env = real_make(*args, **kwargs)
        closed = env.close
        env.close = lambda: (built.append("closed"), closed())[1]
        built.append(env)
        return env

    monkeypatch.setattr(envs, "make", make)
    with pytest.raises(RuntimeError, match="no display for the third"):
        EnvPool(CFG.env_id, CFG.episode_length, CFG.env_kwargs, 4)
    assert built.count("closed") == 2


def test_a_sync_pool_closes_every_environment_even_when_one_fails_to(monkeypatch):
    pool = EnvPool(CFG.env_id, CFG.episode_length, CFG.env_kwargs, 3)
    closed = []
    for i, env in enumerate(pool._envs):
        def close(i=i):
            closed.append(i)
            if i == 0:
                raise OSError("GL context already gone")
        monkeypatch.setattr(env, "close", close)
    with pytest.raises(OSError, match="GL context already gone"):
        pool.close()
    assert closed == [0, 1, 2]



def test_a_pool_whose_kth_worker_cannot_start_stops_the_ones_started_and_names_it(monkeypatch):
    """Starting the third worker failed (the system refusing a process): the two started were left
    running until the pool object was collected or the interpreter exited, and the error did not
    say which worker (or which environment) it was."""
    real_start, started = ProcessEnvPool._start, []

    def start(self, i):
        if i == 2:
            raise OSError(24, "Too many open files")
        real_start(self, i)
        started.append(self._procs[i])

    monkeypatch.setattr(ProcessEnvPool, "_start", start)
    with pytest.raises(EnvironmentUnavailable, match=r"could not start environment worker 2 of 4 "
                                                     r"\(glamor/GridWorld-v0\): OSError: \[Errno 24\] Too many open files") as e:
        ProcessEnvPool(CFG.env_id, CFG.episode_length, CFG.env_kwargs, 4)
    assert isinstance(e.value.__cause__, OSError)
    assert len(started) == 2 and not any(p.is_alive() for p in started)  # stopped before the error came out


def test_a_worker_that_cannot_be_restarted_is_named_after_its_restarts(monkeypatch):
    """A replacement the system would not start (too many open files) raised its bare OSError out
    of the round, naming no worker; it is a failed restart like a crash, tried again, then named."""
    pool = ProcessEnvPool(CFG.env_id, CFG.episode_length, CFG.env_kwargs, 1)
    try:
        pool.reset([1], [None])
        os.kill(pool.pids[0], signal.SIGKILL)
        pool._procs[0].join()

        def start(self, i):
            raise OSError(24, "Too many open files")

        monkeypatch.setattr(ProcessEnvPool, "_start", start)
        with pytest.warns(RuntimeWarning, match="worker 0"):
            with pytest.raises(EnvironmentUnavailable, match=r"environment worker 0 failed 3 restarts in a row: "
                                                             r"\[Errno 24\] Too many open files"):
                pool.rollout(np.zeros((1, CFG.episode_length), np.int64))
    finally:
        pool.close()


def test_a_round_cut_short_breaks_the_pool_rather_than_leave_its_replies_for_the_next_call(monkeypatch):
    """Worker 0 failed its restarts in a rollout while worker 1's reply waited unread in its pipe;
    a caller that caught the error and used the pool again read that stale rollout as worker 1's
    answer to its next command (a reset returned an episode, silently)."""
    pool = ProcessEnvPool(CFG.env_id, CFG.episode_length, CFG.env_kwargs, 2)
    try:
        pool.reset([1, 2], [None, None])
        os.kill(pool.pids[0], signal.SIGKILL)
        pool._procs[0].join()
        real_start = ProcessEnvPool._start

        def start(self, i):
            raise OSError(24, "Too many open files")

        monkeypatch.setattr(ProcessEnvPool, "_start", start)
        with pytest.warns(RuntimeWarning, match="worker 0"):
            with pytest.raises(EnvironmentUnavailable, match="worker 0 failed 3 restarts"):
                pool.rollout(np.zeros((2, CFG.episode_length), np.int64))
        monkeypatch.setattr(ProcessEnvPool, "_start", real_start)  # worker 0 could start again now
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            with pytest.raises(EnvironmentUnavailable, match=r"unusable: an earlier 'rollout' call failed "
                                                             r"\(EnvironmentUnavailable: environment worker 0"):
                pool.reset([3, 4], [None, None])
    finally:
        pool.close()
    assert not any(p.is_alive() for p in pool._procs if p is not None)


def test_a_restarted_worker_replays_a_random_state_set_after_its_reset():
    """A worker that died after reset(seed) and set_rng_states(...) replayed the random state first
    and the seeded reset after it, which drew over it: the rollout's sticky actions (Atari's come
    from np_random) were those of the seed, not of the state set, so the replayed episode differed
    from the one an in-process pool runs."""
    pytest.importorskip("ale_py")
    args = ("glamor/Pong-v0", 8, {}, 1)
    donor = EnvPool(*args)  # a random state other than the one the seeded reset leaves
    donor.reset([99], [None])
    state = donor.rng_states()
    actions = np.random.default_rng(3).integers(18, size=(1, 8))
    seeded, sync, pool = EnvPool(*args), EnvPool(*args), ProcessEnvPool(*args)
    try:
        for p in (sync, pool):
            p.reset([5], [None])
            p.set_rng_states(state)
        (want,) = sync.rollout(actions)
        os.kill(pool.pids[0], signal.SIGKILL)
        pool._procs[0].join()
        with pytest.warns(RuntimeWarning, match="worker 0 .* died; restarted"):
            (got,) = pool.rollout(actions)
        np.testing.assert_array_equal(got[0], want[0])
        np.testing.assert_array_equal(got[1], want[1])
        seeded.reset([5], [None])  # (the state set does change the episode: the test can tell)
        assert not np.array_equal(seeded.rollout(actions)[0][0], want[0])
    finally:
        close_envs([donor, seeded, sync, pool])


def test_a_restarted_worker_replays_an_unseeded_reset_from_the_state_it_started_from():
    """An unseeded reset (seed None) was replayed as reset(seed=None) in the fresh worker, which
    draws a new random start: the rollout after a restart ran from another state than the
    observation the reset had returned (the plan made for one start, the episode from another),
    silently. The worker now reports the random state an unseeded reset started from."""
    from glamor.envs import make

    actions = np.random.default_rng(4).integers(4, size=(1, CFG.episode_length))
    pool = ProcessEnvPool(CFG.env_id, CFG.episode_length, CFG.env_kwargs, 1)
    env = make(CFG.env_id, CFG.episode_length, **CFG.env_kwargs)
    try:
        for _ in range(3):  # (a fresh random start can land on the same cell by chance: three of them cannot)
            (obs,) = pool.reset([None], [None])
            os.kill(pool.pids[0], signal.SIGKILL)
            pool._procs[0].join()
            with pytest.warns(RuntimeWarning, match="worker 0 .* died; restarted") as seen:
                ((frames, taken),) = pool.rollout(actions)
            assert not any("unseeded" in str(w.message) for w in seen)
            np.testing.assert_array_equal(frames[0], obs["observation"][-1])
            env.np_random.bit_generator.state = pool._last_reset[0][2]  # the episode, run here from that state
            np.testing.assert_array_equal(env.reset()[0]["observation"], obs["observation"])
            want = [env.step(int(a))[0]["observation"][-1] for a in taken]
            np.testing.assert_array_equal(frames[1:], np.stack(want))
    finally:
        pool.close(), env.close()


def test_a_worker_that_dies_in_an_unseeded_reset_says_that_its_start_is_a_fresh_draw():
    pool = ProcessEnvPool(CFG.env_id, CFG.episode_length, CFG.env_kwargs, 1)
    try:
        pool.reset([1], [None])
        for seed, unseeded in ((None, True), (2, False)):
            os.kill(pool.pids[0], signal.SIGKILL)
            pool._procs[0].join()
            with pytest.warns(RuntimeWarning, match="worker 0") as seen:
                pool.reset([seed], [None])
            assert any("died in an unseeded reset (seed None)" in str(w.message) for w in seen) == unseeded
    finally:
        pool.close()


def test_a_number_of_workers_the_machine_cannot_run_is_refused_before_any_starts(monkeypatch):
    """vector='async' with num_envs=10000 started worker processes until the system refused one
    (too many open files, after minutes of thousands of interpreters importing side by side) or
    the out-of-memory killer came."""
    started = []
    monkeypatch.setattr(ProcessEnvPool, "_start", lambda self, i: started.append(i))
    with pytest.raises(ValueError, match=r"vector='async' with num_envs=1,000,000 \(glamor/GridWorld-v0\) starts one "
                                         r"worker process per environment, but"):
        make_pool(CFG.replace(vector="async"), 10**6)  # past any file, process, CPU or memory limit
    assert started == []


@pytest.fixture
def machine(monkeypatch):
    """A machine of 4 CPUs, 1 GiB available, 1024 files per process, no process limit."""
    import resource

    import glamor.vector as vector

    limits = {resource.RLIMIT_NOFILE: (1024, 4096), resource.RLIMIT_NPROC: (resource.RLIM_INFINITY,) * 2}
    monkeypatch.setattr(vector, "_cpus", lambda: 4)
    monkeypatch.setattr(vector, "_machine_cpus", lambda: 4)
    monkeypatch.setattr(vector, "_open_fds", lambda: 20)
    monkeypatch.setattr(vector.sysinfo, "available_memory", lambda: 2**30)
    monkeypatch.setattr(vector.resource, "getrlimit", lambda which: limits[which])
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    return limits


def test_worker_counts_are_checked_against_each_limit(machine, monkeypatch):
    import resource

    from glamor.vector import check_worker_count

    for n in (1, 16, 51):  # the presets' sizes and more pass
        check_worker_count(n)
    with pytest.raises(ValueError, match=r"num_envs=52 starts .* 1.0 GiB available: at most 51 workers"):
        check_worker_count(52)
    machine[resource.RLIMIT_NOFILE] = (200, 4096)  # (200 - 20 open - 64 kept) // 3 = 38
    check_worker_count(38)
    with pytest.raises(ValueError, match=r"num_envs=39 .* may open 200 files \(RLIMIT_NOFILE\) .* at most 38 "
                                         r"workers; .*`ulimit -n`"):
        check_worker_count(39)
    machine[resource.RLIMIT_NPROC] = (30, 30)
    with pytest.raises(ValueError, match=r"num_envs=30 .* may run 30 processes \(RLIMIT_NPROC\)"):
        check_worker_count(30)
    machine[resource.RLIMIT_NOFILE] = machine[resource.RLIMIT_NPROC] = (resource.RLIM_INFINITY,) * 2
    monkeypatch.setattr("glamor.vector.sysinfo.available_memory", lambda: None)
    check_worker_count(256)
    with pytest.raises(ValueError, match=r"num_envs=257 .* may run on 4 CPU\(s\): at most 64 workers per CPU \(256\)"):
        check_worker_count(257)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")  # torchrun: every process of the machine starts as many
    check_worker_count(128)
    with pytest.raises(ValueError, match=r"num_envs=129 .*x 2 processes on this machine: 258 workers.* this machine "
                                         r"has 4 CPU"):
        check_worker_count(129)
    # 8 ranks, each pinned to its own core of 8: 16 workers per core is fine (the machine's CPUs
    # count for all of them, a rank's own for its workers); 65 on one core is not
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "8")
    monkeypatch.setattr("glamor.vector._cpus", lambda: 1)
    monkeypatch.setattr("glamor.vector._machine_cpus", lambda: 8)
    check_worker_count(16)
    check_worker_count(64)
    with pytest.raises(ValueError, match=r"num_envs=65 .* this process may run on 1 CPU\(s\)"):
        check_worker_count(65)


@pytest.mark.parametrize("pool_class", [EnvPool, ProcessEnvPool])
def test_per_environment_arguments_of_another_length_are_named(pool_class):
    """One seed, goal, action row or random state per environment: a shorter list reset or set
    some environments and left the others (set_rng_states silently), and the asserts that
    checked reset and rollout vanish under python -O."""
    pool = pool_class(CFG.env_id, CFG.episode_length, CFG.env_kwargs, 2)
    try:
        with pytest.raises(ValueError, match=r"seeds: one per environment, 2, got 1"):
            pool.reset([0], [None, None])
        with pytest.raises(ValueError, match=r"goals: one per environment, 2, got 3"):
            pool.reset([0, 1], [None] * 3)
        pool.reset([0, 1], [None, None])
        states = pool.rng_states()
        with pytest.raises(ValueError, match=r"states: one per environment, 2, got 1"):
            pool.set_rng_states(states[:1])
        with pytest.raises(ValueError, match=r"actions: one per environment, 2, got 3"):
            pool.rollout(np.zeros((3, CFG.episode_length), dtype=np.int64))
        pool.set_rng_states(states)
        assert len(pool.rollout(np.zeros((2, CFG.episode_length), dtype=np.int64))) == 2
    finally:
        pool.close()


def test_a_cgroup_whose_usage_is_page_cache_does_not_refuse_workers(tmp_path, monkeypatch):
    """The memory check read a cgroup's memory.current as memory taken, but it counts the page
    cache (a run's checkpoints, written or read, fill it up to memory.max, and the kernel takes it
    back when the cgroup needs room): in such a container a resume with vector='async' and a
    preset's 16 workers was refused for "0.0 GiB available". Memory that is taken still refuses."""
    import resource

    import glamor.vector as vector
    from glamor import sysinfo
    from glamor.vector import check_worker_count

    (tmp_path / "meminfo").write_text(f"MemTotal: {64 * 2**20} kB\nMemAvailable: {20 * 2**20} kB\n")
    cgroup = tmp_path / "cgroup"
    cgroup.mkdir()
    monkeypatch.setattr(sysinfo, "MEMINFO", tmp_path / "meminfo")
    monkeypatch.setattr(sysinfo, "CGROUP", cgroup)
    monkeypatch.setattr(vector, "_cpus", lambda: 4)
    monkeypatch.setattr(vector, "_machine_cpus", lambda: 4)
    monkeypatch.setattr(vector, "_open_fds", lambda: 20)
    monkeypatch.setattr(vector.resource, "getrlimit", lambda which: (resource.RLIM_INFINITY,) * 2)
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)

    def cgroup_of(anon: int, cache: int) -> None:  # 4 GiB, all but 5 MiB of it in use
        (cgroup / "memory.max").write_text(f"{4 * 2**30}\n")
        (cgroup / "memory.current").write_text(f"{4 * 2**30 - 5 * 2**20}\n")
        (cgroup / "memory.stat").write_text(f"anon {anon}\nfile {cache + 2**20}\nshmem {2**20}\n"
                                            f"active_file {cache // 4}\ninactive_file {cache - cache // 4}\n")

    cgroup_of(anon=2**30, cache=3 * 2**30 - 5 * 2**20)  # three quarters page cache
    assert sysinfo.available_memory() == 3 * 2**30
    check_worker_count(16)
    cgroup_of(anon=4 * 2**30 - 5 * 2**20, cache=0)  # all of it taken
    assert sysinfo.available_memory() == 5 * 2**20
    with pytest.raises(ValueError, match=r"num_envs=16 .* 0.0 GiB available: at most 0 workers"):
        check_worker_count(16)


SLOW_ENV = BOOM_ENV.replace("Boom-v0", "Slow-v0").replace(
    "    def _reset_state(self):",
    """    def step(self, action):  # (a reset's random goal steps the state alone)
        import time
        time.sleep(120)  # a slow (or hung) environment: the worker is mid-rollout
        return super().step(action)

    def _reset_state(self):""")


ORPHANING_PARENT = '''
import sys
import threading

import numpy as np

from glamor.config import preset
from glamor.vector import make_pool

if __name__ == "__main__":
    cfg = preset("debug", progress=False, env_id="slow_env:Slow-v0", vector="async", env_kwargs={}, episode_length=6)
    pools = []
    if sys.argv[1] == "thread":  # a pool started from a thread that has ended since
        starter = threading.Thread(target=lambda: pools.append(make_pool(cfg, 2)))
        starter.start()
        starter.join()
    else:
        pools.append(make_pool(cfg, 2))
    pools[0].reset([1, 2], [None, None])
    print(*pools[0].pids, flush=True)
    pools[0].rollout(np.zeros((2, 6), np.int64))
'''


def _running(pid: int) -> bool:
    """Whether process `pid` runs (a zombie nobody reaped yet has exited)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in "ZXx"
    except FileNotFoundError:
        return False
    except OSError:  # no /proc
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True


@pytest.mark.skipif(os.name != "posix", reason="SIGKILL")
@pytest.mark.parametrize("started_in", ["main", "thread"])
def test_workers_exit_when_their_parent_is_killed_mid_rollout(tmp_path, started_in):
    """Workers ignore SIGINT and SIGTERM (the parent owns their lifetime), and one whose parent
    was SIGKILLed (the out-of-memory killer, a scheduler) while its environment stepped went on
    alone until its episode ended (here 6 steps of 2 minutes; a hung environment: for ever)."""
    import select
    import subprocess
    import sys
    import time

    from test_resume import subprocess_env

    (tmp_path / "slow_env.py").write_text(SLOW_ENV)
    (tmp_path / "parent.py").write_text(ORPHANING_PARENT)
    env = {**subprocess_env(), "PYTHONPATH": os.pathsep.join([str(tmp_path), *sys.path])}
    parent = subprocess.Popen([sys.executable, "parent.py", started_in], cwd=tmp_path, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    pids = []
    try:
        ready, _, _ = select.select([parent.stdout], [], [], 120)
        line = parent.stdout.readline() if ready else ""  # (the workers are built and reset)
        assert line, "the parent did not start its workers" if ready else parent.communicate(timeout=60)[1][-3000:]
        pids = [int(p) for p in line.split()]
        time.sleep(0.5)  # in their first step's sleep
        assert all(_running(p) for p in pids)
        parent.kill()
        parent.wait(timeout=30)
        deadline = time.monotonic() + 5.0
        while any(_running(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not any(_running(p) for p in pids), f"workers {pids} outlived their killed parent"
    finally:
        parent.kill()
        parent.wait(timeout=30)
        parent.stdout.close(), parent.stderr.close()
        for p in pids:  # (left running by a failure)
            with contextlib.suppress(ProcessLookupError):
                os.kill(p, signal.SIGKILL)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_to_a_worker_that_is_still_starting_does_not_kill_it(signum):
    """A worker ignored SIGINT and SIGTERM only from `_worker` on, after spawn had started its
    interpreter and imported numpy and glamor: a Ctrl-C (sent to the whole process group) or a
    scheduler's SIGTERM while a worker was (re)starting killed it with a KeyboardInterrupt
    traceback, and cost a restart. Here the signal comes right after the start, mid-import."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # (a restart warns)
        pool = ProcessEnvPool(CFG.env_id, CFG.episode_length, CFG.env_kwargs, 1)
        try:
            os.kill(pool.pids[0], signum)
            pool.reset([1], [None])
            assert pool.restarts == 0 and pool._procs[0].is_alive()
        finally:
            pool.close()
