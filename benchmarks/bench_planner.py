"""Planner speed: the native ops (glamor.ops) against the eager PyTorch reference.

One process, the same weights and inputs for every contender (a GlamorModel with its default
initialisation, planning from random images), warm-up first, then the median of repeated
timings of: native (all threads, and 1), the eager reference with 2 threads and with 1, and
with `--compile` the reference with torch.compile'd per-step functions (compile time, the
first call, reported apart; compiling a whole call, 51 unrolled steps, takes too long). The
contenders are timed in alternating rounds (one call of each, the order reversed every other
round), so that a busy spell of a shared machine slows them all rather than one.

Cases: the paper configuration (1 plan, 200 samples, horizon 50, hidden 64, 18 actions, prior
on), beam search of width 200 and 1024, and batched sampling of 16 and 64 plans x 200.

Work is counted in candidate-steps: one candidate advanced one token through both LSTMs.
FLOPs per candidate-step: 2 * (4H*H + (n+2)*H) per model (the recurrent product and the head;
the gate table lookup, the non-linearities and the log-softmax are not counted). Beam search
runs width x (horizon+1) of them. A sampled candidate needs only the steps up to its END; the
native sampler stops there while the reference runs all horizon+1 steps, so for sampling the
work (and the arithmetic floor) is its live candidate-steps, counted by replaying the same draws.
The peak is the median speed of a large fp32 torch.mm on the same threads, in the same run.

Writes the JSON (default benchmarks/results/planner_cpu.json; with --quick only an explicit
--json) and a Markdown table beside it, and prints the table with the machine it ran on.

Example:
    python benchmarks/bench_planner.py                    # full run, a few minutes
    python benchmarks/bench_planner.py --quick            # smoke run, seconds
    python benchmarks/bench_planner.py --device cuda      # GPU: benchmarks/bench_planner_cuda.py
    glamor bench planner --json planner.json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import statistics
import time
from pathlib import Path

import torch
from bench_args import output_file, positive_int, write_results

from glamor import ops
from glamor.model import GlamorModel
from glamor.planning import reference
from glamor.planning.inputs import PlanningInputs
from glamor.planning.rng import uniform
from glamor.sysinfo import cpu_name

RESULTS = Path(__file__).resolve().parent / "results"
SEED = 1234


def machine(threads: int) -> dict:
    return {
        "cpu": cpu_name(),
        "cores_available": len(os.sched_getaffinity(0)),
        "threads": threads,
        "torch": torch.__version__,
        "native_isa": ops.cpu_isa() if ops.available() else None,
        "python": platform.python_version(),
        "load_average_1min_at_start": os.getloadavg()[0],
    }


def run_ab_cases(names, run_case, repeats: int, threads: int, table, path: Path, **extra) -> dict:
    """The A/B benchmarks' loop (bench_update, bench_act): each named case's `run_case(name,
    repeats)` (a dict with a "speedup"), the machine and load, the table printed and written."""
    torch.set_num_threads(threads)
    result = {"machine": machine(threads), **extra, "cases": []}
    for name in names:
        result["cases"].append(run_case(name, repeats))
        print(f"  {name}: {result['cases'][-1]['speedup']:.2f}x", flush=True)
    result["load_average_at_end"] = os.getloadavg()[0]
    text = table(result)
    print(text)
    write_results(path, result, text)
    return result


def cpu_snapshot() -> tuple[float, float, float]:
    """(wall s, busy CPU s of the whole machine, CPU s of this process)."""
    busy = 0.0
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
        busy = (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        pass
    t = os.times()
    return time.perf_counter(), busy, t.user + t.system


def other_load(start: tuple[float, float, float]) -> float:
    """Cores kept busy by other processes since `start` (0 on an otherwise idle machine)."""
    wall, busy, own = (b - a for a, b in zip(start, cpu_snapshot(), strict=True))
    return max(0.0, (busy - own) / wall) if busy else float("nan")


def timeit(fn, *, warmup: int, min_runs: int, min_seconds: float, max_runs: int = 50) -> dict:
    """Median wall time of fn() after warm-up: at least min_runs runs and min_seconds."""
    for _ in range(warmup):
        fn()
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < min_runs or (
        time.perf_counter() - start < min_seconds and len(times) < max_runs
    ):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return {"median_s": statistics.median(times), "runs": len(times), "min_s": min(times)}


def timeit_alternating(contenders: dict, *, warmup: dict, min_runs: int, min_seconds: float,
                       max_runs: int) -> dict:
    """Median wall time of each contender (name -> (fn, threads)), timed in rounds: one call of
    each per round, the order reversed every other round, so that a drift of a shared machine
    (another process holding a core for a while: two-thread runs collapse then) hits every
    contender alike rather than the one being timed then. Each is warmed up first (`warmup`:
    name -> calls). At least min_runs rounds and min_seconds, at most max_runs rounds."""
    for name, (fn, nthreads) in contenders.items():
        torch.set_num_threads(nthreads)
        for _ in range(warmup[name]):
            fn()
    times: dict[str, list[float]] = {name: [] for name in contenders}
    order = list(contenders.items())
    rounds, start = 0, time.perf_counter()
    while rounds < min_runs or (time.perf_counter() - start < min_seconds and rounds < max_runs):
        for name, (fn, nthreads) in order if rounds % 2 == 0 else order[::-1]:
            torch.set_num_threads(nthreads)
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
        rounds += 1
    return {name: {"median_s": statistics.median(v), "runs": len(v), "min_s": min(v)} for name, v in times.items()}


def matmul_peak(threads: int, size: int, quick: bool) -> float:
    """Median GFLOP/s of a large fp32 torch.mm on `threads` threads."""
    torch.set_num_threads(threads)
    a, b = torch.randn(size, size), torch.randn(size, size)
    t = timeit(
        lambda: torch.mm(a, b),
        warmup=2,
        min_runs=3 if quick else 10,
        min_seconds=0.2 if quick else 1.5,
    )
    return 2 * size**3 / t["median_s"] / 1e9


def model_and_images(plans: int, num_actions: int, hidden: int):
    """A default-initialised GlamorModel (Atari sizes) and random images to plan from."""
    torch.manual_seed(SEED)
    model = GlamorModel(
        num_actions=num_actions, frame_stack=4, image_hw=(80, 104), lstm_hidden=hidden
    ).eval()
    g = torch.Generator().manual_seed(SEED)
    obs = torch.randint(0, 256, (plans, 4, 80, 104), dtype=torch.uint8, generator=g)
    goal = torch.randint(0, 256, (plans, 1, 80, 104), dtype=torch.uint8, generator=g)
    return model, obs, goal


def planning_inputs(plans: int, num_actions: int, hidden: int, prior: bool) -> PlanningInputs:
    """The planner's inputs from `model_and_images` (the encoders' output)."""
    model, obs, goal = model_and_images(plans, num_actions, hidden)
    with torch.no_grad():
        return model.planning_inputs(obs, goal, use_prior=prior)


@torch.no_grad()
def live_candidate_steps(
    inp: PlanningInputs, samples: int, horizon: int, seed: int, gamma: float
) -> int:
    """Candidate-steps the sampler needs (each candidate up to and including its END), found
    by replaying the reference sampler's draws (glamor.planning.reference.sample_plans)."""
    P, n = inp.num_plans, inp.num_actions
    h, c = reference._initial_state(inp, samples)
    prev = torch.full((P, samples), n, dtype=torch.int64)
    done = torch.zeros(P, samples, dtype=torch.bool)
    plan_ids, cand_ids = torch.arange(P).view(P, 1), torch.arange(samples).view(1, samples)
    live = 0
    for t in range(horizon + 1):
        live += int((~done).sum())
        h, c = reference._advance(inp, h, c, prev)
        logits = reference.token_scores(inp, h, None)
        if t == 0:
            logits[..., n] = -math.inf
        if t == horizon:
            logits[..., :n] = -math.inf
        cdf = torch.cumsum(torch.exp(logits - logits.max(dim=-1, keepdim=True).values), dim=-1)
        u = uniform(seed, plan_ids, cand_ids, t)
        tok = (cdf <= (u * cdf[..., -1]).unsqueeze(-1)).sum(-1).clamp(max=n - 1 if t == 0 else n)
        done = done | (tok == n)
        prev = torch.where(tok < n, tok, n)
    return live


_COMPILED: tuple | None = None


@contextlib.contextmanager
def compiled_reference_steps():
    """The reference with its per-step functions (`_advance`, `token_scores`) compiled by
    torch.compile; the loop over steps stays in Python. (Compiling a whole planner call, 51
    unrolled steps, had not finished after 20 minutes on this machine.)"""
    global _COMPILED
    if _COMPILED is None:
        _COMPILED = (torch.compile(reference._advance), torch.compile(reference.token_scores))
    saved = reference._advance, reference.token_scores
    reference._advance, reference.token_scores = _COMPILED
    try:
        yield
    finally:
        reference._advance, reference.token_scores = saved


def cases(quick: bool) -> list[dict]:
    horizon = 10 if quick else 50
    base = dict(horizon=horizon, hidden=64, actions=18, prior=True, gamma=0.99)
    return [
        dict(name="paper: sample 1 x 200", method="sample", plans=1, width=200, **base),
        dict(name="beam 1 x 200", method="beam", plans=1, width=200, **base),
        dict(name="beam 1 x 1024", method="beam", plans=1, width=256 if quick else 1024, **base),
        dict(name="sample 16 x 200", method="sample", plans=4 if quick else 16, width=200, **base),
        dict(name="sample 64 x 200", method="sample", plans=8 if quick else 64, width=200, **base),
    ]


def run_case(case: dict, threads: int, peak: float, args) -> dict:
    model, obs, goal = model_and_images(case["plans"], case["actions"], case["hidden"])
    with torch.no_grad():
        inp = model.planning_inputs(obs, goal, use_prior=case["prior"])
    M, P, H, n, N, T = (
        inp.num_models,
        case["plans"],
        case["hidden"],
        case["actions"],
        case["width"],
        case["horizon"],
    )
    gamma = case["gamma"]
    flop_per_step = M * 2 * (4 * H * H + (n + 2) * H)
    nominal = P * N * (T + 1)
    if case["method"] == "sample":
        steps = live_candidate_steps(inp, N, T, SEED, gamma)
        native_fn = lambda: ops.sample_plans(inp, N, T, SEED, gamma, None)  # noqa: E731
        ref_fn = lambda: reference.sample_plans(inp, N, T, SEED, gamma, None)  # noqa: E731
    else:
        steps = nominal
        native_fn = lambda: ops.beam_search(inp, N, T, gamma, None)  # noqa: E731
        ref_fn = lambda: reference.beam_search(inp, N, T, gamma, None)  # noqa: E731
    gflop = steps * flop_per_step / 1e9
    quick = args.quick
    slow = dict(
        warmup=1, min_runs=1 if quick else 5, min_seconds=0.0 if quick else 3.0, max_runs=10
    )

    def rates(t: dict) -> dict:
        s = t["median_s"]
        t.update(
            plans_per_s=P / s,
            candidate_steps_per_s=steps / s,
            gflops=gflop / s,
            peak_share=gflop / s / peak,
        )
        return t

    out = dict(
        case,
        models=M,
        flop_per_candidate_step=flop_per_step,
        nominal_candidate_steps=nominal,
        candidate_steps=steps,
        gflop=gflop,
        floor_s=gflop / peak,
    )
    # check once that the contenders agree (the tests do this thoroughly)
    torch.set_num_threads(threads)
    a, b = native_fn(), ref_fn()
    out["native_equals_reference"] = bool(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]))
    if not out["native_equals_reference"]:  # the table would compare the speed of different work
        raise AssertionError(f"{case['name']}: the native op and the reference plan differently")
    # What a plan call also pays before the planner: both encoders and the gate tables
    # (model.planning_inputs), not in the planner columns (the same on both sides).
    torch.set_num_threads(threads)
    with torch.no_grad():
        out["encode"] = timeit(lambda: model.planning_inputs(obs, goal, use_prior=case["prior"]), **slow)
    contenders = {
        "native": (native_fn, threads),
        "native_1_thread": (native_fn, 1),
        "eager_2_threads": (ref_fn, 2),
        "eager_1_thread": (ref_fn, 1),
    }
    if args.compile:
        torch.set_num_threads(threads)
        with compiled_reference_steps():
            t0 = time.perf_counter()
            ref_fn()  # compiles for this case's shapes
            out["compile_time_s"] = time.perf_counter() - t0

        def compiled_fn():
            with compiled_reference_steps():
                return ref_fn()

        contenders["compiled_reference"] = (compiled_fn, threads)
    timed = timeit_alternating(
        contenders,
        warmup={name: 1 if quick or name.startswith(("eager", "compiled")) else 3 for name in contenders},
        min_runs=3 if quick else 10,
        min_seconds=0.2 if quick else 3.0,
        max_runs=10 if quick else 30,
    )
    for name, t in timed.items():
        out[name] = rates(t)
    s = out["native"]["median_s"]
    out["speedup_vs_eager_2_threads"] = out["eager_2_threads"]["median_s"] / s
    out["speedup_vs_eager_1_thread"] = out["eager_1_thread"]["median_s"] / s
    # The reference runs every candidate for all horizon + 1 steps; the native sampler stops
    # each at its END: per candidate-step computed, the speed-up is smaller by that share.
    out["speedup_per_step_vs_eager_2_threads"] = out["speedup_vs_eager_2_threads"] * steps / nominal
    enc = out["encode"]["median_s"]
    out["plan_call_plans_per_s"] = P / (enc + s)
    out["plan_call_speedup_vs_eager_2_threads"] = (enc + out["eager_2_threads"]["median_s"]) / (enc + s)
    out["times_floor"] = s / out["floor_s"]
    torch.set_num_threads(threads)
    return out


def apply_peak(case: dict, peak: float) -> None:
    """A case's shares of the peak and its floor against `peak`."""
    case["floor_s"] = case["gflop"] / peak
    case["times_floor"] = case["native"]["median_s"] / case["floor_s"]
    for contender in case.values():
        if isinstance(contender, dict) and "gflops" in contender:
            contender["peak_share"] = contender["gflops"] / peak


def table(result: dict) -> str:
    m = result["machine"]
    lines = [
        f"Machine: {m['cpu']}, {m['cores_available']} cores, torch {m['torch']}, native ISA {m['native_isa']}, "
        f"{m['threads']} threads; fp32 torch.mm peak {peak_used(result):.0f} GFLOP/s (the larger of "
        f"{result['matmul_peak_gflops']:.0f} at the start and {result['matmul_peak_gflops_at_end']:.0f} at the end; "
        f"other processes kept {m['other_processes_busy_cores']:.2f} cores busy during the run).",
        "",
        "| case | native ms | plans/s | cand-steps/s | GFLOP/s | % of mm peak | x floor | eager 2t ms | eager 1t ms "
        "| speed-up vs eager 2t / 1t | per cand-step vs 2t | encoders ms | plan call plans/s (vs eager 2t) |"
        + (" compiled steps ms (compile s) |" if result["compile"] else ""),
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|" + ("---|" if result["compile"] else ""),
    ]
    for c in result["cases"]:
        nat = c["native"]
        row = (
            f"| {c['name']} | {nat['median_s'] * 1e3:.2f} | {nat['plans_per_s']:.0f} | "
            f"{nat['candidate_steps_per_s'] / 1e6:.2f} M | {nat['gflops']:.0f} | {100 * nat['peak_share']:.0f}% | "
            f"{c['times_floor']:.2f} | {c['eager_2_threads']['median_s'] * 1e3:.0f} | "
            f"{c['eager_1_thread']['median_s'] * 1e3:.0f} | "
            f"{c['speedup_vs_eager_2_threads']:.0f}x / {c['speedup_vs_eager_1_thread']:.0f}x | "
            f"{c['speedup_per_step_vs_eager_2_threads']:.1f}x | {c['encode']['median_s'] * 1e3:.1f} | "
            f"{c['plan_call_plans_per_s']:.0f} ({c['plan_call_speedup_vs_eager_2_threads']:.1f}x) |"
        )
        if result["compile"]:
            row += f" {c['compiled_reference']['median_s'] * 1e3:.0f} ({c['compile_time_s']:.0f}) |"
        lines.append(row)
    lines += [
        "",
        "Work counts live candidate-steps for sampling (each candidate up to its END: "
        + ", ".join(
            f"{c['candidate_steps'] / c['nominal_candidate_steps']:.0%}"
            for c in result["cases"]
            if c["method"] == "sample"
        )
        + " of width x (horizon+1) here) and width x (horizon+1) for beam search; "
        "FLOPs 2 (4H^2 + (n+2) H) per model per candidate-step; x floor = time / (FLOPs / mm peak). "
        "The reference runs every candidate for all horizon+1 steps while the native sampler stops each "
        "at its END: 'per cand-step' divides that out. The planner columns exclude the encoders "
        "(model.planning_inputs: both Impala encoders and the gate tables, 80x104 frames); 'plan call' "
        "adds them to both sides. Eager runs use 2 and 1 threads whatever --threads is; 'compiled steps' "
        "compiles the reference's per-step LSTM and head only (its draws and bookkeeping stay eager).",
    ]
    return "\n".join(lines)


def peak_used(result: dict) -> float:
    return result.get("peak_used_gflops", result["matmul_peak_gflops"])


def check_targets(result: dict) -> dict:
    by = {c["name"]: c for c in result["cases"]}
    paper, batch = by["paper: sample 1 x 200"], by["sample 64 x 200"]
    return {
        "paper_speedup_vs_eager_2_threads_at_least_8": paper["speedup_vs_eager_2_threads"] >= 8,
        "paper_within_2x_of_floor": paper["times_floor"] <= 2,
        "sample_64x200_at_least_50pct_of_peak": batch["native"]["peak_share"] >= 0.5,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--json",
        type=output_file,
        help="where to write the results (default: "
        "benchmarks/results/planner_cpu.json; with --quick, only a --json given here), and a "
        "Markdown table beside it",
    )
    p.add_argument(
        "--quick", action="store_true", help="small cases, few runs: a smoke test in seconds"
    )
    p.add_argument(
        "--compile",
        action="store_true",
        help="also time the reference with torch.compile'd per-step functions (CPU only)",
    )
    p.add_argument(
        "--threads", type=positive_int, default=None,
        help=f"threads for native and peak (default torch's: {torch.get_num_threads()} here; CPU only)",
    )
    p.add_argument(
        "--device",
        choices=["cpu", "cuda"],
        default="cpu",
        help="cuda: the CUDA ops against the reference on the GPU (bench_planner_cuda.py)",
    )
    args = p.parse_args(argv)
    if args.device == "cuda":
        # the GPU benchmark has neither (its contenders: eager, CUDA graph, nn.LSTM): say so
        # rather than run without what was asked for
        for flag, given in (("--compile", args.compile), ("--threads", args.threads is not None)):
            if given:
                p.error(f"{flag} is for the CPU benchmark; --device cuda (bench_planner_cuda.py) takes "
                        "only --json and --quick")
        from bench_planner_cuda import main as cuda_main

        return cuda_main(
            (["--json", str(args.json)] if args.json else []) + (["--quick"] if args.quick else [])
        )
    if not ops.available():
        raise SystemExit(f"the native ops are not built: {ops.REBUILD_HINT}")
    threads = args.threads or torch.get_num_threads()
    start = cpu_snapshot()
    result = {"machine": machine(threads), "compile": args.compile, "quick": args.quick}
    result["matmul_peak_gflops"] = peak = matmul_peak(
        threads, 1024 if args.quick else 2048, args.quick
    )
    result["cases"] = []
    for case in cases(args.quick):
        result["cases"].append(run_case(case, threads, peak, args))
        print(f"  {case['name']}: done", flush=True)
    # the peak again at the end: the machine may be shared; shares and floors use the larger
    # reading (the conservative one)
    result["matmul_peak_gflops_at_end"] = matmul_peak(
        threads, 1024 if args.quick else 2048, args.quick
    )
    result["peak_used_gflops"] = max(result["matmul_peak_gflops"], result["matmul_peak_gflops_at_end"])
    for case in result["cases"]:
        apply_peak(case, result["peak_used_gflops"])
    result["machine"]["load_average_1min_at_end"] = os.getloadavg()[0]
    result["machine"]["other_processes_busy_cores"] = other_load(start)
    if not args.quick:
        result["targets"] = check_targets(result)
    text = table(result)
    print(text)
    if "targets" in result:
        print("targets:", json.dumps(result["targets"]))
    path = args.json or (None if args.quick else RESULTS / "planner_cpu.json")
    if path is not None:
        write_results(path, result, text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
