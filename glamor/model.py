"""GlamorModel: the encoders, the inverse dynamics model q(a | s0, g) and the action prior p(a | s0).

Tokens: n environment actions (0..n-1), END (n) and PAD (n+1). A target sequence is the k
actions, END, then PAD. Both LSTMs read the previous action (a zero one-hot at the first step;
END and PAD are never fed) and predict the next token. The loss is the unweighted sum of their
mean token cross-entropies, PAD ignored.

Planning asks the model once per plan for `PlanningInputs` (the gate table and initial states,
see `glamor.planning.inputs`) and hands them to a planner backend.

Example:
    >>> import torch
    >>> m = GlamorModel(num_actions=3, frame_stack=1, image_hw=(24, 24),
    ...                 encoder_channels=(4, 4, 4), embed_dim=16, mix_hidden=16, lstm_hidden=8)
    >>> obs = torch.randint(0, 255, (1, 1, 24, 24), dtype=torch.uint8)
    >>> p = m.plan(obs, obs, method="beam", width=27, horizon=3)
    >>> bool(torch.allclose(p.scores, m.score(obs, obs, p.actions, p.lengths)))
    True
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from glamor import planning
from glamor.nn.goal_conditioned import GoalConditioned, float32_weights
from glamor.planning import Plan, autocast_off
from glamor.planning.inputs import PlanningInputs
from glamor.planning.reference import lstm_step


def take_rows(table: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """table (B, R, G), tokens int64 (B, T) -> (B, T, G): row tokens[b, t] of table[b], which is
    `table.gather(1, tokens.unsqueeze(-1).expand(-1, -1, G))` (the reference, see
    tests/test_model.py).

    Taken as whole rows of the flattened table by one index_select: gather reads an expanded
    index element by element, and its backward (scatter_add_) writes that way too, 2.4 to 7x
    slower on a CPU at the presets' sizes (the demo's 256 x 13 tokens, G = 256: 7x, 4% of its
    training update). index_select's backward (index_add_) adds the same gradients to each row in
    the same order, token by token from zero, so the gradient is bitwise gather's
    (`benchmarks/bench_lookup.py` checks it, then times both).
    """
    B, R, G = table.shape
    rows = tokens + torch.arange(B, device=tokens.device).unsqueeze(1) * R  # (B, T) into (B * R, G)
    return table.reshape(B * R, G).index_select(0, rows.flatten()).view(B, tokens.shape[1], G)


class TokenLSTM(nn.Module):
    """An autoregressive LSTM over action tokens, conditioned on a vector (B, D).

    h0 = Linear(cond), c0 = Linear(cond); input x_t = Linear([cond; onehot(a_{t-1})]);
    one LSTM layer of `hidden`; head Linear(hidden -> n+2).
    """

    def __init__(self, cond_dim: int, num_actions: int, hidden: int):
        super().__init__()
        self.num_actions = num_actions
        self.init_h = nn.Linear(cond_dim, hidden)
        self.init_c = nn.Linear(cond_dim, hidden)
        self.input_proj = nn.Linear(cond_dim + num_actions, cond_dim)
        self.cell = nn.LSTMCell(cond_dim, hidden)  # holds W_ih, W_hh and biases
        self.head = nn.Linear(hidden, num_actions + 2)

    def gate_table(self, cond: torch.Tensor) -> torch.Tensor:
        """(B, D) -> (B, n+1, 4H): the input-to-gate term by previous token (row n: start)."""
        D = cond.shape[1]
        w_cond, w_act = self.input_proj.weight[:, :D], self.input_proj.weight[:, D:]  # (D, D), (D, n)
        x_const = cond @ w_cond.T + self.input_proj.bias  # (B, D)
        g_const = x_const @ self.cell.weight_ih.T + self.cell.bias_ih + self.cell.bias_hh  # (B, 4H)
        g_act = w_act.T @ self.cell.weight_ih.T  # (n, 4H)
        rows = torch.cat([g_act, torch.zeros_like(g_act[:1])], dim=0)  # (n+1, 4H)
        return g_const.unsqueeze(1) + rows.unsqueeze(0)

    def initial_state(self, cond: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.init_h(cond), self.init_c(cond)  # (B, H) each

    def forward(self, cond: torch.Tensor, prev_tokens: torch.Tensor) -> torch.Tensor:
        """Teacher-forced logits (B, T, n+2) given the previous tokens (B, T) (n: none)."""
        gate_in = take_rows(self.gate_table(cond), prev_tokens)  # (B, T, 4H)
        h, c = self.initial_state(cond)
        hs = []
        # unbind, not gate_in[:, t]: its backward is one stack, where each of T selects would
        # fill and add a whole (B, T, 4H) gradient, T^2 work (benchmarks/bench_update.py:
        # same gradients bitwise, updates 1.09x / 1.25x / 1.91x faster at T = 13 / 51 / 101)
        for g_t in gate_in.unbind(1):
            h, c = lstm_step(g_t, h, c, self.cell.weight_hh)
            hs.append(h)
        return self.head(torch.stack(hs, dim=1))  # (B, T, n+2)


class GlamorModel(GoalConditioned):
    """Encoders and state mix (glamor/nn/goal_conditioned.py, shared with GCSL), IDM LSTM and prior
    LSTM (sizes from the config; spec defaults)."""

    CONFIG_FIELDS = ("encoder_channels", "embed_dim", "mix_hidden", "lstm_hidden")  # what from_config reads

    def __init__(
        self,
        num_actions: int,
        frame_stack: int,
        image_hw: tuple[int, int],
        encoder_channels: tuple[int, ...] = (16, 32, 32),
        embed_dim: int = 512,
        mix_hidden: int = 256,
        lstm_hidden: int = 64,
    ):
        super().__init__(num_actions, frame_stack, image_hw, encoder_channels, embed_dim, mix_hidden,
                         lstm_hidden=lstm_hidden)
        num_actions, embed_dim, lstm_hidden = (self.sizes[k] for k in ("num_actions", "embed_dim", "lstm_hidden"))
        self.end_token, self.pad_token = num_actions, num_actions + 1
        self.idm = TokenLSTM(embed_dim, num_actions, lstm_hidden)
        self.prior = TokenLSTM(embed_dim, num_actions, lstm_hidden)

    @classmethod
    def from_config(cls, cfg, num_actions: int, frame_stack: int, image_hw) -> GlamorModel:
        """A run's model (float32 whatever torch's default dtype: see `float32_weights`)."""
        with float32_weights():
            return cls(
                num_actions=num_actions,
                frame_stack=frame_stack,
                image_hw=image_hw,
                encoder_channels=cfg.encoder_channels,
                embed_dim=cfg.embed_dim,
                mix_hidden=cfg.mix_hidden,
                lstm_hidden=cfg.lstm_hidden,
            )

    # ---- conditioning -------------------------------------------------------------------
    def conditioning(self, obs: torch.Tensor, goal: torch.Tensor, goal_rep: torch.Tensor | None = None):
        """(P, S, H, W), (P, 1, H, W) uint8 -> IDM condition (P, D), prior condition (P, D).
        `goal_rep` (P, D), when given, is `encode_goal(goal)` computed earlier (goal is not read)."""
        obs_rep = torch.relu(self.obs_encoder(obs))  # (P, D)
        if goal_rep is None:
            goal_rep = self.encode_goal(goal)  # (P, D)
        state_mix = self.state_mix(torch.cat([obs_rep, goal_rep], dim=1))  # (P, D)
        return state_mix, obs_rep

    # ---- training -----------------------------------------------------------------------
    def loss(self, obs, goal, targets) -> dict[str, torch.Tensor]:
        """Summed NLL of the IDM and the prior on target token sequences.

        Args:
            obs: uint8 (B, S, H, W); goal: uint8 (B, 1, H, W).
            targets: int64 (B, T): actions, then END, then PAD.

        Returns:
            {"loss", "idm", "prior"} scalars.
        """
        n = self.num_actions
        prev = torch.full_like(targets, n)  # the start row; END and PAD are never fed
        prev[:, 1:] = torch.where(targets[:, :-1] < n, targets[:, :-1], n)
        state_mix, obs_rep = self.conditioning(obs, goal)
        losses = {}
        for name, lstm, cond in (("idm", self.idm, state_mix), ("prior", self.prior, obs_rep)):
            logits = lstm(cond, prev)  # (B, T, n+2)
            losses[name] = F.cross_entropy(
                logits.flatten(0, 1), targets.flatten(), ignore_index=self.pad_token
            )
        losses["loss"] = losses["idm"] + losses["prior"]
        return losses

    # ---- planning -----------------------------------------------------------------------
    @torch.no_grad()
    def planning_inputs(self, obs, goal, use_prior: bool = True, *, goal_rep=None) -> PlanningInputs:
        """The per-plan tensors a planner needs (see `glamor.planning.inputs`). `goal_rep`
        (P, D) on the model's device, when given, stands for `encode_goal(goal)` (a goal
        encoded once for many steps, see `glamor.agent.Agent`)."""
        use_prior = planning.check_use_prior(use_prior)
        self.check_images(obs, goal)
        dtypes = {p.dtype for p in self.parameters()}
        if dtypes != {torch.float32}:
            raise ValueError(f"the planners run in float32 and this model's weights are "
                             f"{' and '.join(sorted(map(str, dtypes)))}: plan with a float32 copy (model.float())")
        if goal_rep is not None:
            self.check_goal_rep(goal_rep, len(goal))
        goal = goal.to(self.device) if goal_rep is None else None  # not read with goal_rep
        with autocast_off(self.device):  # (a caller's autocast would make them bfloat16 or float16)
            state_mix, obs_rep = self.conditioning(obs.to(self.device), goal, goal_rep)
            parts = [(self.idm, state_mix)] + ([(self.prior, obs_rep)] if use_prior else [])
            tables, h0s, c0s = [], [], []
            for lstm, cond in parts:
                h0, c0 = lstm.initial_state(cond)
                tables.append(lstm.gate_table(cond))
                h0s.append(h0)
                c0s.append(c0)
        lstms = [lstm for lstm, _ in parts]
        return PlanningInputs(
            gate_table=torch.stack(tables),  # (M, P, n+1, 4H)
            h0=torch.stack(h0s),  # (M, P, H)
            c0=torch.stack(c0s),
            w_hh=torch.stack([m.cell.weight_hh for m in lstms]),  # (M, 4H, H)
            head_w=torch.stack([m.head.weight for m in lstms]),  # (M, n+2, H)
            head_b=torch.stack([m.head.bias for m in lstms]),  # (M, n+2)
        ).contiguous()

    @torch.no_grad()
    def score(
        self,
        obs: torch.Tensor,
        goal: torch.Tensor,
        actions: torch.Tensor,
        lengths: torch.Tensor,
        *,
        use_prior: bool = True,
        gamma: float = 0.99,
        clip_logq: float | None = None,
        backend: str = "auto",
    ) -> torch.Tensor:
        """The spec's plan score of given plans, teacher forced.

        Args:
            obs: uint8 (P, S, H, W); goal: uint8 (P, 1, H, W).
            actions: int64 (P, L), each plan's actions (anything beyond its length is ignored).
            lengths: int64 (P,), in 1..L.
            backend: "auto", "reference" or "native" (see `plan`).

        Returns:
            float32 (P,): (lengths + 1) log(gamma) + the sum over those tokens (the actions,
            then END) of log q - log p (log p dropped without `use_prior`; tokens whose log q
            lies below `clip_logq` score -20 instead).
        """
        def what(x) -> str:  # (a whole array's repr would fill the screen)
            return str(tuple(x.shape)) if isinstance(x, torch.Tensor) else f"a {type(x).__name__}"

        if not isinstance(actions, torch.Tensor) or actions.dim() != 2 or actions.shape[1] < 1:
            raise ValueError(f"actions must be an int64 tensor (P, L) with L >= 1, got {what(actions)}")
        if not isinstance(lengths, torch.Tensor) or lengths.dim() != 1:
            raise ValueError(f"lengths must be an int64 tensor (P,), got {what(lengths)}")
        if not len(obs) == len(actions) == len(lengths):
            raise ValueError(f"one plan per observation: obs has P={len(obs)}, actions {tuple(actions.shape)} "
                             f"(P, L) and lengths {tuple(lengths.shape)} (P,)")
        planning.check_score_args(gamma, clip_logq)  # before the encoders run
        inputs = self.planning_inputs(obs, goal, use_prior)
        device = inputs.gate_table.device
        scores = planning.score(
            inputs,
            actions.to(device)[:, None],
            lengths.to(device)[:, None],
            gamma=gamma,
            clip_logq=clip_logq,
            backend=backend,
        )
        return scores[:, 0]

    @torch.no_grad()
    def plan(
        self,
        obs: torch.Tensor,
        goal: torch.Tensor,
        *,
        method: str = "beam",
        width: int = 200,
        horizon: int = 50,
        use_prior: bool = True,
        gamma: float = 0.99,
        seed: int | None = None,
        clip_logq: float | None = None,
        backend: str = "auto",
        goal_rep: torch.Tensor | None = None,
        plan_keys=None,
    ) -> Plan:
        """The best plan from each start `obs` to each `goal` (P of each).

        Args:
            obs: uint8 (P, S, H, W) the current frame stacks; goal: uint8 (P, 1, H, W).
            method: "beam" (beam search of `width`) or "sample" (`width` sampled candidates).
            horizon: most actions in a plan (END is forced after it).
            use_prior: divide by the action prior (off: the IDM alone).
            gamma, clip_logq: the plan score's per-token discount and optional clip (see `score`).
            seed: keys the sampler's draws (None: drawn from torch's generator).
            plan_keys: P integers in [0, 2**32) that name each problem's draws in place of its
                index (see `glamor.planning.plan`), or None.
            backend: "auto", "reference" or "native".
            goal_rep: `encode_goal(goal)` (P, D) computed earlier, or None to encode `goal` now.

        Returns:
            Plan(actions (P, horizon) padded with -1, lengths (P,), scores (P,)).
        """
        horizon, width = planning.check_plan_args(horizon, width, gamma, clip_logq)[:2]  # before the encoders run
        if method not in planning.METHODS:
            raise ValueError(f"method must be one of {planning.METHODS}, got {method!r}")
        if method == "beam":
            planning.check_beam_width(self.num_actions, horizon, width)
        inputs = self.planning_inputs(obs, goal, use_prior, goal_rep=goal_rep)
        return planning.plan(
            inputs,
            method=method,
            width=width,
            horizon=horizon,
            gamma=gamma,
            seed=seed,
            clip_logq=clip_logq,
            backend=backend,
            plan_keys=plan_keys,
        )
