"""Environment speed: steps per second with image observations, for every registered environment.

Each environment is built, reset, warmed up, then stepped with uniformly random actions for about
`--seconds` (resets on episode ends are left out of the step time and timed on their own: a reset
includes the k-step random rollout that makes its goal). The median of `--repeats` runs is
reported. With `--goal-sets ENV_ID ...` it also times `glamor.goals.make_goal_set` at a preset's
sizes (label ranges, training and evaluation goals) in a fresh cache (an id, its name alone, as
`Pong` for glamor/Pong-v0, or, as with --only, a word of the ids: every id containing it); with
`--quick`, at the small sizes of `QUICK_GOAL_SETS` (a smoke run of the same phases).

Writes benchmarks/results/envs.md and envs.json and prints the table with the machine it ran on.

Example:
    python benchmarks/bench_envs.py                       # every environment, ~2 s each
    python benchmarks/bench_envs.py --only Pong reacher   # ids containing these words
    python benchmarks/bench_envs.py --goal-sets glamor/Pong-v0 glamor/reacher-hard-v0
    glamor bench envs --quick                             # a smoke run; writes nothing
    glamor bench envs --quick --out /tmp/envs             # a smoke run written to /tmp/envs
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import statistics
import tempfile
import time
from importlib import metadata
from pathlib import Path

import gymnasium as gym
import numpy as np
from bench_args import output_folder, positive_float, positive_int, write_results

import glamor.envs
from glamor.sysinfo import cpu_name

RESULTS = Path(__file__).resolve().parent / "results"
# Goal-set sizes of a --quick run: every phase runs, in seconds (the presets' take minutes: Pong's
# 2,000 candidates and 500 label-range rollouts of 50 steps).
QUICK_GOAL_SETS = dict(label_range_rollouts=8, num_train_goals=4, goal_candidates=8, eval_episodes=4,
                       eval_episodes_during_training=4)


def machine() -> dict:
    versions = {}
    for pkg in ("gymnasium", "ale-py", "mujoco", "dm_control", "numpy", "pillow"):
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = None
    return {
        "cpu": cpu_name(),
        "cores_available": len(os.sched_getaffinity(0)),
        "python": platform.python_version(),
        "packages": versions,
        "MUJOCO_GL": os.environ.get("MUJOCO_GL"),
        "load_average_1min": os.getloadavg()[0],
    }


def default_length(env_id: str) -> int:
    return {"atari": 50, "control": 100}.get(suite(env_id), 12)


def suite(env_id: str) -> str:
    """'atari', 'control' or 'gridworld': the suite, and the name of its config preset."""
    entry_point = str(gym.registry[env_id].entry_point)
    if entry_point.endswith("AtariGoalEnv"):
        return "atari"
    if entry_point.endswith("ControlGoalEnv"):
        return "control"
    return "gridworld"


def time_steps(env, seconds: float, rng: np.random.Generator) -> tuple[float, list[float]]:
    """(steps per second excluding resets, reset durations) over about `seconds` of stepping."""
    steps, step_time, resets = 0, 0.0, []
    while step_time < seconds:
        t0 = time.perf_counter()
        for _ in range(25):
            _, _, terminated, truncated, _ = env.step(int(rng.integers(env.action_space.n)))
            steps += 1
            if terminated or truncated:
                step_time += time.perf_counter() - t0
                t1 = time.perf_counter()
                env.reset()
                resets.append(time.perf_counter() - t1)
                t0 = time.perf_counter()
        step_time += time.perf_counter() - t0
    return steps / step_time, resets


def bench_env(env_id: str, seconds: float, repeats: int) -> dict:
    t0 = time.perf_counter()
    env = glamor.envs.make(env_id, episode_length=default_length(env_id))
    make_s = time.perf_counter() - t0
    rng = np.random.default_rng(0)
    env.reset(seed=0)
    time_steps(env, min(0.2, seconds), rng)  # warm-up
    rates, resets = [], []
    for _ in range(repeats):
        t1 = time.perf_counter()
        env.reset()
        resets.append(time.perf_counter() - t1)
        rate, more = time_steps(env, seconds, rng)
        rates.append(rate)
        resets += more
    env.close()
    return {
        "env": env_id,
        "actions": int(env.action_space.n),
        "episode_length": env.episode_length,
        "steps_per_s": statistics.median(rates),
        "steps_per_s_runs": rates,
        "reset_ms": 1e3 * statistics.median(resets),
        "make_s": make_s,
    }


def bench_goal_sets(env_id: str, preset_name: str, quick: bool = False) -> dict:
    """Seconds of each goal-set phase at the preset's sizes (quick: `QUICK_GOAL_SETS`'), in a fresh cache."""
    from glamor.config import preset
    from glamor.goals import label_ranges_for, make_goal_set

    sizes = QUICK_GOAL_SETS if quick else {}
    cfg = preset(preset_name, env_id=env_id, episode_length=default_length(env_id), **sizes)
    out = {
        "env": env_id,
        "sizes": "quick" if quick else "preset",
        "episode_length": cfg.episode_length,
        "label_range_rollouts": cfg.label_range_rollouts,
        "goal_candidates": cfg.goal_candidates,
        "train_goals": cfg.num_train_goals,
        "eval_goals": cfg.eval_episodes,
    }
    old = os.environ.get("GLAMOR_CACHE")
    with tempfile.TemporaryDirectory() as cache:
        os.environ["GLAMOR_CACHE"] = cache
        try:
            env = glamor.envs.make(env_id, episode_length=cfg.episode_length)
            t = time.perf_counter()
            ranges = label_ranges_for(env, cfg, progress=False)
            out["ranges_s"] = time.perf_counter() - t
            t = time.perf_counter()
            train = make_goal_set(env, cfg, "train", progress=False)
            out["train_s"] = time.perf_counter() - t
            t = time.perf_counter()
            evals = make_goal_set(env, cfg, "eval", progress=False)
            out["eval_s"] = time.perf_counter() - t
            t = time.perf_counter()
            make_goal_set(env, cfg, "train", progress=False)
            out["cached_load_s"] = time.perf_counter() - t
            out["label_names"] = list(env.label_names)
            out["label_ranges"] = [float(r) for r in ranges]
            out["held_out"] = not set(train.seeds.tolist()) & set(evals.seeds.tolist())
            env.close()
        finally:
            if old is None:
                os.environ.pop("GLAMOR_CACHE", None)
            else:
                os.environ["GLAMOR_CACHE"] = old
    return out


def goal_set_ids(words: list[str], ids: list[str]) -> tuple[list[str], list[str]]:
    """(the registered ids that `words` name, the words that name none): a word is an id or its
    name (glamor/Pong-v0: Pong), in any case; else, as with --only, every id containing it."""
    def name(env_id: str) -> str:
        return re.sub(r"-v\d+$", "", env_id.removeprefix("glamor/")).lower()

    chosen, unknown = [], []
    for word in words:
        w = word.lower()
        matches = ([i for i in ids if w in (i.lower(), name(i))]
                   or [i for i in ids if w in i.lower()])
        chosen += matches
        if not matches:
            unknown.append(word)
    return list(dict.fromkeys(chosen)), unknown


def markdown(info: dict, rows: list[dict], goal_rows: list[dict]) -> str:
    pk = info["packages"]
    lines = [
        "# Environment speed",
        "",
        f"CPU: {info['cpu']}, {info['cores_available']} cores available (shared); "
        f"Python {info['python']}; gymnasium {pk['gymnasium']}, ale-py {pk['ale-py']}, "
        f"mujoco {pk['mujoco']}, dm_control {pk['dm_control']}; MUJOCO_GL={info['MUJOCO_GL']} "
        "(software rendering unless a GPU driver provides EGL). Load average (1 min) at the start "
        f"{info.get('load_average_1min_at_start', float('nan')):.1f}, at the end {info['load_average_1min']:.1f}.",
        "",
        "One process, one environment at a time, random actions. Steps/s: `env.step` with image "
        "observations (frame stack, goal, labels, success), median of runs, resets excluded. "
        "Reset: median, including the k-step random rollout that makes the goal.",
        "",
        "| environment | actions | k | steps/s | ms/step | reset ms | make s |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['env']} | {r['actions']} | {r['episode_length']} | {r['steps_per_s']:.0f} | "
            f"{1e3 / r['steps_per_s']:.2f} | {r['reset_ms']:.1f} | {r['make_s']:.2f} |"
        )
    if goal_rows:
        lines += [
            "",
            f"## Goal sets (`glamor.goals.make_goal_set`, {goal_rows[0].get('sizes', 'preset')} sizes, fresh cache)",
            "",
            "| environment | k | label ranges (rollouts) | training goals (from candidates) "
            "| eval goals | cached load |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for g in goal_rows:
            lines.append(
                f"| {g['env']} | {g['episode_length']} | {g['ranges_s']:.1f} s "
                f"({g['label_range_rollouts']}) | {g['train_s']:.1f} s ({g['train_goals']} of "
                f"{g['goal_candidates']}) | {g['eval_s']:.1f} s ({g['eval_goals']}) | "
                f"{g['cached_load_s'] * 1e3:.0f} ms |"
            )
        lines += ["", "Estimated label ranges:", ""]
        for g in goal_rows:
            pairs = ", ".join(f"{n} {r:.3g}" for n, r in zip(g["label_names"], g["label_ranges"]))
            lines.append(f"- {g['env']}: {pairs}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=positive_float, default=2.0, help="stepping time per run")
    parser.add_argument("--repeats", type=positive_int, default=3, help="runs per environment")
    parser.add_argument("--only", nargs="*", default=None, help="ids containing any of these")
    parser.add_argument(
        "--goal-sets", nargs="*", default=[],
        help="also time goal sets of these ids (or names: Pong; or words of the ids, as --only)"
    )
    parser.add_argument(
        "--out", type=output_folder, default=None,
        help=f"folder for envs.md and envs.json (default {RESULTS.relative_to(RESULTS.parents[1])}; "
             "with --quick, only a folder given here)"
    )
    parser.add_argument(
        "--quick", action="store_true",
        help="0.1 s per environment, one run, goal sets at small sizes; written only to an --out given"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.seconds, args.repeats = 0.1, 1
    load_at_start = os.getloadavg()[0]

    ids = glamor.envs.registered()
    goal_ids, unknown = goal_set_ids(args.goal_sets, ids)  # before any timing: a typo costs nothing
    if unknown:
        parser.error(f"--goal-sets {' '.join(unknown)}: no registered environment matches; the ids: "
                     f"{', '.join(ids)}")
    if args.only:
        ids = [i for i in ids if any(w.lower() in i.lower() for w in args.only)]
        if not ids:
            parser.error(f"--only {' '.join(args.only)}: no registered environment matches (see `glamor envs`)")
    rows = []
    for env_id in ids:
        rows.append(bench_env(env_id, args.seconds, args.repeats))
        r = rows[-1]
        print(
            f"{env_id:40s} {r['steps_per_s']:8.0f} steps/s  reset {r['reset_ms']:7.1f} ms",
            flush=True,
        )
    goal_rows = []
    for env_id in goal_ids:
        goal_rows.append(bench_goal_sets(env_id, suite(env_id), quick=args.quick))
        g = goal_rows[-1]
        print(
            f"goal sets {env_id}: ranges {g['ranges_s']:.1f} s, train {g['train_s']:.1f} s, "
            f"eval {g['eval_s']:.1f} s",
            flush=True,
        )
    info = machine()  # after the environments: MUJOCO_GL is known then
    info["load_average_1min_at_start"] = load_at_start
    text = markdown(info, rows, goal_rows)
    print()
    print(text)
    out = args.out or (None if args.quick else RESULTS)
    if out is not None:
        write_results(out / "envs.json", {"machine": info, "steps": rows, "goal_sets": goal_rows}, text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
