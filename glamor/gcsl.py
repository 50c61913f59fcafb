"""GCSL, the model-free baseline: a goal-conditioned policy pi(a | s, g) trained by supervised
learning on relabelled experience (Ghosh et al., "Learning to Reach Goals via Iterated
Supervised Learning", ICLR 2021).

Same inputs as GLAMOR: the observation and the goal go through the same encoders (two Impala
networks, not weight-shared) and the same state mix; a linear head gives n action logits. The
replay's hindsight sampler supplies (s_t, g = frame k steps ahead, targets); GCSL's label is
targets[:, 0] = a_t, the first action towards that goal. Samples with k = 0 (the last
observation of an episode, whose target is END alone) carry no action and are left out.

Acting: greedy (argmax) or sampled from the softmax (`Config.gcsl_act`). GCSL has no notion of
having arrived, so it never stops early: evaluation runs it for the fixed horizon. Data is
collected closed loop with the policy itself and the same epsilon schedule as GLAMOR.

`Config.gcsl_time` gives the policy the steps left to reach the goal, pi(a | s, g, h) (the GCSL
paper's time-varying policy): in training h is k, the steps between the observation and its
relabelled goal; in acting, the steps left in the episode (an evaluation goal is k steps from
the episode's start, or fewer where its rollout ended early, an Atari life loss: the policy is then
told more steps are left than the goal's rollout took). h enters as sinusoidal features through a linear map added to the
state mix's input; the map starts at zero, so an untrained time-conditioned policy acts like the
plain one. Without it the policy cannot tell "arrive now" from "arrive later", yet success is
judged at the episode's last step.

Example:
    >>> import numpy as np
    >>> policy = GCSLPolicy(4, 1, (22, 22), encoder_channels=(4, 8), embed_dim=32, mix_hidden=32)
    >>> agent = GCSLAgent(policy)
    >>> obs = np.zeros((3, 1, 22, 22), np.uint8)
    >>> actions, stop = agent.act(obs, obs, horizon=5)
    >>> actions.shape, bool(stop.any())
    ((3,), False)
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from glamor import planning
from glamor.agent_base import AgentBase, as_tensor
from glamor.goal_cache import GoalEncodingCache
from glamor.nn.goal_conditioned import GoalConditioned, float32_weights
from glamor.planning.rng import GCSL_STREAM, key_uniforms

IGNORE = -100  # cross_entropy's ignore_index: samples without an action (k = 0)
STEP_FEATURES = 32  # sinusoidal features of the steps left (time-conditioned policies)


def steps_features(steps: torch.Tensor) -> torch.Tensor:
    """(B,) steps left -> (B, STEP_FEATURES) float32: sin and cos of steps / 1000^(i / 16), i < 16
    (periods from 2 pi to about 4,100 steps: any horizon up to thousands of steps is told apart)."""
    rates = 1000.0 ** (-torch.arange(STEP_FEATURES // 2, device=steps.device, dtype=torch.float32)
                       / (STEP_FEATURES // 2))  # (F/2,)
    angles = steps.to(torch.float32)[:, None] * rates  # (B, F/2)
    return torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)


def gcsl_labels(targets: torch.Tensor, num_actions: int) -> torch.Tensor:
    """(B, T) relabelled token targets -> (B,) action labels: a_t, or IGNORE where k = 0
    (the first token is END)."""
    first = targets[:, 0]
    return torch.where(first < num_actions, first, torch.full_like(first, IGNORE))


def steps_left_tensor(steps, num_obs: int) -> torch.Tensor:
    """int64 (num_obs,) from `steps`, the steps left (the horizon): one int for every
    observation, or one per observation; each an integer >= 1."""
    a = np.asarray(steps)
    if a.dtype.kind not in "iu" and not (a.size == 0 and a.dtype.kind == "f"):  # (np.asarray([]) is float64)
        raise ValueError(f"horizon (the steps left) must be an integer >= 1, or one per observation, got {steps!r}")
    if a.ndim > 1 or (a.ndim == 1 and a.shape != (num_obs,)):
        raise ValueError(f"horizon (the steps left) must be one integer or {num_obs} (one per observation), "
                         f"got shape {a.shape}")
    if bool((a < 1).any()):
        raise ValueError(f"horizon (the steps left) must be >= 1, got {steps!r}")
    return torch.from_numpy(np.broadcast_to(a.astype(np.int64), (num_obs,)).copy())


def gcsl_steps(targets: torch.Tensor, num_actions: int) -> torch.Tensor:
    """(B, T) relabelled token targets -> (B,) int64 k: the actions before END, i.e. the steps
    from the observation to its goal (0 where the first token is END)."""
    return (targets < num_actions).sum(dim=1)


class GCSLPolicy(GoalConditioned):
    """pi(a | s, g), or pi(a | s, g, h) with `time_conditioned` (h: steps left): Impala encoders of
    obs and goal, GLAMOR's state mix, a linear head."""

    CONFIG_FIELDS = ("encoder_channels", "embed_dim", "mix_hidden", "gcsl_time")  # what from_config reads

    def __init__(
        self,
        num_actions: int,
        frame_stack: int,
        image_hw: tuple[int, int],
        encoder_channels: tuple[int, ...] = (16, 32, 32),
        embed_dim: int = 512,
        mix_hidden: int = 256,
        time_conditioned: bool = False,
    ):
        super().__init__(num_actions, frame_stack, image_hw, encoder_channels, embed_dim, mix_hidden)
        if not isinstance(time_conditioned, bool):
            raise ValueError(f"time_conditioned must be True or False, got {time_conditioned!r}")
        num_actions, embed_dim = self.sizes["num_actions"], self.sizes["embed_dim"]
        self.time_conditioned = time_conditioned
        self.head = nn.Linear(embed_dim, num_actions)
        if time_conditioned:  # steps-left features -> the state mix's input (obs_rep, goal_rep)
            self.steps_in = nn.Linear(STEP_FEATURES, 2 * embed_dim)
            nn.init.zeros_(self.steps_in.weight)
            nn.init.zeros_(self.steps_in.bias)

    @classmethod
    def from_config(cls, cfg, num_actions: int, frame_stack: int, image_hw) -> GCSLPolicy:
        """A run's policy (float32 whatever torch's default dtype: see `float32_weights`)."""
        with float32_weights():
            return cls(num_actions, frame_stack, image_hw, encoder_channels=cfg.encoder_channels,
                       embed_dim=cfg.embed_dim, mix_hidden=cfg.mix_hidden, time_conditioned=cfg.gcsl_time)

    def forward(self, obs: torch.Tensor, goal: torch.Tensor, goal_rep: torch.Tensor | None = None,
                steps: torch.Tensor | None = None) -> torch.Tensor:
        """uint8 obs (B, S, H, W) and goal (B, 1, H, W) -> action logits (B, n); `goal_rep` (B, D),
        when given, is `encode_goal(goal)` computed earlier (and `goal` is not read). `steps`
        (B,) int, the steps left to reach the goal (>= 1), is needed by a time-conditioned policy
        and refused by a plain one."""
        if self.time_conditioned != (steps is not None):
            raise ValueError("a time-conditioned GCSL policy needs steps (the steps left to the goal)"
                             if self.time_conditioned else "this GCSL policy is not time-conditioned: pass no steps")
        obs_rep = torch.relu(self.obs_encoder(obs))  # (B, D)
        if goal_rep is None:
            goal_rep = self.encode_goal(goal)  # (B, D)
        mix_in = torch.cat([obs_rep, goal_rep], dim=1)  # (B, 2D)
        if steps is not None:
            if steps.shape != (mix_in.shape[0],):
                raise ValueError(f"steps must have shape ({mix_in.shape[0]},), one per observation; got "
                                 f"{tuple(steps.shape)}")
            mix_in = mix_in + self.steps_in(steps_features(steps.to(mix_in.device)))
        return self.head(self.state_mix(mix_in))  # (B, n)

    def loss(self, obs, goal, targets) -> dict[str, torch.Tensor]:
        """Cross-entropy of a_t = targets[:, 0] given (s_t, g), over the samples with k >= 1.

        Args:
            obs: uint8 (B, S, H, W); goal: uint8 (B, 1, H, W).
            targets: int64 (B, T) from `Replay.sample` (actions, END, PAD).

        Returns:
            {"loss"}: a scalar (0 when no sample has an action).
        """
        labels = gcsl_labels(targets, self.num_actions)  # (B,)
        steps = gcsl_steps(targets, self.num_actions) if self.time_conditioned else None  # (B,)
        logits = self(obs, goal, steps=steps)  # (B, n)
        if not bool((labels != IGNORE).any()):
            return {"loss": logits.sum() * 0.0}
        return {"loss": F.cross_entropy(logits, labels, ignore_index=IGNORE)}


class GCSLAgent(AgentBase):
    """Acts with a GCSLPolicy: `act` for evaluation (never stops early), `epsilon_greedy` for
    exploration. Has `state_dict` / `load_state_dict` like `glamor.agent.Agent`, so the trainer
    checkpoints both alike.

    Args:
        policy: the network.
        mode: "greedy" (argmax) or "sample" (from the softmax, with this agent's generator).
        seed: seeds the sampling and exploration draws.
        horizon: the episode's steps: the steps left a time-conditioned policy starts from when
            `act` is given none (an agent from `load` or `from_config` has the episode length).
        cache_goals: encode a batch of goals once while it comes back unchanged, as
            `glamor.agent.Agent` does (glamor/goal_cache.py); the same actions either way.
    """

    def __init__(self, policy: GCSLPolicy, *, mode: str = "greedy", seed: int = 0, horizon: int | None = None,
                 cache_goals: bool = True):
        self.check_network(policy, "policy")
        if mode not in ("greedy", "sample"):
            raise ValueError(f"mode must be 'greedy' or 'sample', got {mode!r}")
        seed = planning.check_seed("seed", seed)
        if horizon is not None:  # the episode's steps (what a time-conditioned policy counts down)
            horizon = planning.check_plan_args(horizon, 1, 1.0)[0]
        self.model, self.mode, self.horizon = policy, mode, horizon
        self.cache_goals, self._goals = self.check_cache_goals(cache_goals), GoalEncodingCache()
        self.rng = np.random.default_rng(seed)
        self.seed = seed  # keyed draws (`act(..., keys=)`)
        self.plans_made = 0

    def state_dict(self) -> dict:
        """What continues this agent's draws exactly: its generator and its plan count."""
        return {"rng": self.rng.bit_generator.state, "plans_made": self.plans_made}

    def load_state_dict(self, state: dict) -> None:
        self.rng.bit_generator.state = state["rng"]
        self.plans_made = state["plans_made"]

    ALGO = "gcsl"
    # The config fields a GCSL agent reads, and the argument each becomes.
    CONFIG_FIELDS = {"gcsl_act": "mode", "seed": "seed", "horizon": "horizon"}

    @classmethod
    def model_class(cls) -> type:
        return GCSLPolicy

    @torch.no_grad()
    def policy_actions(self, obs, goal, steps=None, keys=None) -> np.ndarray:
        """int64 (P,): the greedy or sampled action of each (obs (P, S, H, W), goal (P, 1, H, W));
        `steps`, an int or (P,) ints, the steps left (read by a time-conditioned policy only;
        default the agent's `horizon`); `keys`, P integers in [0, 2**32) that key the sampled
        actions' draws (see `act`), or None for the agent's generator."""
        device = self.model.device
        obs, goal = as_tensor(obs, "obs"), as_tensor(goal, "goal")
        self.model.check_images(obs, goal)
        if keys is not None:
            keys = planning.checked_plan_keys(keys, obs.shape[0], torch.device("cpu"), "keys")
        goal_rep = self._goals(self.model, goal) if self.cache_goals else None  # (P, D)
        steps_left = None
        if self.model.time_conditioned:
            steps = self.horizon if steps is None else steps
            if steps is None:
                raise ValueError("a time-conditioned GCSL policy acts on the steps left: pass horizon "
                                 "(or give the agent one)")
            steps_left = steps_left_tensor(steps, obs.shape[0]).to(device)
        elif steps is not None:  # not read, but checked as a time-conditioned policy would check it
            steps_left_tensor(steps, obs.shape[0])
        logits = self.model(obs.to(device), goal.to(device) if goal_rep is None else None, goal_rep,
                            steps=steps_left)  # (P, n)
        if not bool(torch.isfinite(logits).all()):  # (argmax and the sampler would give action 0, silently)
            raise ValueError("the policy's action logits are not finite: its weights or observations overflow "
                             "(are the weights trained, or NaN?)")
        self.plans_made += obs.shape[0]
        if self.mode == "greedy":
            return logits.argmax(dim=1).cpu().numpy()
        probs = torch.softmax(logits.double(), dim=1).cpu().numpy()  # (P, n)
        if keys is None:
            u = self.rng.random((len(probs), 1))
        else:  # the planner's counter-based draws, one per key, in GCSL's own stream
            u = key_uniforms(self.seed, keys, GCSL_STREAM).double().numpy()[:, None]
        return np.minimum((probs.cumsum(axis=1) < u).sum(axis=1), self.num_actions - 1).astype(np.int64)

    def act(self, obs, goal, horizon: int | None = None, keys=None):
        """One closed-loop step: actions int64 (P,) and stop bool (P,), always False (GCSL runs
        the fixed horizon). One observation (S, H, W) gives an int and a bool. `horizon`: the
        steps left in the episode, which a time-conditioned policy reads (default the agent's).
        `keys`: as `glamor.agent.Agent.act`'s; a sampling agent draws each action from its
        `seed` and the key alone, whatever the batch (greedy ones draw nothing)."""
        obs, goal, keys, single = self._as_batch(obs, goal, keys)
        actions = self.policy_actions(obs, goal, horizon, keys)
        stop = np.zeros(len(actions), dtype=bool)
        return (int(actions[0]), False) if single else (actions, stop)


def collect_closed_loop(envs: list, first_obs: list[dict], agent: GCSLAgent | None, epsilon: float,
                        rng: np.random.Generator) -> list[tuple[np.ndarray, np.ndarray]]:
    """One episode per environment (already reset, `first_obs` its observations), acting at
    every step with the agent's policy and epsilon-greedy exploration (agent=None: uniform
    random actions drawn from `rng`).

    Returns:
        per environment: frames uint8 (L+1, H, W) (each observation's newest frame) and
        actions int64 (L,), the shape `Replay.add_episode` takes.
    """
    n_envs = len(envs)
    obs = list(first_obs)
    frames = [[o["observation"][-1]] for o in obs]
    taken: list[list[int]] = [[] for _ in range(n_envs)]
    active = np.ones(n_envs, dtype=bool)
    k = envs[0].episode_length
    for t in range(k):
        live = np.flatnonzero(active)
        if len(live) == 0:
            break
        if agent is None:
            actions = rng.integers(envs[0].action_space.n, size=len(live))
        else:
            o = np.stack([obs[j]["observation"] for j in live])  # (E, S, H, W)
            g = np.stack([obs[j]["desired_goal"] for j in live])  # (E, 1, H, W)
            actions = agent.epsilon_greedy(agent.policy_actions(o, g, steps=k - t), epsilon)
        for a, j in zip(actions, live):
            obs[j], _, terminated, truncated, _ = envs[j].step(int(a))
            frames[j].append(obs[j]["observation"][-1])
            taken[j].append(int(a))
            if terminated or truncated:
                active[j] = False
    return [(np.stack(f), np.asarray(a, dtype=np.int64)) for f, a in zip(frames, taken)]
