"""Training-update speed on the CPU: the LSTMs' gate lookup by gather (before) or take_rows (now).

A training update's LSTMs read their input gates from a per-sample table: row prev[b, t] of
table[b] for every token, a (B, T, 4H) tensor. It was `table.gather(1, prev expanded over 4H)`,
which walks the expanded index element by element, and so does its backward (scatter_add_);
`glamor.model.take_rows` now takes whole rows of the flattened table with one index_select, whose
backward (index_add_) adds each row's gradients in the same order. Same arithmetic: the benchmark
first checks that the loss and every gradient are bitwise equal at each preset's sizes, then times
the lookup alone (forward and backward) and whole updates (loss, backward, clip, AdamW: what
glamor.train.Trainer.update runs), alternating the two in one process, each going first in turn,
and reports medians and their ratios.

Writes benchmarks/results/lookup_cpu.md and .json.

Example:
    python benchmarks/bench_lookup.py --repeats 41     # ~5 minutes on one thread (README's table)
    python benchmarks/bench_lookup.py --repeats 2 --presets gridworld --json /tmp/l.json   # a smoke run
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from bench_args import output_file, positive_int
from bench_planner import RESULTS, run_ab_cases
from bench_update import CASES, training_case, training_update

import glamor.model


def gather_rows(table: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """The baseline: the lookup as TokenLSTM.forward did it, one gather."""
    return table.gather(1, tokens.unsqueeze(-1).expand(-1, -1, table.shape[-1]))


LOOKUPS = {"gather (before)": gather_rows, "take_rows (now)": glamor.model.take_rows}


def alternate(fns: dict, call, repeats: int, warmup: int = 2) -> tuple[dict, dict]:
    """Wall and CPU times (this process's: what another process holding the core does not add)
    of call(fn) for each of `fns`, `repeats` each, alternating (each goes first in turn)."""
    for _ in range(warmup):
        for fn in fns.values():
            call(fn)
    wall, cpu = {k: [] for k in fns}, {k: [] for k in fns}
    order = list(fns.items())
    for step in range(repeats):
        for k, fn in order if step % 2 == 0 else order[::-1]:
            t0, c0 = time.perf_counter(), time.process_time()
            call(fn)
            wall[k].append(time.perf_counter() - t0)
            cpu[k].append(time.process_time() - c0)
    return wall, cpu


def run_case(name: str, repeats: int) -> dict:
    n = CASES[name][0]
    cfg, model, opt, obs, goal, targets = training_case(name)
    original = glamor.model.take_rows  # put back whatever happens

    def use(lookup) -> None:
        glamor.model.take_rows = lookup  # (TokenLSTM.forward reads it from the module)

    def grads(lookup):
        use(lookup)
        model.zero_grad(set_to_none=True)
        loss = model.loss(obs, goal, targets)["loss"]
        loss.backward()
        return loss.detach().clone(), [p.grad.clone() for p in model.parameters()]

    def update(lookup) -> None:
        use(lookup)
        training_update(cfg, model, opt, obs, goal, targets)

    # the lookup alone, at the update's sizes: a gate table (B, n+1, 4H) and the previous tokens
    B, T, G = len(targets), targets.shape[1], 4 * cfg.lstm_hidden
    gen = torch.Generator().manual_seed(2)
    table = torch.randn(B, n + 1, G, generator=gen, requires_grad=True)
    prev = torch.randint(0, n + 1, (B, T), generator=gen)
    up = torch.randn(B, T, G, generator=gen)

    def lookup_alone(lookup) -> None:
        torch.autograd.grad(lookup(table, prev), table, up)

    try:
        (l0, g0), (l1, g1) = (grads(f) for f in LOOKUPS.values())
        equal = torch.equal(l0, l1) and all(torch.equal(a, b) for a, b in zip(g0, g1, strict=True))
        if not equal:
            raise AssertionError(f"{name}: the two lookups give different losses or gradients")
        alone, _ = alternate(LOOKUPS, lookup_alone, max(repeats, 21))
        updates, updates_cpu = alternate(LOOKUPS, update, repeats)
    finally:
        use(original)
    med = {k: statistics.median(v) for k, v in updates.items()}
    med_cpu = {k: statistics.median(v) for k, v in updates_cpu.items()}
    med_alone = {k: statistics.median(v) for k, v in alone.items()}
    before, now = LOOKUPS
    return {
        "preset": name, "batch": B, "tokens": T, "actions": n, "gate_width": G,
        "gradients_bitwise_equal": equal, "repeats": repeats,
        "median_s": med, "times_s": updates, "cpu_median_s": med_cpu, "cpu_times_s": updates_cpu,
        "lookup_median_s": med_alone,
        "lookup_speedup": med_alone[before] / med_alone[now],
        "speedup": med[before] / med[now], "cpu_speedup": med_cpu[before] / med_cpu[now],
    }


def table(result: dict) -> str:
    m = result["machine"]
    before, now = LOOKUPS
    lines = [
        f"Gate lookup of the training update's LSTMs, {m['cpu']}, {m['threads']} torch thread, torch {m['torch']}; "
        f"medians of {result['cases'][0]['repeats']} alternating updates and at least 21 alternating lookups "
        f"(one LSTM's, forward and backward) each; load average {m['load_average_1min_at_start']:.2f} at "
        f"start, {result['load_average_at_end']:.2f} at end.",
        "",
        "| preset | batch x tokens x gates | lookup: gather ms | take_rows ms | speedup | update: before s | now s "
        "| speedup | update CPU: before s | now s | speedup | gradients equal |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for c in result["cases"]:
        la, u, uc = c["lookup_median_s"], c["median_s"], c["cpu_median_s"]
        lines.append(
            f"| {c['preset']} | {c['batch']} x {c['tokens']} x {c['gate_width']} | {1e3 * la[before]:.2f} | "
            f"{1e3 * la[now]:.2f} | {c['lookup_speedup']:.2f}x | {u[before]:.3f} | {u[now]:.3f} | "
            f"{c['speedup']:.2f}x | {uc[before]:.3f} | {uc[now]:.3f} | {c['cpu_speedup']:.2f}x | "
            f"{'bitwise' if c['gradients_bitwise_equal'] else 'NO'} |"
        )
    lines += ["", "Update: wall time; update CPU: this process's CPU time (another process that holds the core "
              "for a while adds to the wall time only)."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--presets", nargs="+", default=list(CASES), choices=list(CASES))
    p.add_argument("--repeats", type=positive_int, default=21, help="timed updates per lookup and preset")
    p.add_argument("--threads", type=positive_int, default=1)
    p.add_argument("--json", type=output_file, help="output path (default benchmarks/results/lookup_cpu.json)")
    args = p.parse_args(argv)
    run_ab_cases(args.presets, run_case, args.repeats, args.threads, table, args.json or RESULTS / "lookup_cpu.json")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
