"""Closed-loop acting speed: `Agent.act` with the goal encoding cached against encoding the goals at
every step.

A closed loop (evaluation, or planning from a trained model in your own code) replans at every
environment step from a new observation towards the same goals. Each plan call runs both
encoders, the state mix, the gate tables and the planner; the goal encoder's output depends on the
goals and the weights only, so `glamor.agent.Agent` (cache_goals=True, the default) encodes a goal
batch once and reuses it while the batch and the goal encoder's weights are unchanged. The
benchmark first checks that both agents decide alike (bitwise: plans' actions, lengths and
scores; GCSL's actions) on the same observations, then times act() calls, alternating the two agents in one process (a new
observation batch each step, the same goals), and reports medians and their ratio.

The GCSL baseline's agent (glamor/gcsl.py) caches the same way; its act() is one forward pass
of the policy, so the goal encoder is a larger share of it.

Cases: the paper configuration (Atari sizes: 18 actions, 4 stacked 80x104 frames, embedding 512,
sampling 200 candidates, horizon 50) for 1 and 16 environments, the demo's gridworld model (its
preset: beam search of 32, horizon 12) with 1 environment, and GCSL on the gridworld preset with
200 environments (evaluation's batch; GCSL never stops early, so the batch stays whole). Untrained
weights.

Writes benchmarks/results/act_cpu.md and .json.

Example:
    python benchmarks/bench_act.py                          # about a minute
    glamor bench act --repeats 3 --json /tmp/act.json       # a smoke run
"""

from __future__ import annotations

import argparse
import shlex
import statistics
import sys
import time

import numpy as np
import torch
from bench_args import output_file, positive_int
from bench_planner import RESULTS, run_ab_cases

from glamor.agent import Agent
from glamor.config import preset
from glamor.gcsl import GCSLPolicy
from glamor.model import GlamorModel
from glamor.train import build_agent

# name -> (preset, algo, actions, frame stack, frame (H, W), environments)
CASES = {
    "paper, 1 env": ("atari", "glamor", 18, 4, (80, 104), 1),
    "paper, 16 envs": ("atari", "glamor", 18, 4, (80, 104), 16),
    "gridworld demo, 1 env": ("gridworld", "glamor", 4, 1, (22, 22), 1),
    "GCSL, gridworld, 200 envs": ("gridworld", "gcsl", 4, 1, (22, 22), 200),
}
AGENTS = ("encode every step", "goal cached")


def decisions(agent, obs, goal, horizon: int) -> tuple[torch.Tensor, ...]:
    """What the agent decides: GLAMOR's best plans (actions, lengths, scores), GCSL's actions."""
    if isinstance(agent, Agent):
        p = agent.plan(obs, goal, horizon)
        return p.actions, p.lengths, p.scores
    return (torch.as_tensor(agent.policy_actions(obs, goal)),)


def run_case(name: str, repeats: int) -> dict:
    preset_name, algo, n, stack, hw, envs = CASES[name]
    cfg = preset(preset_name, algo=algo)
    torch.manual_seed(0)
    model = (GCSLPolicy if algo == "gcsl" else GlamorModel).from_config(cfg, n, stack, hw).eval()
    rng = np.random.default_rng(1)
    goal = rng.integers(0, 256, (envs, 1, *hw), dtype=np.uint8)
    observations = [rng.integers(0, 256, (envs, stack, *hw), dtype=np.uint8) for _ in range(8)]
    agents = {label: build_agent(model, cfg, cache_goals=label == "goal cached") for label in AGENTS}

    made = {label: [decisions(agent, o, goal, cfg.horizon) for o in observations] for label, agent in agents.items()}
    equal = all(all(torch.equal(x, y) for x, y in zip(a, b)) for a, b in zip(*made.values()))
    if not equal:
        raise AssertionError(f"{name}: the cached and uncached agents decide differently")

    times = {label: [] for label in AGENTS}
    for step in range(repeats):  # alternating, so drifts of a shared machine hit both alike
        obs = observations[step % len(observations)]
        order = list(agents.items())
        for label, agent in order if step % 2 == 0 else order[::-1]:  # neither always runs on warm caches
            t0 = time.perf_counter()
            agent.act(obs, goal, cfg.horizon)
            times[label].append(time.perf_counter() - t0)
    goal_t = torch.as_tensor(goal)
    encode = []
    for _ in range(min(repeats, 20)):  # what the cache saves per step: one goal-encoder pass
        t0 = time.perf_counter()
        with torch.no_grad():
            model.encode_goal(goal_t)
        encode.append(time.perf_counter() - t0)
    med = {label: statistics.median(v) for label, v in times.items()}
    return {
        "case": name, "preset": preset_name, "algo": algo, "environments": envs, "actions": n,
        "frames": [stack, *hw], "planner": cfg.planner if algo == "glamor" else f"GCSL {cfg.gcsl_act}",
        "width": cfg.plan_width, "horizon": cfg.horizon,
        "decisions_bitwise_equal": equal, "repeats": repeats, "median_s": med, "times_s": times,
        "speedup": med[AGENTS[0]] / med[AGENTS[1]], "goal_encoder_median_s": statistics.median(encode),
    }


def agent_label(c: dict) -> str:
    return c["planner"] if c["algo"] == "gcsl" else f"{c['planner']} {c['width']}, horizon {c['horizon']}"


def table(result: dict) -> str:
    m = result["machine"]
    lines = [
        f"Closed-loop act() per step, {m['cpu']}, {m['threads']} torch threads, torch {m['torch']}, native "
        f"planner ({m['native_isa']}); median of {result['cases'][0]['repeats']} alternating steps each; load "
        f"average {m['load_average_1min_at_start']:.2f} at start, {result['load_average_at_end']:.2f} at end.",
        "",
        "| case | agent | encode every step ms | goal cached ms | speedup | goal encoder alone ms | decisions equal |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    for c in result["cases"]:
        med = c["median_s"]
        lines.append(
            f"| {c['case']} | {agent_label(c)} | {1e3 * med[AGENTS[0]]:.2f} | "
            f"{1e3 * med[AGENTS[1]]:.2f} | {c['speedup']:.2f}x | {1e3 * c['goal_encoder_median_s']:.2f} | "
            f"{'bitwise' if c['decisions_bitwise_equal'] else 'NO'} |"
        )
    lines += ["", f"Written by `{result['command']}`. 'goal encoder alone': model.encode_goal of the goal batch, "
              "timed after the steps (what the cache saves per step)."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    p.add_argument("--repeats", type=positive_int, default=100, help="timed steps per agent and case")
    p.add_argument("--threads", type=positive_int, default=torch.get_num_threads())
    p.add_argument("--json", type=output_file, help="output path (default benchmarks/results/act_cpu.json)")
    args = p.parse_args(argv)
    run_ab_cases(args.cases, run_case, args.repeats, args.threads, table, args.json or RESULTS / "act_cpu.json",
                 command=shlex.join(["python", "benchmarks/bench_act.py", *(sys.argv[1:] if argv is None else argv)]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
