"""Planner speed on a GPU: the CUDA ops against the PyTorch contenders, in one process.

`python benchmarks/bench_planner.py --device cuda` runs this (or run it directly). Same weights
and inputs for every contender (a default-initialised GlamorModel at the paper's sizes planning
from random images), warm-up first, CUDA events around each call, medians of repeated calls
timed in alternating rounds (one call of each contender per round, the order reversed every
other round, as bench_planner.py: a clock or a co-tenant changing mid-run slows them all alike):

  cuda ops         torch.ops.glamor.* on the GPU (one persistent kernel per call)
  eager reference  glamor.planning.reference on the GPU, op by op
  graph reference  the same captured once in a CUDA graph and replayed
  nn.LSTM          sampling that steps two cuDNN nn.LSTM modules (seq_len 1) per token, with
                   the reference's head, log-softmax and inverse-CDF draw (one plan only)

Cases: the paper configuration (1 plan, 200 samples, horizon 50, hidden 64, 18 actions, prior
on) in microseconds per plan, beam search of width 200 and 1024, and 64 plans x 200 samples,
whose arithmetic rate is compared with the card's fp32 peak measured in the same run: a large
fp32 matmul with TF32 off (cuBLAS SGEMM, FFMA on CUDA cores). FLOPs per candidate-step and the
live candidate-steps of sampling are counted as in bench_planner.py.

Each case first compares the CUDA op's plan with the CPU op's (actions and lengths exactly, scores
within 1e-4). A case that differs is still timed (the diagnosis comes back from the one GPU
window) but gets no speed-ups and meets no target; the run is then marked invalid ("valid":
false, the table's first line says INVALID) and exits 1: a fast but wrong kernel is no speed-up.
A case that raises is recorded as failed (the same) and the next cases still run, unless the
error was a CUDA error, which leaves the context unusable; the results are written either way.

Writes benchmarks/results/planner_cuda.json and .md (or --json PATH) and prints the table.
`--device cpu --quick` runs the same cases, contenders, table and target checks without a GPU
(the CPU ops stand in for the CUDA ones, wall-clock times, no CUDA graph): a dry run, tested in
tests/ops/test_bench_planner_cuda_dry_run.py, so that a GPU window is not spent finding a bug
in the script. The nn.LSTM contender's plan is compared with the CPU op's (noted under the table).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import time
import traceback
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_args import output_file, write_results
from bench_planner import SEED, live_candidate_steps, planning_inputs  # noqa: E402

from glamor import ops  # noqa: E402
from glamor.planning import reference  # noqa: E402
from glamor.planning.inputs import PlanningInputs  # noqa: E402
from glamor.planning.rng import uniform  # noqa: E402
from glamor.sysinfo import cpu_name  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
CUDA = torch.device("cuda")
TARGETS = "paper <= 100 us/plan, >= 50x eager, >= 5x graph; 64 x 200 >= 40% of fp32 peak"


def call_ms(fn, device: torch.device) -> float:
    """Milliseconds of one fn() call: between CUDA events on a GPU, wall-clock on the CPU (the
    dry run, --device cpu)."""
    if device.type != "cuda":
        t0 = time.perf_counter()
        fn()
        return (time.perf_counter() - t0) * 1e3
    a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    a.record()
    fn()
    b.record()
    b.synchronize()
    return a.elapsed_time(b)


def time_calls(fn, *, warmup: int, runs: int, device: torch.device = CUDA, max_seconds: float = 20.0) -> dict:
    """Median milliseconds of fn() calls after warm-up (at least 3 calls, at most `runs` or
    about `max_seconds`)."""
    for _ in range(warmup):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    times = []
    start = time.perf_counter()
    for _ in range(runs):
        times.append(call_ms(fn, device))
        if time.perf_counter() - start > max_seconds and len(times) >= 3:
            break
    return {"median_ms": statistics.median(times), "min_ms": min(times), "runs": len(times)}


def time_alternating(contenders: dict, *, warmup: dict, min_runs: int, max_runs: int,
                     device: torch.device = CUDA, max_seconds: float = 20.0) -> dict:
    """Median milliseconds of each contender (name -> fn), timed in rounds as bench_planner.py
    does: one call of each per round, the order reversed every other round, so that a clock or a
    co-tenant changing mid-run slows every contender alike instead of the one timed then. Each
    is warmed up first (`warmup`: name -> calls). At least min_runs rounds, at most max_runs or
    about max_seconds."""
    for name, fn in contenders.items():
        for _ in range(warmup[name]):
            fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    times: dict[str, list[float]] = {name: [] for name in contenders}
    order = list(contenders.items())
    rounds, start = 0, time.perf_counter()
    while rounds < min_runs or (rounds < max_runs and time.perf_counter() - start <= max_seconds):
        for name, fn in order if rounds % 2 == 0 else order[::-1]:
            times[name].append(call_ms(fn, device))
        rounds += 1
    return {name: {"median_ms": statistics.median(v), "min_ms": min(v), "runs": len(v)} for name, v in times.items()}


def plans_differ(got, want) -> str:
    """Why plans `got` differ from `want` ((actions, lengths, scores) each), or "" when they are
    the same: actions and lengths exactly, scores within 1e-4 (as gpu_smoke.py)."""
    got = tuple(t.cpu() for t in got)
    for i, what in ((0, "actions"), (1, "lengths")):
        if not torch.equal(got[i], want[i]):
            bad = (got[i] != want[i]).reshape(got[i].shape[0], -1).any(dim=1).nonzero().flatten().tolist()
            return f"{what} differ for plans {bad[:8]}"
    if not torch.allclose(got[2], want[2], rtol=1e-4, atol=1e-4, equal_nan=True):
        d = (got[2].double() - want[2].double()).abs().nan_to_num(math.inf).max().item()
        return f"scores differ (max |diff| {d:.3g})"
    return ""


def fp32_peak_tflops(size: int = 8192, device: torch.device = CUDA) -> dict:
    """Median TFLOP/s of a size^3 fp32 matmul with TF32 off (CUDA-core FFMA)."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.get_float32_matmul_precision()
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.set_float32_matmul_precision("highest")
    try:
        a = torch.randn(size, size, device=device)
        b = torch.randn(size, size, device=device)
        t = time_calls(lambda: torch.mm(a, b), warmup=3, runs=10, device=device)
    finally:
        torch.backends.cuda.matmul.allow_tf32 = saved[0]
        torch.set_float32_matmul_precision(saved[1])
    return {"size": size, "tflops": 2 * size**3 / (t["median_ms"] * 1e-3) / 1e12, **t}


def graphed(fn):
    """fn captured in a CUDA graph: returns (replay, outputs) or raises."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        fn()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        out = fn()
    return graph.replay, out


class LstmSampler:
    """Sampling for one plan that steps cuDNN nn.LSTM modules (seq_len 1): the input is the
    one-hot previous token, so weight_ih is the plan's gate table transposed (no bias)."""

    def __init__(self, inp: PlanningInputs):
        assert inp.num_plans == 1
        self.inp, n, H, dev = inp, inp.num_actions, inp.hidden, inp.gate_table.device
        self.lstms, self.heads = [], []
        for m in range(inp.num_models):
            lstm = torch.nn.LSTM(n + 1, H, batch_first=True, bias=False).to(dev)
            head = torch.nn.Linear(H, n + 1).to(dev)
            with torch.no_grad():
                lstm.weight_ih_l0.copy_(inp.gate_table[m, 0].T)
                lstm.weight_hh_l0.copy_(inp.w_hh[m])
                head.weight.copy_(inp.head_w[m, : n + 1])
                head.bias.copy_(inp.head_b[m, : n + 1])
            self.lstms.append(lstm)
            self.heads.append(head)
        self.eye = torch.eye(n + 1, device=dev)

    @torch.no_grad()
    def __call__(self, N: int, horizon: int, seed: int, gamma: float):
        inp, n, dev = self.inp, self.inp.num_actions, self.inp.gate_table.device
        state = [
            (inp.h0[m, 0].expand(1, N, -1).contiguous(), inp.c0[m, 0].expand(1, N, -1).contiguous())
            for m in range(inp.num_models)
        ]
        prev = torch.full((N,), n, dtype=torch.int64, device=dev)
        score = torch.zeros(N, device=dev)
        done = torch.zeros(N, dtype=torch.bool, device=dev)
        lengths = torch.zeros(N, dtype=torch.int64, device=dev)
        actions = torch.full((N, horizon), -1, dtype=torch.int64, device=dev)
        cand = torch.arange(N, device=dev).view(1, N)
        plan = torch.zeros(1, 1, dtype=torch.int64, device=dev)
        x = self.eye[prev].unsqueeze(1)
        for t in range(horizon + 1):
            logps = []
            for m, (lstm, head) in enumerate(zip(self.lstms, self.heads, strict=True)):
                out, state[m] = lstm(x, state[m])
                logps.append(torch.log_softmax(head(out[:, 0]), dim=-1))
            s = logps[0] - logps[1] if len(logps) == 2 else logps[0]
            logits = s.clone()
            if t == 0:
                logits[:, n] = -math.inf
            if t == horizon:
                logits[:, :n] = -math.inf
            cdf = torch.cumsum(torch.exp(logits - logits.max(dim=-1, keepdim=True).values), dim=-1)
            u = uniform(seed, plan, cand, t)[0]
            last = n - 1 if t == 0 else n
            tok = (cdf <= (u * cdf[:, -1]).unsqueeze(-1)).sum(-1).clamp(max=last)
            live = ~done
            score = score + torch.where(
                live, s.gather(-1, tok[:, None])[:, 0] + math.log(gamma), 0.0
            )
            ends = live & (tok == n)
            lengths = torch.where(ends, t, lengths)
            if t < horizon:
                actions[:, t] = torch.where(live & (tok < n), tok, -1)
            done = done | ends
            prev = torch.where(tok < n, tok, n)
            x = self.eye[prev].unsqueeze(1)
        best_score, best = reference.first_argmax(score[None])
        return actions[best], lengths[best], best_score


def cases(quick: bool) -> list[dict]:
    T = 10 if quick else 50
    base = dict(horizon=T, hidden=64, actions=18, prior=True, gamma=0.99)
    return [
        dict(name="paper: sample 1 x 200", method="sample", plans=1, width=200, lstm=True, **base),
        dict(
            name="paper, one warp per candidate",
            method="sample",
            plans=1,
            width=200,
            env={"GLAMOR_CUDA_TILE": "1"},
            contenders=False,
            **base,
        ),
        dict(name="beam 1 x 200", method="beam", plans=1, width=200, **base),
        dict(name="beam 1 x 1024", method="beam", plans=1, width=1024, **base),
        dict(name="sample 64 x 200", method="sample", plans=8 if quick else 64, width=200, **base),
    ]


def run_case(case: dict, peak_tflops: float, quick: bool, device: torch.device = CUDA) -> dict:
    """Times one case; case["env"] sets GLAMOR_CUDA_* variables for the CUDA op (a kernel
    variant), case["contenders"] False skips the PyTorch contenders."""
    saved = {k: os.environ.get(k) for k in case.get("env", {})}
    os.environ.update(case.get("env", {}))
    try:
        return _run_case(case, peak_tflops, quick, device)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _run_case(case: dict, peak_tflops: float, quick: bool, device: torch.device) -> dict:
    with torch.no_grad():
        cpu_inp = planning_inputs(case["plans"], case["actions"], case["hidden"], case["prior"])
        cpu_inp = PlanningInputs(*(t.detach().contiguous() for t in cpu_inp.tensors()))
    inp = PlanningInputs(*(t.to(device) for t in cpu_inp.tensors()))
    M, P, H, n, N, T, gamma = (
        inp.num_models,
        case["plans"],
        case["hidden"],
        case["actions"],
        case["width"],
        case["horizon"],
        case["gamma"],
    )
    flop_per_step = M * 2 * (4 * H * H + (n + 2) * H)
    nominal = P * N * (T + 1)
    if case["method"] == "sample":
        steps = live_candidate_steps(cpu_inp, N, T, SEED, gamma)
        op = lambda: ops.sample_plans(inp, N, T, SEED, gamma, None)  # noqa: E731
        ref = lambda: reference.sample_plans(inp, N, T, SEED, gamma, None)  # noqa: E731
        cpu_op = lambda: ops.sample_plans(cpu_inp, N, T, SEED, gamma, None)  # noqa: E731
    else:
        steps = nominal
        op = lambda: ops.beam_search(inp, N, T, gamma, None)  # noqa: E731
        ref = lambda: reference.beam_search(inp, N, T, gamma, None)  # noqa: E731
        cpu_op = lambda: ops.beam_search(cpu_inp, N, T, gamma, None)  # noqa: E731
    gflop = steps * flop_per_step / 1e9
    out = dict(case, models=M, flop_per_candidate_step=flop_per_step, candidate_steps=steps)
    out["nominal_candidate_steps"] = nominal
    # The plans must be the CPU op's, bit for bit; a dry run on the CPU, where op is the CPU op,
    # checks it against the readable reference instead (a comparison of op with itself says nothing).
    out["compared_with"] = "reference" if device.type == "cpu" else "cpu op"
    want = ref() if device.type == "cpu" else cpu_op()
    # a CUDA op that plans differently does other work: its time is no speed-up (the case is
    # marked invalid below, in the table and the targets, and main exits 1), yet it is still
    # timed, so that the one GPU window brings the diagnosis back with the other cases
    mismatch = plans_differ(op(), want)
    out["cuda_equals_cpu"] = not mismatch
    if mismatch:
        out["mismatch"] = mismatch
    contenders, warmup = {"cuda": op}, {"cuda": 3}
    if case.get("contenders", True):
        contenders["eager_reference"], warmup["eager_reference"] = ref, 1
        try:
            contenders["graph_reference"], _ = graphed(ref)
            warmup["graph_reference"] = 2
        except Exception as e:  # noqa: BLE001 - report why the capture failed, keep measuring
            out["graph_reference"] = {"error": f"{type(e).__name__}: {e}"[:300]}
    saved_tf32 = torch.backends.cudnn.allow_tf32
    try:
        if case.get("lstm") and case.get("contenders", True):
            # fp32 FMA like the other contenders: cuDNN's RNNs may use TF32 tensor cores by
            # default (torch.backends.cudnn.allow_tf32), less arithmetic than the CUDA op does;
            # off for the whole timing, as the contenders' calls alternate
            torch.backends.cudnn.allow_tf32 = False
            try:
                lstm = LstmSampler(inp)
                plan = tuple(t.cpu() for t in lstm(N, T, SEED, gamma))
                # its arithmetic differs (cuDNN, a one-hot input matmul), so a token may flip at a near tie
                lstm_equals_cpu = not plans_differ(plan, want)
                contenders["nn_lstm"], warmup["nn_lstm"] = (lambda: lstm(N, T, SEED, gamma)), 1
            except Exception as e:  # noqa: BLE001
                out["nn_lstm"] = {"error": f"{type(e).__name__}: {e}"[:300]}
        timed = time_alternating(
            contenders, warmup=warmup, min_runs=3 if quick else 10, max_runs=3 if quick else 50,
            device=device, max_seconds=5.0 if quick else 20.0,
        )
    finally:
        torch.backends.cudnn.allow_tf32 = saved_tf32
    out.update(timed)
    if "nn_lstm" in timed:
        out["nn_lstm"]["equals_cpu"] = lstm_equals_cpu
    s = out["cuda"]["median_ms"] * 1e-3
    out["cuda"].update(
        us_per_plan=s * 1e6 / P,
        gflops=gflop / s,
        peak_share=gflop / s / (peak_tflops * 1e3),
    )
    if not out["cuda_equals_cpu"]:
        return out  # no speed-ups for different work
    cuda_ms = out["cuda"]["median_ms"]
    for k in ("eager_reference", "graph_reference", "nn_lstm"):
        if k in out and "median_ms" in out[k]:
            out[f"speedup_vs_{k}"] = out[k]["median_ms"] / cuda_ms
    return out


def fmt_ms(entry: dict | None, P: int) -> str:
    if not entry:
        return "-"
    if "median_ms" not in entry:
        return "failed"
    return f"{entry['median_ms'] * 1e3 / P:.0f}"


def table(result: dict) -> str:
    m = result["machine"]
    bad = [c["name"] for c in result["cases"] if not c["cuda_equals_cpu"]]
    lines = [
        f"INVALID: in {', '.join(bad)} the CUDA op failed or planned differently from the "
        f"{'reference' if result.get('device') == 'cpu' else 'CPU op'}; those times measure other work, or "
        "nothing (see the notes below the table).",
        "",
    ] if bad else []
    lines += [
        f"Card: {m['gpu']} ({m['sms']} SMs), host CPU {m.get('cpu', '?')}, torch {m['torch']} (CUDA {m['cuda']}); "
        f"fp32 peak measured as SGEMM (matmul {result['peak']['size']}^3, TF32 off) "
        f"{result.get('peak_used_tflops', result['peak']['tflops']):.1f} TFLOP/s (the larger of "
        f"{result['peak']['tflops']:.1f} at the start and {result['peak_at_end']['tflops']:.1f} at the end)"
        + (f" (rated FFMA peak {m['rated_fp32_tflops']:.1f})." if m.get("rated_fp32_tflops") else "."),
        "",
        "| case | CUDA op us/plan | eager ref us/plan | graph ref us/plan | nn.LSTM us/plan "
        "| speed-up vs eager / graph / nn.LSTM | GFLOP/s | % of fp32 peak (SGEMM) | CUDA = CPU |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for c in result["cases"]:
        P = c["plans"]
        if "error" in c:
            lines.append(f"| {c['name']} | failed |  |  |  |  |  |  | NO |")
            continue
        sp = " / ".join(
            f"{c[k]:.0f}x" if k in c else "-"
            for k in (
                "speedup_vs_eager_reference",
                "speedup_vs_graph_reference",
                "speedup_vs_nn_lstm",
            )
        ) if c["cuda_equals_cpu"] else "none: the plans differ"
        lines.append(
            f"| {c['name']} | {c['cuda']['us_per_plan']:.1f} | {fmt_ms(c.get('eager_reference'), P)} | "
            f"{fmt_ms(c.get('graph_reference'), P)} | {fmt_ms(c.get('nn_lstm'), P)} | {sp} | "
            f"{c['cuda']['gflops']:.0f} | {100 * c['cuda']['peak_share']:.1f}% | "
            f"{'yes' if c['cuda_equals_cpu'] else 'NO'} |"
        )
    lines += [
        "",
        "Per plan: call time / plans (median of "
        + ("CUDA-event timings" if result.get("device", "cuda") == "cuda"
           else "wall-clock timings; a CPU dry run: the 'CUDA op' is the CPU op, and 'CUDA = CPU' "
                 "compares it with the readable reference")
        + "). Work: live candidate-steps "
        "for sampling, width x (horizon+1) for beam; FLOPs 2 (4H^2 + (n+2) H) per model per "
        f"candidate-step. Targets: {TARGETS}.",
    ]
    for c in result["cases"]:
        if "error" in c:
            lines.append(f"- {c['name']}: FAILED: {c['error']}")
        elif not c["cuda_equals_cpu"]:
            lines.append(f"- {c['name']}: the CUDA op's plans DIFFER from the {c['compared_with']}'s: "
                         f"{c.get('mismatch', '?')}.")
        if "equals_cpu" in c.get("nn_lstm", {}):
            lines.append(f"- {c['name']}: the nn.LSTM contender's plan (actions, length, score within 1e-4) "
                         f"{'equals' if c['nn_lstm']['equals_cpu'] else 'DIFFERS from'} the CPU op's.")
        for k in ("graph_reference", "nn_lstm"):
            if isinstance(c.get(k), dict) and "error" in c[k]:
                lines.append(f"- {c['name']}: {k} failed: {c[k]['error']}")
    return "\n".join(lines)


def check_targets(result: dict) -> dict:
    """The targets, each met only by a case whose CUDA plans equal the CPU op's (a fast kernel
    that plans wrongly meets none), and whether every case's did."""
    by = {c["name"]: c for c in result["cases"]}
    paper, batch = by["paper: sample 1 x 200"], by["sample 64 x 200"]
    return {
        "paper_at_most_100_us": paper["cuda_equals_cpu"] and paper["cuda"]["us_per_plan"] <= 100,
        "paper_50x_eager": paper["cuda_equals_cpu"] and paper.get("speedup_vs_eager_reference", 0) >= 50,
        "paper_5x_graph": paper["cuda_equals_cpu"] and paper.get("speedup_vs_graph_reference", 0) >= 5,
        "sample_64x200_at_least_40pct_of_peak": batch["cuda_equals_cpu"] and batch["cuda"]["peak_share"] >= 0.4,
        "cuda_equals_cpu_in_every_case": all(c["cuda_equals_cpu"] for c in result["cases"]),
    }


def machine_info(device: torch.device) -> dict:
    if device.type != "cuda":  # the CPU dry run
        return {"gpu": f"none (CPU dry run on {cpu_name()})", "sms": 0, "cpu": cpu_name(), "rated_fp32_tflops": None,
                "torch": torch.__version__, "cuda": None, "python": platform.python_version()}
    props = torch.cuda.get_device_properties(0)
    clock_khz = getattr(props, "clock_rate", None)  # not in every torch
    return {
        "gpu": torch.cuda.get_device_name(0),
        "sms": props.multi_processor_count,
        "cpu": cpu_name(),  # the eager and graph contenders are host-bound
        # 128 fp32 lanes per SM (sm_90), 2 FLOPs per FFMA, at the boost clock
        "rated_fp32_tflops": props.multi_processor_count * 128 * 2 * clock_khz * 1e3 / 1e12 if clock_khz else None,
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "python": platform.python_version(),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--json", type=output_file, help="default: benchmarks/results/planner_cuda.json")
    p.add_argument("--quick", action="store_true", help="small cases, few runs (nothing written)")
    p.add_argument("--device", choices=["cuda", "cpu"], default="cuda",
                   help="cpu: a dry run of this script without a GPU (the CPU ops in the CUDA op's column, "
                        "wall-clock times, no graph capture); writes only a --json given")
    args = p.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        p.error("no CUDA device: the CUDA benchmark needs a GPU (--device cpu is a dry run of it)")
    if not ops.available():
        raise SystemExit(f"the native ops are not built: {ops.REBUILD_HINT}")
    if device.type == "cuda" and not torch._C._dispatch_has_kernel_for_dispatch_key("glamor::sample_plans", "CUDA"):
        raise SystemExit("glamor._C has no CUDA kernels: build it with CUDA (see gpu_check.sh)")
    result = {"machine": machine_info(device), "quick": args.quick, "device": device.type}
    peak_size = 1024 if device.type != "cuda" else 4096 if args.quick else 8192
    result["peak"] = fp32_peak_tflops(peak_size, device)
    result["cases"] = []
    context_lost = False
    for case in cases(args.quick):
        if context_lost:  # a CUDA error leaves the context unusable: the rest cannot run
            result["cases"].append(dict(case, cuda_equals_cpu=False, error="not run: an earlier case's CUDA error"))
            continue
        try:
            result["cases"].append(run_case(case, result["peak"]["tflops"], args.quick, device))
            print(f"  {case['name']}: done", flush=True)
        except Exception as e:  # noqa: BLE001 - one case's failure must not lose the others' measurements
            traceback.print_exc()
            result["cases"].append(dict(case, cuda_equals_cpu=False, error=f"{type(e).__name__}: {e}"[:500]))
            print(f"  {case['name']}: FAILED ({type(e).__name__})", flush=True)
            context_lost = "CUDA error" in str(e) or type(e).__name__ == "AcceleratorError"
    result["peak_at_end"] = result["peak"] if context_lost else fp32_peak_tflops(peak_size, device)
    # shares of the larger reading, the conservative one (as bench_planner.py does): a card still
    # clocking up at the start, or busy then, would otherwise inflate them
    result["peak_used_tflops"] = peak = max(result["peak"]["tflops"], result["peak_at_end"]["tflops"])
    for c in result["cases"]:
        if "cuda" in c:
            c["cuda"]["peak_share"] = c["cuda"]["gflops"] / (peak * 1e3)
    result["targets"] = check_targets(result)
    result["valid"] = result["targets"]["cuda_equals_cpu_in_every_case"]
    text = table(result)
    print(text)
    print("targets:", json.dumps(result["targets"]))
    path = args.json or (None if args.quick or device.type != "cuda" else RESULTS / "planner_cuda.json")
    if path is not None:  # written when invalid too (marked so): it is the run's diagnosis
        write_results(path, result, text)
    if not result["valid"]:
        print("INVALID: the CUDA op failed or its plans differ from the CPU op's in "
              + ", ".join(c["name"] for c in result["cases"] if not c["cuda_equals_cpu"]), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
