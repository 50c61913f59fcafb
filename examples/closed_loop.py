"""Plan from a trained model in your own code: a closed loop on the environment it was trained on.

Load the agent from a run directory (its newest checkpoint; no replay, no trainer), then at every
step show it the current frames and the goal image and take the first action of its best plan;
it says when it believes the goal is reached (its best plan is that one action). The environment
judges success by its labels at the end, which the agent never sees. A GCSL baseline's run
(`--algo gcsl`) loads its policy instead, which acts alike but never stops early::

    make demo                                   # trains runs/demo on the gridworld
    .venv/bin/python examples/closed_loop.py runs/demo --episodes 20

Each episode resets with its own seed; the environment draws its goal from a random rollout of
`episode_length` steps from there (the spec's goal distribution), so the goal is reachable. The
agent encodes an episode's goal once (`Agent` caches it) and replans from each new observation.
Each step's plan draws with its own key (episode * k + step), the evaluator's keys, so with a
sampling planner too an episode acts as `glamor eval` acts on the same goal.
"""

from __future__ import annotations

import argparse
import time

from glamor import envs
from glamor.agent import Agent, load_agent
from glamor.gcsl import GCSLAgent
from glamor.goals import label_ranges_for


def run_episode(agent: Agent | GCSLAgent, env, seed: int, k: int, episode: int = 0) -> dict:
    """One closed-loop episode of at most k steps: steps taken, whether the agent stopped itself,
    whether the environment ended it before the k steps (an Atari life loss), the judge's
    verdict. `episode` numbers the episode's draw keys."""
    obs, info = env.reset(seed=seed)
    goal = obs["desired_goal"]  # (1, H, W): the goal image, fixed for the episode
    for t in range(k):
        # frames (S, H, W) and the goal: the first action of the best plan of at most k - t actions
        action, stop = agent.act(obs["observation"], goal, horizon=k - t, keys=episode * k + t)
        obs, _, terminated, truncated, info = env.step(action)
        if stop or terminated or truncated:
            break
    # at the last step the horizon is 1, so every plan is one action: stopping there is not a claim
    return {"seed": seed, "steps": t + 1, "stopped": bool(stop and t + 1 < k),
            "ended": bool(terminated and t + 1 < k), "success": info["is_success"]}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("run_dir", help="a glamor run directory (or a checkpoint file)")
    p.add_argument("--episodes", type=int, default=20)
    p.add_argument("--first-seed", type=int, default=10_000, help="reset seeds first-seed, first-seed + 1, ...")
    p.add_argument("--device", default="cpu")
    args = p.parse_args(argv)
    if args.episodes < 1:
        p.error(f"--episodes must be >= 1, got {args.episodes}")
    if args.first_seed < 0:  # reset seeds are >= 0
        p.error(f"--first-seed must be >= 0, got {args.first_seed}")
    try:
        agent = load_agent(args.run_dir, device=args.device)  # an Agent, or a GCSLAgent for a GCSL run
    except (OSError, ValueError) as e:  # no run there, a damaged checkpoint: the message says which
        p.error(str(e))
    cfg = agent.config
    try:  # an environment of your own whose module is not on PYTHONPATH, a suite's missing package
        env = envs.make(cfg.env_id, cfg.episode_length, **cfg.env_kwargs)
    except (ImportError, ValueError) as e:  # the message says what to install or put on PYTHONPATH
        p.error(str(e))
    # an environment edited since the run trained: more actions would go unused without a word
    got = {"actions": int(env.action_space.n), "frame_stack": env.frame_stack, "frames": tuple(env.frame_shape)}
    want = {"actions": agent.num_actions, "frame_stack": agent.model.frame_stack, "frames": tuple(agent.model.image_hw)}
    if got != want:
        env.close()
        p.error(f"{cfg.env_id} with env_kwargs {cfg.env_kwargs} now gives {got}, but the model was trained on {want}")
    # the evaluator's judge: ranges estimated from random rollouts (cached by training), not the
    # placeholders an environment with estimate_label_ranges declares (puck_env, Atari, Control);
    # where they are not cached (a run copied from another machine) the estimate shows a progress
    # bar: 500 rollouts of a control task take minutes
    env.label_ranges = label_ranges_for(env, cfg, progress=True)
    try:
        successes, t0 = 0, time.perf_counter()
        for i in range(args.episodes):
            r = run_episode(agent, env, args.first_seed + i, cfg.episode_length, episode=i)
            successes += r["success"]
            how = "stopped itself" if r["stopped"] else "the environment ended it" if r["ended"] else "used every step"
            print(f"episode {i}: seed {r['seed']}, {r['steps']} steps, {how}, "
                  f"{'reached the goal' if r['success'] else 'missed'}", flush=True)
        wall = time.perf_counter() - t0
    finally:
        env.close()
    planner = isinstance(agent, Agent)  # a GCSL policy makes one decision per step, no plan
    what, how = ("plans", f"{agent.method} {agent.width}") if planner else ("decisions", f"GCSL, {agent.mode}")
    print(f"{cfg.env_id}: {successes}/{args.episodes} goals reached; {agent.plans_made} {what} in {wall:.1f} s "
          f"({agent.plans_made / wall:.0f} {what}/s, {how})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
