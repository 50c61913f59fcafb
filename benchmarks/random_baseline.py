"""The random policy's success on each environment's held-out goals: how hard each goal suite is.

For every registered environment (or those named by `--only`) this builds the evaluation goal set
of the environment's suite preset (`atari`, `control` or `gridworld`: the spec's k, label-range
rollouts and success judge; cached like any goal set) and runs the random policy once per goal,
seeded by the preset's `eval_seed`, on one environment (the draws are keyed by goal and step, so
`glamor eval` of a run with the preset's settings gets the same random rate, whatever its
`eval_batch`; rows measured before 2026-11-27 drew from a stream and differ from it by sampling
noise). It reports the success rate
with its Wilson interval and the median label distance (max over labels of |label - goal| / range;
success is a distance of at most 0.1).

A GLAMOR run beats random on a suite when its interval lies above the random one; the table
helps choose environments where that is a real test (a low random rate).

Writes benchmarks/results/random_baseline.md and .json. With `--only`, the named environments'
rows replace theirs in an existing .json and the others are kept (each row keeps the machine
line it was measured under in its "machine" field).

Example:
    python benchmarks/random_baseline.py --only Seaquest point_mass
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
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
        "(rows rerun with `--only` replace their own; each row's machine is in the .json). "
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", default=None, help="ids containing any of these")
    parser.add_argument("--episodes", type=int, default=200, help="held-out goals per environment")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for the results")
    args = parser.parse_args(argv)
    if args.episodes < 1:
        parser.error(f"--episodes must be >= 1, got {args.episodes}")
    ids = glamor.envs.registered()
    if args.only:
        ids = [i for i in ids if any(w.lower() in i.lower() for w in args.only)]
        if not ids:
            parser.error(f"no registered environment matches {args.only}")
    rows = []
    for env_id in ids:
        rows.append(random_success(env_id, args.episodes))
        r = rows[-1]
        print(f"{env_id:40s} random {r['success_rate']:.3f} [{r['ci95'][0]:.3f}, {r['ci95'][1]:.3f}]"
              f"  ({r['seconds']:.0f} s)", flush=True)
    info = machine()
    for r in rows:
        r["machine"] = info
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "random_baseline.json"
    if args.only and path.exists():  # keep the rows of environments not rerun, with their machine
        old = json.loads(path.read_text())
        kept = [{**r, "machine": r.get("machine", old["machine"])} for r in old["rows"] if r["env"] not in ids]
        rows = sorted(kept + rows, key=lambda r: r["env"])
    path.write_text(json.dumps({"machine": info, "rows": rows}, indent=2) + "\n")
    (args.out / "random_baseline.md").write_text(to_markdown(rows, info))
    print(f"wrote {args.out / 'random_baseline.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
