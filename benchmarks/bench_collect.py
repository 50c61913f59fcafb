"""Collection speed: environment steps per second with 1, 2 and 4 environments, in process
("sync") and in worker processes ("async", glamor/vector.py), on gridworld and one Atari game.

One round is what the trainer does per round minus the planning: every environment resets with
a seed and a goal (goals made beforehand, so no goal rollout is timed), then runs k uniformly
random actions. Steps/s = steps of all environments / wall time of the rounds, after one warm-up
round; the median of `--repeats` runs is reported.

Writes benchmarks/results/collect.md (and collect.json), or to the folder `--out` names, with
the machine it ran on.

Example:
    python benchmarks/bench_collect.py                  # gridworld and Pong, ~1 min
    python benchmarks/bench_collect.py --steps 400 --out /tmp/collect   # smaller, kept apart
    glamor bench collect --quick                        # a smoke run; writes nothing
    glamor bench collect --quick --out /tmp/collect     # a smoke run written to /tmp/collect
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from importlib import metadata
from pathlib import Path

import numpy as np
import torch
from bench_args import output_folder, positive_int, write_results

from glamor.config import preset
from glamor.sysinfo import cpu_name
from glamor.vector import make_pool

RESULTS = Path(__file__).resolve().parent / "results"
CASES = (("gridworld", "glamor/GridWorld-v0"), ("atari", "glamor/Pong-v0"))


def load_average() -> float:
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")


def machine(load_at_start: float) -> str:
    cpu = cpu_name()
    versions = ", ".join(f"{p} {metadata.version(p)}" for p in ("torch", "gymnasium", "ale-py"))
    return (f"CPU: {cpu}, {len(os.sched_getaffinity(0))} cores available (shared); Python {platform.python_version()}; "
            f"{versions}. Load average (1 min) at the start {load_at_start:.1f}, at the end {load_average():.1f}.")


def time_collection(cfg, n: int, vector: str, steps: int, repeats: int) -> float:
    """Median env steps/s of collection rounds with n environments."""
    pool = make_pool(cfg.replace(vector=vector), n)
    try:
        from glamor import envs

        env = envs.make(cfg.env_id, cfg.episode_length, **cfg.env_kwargs)
        goals = []
        for i in range(n):
            env.reset(seed=i)
            goals.append(env.goal)
        env.close()
        rng = np.random.default_rng(0)
        k, a = cfg.episode_length, env.action_space.n

        def one_round() -> int:
            pool.reset([int(s) for s in rng.integers(2**31, size=n)], goals)
            return sum(len(acts) for _, acts in pool.rollout(rng.integers(a, size=(n, k))))

        one_round()  # warm-up (worker start-up is not timed)
        rates = []
        for _ in range(repeats):
            done, t0 = 0, time.perf_counter()
            while done < steps:
                done += one_round()
            rates.append(done / (time.perf_counter() - t0))
        return statistics.median(rates)
    finally:
        pool.close()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=positive_int, default=2000, help="env steps per timed run (Atari: a fifth)")
    p.add_argument("--repeats", type=positive_int, default=3)
    p.add_argument("--envs", type=positive_int, nargs="+", default=[1, 2, 4], metavar="N",
                   help="environment counts to time (default 1 2 4)")
    p.add_argument("--out", type=output_folder, default=None,
                   help=f"folder for collect.md and collect.json (default {RESULTS.relative_to(RESULTS.parents[1])}; "
                        "with --quick, only a folder given here)")
    p.add_argument("--quick", action="store_true", help="tiny smoke run on gridworld; written only to an --out given")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    load_at_start = load_average()
    cases = CASES[:1] if args.quick else CASES
    steps, repeats = (100, 1) if args.quick else (args.steps, args.repeats)
    rows = []
    for name, env_id in cases:
        cfg = preset(name if name != "atari" else "atari", env_id=env_id, progress=False)
        for vector in ("sync", "async"):
            for n in args.envs:
                s = steps if name == "gridworld" else max(steps // 5, cfg.episode_length * n)
                rate = time_collection(cfg, n, vector, s, repeats)
                rows.append({"env": env_id, "k": cfg.episode_length, "vector": vector, "num_envs": n,
                             "steps_per_run": s, "steps_per_s": rate})
                print(f"{env_id:24s} {vector:5s} x{n}: {rate:9.0f} steps/s", flush=True)
    out = args.out or (None if args.quick else RESULTS)
    if out is None:
        return 0
    where = machine(load_at_start)
    lines = ["# Collection speed", "", where, "",
             "Rounds of the trainer's collection without planning: each environment resets with a seed and "
             "a prepared goal, then runs k random actions. Steps/s over all environments, median of "
             f"{repeats} runs of about {steps} steps (Atari: a fifth, {steps // 5}, but at least one round, "
             "k steps of each environment; each row's steps_per_run is in the .json), after a warm-up round. "
             "`sync`: environments stepped one after another in the training process; `async`: one "
             "worker process per environment (Pipes, spawn).", "",
             f"| environment | k | vector | envs | steps/s | vs sync x{args.envs[0]} |", "|---|---:|---|---:|---:|---:|"]
    for r in rows:
        base = next(b["steps_per_s"] for b in rows if b["env"] == r["env"] and b["vector"] == "sync"
                    and b["num_envs"] == args.envs[0])
        lines.append(f"| {r['env']} | {r['k']} | {r['vector']} | {r['num_envs']} | {r['steps_per_s']:.0f} "
                     f"| {r['steps_per_s'] / base:.2f} |")
    print("\n".join(lines))
    write_results(out / "collect.json", {"machine": where, "rows": rows}, "\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
