"""Acting on top of a GlamorModel: closed loop, open loop and epsilon-greedy exploration.

- Closed loop (evaluation): replan at every step with the remaining horizon and execute the
  plan's first action; when the best plan is exactly one action, execute it and stop: the agent
  declares the goal reached.
- Open loop (training data collection): plan once at t = 0, execute the plan, then random
  actions for the rest of the episode. Epsilon-greedy on top, with the spec's schedule
  (`Config.epsilon`).

All methods take a batch of P environments: observations uint8 (P, S, H, W), goals uint8
(P, 1, H, W), as numpy arrays or tensors; `act` also takes one observation (S, H, W) and one
goal (1, H, W) or (H, W).

Without an environment: `Agent.load(run_dir_or_checkpoint)` rebuilds the model from a
checkpoint's config and weights (the replay stays on disk), so

    agent = Agent.load("runs/demo")
    action, stop = agent.act(frames, goal_image)   # uint8 (S, H, W) and (H, W)

and `load_agent(path)` gives whichever agent a run trained (a `glamor.gcsl.GCSLAgent` for a GCSL
baseline's run). What both agents share is in glamor/agent_base.py.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from glamor import planning
from glamor.agent_base import AgentBase, as_tensor, read_checkpoint
from glamor.gcsl import GCSLAgent
from glamor.goal_cache import GoalEncodingCache
from glamor.model import GlamorModel, autocast_off
from glamor.planning import Plan


class Agent(AgentBase):
    """A planner-driven agent.

    Example:
        >>> model = GlamorModel(4, 1, (22, 22), (4, 8, 8), 32, 32, 16)
        >>> agent = Agent(model, width=8)
        >>> agent
        Agent(method='beam', width=8, use_prior=True, gamma=0.99, backend='auto', seed=0, horizon=None, clip_logq=None, actions=4, device='cpu')
        >>> obs = np.zeros((3, 1, 22, 22), np.uint8)
        >>> actions, stop = agent.act(obs, obs, horizon=5)
        >>> actions.shape, stop.dtype
        ((3,), dtype('bool'))
    """

    def __init__(
        self,
        model: GlamorModel,
        *,
        method: str = "beam",
        width: int = 200,
        use_prior: bool = True,
        gamma: float = 0.99,
        backend: str = "auto",
        clip_logq: float | None = None,
        seed: int = 0,
        horizon: int | None = None,
        plan_seed: int | None = None,
        cache_goals: bool = True,
    ):
        self.check_network(model, "model")
        if method not in planning.METHODS:
            raise ValueError(f"method must be one of {planning.METHODS}, got {method!r}")
        if backend not in planning.BACKENDS:
            raise ValueError(f"backend must be one of {planning.BACKENDS}, got {backend!r}")
        _, width, gamma, clip_logq = planning.check_plan_args(1 if horizon is None else horizon, width, gamma,
                                                              clip_logq)
        if method == "beam" and horizon is not None:  # named here, not at the first plan (without a
            planning.check_beam_width(model.num_actions, horizon, width)  # horizon: at each plan's)
        use_prior = planning.check_use_prior(use_prior)
        seed = planning.check_seed("seed", seed)
        plan_seed = None if plan_seed is None else planning.check_seed("plan_seed", plan_seed)
        self.model = model
        self.cache_goals = self.check_cache_goals(cache_goals)
        self._goals = GoalEncodingCache()
        self.horizon = horizon
        self.method, self.width, self.use_prior = method, width, use_prior
        self.gamma, self.backend, self.clip_logq = gamma, backend, clip_logq
        self.rng = np.random.default_rng(seed)  # open-loop padding and exploration
        self.seed = seed  # the sampler's seed for keyed draws (`act(..., keys=)`)
        self._plan_seed = seed if plan_seed is None else plan_seed  # counts up by one per unkeyed planning call
        self.plans_made = 0

    def state_dict(self) -> dict:
        """What continues this agent's draws exactly: its generator, its next plan seed, its plan count."""
        return {"rng": self.rng.bit_generator.state, "plan_seed": self._plan_seed, "plans_made": self.plans_made}

    def load_state_dict(self, state: dict) -> None:
        self.rng.bit_generator.state = state["rng"]
        self._plan_seed, self.plans_made = state["plan_seed"], state["plans_made"]

    ALGO = "glamor"
    # The config fields an agent reads, and the argument each becomes.
    CONFIG_FIELDS = {"planner": "method", "plan_width": "width", "use_prior": "use_prior", "gamma": "gamma",
                     "backend": "backend", "seed": "seed", "horizon": "horizon", "clip_logq": "clip_logq"}

    @classmethod
    def model_class(cls) -> type:
        return GlamorModel

    def _horizon(self, horizon: int | None, caller: str) -> int:
        """`horizon`, or the agent's default one when None (ValueError where it has none)."""
        if horizon is None:
            if self.horizon is None:
                raise ValueError(f"{caller}() needs a horizon (this agent has no default one)")
            horizon = self.horizon
        return horizon

    def plan(self, obs, goal, horizon: int | None = None, keys=None) -> Plan:
        """Best plans (P of them) of at most `horizon` actions (default: the agent's `horizon`, as
        for `act`). `keys`: see `act`."""
        horizon = self._horizon(horizon, "plan")
        horizon = planning.check_plan_args(horizon, self.width, self.gamma, self.clip_logq)[0]  # before any encoder runs
        if self.method == "beam":
            planning.check_beam_width(self.num_actions, horizon, self.width)
        obs, goal = as_tensor(obs, "obs"), as_tensor(goal, "goal")
        self.model.check_images(obs, goal)
        if keys is not None:
            keys = planning.checked_plan_keys(keys, obs.shape[0], torch.device("cpu"), "keys").to(self.model.device)
            seed = self.seed  # the keys alone tell calls apart
        else:
            seed = self._plan_seed + 1  # fresh, reproducible draws for every sampling call
        with autocast_off(self.model.device):  # the planners read a float32 encoding (glamor/goal_cache.py)
            goal_rep = self._goals(self.model, goal) if self.cache_goals else None
        obs = obs.to(self.model.device)
        goal = goal if goal_rep is not None else goal.to(self.model.device)  # with goal_rep, only checked
        plan = self.model.plan(
            obs, goal, method=self.method, width=self.width, horizon=horizon, use_prior=self.use_prior,
            gamma=self.gamma, seed=seed, clip_logq=self.clip_logq, backend=self.backend,
            goal_rep=goal_rep, plan_keys=keys,
        )
        if keys is None:  # counted once planned: a call that raised (a Ctrl-C) leaves the next one's draws
            self._plan_seed = seed
        self.plans_made += obs.shape[0]
        return plan

    def act(self, obs, goal, horizon: int | None = None, keys=None):
        """Closed loop, one step: the first action of each best plan, and whether to stop
        after it (the best plan is that single action).

        Args:
            obs: uint8 (P, S, H, W), or one observation (S, H, W).
            goal: uint8 (P, 1, H, W), or one goal (1, H, W) or (H, W).
            horizon: most actions a plan may have (default: the agent's `horizon`, the episode
                length for an agent from `load` or `from_config`; an agent made without one needs it).
            keys: None, or P integers in [0, 2**32) (one int for one observation) that name
                each plan's draws: the sampling planner then draws from the agent's `seed` and
                the key alone, so a plan's candidates do not depend on the batch it is planned
                in or on the calls before. Give every (episode, step) its own key;
                `glamor.evaluate` uses goal index * episode length + step. Without keys every
                call draws afresh from a counter (reproducible for the same sequence of calls).

        Returns:
            actions int64 (P,), stop bool (P,); for one observation, an int and a bool.
        """
        obs, goal, keys, single = self._as_batch(obs, goal, keys)
        p = planning.on_host(self.plan(obs, goal, self._horizon(horizon, "act"), keys))
        actions, stop = p.actions[:, 0].numpy(), (p.lengths == 1).numpy()
        return (int(actions[0]), bool(stop[0])) if single else (actions, stop)

    def open_loop(self, obs, goal, horizon: int | None = None) -> np.ndarray:
        """Open loop: plans of `horizon` steps (default: the agent's `horizon`, as for `act`),
        padded with random actions.

        Returns:
            int64 (P, horizon): the plan's actions, then uniform random actions.
        """
        horizon = self._horizon(horizon, "open_loop")
        actions = planning.on_host(self.plan(obs, goal, horizon)).actions.numpy()
        random = self.rng.integers(self.num_actions, size=actions.shape)
        return np.where(actions >= 0, actions, random)


def agent_class(algo: str) -> type[Agent] | type[GCSLAgent]:
    """The agent that acts for runs of `Config.algo` (its `model_class()` is their network)."""
    return GCSLAgent if algo == "gcsl" else Agent


def load_agent(path: str | Path, device: str | torch.device = "cpu", **overrides) -> Agent | GCSLAgent:
    """The agent of whichever method a run trained: an `Agent` for a GLAMOR run, a
    `glamor.gcsl.GCSLAgent` for a GCSL one (both `act(obs, goal, horizon, keys)` alike).
    Arguments as `Agent.load`'s."""
    state, trained = read_checkpoint(path)
    return agent_class(trained.algo)._from_checkpoint(path, state, trained, device, overrides)
