"""Training-update speed on the CPU: GLAMOR's teacher-forced LSTMs, before and after unbind.

A training update (glamor.train.Trainer.update) is the loss (both encoders, both LSTMs over T
tokens), its backward, gradient clipping and an Adam step. The LSTMs step through the (B, T, 4H)
input-gate tensor one token at a time. Taking step t as `gate_in[:, t]` (the earlier code, kept
here as the baseline) makes each of the T selects' backward fill and add a whole (B, T, 4H)
gradient, which grows as T^2; `gate_in.unbind(1)` (glamor.model.TokenLSTM.forward now) has one
stack as its backward. Same arithmetic: the benchmark first checks that the loss and every
gradient are bitwise equal, then times whole updates, alternating the two forwards in one
process (each goes first in turn: the second of a pair runs on the caches and allocator blocks
the first left), and reports medians and their ratio for the demo's preset and the paper's CPU
presets.

Writes benchmarks/results/update_cpu.md and .json.

Example:
    python benchmarks/bench_update.py                 # ~2 minutes on one thread
    python benchmarks/bench_update.py --repeats 2 --presets gridworld --json /tmp/u.json   # a smoke run
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from bench_args import output_file, positive_int
from bench_planner import RESULTS, run_ab_cases

from glamor.config import preset
from glamor.model import GlamorModel, TokenLSTM, take_rows
from glamor.planning.reference import lstm_step

# preset -> (actions, frame stack, frame (H, W), k): the sizes its environment gives
# (gridworld; Seaquest's 18 actions; point_mass's 9 discretised actions), frames as the presets set.
CASES = {
    "gridworld": (4, 1, (22, 22), 12),
    "atari_cpu": (18, 4, (40, 52), 50),
    "control_cpu": (9, 4, (40, 52), 100),
}


def select_forward(self: TokenLSTM, cond: torch.Tensor, prev_tokens: torch.Tensor) -> torch.Tensor:
    """The baseline: TokenLSTM.forward as it was, stepping with gate_in[:, t] (its lookup is
    today's, take_rows, so that the two forwards differ in the stepping alone: bench_lookup.py
    times the lookup)."""
    gate_in = take_rows(self.gate_table(cond), prev_tokens)
    h, c = self.initial_state(cond)
    hs = []
    for t in range(prev_tokens.shape[1]):
        h, c = lstm_step(gate_in[:, t], h, c, self.cell.weight_hh)
        hs.append(h)
    return self.head(torch.stack(hs, dim=1))


def batch(name: str, gen: torch.Generator):
    """A training batch at the preset's sizes: hindsight lengths k uniform in [0, k_max]."""
    n, stack, (H, W), k_max = CASES[name]
    B = preset(name).batch_size
    obs = torch.randint(0, 256, (B, stack, H, W), dtype=torch.uint8, generator=gen)
    goal = torch.randint(0, 256, (B, 1, H, W), dtype=torch.uint8, generator=gen)
    k = torch.randint(0, k_max + 1, (B,), generator=gen)
    T = int(k.max()) + 1
    targets = torch.full((B, T), n + 1)  # PAD
    for i, ki in enumerate(k.tolist()):
        targets[i, :ki] = torch.randint(0, n, (ki,), generator=gen)
        targets[i, ki] = n  # END
    return obs, goal, targets


def training_case(name: str):
    """(cfg, model, optimizer, obs, goal, targets) at the preset's sizes: a GlamorModel (seed 0)
    with its AdamW as glamor.train.Trainer makes it, and a batch (seed 1)."""
    n, stack, hw, _ = CASES[name]
    cfg = preset(name)
    torch.manual_seed(0)
    model = GlamorModel.from_config(cfg, n, stack, hw)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    return (cfg, model, opt, *batch(name, torch.Generator().manual_seed(1)))


def training_update(cfg, model, opt, obs, goal, targets) -> None:
    """One update as glamor.train.Trainer.update runs it: loss, backward, clip, optimizer step."""
    opt.zero_grad(set_to_none=True)
    model.loss(obs, goal, targets)["loss"].backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
    opt.step()


def run_case(name: str, repeats: int) -> dict:
    n, stack, hw, _ = CASES[name]
    cfg = preset(name)
    torch.manual_seed(0)
    model = GlamorModel.from_config(cfg, n, stack, hw)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    obs, goal, targets = batch(name, torch.Generator().manual_seed(1))
    forwards = {"select (before)": select_forward, "unbind (now)": TokenLSTM.forward}

    def grads(fwd):
        TokenLSTM.forward = fwd
        model.zero_grad(set_to_none=True)
        loss = model.loss(obs, goal, targets)["loss"]
        loss.backward()
        return loss.detach().clone(), [p.grad.clone() for p in model.parameters()]

    try:
        (l0, g0), (l1, g1) = (grads(f) for f in forwards.values())
        equal = torch.equal(l0, l1) and all(torch.equal(a, b) for a, b in zip(g0, g1))
        if not equal:
            raise AssertionError(f"{name}: the two forwards give different losses or gradients")

        def update(fwd) -> float:
            TokenLSTM.forward = fwd
            t0 = time.perf_counter()
            opt.zero_grad(set_to_none=True)
            model.loss(obs, goal, targets)["loss"].backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            opt.step()
            return time.perf_counter() - t0

        times = {k: [] for k in forwards}
        for _ in range(2):  # warm-up
            for f in forwards.values():
                update(f)
        order = list(forwards.items())
        for step in range(repeats):  # alternating, so drifts of a shared machine hit both alike,
            for k, f in order if step % 2 == 0 else order[::-1]:  # and each goes first in turn
                times[k].append(update(f))
    finally:
        TokenLSTM.forward = forwards["unbind (now)"]
    med = {k: statistics.median(v) for k, v in times.items()}
    return {
        "preset": name, "batch": tuple(targets.shape)[0], "tokens": targets.shape[1], "actions": n,
        "gradients_bitwise_equal": equal, "repeats": repeats,
        "median_s": med, "times_s": times,
        "speedup": med["select (before)"] / med["unbind (now)"],
    }


def table(result: dict) -> str:
    m = result["machine"]
    lines = [
        f"Training update (loss, backward, clip, Adam step), {m['cpu']}, {m['threads']} torch thread, "
        f"torch {m['torch']}; median of {result['cases'][0]['repeats']} alternating updates each; "
        f"load average {m['load_average_1min_at_start']:.2f} at start, {result['load_average_at_end']:.2f} at end.",
        "",
        "| preset | batch x tokens | actions | select (before) s | unbind (now) s | speedup | gradients equal |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    for c in result["cases"]:
        lines.append(
            f"| {c['preset']} | {c['batch']} x {c['tokens']} | {c['actions']} | "
            f"{c['median_s']['select (before)']:.3f} | {c['median_s']['unbind (now)']:.3f} | "
            f"{c['speedup']:.2f}x | {'bitwise' if c['gradients_bitwise_equal'] else 'NO'} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--presets", nargs="+", default=list(CASES), choices=list(CASES))
    p.add_argument("--repeats", type=positive_int, default=9, help="timed updates per forward and preset")
    p.add_argument("--threads", type=positive_int, default=1)
    p.add_argument("--json", type=output_file, help="output path (default benchmarks/results/update_cpu.json)")
    args = p.parse_args(argv)
    run_ab_cases(args.presets, run_case, args.repeats, args.threads, table, args.json or RESULTS / "update_cpu.json")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
