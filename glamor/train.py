"""The training loop of the spec: collect open-loop, epsilon-greedy episodes towards training
goals, relabel them in hindsight, and fit the IDM and the prior by maximum likelihood.

One round: every environment resets (a fresh start) with a training goal drawn uniformly, the
agent plans once for all of them (one batched plan call), executes the plans with epsilon-greedy
exploration and random actions after each plan ends, and the episodes go to the replay. Then
`updates_per_episode` updates per collected episode (after `learning_starts`).

A run directory holds config.json, metrics.csv, tb/ (TensorBoard), checkpoint.pt (written
atomically) and eval.json.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from glamor import checkpoint, envs
from glamor.agent import Agent
from glamor.config import Config
from glamor.evaluate import evaluate, format_table, write_results
from glamor.goals import make_goal_set
from glamor.logger import Logger
from glamor.model import GlamorModel
from glamor.replay import Replay


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def make_envs(cfg: Config, count: int) -> list[envs.GoalEnv]:
    return [envs.make(cfg.env_id, cfg.episode_length, **cfg.env_kwargs) for _ in range(count)]


def build_model(cfg: Config, env: envs.GoalEnv) -> GlamorModel:
    return GlamorModel.from_config(cfg, env.action_space.n, env.frame_stack, env.frame_shape)


def eval_goal_sets(cfg: Config, env: envs.GoalEnv, count: int, progress: bool) -> dict:
    """The held-out goal sets of an environment: "eval", and "eval_moved" when objects can move."""
    sets = {"eval": make_goal_set(env, cfg, "eval", count, progress)}
    if env.moved_labels:
        sets["eval_moved"] = make_goal_set(env, cfg, "eval_moved", count, progress)
    return sets


class Trainer:
    """Owns the run's environments, model, optimiser, replay and counters."""

    def __init__(self, cfg: Config, run_dir: Path):
        self.cfg, self.run_dir = cfg, Path(run_dir)
        if cfg.torch_threads:
            torch.set_num_threads(cfg.torch_threads)
        torch.manual_seed(cfg.seed)
        self.rng = np.random.default_rng(cfg.seed)
        self.device = resolve_device(cfg.device)
        self.envs = make_envs(cfg, cfg.num_envs)
        env = self.envs[0]
        self.num_actions = env.action_space.n
        self.model = build_model(cfg, env).to(self.device)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.replay = Replay(cfg.replay_capacity, env.frame_shape, env.frame_stack, self.num_actions)
        self.agent = Agent.from_config(self.model, cfg)
        self.train_goals = make_goal_set(env, cfg, "train", progress=cfg.progress)
        self.env_step = 0
        self.updates = 0
        self._eval_sets = None
        self._plan_time, self._plans = 0.0, 0
        self._update_credit = 0.0

    # ---- collection ---------------------------------------------------------------------
    def collect_round(self) -> int:
        """One open-loop, epsilon-greedy episode per environment; returns env steps taken."""
        cfg, k = self.cfg, self.cfg.episode_length
        picks = self.rng.integers(len(self.train_goals), size=len(self.envs))
        obs = [env.reset(seed=int(self.rng.integers(2**31)), options={"goal": self.train_goals[int(i)]})[0]
               for env, i in zip(self.envs, picks)]
        epsilon = cfg.epsilon(self.env_step)
        if self.env_step < cfg.learning_starts or epsilon >= 1.0:
            actions = self.rng.integers(self.num_actions, size=(len(self.envs), k))
        else:
            self.model.eval()
            o = np.stack([x["observation"] for x in obs])  # (E, S, H, W)
            g = np.stack([x["desired_goal"] for x in obs])  # (E, 1, H, W)
            t0 = time.perf_counter()
            actions = self.agent.open_loop(o, g, horizon=k)  # (E, k)
            self._plan_time += time.perf_counter() - t0
            self._plans += len(self.envs)
            self.model.train()
        actions = self.agent.epsilon_greedy(actions, epsilon)
        taken = 0
        for e, env in enumerate(self.envs):
            frames, acts = [obs[e]["observation"][-1]], []
            for t in range(k):
                o, _, terminated, truncated, _ = env.step(int(actions[e, t]))
                frames.append(o["observation"][-1])
                acts.append(int(actions[e, t]))
                if terminated or truncated:
                    break
            self.replay.add_episode(np.stack(frames), np.array(acts))
            taken += len(acts)
        self.env_step += taken
        return taken

    # ---- learning -----------------------------------------------------------------------
    def update(self) -> dict[str, float]:
        cfg = self.cfg
        obs, goal, targets, k = self.replay.sample(cfg.batch_size, cfg.episode_length, self.rng)
        T = int(k.max()) + 1  # the longest target in the batch; the rest is PAD
        to = lambda x: torch.from_numpy(x).to(self.device)  # noqa: E731
        losses = self.model.loss(to(obs), to(goal), to(targets[:, :T]))
        if not torch.isfinite(losses["loss"]):
            raise FloatingPointError(
                f"non-finite loss {losses['loss'].item()} at env step {self.env_step}; "
                f"the last good checkpoint in {self.run_dir} is kept"
            )
        self.optimizer.zero_grad(set_to_none=True)
        losses["loss"].backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
        self.optimizer.step()
        self.updates += 1
        return {name: v.item() for name, v in losses.items()}

    # ---- checkpoints --------------------------------------------------------------------
    def save(self) -> None:
        env = self.envs[0]
        checkpoint.atomic_save(
            {
                "config": self.cfg.to_dict(),
                "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "env_step": self.env_step,
                "updates": self.updates,
                "model_meta": {"num_actions": self.num_actions, "frame_stack": env.frame_stack,
                               "image_hw": list(env.frame_shape)},
            },
            self.run_dir / "checkpoint.pt",
        )

    def evaluate(self, episodes: int) -> dict:
        if self._eval_sets is None:
            self._eval_sets = eval_goal_sets(self.cfg, self.envs[0], self.cfg.eval_episodes, self.cfg.progress)
        sets = {name: s.subset(np.arange(min(episodes, len(s)))) for name, s in self._eval_sets.items()}
        eval_envs = make_envs(self.cfg, min(self.cfg.eval_batch, episodes))
        return evaluate(self.model, self.cfg, eval_envs, sets, progress=False)

    # ---- the loop -----------------------------------------------------------------------
    def run(self) -> dict:
        cfg = self.cfg
        logger = Logger(self.run_dir)
        bar = tqdm(total=cfg.total_env_steps, unit="step", disable=not cfg.progress, dynamic_ncols=True)
        next_eval = cfg.eval_every if cfg.eval_every > 0 else math.inf
        next_snapshot, next_log = cfg.snapshot_every, 0
        self._plan_time, self._plans = 0.0, 0
        window: dict[str, list[float]] = {}
        t_last, steps_last, updates_last, last_success = time.time(), 0, 0, None
        try:
            while self.env_step < cfg.total_env_steps:
                taken = self.collect_round()
                bar.update(taken)
                if self.env_step >= cfg.learning_starts:
                    self._update_credit += cfg.updates_per_episode * len(self.envs)
                    for _ in range(int(self._update_credit)):
                        self._update_credit -= 1
                        for name, v in self.update().items():
                            window.setdefault(name, []).append(v)
                if self.env_step >= next_log and window:
                    now = time.time()
                    metrics = {
                        "losses/idm": np.mean(window["idm"]),
                        "losses/prior": np.mean(window["prior"]),
                        "losses/total": np.mean(window["loss"]),
                        "charts/epsilon": cfg.epsilon(self.env_step),
                        "charts/env_steps_per_s": (self.env_step - steps_last) / (now - t_last),
                        "charts/updates_per_s": (self.updates - updates_last) / (now - t_last),
                    }
                    if self._plans:
                        metrics["planner/plans_per_s"] = self._plans / self._plan_time
                    logger.log(self.env_step, metrics)
                    bar.set_postfix(loss=f"{metrics['losses/total']:.3f}", success=last_success)
                    window, t_last, steps_last, updates_last = {}, now, self.env_step, self.updates
                    self._plan_time, self._plans = 0.0, 0
                    next_log = self.env_step + max(cfg.total_env_steps // 100, 1)
                if self.env_step >= next_eval:
                    res = self.evaluate(cfg.eval_episodes_during_training)
                    last_success = f"{res['success_rate']:.2f}"
                    logger.log(self.env_step, {"eval/success_rate": res["success_rate"],
                                               "eval/success_rate_no_prior": res["success_rate_no_prior"],
                                               "eval/random_success_rate": res["random_success_rate"]})
                    bar.set_postfix(success=last_success)
                    next_eval += cfg.eval_every
                if self.env_step >= next_snapshot:
                    self.save()
                    next_snapshot += cfg.snapshot_every
            self.save()
            bar.close()
            results = self.evaluate(cfg.eval_episodes)
            results.update(env_steps=self.env_step, updates=self.updates)
            logger.log(self.env_step, {"eval/success_rate": results["success_rate"],
                                       "eval/success_rate_no_prior": results["success_rate_no_prior"],
                                       "eval/random_success_rate": results["random_success_rate"]})
            write_results(self.run_dir, results)
            return results
        finally:
            bar.close()
            logger.close()


def prepare_run_dir(run_dir: str | Path, overwrite: bool) -> Path:
    run_dir = Path(run_dir)
    if run_dir.exists() and any(run_dir.iterdir()):
        if not overwrite:
            raise FileExistsError(f"run directory {run_dir} is not empty; pass --overwrite to replace it")
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    return run_dir


def train(cfg: Config, run_dir: str | Path, overwrite: bool = False) -> dict:
    """Train a GLAMOR agent in `run_dir`, evaluate it, and return the eval.json dict."""
    run_dir = prepare_run_dir(run_dir, overwrite)
    cfg.save(run_dir / "config.json")
    t0 = time.time()
    results = Trainer(cfg, run_dir).run()
    results["train_wall_time_s"] = time.time() - t0
    write_results(run_dir, results)
    if cfg.progress:
        print(format_table(results))
        print(json.dumps({k: results[k] for k in ("success_rate", "ci95", "episodes", "success_rate_no_prior",
                                                   "random_success_rate")}))
    return results
