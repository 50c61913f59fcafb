"""Training-update speed on the CPU with glibc malloc's own thresholds (before) or those of
`glamor.allocator.keep_freed_memory` (now), which `glamor train | eval | compare` set.

The setting is the process's and cannot be taken back, so each side runs in a process of its
own: for each preset, pairs of child processes (one of each, which goes first alternating) build
the same model and batch from the same seeds, make warm-up updates, then time `--updates` updates
(loss, backward, clip, AdamW: what glamor.train.Trainer.update runs) and count their page faults.
The children also hash their weights after the last update: the two sides must agree bit for
bit (the setting moves memory, not arithmetic), or the benchmark refuses to report a speed-up:
checked after each pair, so a mismatch stops it at once.
Reported: medians over every timed update of a side, wall time and this process's CPU time (a
process that holds the core for a while adds to the wall time only), minor page faults per update,
and the children's peak resident memory.

Writes benchmarks/results/malloc_cpu.md and .json.

Example:
    python benchmarks/bench_malloc.py                 # ~8 minutes on one thread
    python benchmarks/bench_malloc.py --pairs 1 --updates 2 --presets gridworld --json /tmp/m.json   # a smoke run
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench_args import output_file, positive_int, write_results
from bench_planner import RESULTS, machine
from bench_update import CASES

SIDES = ("glibc default (before)", "keep_freed_memory (now)")


def child(name: str, side: str, updates: int, warmup: int) -> dict:
    """One side's updates in this process (run as `--child`): times, page faults, weights' hash."""
    from glamor.allocator import keep_freed_memory

    if side == SIDES[1] and not keep_freed_memory():
        raise SystemExit("keep_freed_memory() did not apply here (not glibc, or MALLOC_* set)")
    import torch
    from bench_update import training_case, training_update

    torch.set_num_threads(1)
    case = training_case(name)
    model = case[1]

    def update() -> None:
        training_update(*case)

    for _ in range(warmup):
        update()
    wall, cpu = [], []
    faults0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(updates):
        t0, c0 = time.perf_counter(), time.process_time()
        update()
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults0
    digest = hashlib.sha256()
    for p in model.parameters():
        digest.update(p.detach().numpy().tobytes())
    return {"wall_s": wall, "cpu_s": cpu, "faults_per_update": faults / updates,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "weights_sha256": digest.hexdigest()}


def run_side(name: str, side: str, updates: int, warmup: int) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).resolve().parent), env.get("PYTHONPATH", "")])
    r = subprocess.run([sys.executable, __file__, "--child", name, side, str(updates), str(warmup)],
                       capture_output=True, text=True, env=env)
    if r.returncode != 0:
        raise RuntimeError(f"the {side} child of {name} failed: {r.stderr[-2000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def run_case(name: str, pairs: int, updates: int, warmup: int) -> dict:
    runs = {side: [] for side in SIDES}
    for i in range(pairs):  # alternating which side goes first
        for side in SIDES if i % 2 == 0 else SIDES[::-1]:
            runs[side].append(run_side(name, side, updates, warmup))
        # after each pair, against every child's before it: a mismatch is refused at once, not once
        # every pair has run (minutes later, its cause in the middle of the children's output)
        if len({r["weights_sha256"] for side in SIDES for r in runs[side]}) != 1:
            raise AssertionError(f"{name}: the two sides' weights differ after the same updates (found after "
                                 f"pair {i + 1} of {pairs})")
    med = {key: {side: statistics.median(t for r in runs[side] for t in r[key]) for side in SIDES}
           for key in ("wall_s", "cpu_s")}
    before, now = SIDES
    return {
        "preset": name, "pairs": pairs, "updates": updates, "warmup": warmup, "weights_bitwise_equal": True,
        "median_s": med["wall_s"], "cpu_median_s": med["cpu_s"],
        "faults_per_update": {side: statistics.median(r["faults_per_update"] for r in runs[side]) for side in SIDES},
        "peak_rss_mb": {side: max(r["peak_rss_mb"] for r in runs[side]) for side in SIDES},
        "speedup": med["wall_s"][before] / med["wall_s"][now],
        "cpu_speedup": med["cpu_s"][before] / med["cpu_s"][now],
        "runs": runs,
    }


def table(result: dict) -> str:
    m = result["machine"]
    c0 = result["cases"][0]
    before, now = SIDES
    lines = [
        f"Training update (loss, backward, clip, AdamW step) with glibc malloc's own thresholds or "
        f"keep_freed_memory's, {m['cpu']}, 1 torch thread, torch {m['torch']}; {c0['pairs']} alternating pairs "
        f"of processes, {c0['updates']} timed updates each after {c0['warmup']} warm-up ones, medians; load "
        f"average {m['load_average_1min_at_start']:.2f} at start, {result['load_average_at_end']:.2f} at end.",
        "",
        "| preset | update: before s | now s | speedup | update CPU: before s | now s | speedup | page faults per "
        "update: before | now | peak memory MB: before | now | weights equal |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for c in result["cases"]:
        u, uc, f, mem = c["median_s"], c["cpu_median_s"], c["faults_per_update"], c["peak_rss_mb"]
        lines.append(
            f"| {c['preset']} | {u[before]:.3f} | {u[now]:.3f} | {c['speedup']:.2f}x | {uc[before]:.3f} | "
            f"{uc[now]:.3f} | {c['cpu_speedup']:.2f}x | {f[before]:,.0f} | {f[now]:,.0f} | {mem[before]:,.0f} | "
            f"{mem[now]:,.0f} | {'bitwise' if c['weights_bitwise_equal'] else 'NO'} |"
        )
    lines += ["", "Update: wall time; update CPU: the child process's CPU time (page faults are part of it)."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"]:
        name, side, updates, warmup = argv[1], argv[2], int(argv[3]), int(argv[4])
        print(json.dumps(child(name, side, updates, warmup)))
        return 0
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])  # (its first sentence is two lines)
    p.add_argument("--presets", nargs="+", default=list(CASES), choices=list(CASES))
    p.add_argument("--pairs", type=positive_int, default=8, help="pairs of processes per preset")
    p.add_argument("--updates", type=positive_int, default=12, help="timed updates per process")
    p.add_argument("--warmup", type=positive_int, default=3, help="updates per process before the timed ones")
    p.add_argument("--json", type=output_file, help="output path (default benchmarks/results/malloc_cpu.json)")
    args = p.parse_args(argv)
    result = {"machine": machine(1), "cases": []}
    for name in args.presets:
        result["cases"].append(run_case(name, args.pairs, args.updates, args.warmup))
        print(f"  {name}: {result['cases'][-1]['speedup']:.2f}x wall, {result['cases'][-1]['cpu_speedup']:.2f}x CPU",
              flush=True)
    result["load_average_at_end"] = os.getloadavg()[0]
    text = table(result)
    print(text)
    write_results(args.json or RESULTS / "malloc_cpu.json", result, text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
