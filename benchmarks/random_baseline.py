"""The random policy's success on each environment's held-out goals: how hard each goal suite is.

For every registered environment (or those named by `--only`) this builds the evaluation goal set
of the environment's suite preset (`atari`, `control` or `gridworld`: the spec's k, label-range
rollouts and success judge; cached like any goal set) and runs the random policy once per goal,
seeded by the preset's `eval_seed`, on one environment (the draws are keyed by goal and step, so
`glamor eval` of a run with the preset's settings gets the same random rate, whatever its
`eval_batch`). It reports the success rate
with its Wilson interval and the median label distance (max over labels of |label - goal| / range;
success is a distance of at most the environment's success_tolerance: the spec's 0.1, half a cell
on gridworlds above size 11).

A GLAMOR run beats random on a suite when its interval lies above the random one; the table
helps choose environments where that is a real test (a low random rate).

Writes benchmarks/results/random_baseline.md and .json after every environment, so an
interrupted run keeps what it measured: each measured row replaces its environment's row in an
existing .json and the others are kept (each row keeps the machine line it was measured under in
its "machine" field). Without `--only`, rows of environments no longer registered are dropped.
Runs at once (say one per environment) each keep the others' rows: the .json is read and written
back by one at a time (`bench_args.updating`).

Example:
    python benchmarks/random_baseline.py --only Seaquest point_mass
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from bench_args import output_folder, positive_int, updating, write_results
from bench_envs import RESULTS, machine, suite

import glamor.envs
from glamor.config import preset
from glamor.evaluate import run_episodes, wilson_interval
from glamor.goals import make_goal_set


def random_success(env_id: str, episodes: int) -> dict:
    cfg = preset(suite(env_id), env_id=env_id, eval_episodes=episodes, env_kwargs={})
    env = glamor.envs.make(env_id, cfg.episode_length)
    t0 = time.perf_counter()
    goals = make_goal_set(env, cfg, "eval", progress=False)
    res = run_episodes([env], goals, None, seed=cfg.eval_seed)
    env.close()
    wins = int(res.success.sum())
    return {
        "env": env_id,
        "k": cfg.episode_length,
        "labels": list(env.label_names),
        "label_ranges": [float(r) for r in goals.label_ranges],
        "episodes": len(goals),
        "success_rate": wins / len(goals),
        "ci95": list(wilson_interval(wins, len(goals))),
        "median_label_distance": float(np.median(res.label_distance)),
        "seconds": time.perf_counter() - t0,
    }


def to_markdown(rows: list[dict], info: dict) -> str:
    lines = [
        "# Random policy on held-out goals",
        "",
        f"CPU: {info['cpu']}; load average at the end of the latest run: {info['load_average_1min']:.1f} "
        "(each row is replaced when its environment is measured again; its machine is in the .json). "
        "Each suite's preset (k, label ranges from random rollouts, 10%-of-range judge); "
        "one random episode per goal, seeded by `eval_seed`.",
        "",
        "| environment | k | labels | success | 95% CI | median label distance | goals |",
        "|---|---:|---|---:|---|---:|---:|",
    ]
    for r in rows:
        lo, hi = r["ci95"]
        lines.append(
            f"| {r['env']} | {r['k']} | {', '.join(r['labels'])} | {r['success_rate']:.3f} | "
            f"[{lo:.3f}, {hi:.3f}] | {r['median_label_distance']:.2f} | {r['episodes']} |"
        )
    return "\n".join(lines) + "\n"


def save(row: dict, out: Path, keep: list[str] | None) -> None:
    """Write `row` (with this machine) into out's .json and .md, replacing its environment's row.

    keep: the environments whose earlier rows may stay (None: all of them).
    """
    info = machine()
    path = out / "random_baseline.json"
    with updating(path):  # another run's rows, written while this one read, would be lost
        rows = json.loads(path.read_text())["rows"] if path.exists() else []
        rows = [r for r in rows if r["env"] != row["env"] and (keep is None or r["env"] in keep)]
        rows = sorted([*rows, {**row, "machine": info}], key=lambda r: r["env"])
        write_results(path, {"machine": info, "rows": rows}, to_markdown(rows, info), say=False)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", default=None, help="ids containing any of these")
    parser.add_argument("--episodes", type=positive_int, default=200, help="held-out goals per environment")
    parser.add_argument("--out", type=output_folder, default=RESULTS, help="folder for the results")
    args = parser.parse_args(argv)
    ids = glamor.envs.registered()
    if args.only:
        ids = [i for i in ids if any(w.lower() in i.lower() for w in args.only)]
        if not ids:
            parser.error(f"no registered environment matches {args.only}")
    args.out.mkdir(parents=True, exist_ok=True)
    for env_id in ids:
        r = random_success(env_id, args.episodes)
        print(f"{env_id:40s} random {r['success_rate']:.3f} [{r['ci95'][0]:.3f}, {r['ci95'][1]:.3f}]"
              f"  ({r['seconds']:.0f} s)", flush=True)
        save(r, args.out, keep=None if args.only else glamor.envs.registered())
    print(f"wrote {args.out / 'random_baseline.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
