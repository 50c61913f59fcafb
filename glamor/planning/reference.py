"""The readable planners: batched PyTorch twins of the native kernels.

Everything here works on `PlanningInputs`, the per-plan tensors that do not depend on the
candidate (see `glamor.planning.inputs`). M is 2 with the prior (index 0 the IDM q, index 1 the
prior p) and 1 without; P plans; N candidates (samples or beam width) per plan; H hidden;
n actions; tokens 0..n-1 are actions, n is END. Row n of a gate table is the start row (no
previous action).

Per-token score (the spec's Bayes ratio, with the optional clip)::

    s(tok) = log q(tok) - log p(tok)         (just log q when M == 1)
    s(tok) = -20                             where log q(tok) < clip_logq, if clip_logq is set
    score  = sum over the T tokens of [log(gamma) + s(tok)],   T = actions + 1 (END)

Rules: END may not be the first token; END is forced after `horizon` actions.
"""

from __future__ import annotations

import math

import torch

from glamor.planning.inputs import PlanningInputs
from glamor.planning.rng import MASK32, uniform

CLIP_SCORE = -20.0


def lstm_step(gate_in, h, c, w_hh):
    """One LSTM step (gate order i, f, g, o).

    Args:
        gate_in: (..., 4H) the input-to-gate term (a row of the gate table).
        h, c: (..., H) the state.
        w_hh: (4H, H), or (M, 1, 4H, H) per model for h of (M, P, N, H).
    """
    gates = gate_in + torch.matmul(h, w_hh.transpose(-1, -2))
    i, f, g, o = gates.chunk(4, dim=-1)
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    h = torch.sigmoid(o) * torch.tanh(c)
    return h, c


def token_scores(inp: PlanningInputs, h: torch.Tensor, clip_logq: float | None) -> torch.Tensor:
    """Per-token scores s (P, N, n+1) from the hidden states h (M, P, N, H).

    The head's PAD logit is dropped before the log-softmax.
    """
    n = inp.num_actions
    logits = torch.matmul(h, inp.head_w[:, None].transpose(-1, -2)) + inp.head_b[:, None, None]
    logprobs = torch.log_softmax(logits[..., : n + 1], dim=-1)  # (M, P, N, n+1)
    s = logprobs[0] - logprobs[1] if inp.num_models == 2 else logprobs[0]
    if clip_logq is not None:
        s = torch.where(logprobs[0] < clip_logq, torch.full_like(s, CLIP_SCORE), s)
    return s


def _advance(inp: PlanningInputs, h, c, prev_tok):
    """Feed prev_tok (P, N) to both LSTMs: the table lookup plus the recurrent product."""
    P, N = prev_tok.shape
    idx = prev_tok.reshape(1, P, N, 1).expand(inp.num_models, P, N, inp.gate_table.shape[-1])
    gate_in = torch.gather(inp.gate_table, 2, idx)  # (M, P, N, 4H)
    return lstm_step(gate_in, h, c, inp.w_hh[:, None])


def _initial_state(inp: PlanningInputs, n_cand: int):
    h = inp.h0[:, :, None].expand(-1, -1, n_cand, -1).contiguous()  # (M, P, N, H)
    c = inp.c0[:, :, None].expand(-1, -1, n_cand, -1).contiguous()
    return h, c


def _empty_plans(P: int, horizon: int, device: torch.device):
    """The plans of an empty batch (P = 0): nothing to step through, as the native ops (a loop
    of `horizon` steps on empty tensors would take as long as planning real ones, and the
    candidates' indices are as large)."""
    return (torch.full((P, horizon), -1, dtype=torch.int64, device=device),
            torch.zeros(P, dtype=torch.int64, device=device), torch.zeros(P, dtype=torch.float32, device=device))


def first_argmax(x: torch.Tensor):
    """(max, index) over dim 1 of x (P, K), the lowest index on ties (torch.max does not
    promise which index it returns)."""
    best = x.max(dim=1).values  # (P,)
    ar = torch.arange(x.shape[1], device=x.device)
    idx = torch.where(x == best[:, None], ar, x.shape[1]).min(dim=1).values
    # A row of NaNs (overflowing weights) equals no max: index K - 1, and its NaN score comes out.
    return best, idx.clamp_max(x.shape[1] - 1)


def score_plans(
    inp: PlanningInputs,
    actions: torch.Tensor,
    lengths: torch.Tensor,
    gamma: float = 0.99,
    clip_logq: float | None = None,
) -> torch.Tensor:
    """Teacher-forced plan scores.

    Args:
        inp: per-plan tensors for P plans.
        actions: int64 (P, N, L): N sequences per plan, actions in [0, n), padded beyond length.
        lengths: int64 (P, N): actions in each sequence, 1..L.

    Returns:
        float32 (P, N): each sequence's score, with END after its last action.
    """
    P, N, L = actions.shape
    n, dev = inp.num_actions, inp.gate_table.device
    if P == 0 or N == 0:  # no sequences: no steps (L may be any size)
        return torch.zeros(P, N, dtype=torch.float32, device=dev)
    h, c = _initial_state(inp, N)
    prev = torch.full((P, N), n, dtype=torch.int64, device=dev)
    total = torch.zeros(P, N, dtype=torch.float32, device=dev)
    log_gamma = math.log(gamma)
    for t in range(L + 1):
        h, c = _advance(inp, h, c, prev)
        s = token_scores(inp, h, clip_logq)  # (P, N, n+1)
        in_plan = t < lengths  # an action token
        is_end = t == lengths  # the END token
        tok = torch.where(in_plan, actions[..., min(t, L - 1)], n)
        step = s.gather(-1, tok.unsqueeze(-1)).squeeze(-1) + log_gamma
        total = total + torch.where(in_plan | is_end, step, torch.zeros_like(step))
        prev = torch.where(in_plan, tok, n)
    return total


def token_cdf(probs: torch.Tensor, loop: bool | None = None) -> torch.Tensor:
    """Running sums over the last dim, as torch.cumsum on the CPU computes them (a float64
    accumulator, each sum rounded to float32). CUDA's cumsum has no deterministic kernel, so
    under torch.use_deterministic_algorithms (and with loop=True) the sum is taken one token at
    a time instead, with the same accumulator."""
    if loop is None:
        loop = probs.is_cuda and torch.are_deterministic_algorithms_enabled()
    if not loop:
        return torch.cumsum(probs, dim=-1)
    acc = torch.zeros(probs.shape[:-1], dtype=torch.float64, device=probs.device)
    sums = []
    for j in range(probs.shape[-1]):
        acc = acc + probs[..., j]
        sums.append(acc.to(probs.dtype))
    return torch.stack(sums, dim=-1)


def _checked_keys(plan_keys: torch.Tensor, P: int, device: torch.device) -> torch.Tensor:
    """plan_keys as the native ops take them: int64 (P,) on the inputs' device, low 32 bits used."""
    if not isinstance(plan_keys, torch.Tensor) or plan_keys.dtype != torch.int64:
        raise TypeError(f"plan_keys must be an int64 tensor, got {getattr(plan_keys, 'dtype', type(plan_keys))}")
    if plan_keys.shape != (P,):
        raise ValueError(f"plan_keys must have shape ({P},) (one per plan), got {tuple(plan_keys.shape)}")
    if plan_keys.device != device:
        raise ValueError(f"plan_keys must be on {device} (the inputs' device), got {plan_keys.device}")
    return plan_keys & MASK32


def sample_plans(
    inp: PlanningInputs,
    num_samples: int,
    horizon: int,
    seed: int,
    gamma: float = 0.99,
    clip_logq: float | None = None,
    plan_keys: torch.Tensor | None = None,
):
    """Random shooting: N sampled sequences per plan, the best finished one wins.

    Each token is drawn from softmax(s) over the allowed tokens by inverse CDF with the uniform
    keyed by (seed, plan, candidate, step) (see `glamor.planning.rng`). The plan coordinate is
    the plan's index, or `plan_keys[p]` (int64 (P,), its low 32 bits) when given: a plan then
    draws the same numbers wherever it sits in the batch.

    Returns:
        actions int64 (P, horizon) padded with -1, lengths int64 (P,), scores float32 (P,).
    """
    P, n, dev = inp.num_plans, inp.num_actions, inp.gate_table.device
    N = num_samples
    if plan_keys is not None:
        plan_keys = _checked_keys(plan_keys, P, dev)
    if P == 0:
        return _empty_plans(P, horizon, dev)
    h, c = _initial_state(inp, N)
    prev = torch.full((P, N), n, dtype=torch.int64, device=dev)
    score = torch.zeros(P, N, dtype=torch.float32, device=dev)
    done = torch.zeros(P, N, dtype=torch.bool, device=dev)
    lengths = torch.zeros(P, N, dtype=torch.int64, device=dev)
    actions = torch.full((P, N, horizon), -1, dtype=torch.int64, device=dev)
    plan_ids = (torch.arange(P, device=dev) if plan_keys is None else plan_keys).view(P, 1)
    cand_ids = torch.arange(N, device=dev).view(1, N)
    log_gamma = math.log(gamma)
    for t in range(horizon + 1):
        h, c = _advance(inp, h, c, prev)
        s = token_scores(inp, h, clip_logq)  # (P, N, n+1)
        logits = s.clone()
        if t == 0:
            logits[..., n] = -math.inf  # a plan has at least one action
        if t == horizon:
            logits[..., :n] = -math.inf  # END is forced
        probs = torch.exp(logits - logits.max(dim=-1, keepdim=True).values)
        cdf = token_cdf(probs)  # (P, N, n+1)
        u = uniform(seed, plan_ids, cand_ids, t)  # (P, N)
        # inverse CDF: the first token whose cdf exceeds u * total, else the last allowed one
        last_allowed = n - 1 if t == 0 else n
        tok = (cdf <= (u * cdf[..., -1]).unsqueeze(-1)).sum(-1).clamp(max=last_allowed)
        live = ~done
        score = score + torch.where(live, s.gather(-1, tok[..., None]).squeeze(-1) + log_gamma, 0.0)
        ends = live & (tok == n)
        lengths = torch.where(ends, t, lengths)
        if t < horizon:
            actions[..., t] = torch.where(live & (tok < n), tok, -1)
        done = done | ends
        prev = torch.where(tok < n, tok, n)
    best_score, best = first_argmax(score)  # (P,)
    rows = torch.arange(P, device=dev)
    return actions[rows, best], lengths[rows, best], best_score


def beam_search(
    inp: PlanningInputs,
    width: int,
    horizon: int,
    gamma: float = 0.99,
    clip_logq: float | None = None,
):
    """Beam search: keep the best `width` unfinished sequences; finished ones are set aside.

    Each step expands every beam by all n actions and END. The best END expansion of a step
    replaces the best finished plan only if strictly better (so shorter plans win ties); the
    kept expansions are the `width` best by score, the lowest flat index (beam * n + action) on
    ties. With width >= n ** horizon nothing is ever dropped: exhaustive search.

    Returns:
        actions int64 (P, horizon) padded with -1, lengths int64 (P,), scores float32 (P,).
    """
    P, n, B, dev = inp.num_plans, inp.num_actions, width, inp.gate_table.device
    if P == 0:
        return _empty_plans(P, horizon, dev)
    h, c = _initial_state(inp, B)
    prev = torch.full((P, B), n, dtype=torch.int64, device=dev)
    score = torch.full((P, B), -math.inf, dtype=torch.float32, device=dev)
    score[:, 0] = 0.0  # one live beam: the empty sequence
    seqs = torch.full((P, B, horizon), -1, dtype=torch.int64, device=dev)
    best_score = torch.full((P,), -math.inf, dtype=torch.float32, device=dev)
    best_seq = torch.full((P, horizon), -1, dtype=torch.int64, device=dev)
    best_len = torch.zeros(P, dtype=torch.int64, device=dev)
    rows = torch.arange(P, device=dev)
    log_gamma = math.log(gamma)
    for t in range(horizon + 1):
        h, c = _advance(inp, h, c, prev)
        cand = score.unsqueeze(-1) + (token_scores(inp, h, clip_logq) + log_gamma)  # (P, B, n+1)
        if t > 0:  # finish: the best END expansion of this step
            end_score, end_beam = first_argmax(cand[..., n])  # (P,)
            better = end_score > best_score
            best_score = torch.where(better, end_score, best_score)
            best_seq = torch.where(better[:, None], seqs[rows, end_beam], best_seq)
            best_len = torch.where(better, t, best_len)
        if t == horizon:
            break
        flat = cand[..., :n].reshape(P, B * n)
        order = torch.sort(flat, dim=1, descending=True, stable=True).indices[:, :B]  # (P, B)
        beam, tok = order // n, order % n
        score = flat.gather(1, order)
        seqs = seqs.gather(1, beam[..., None].expand(-1, -1, horizon)).clone()
        seqs[..., t] = tok
        idx = beam.view(1, P, B, 1).expand_as(h)
        h, c = h.gather(2, idx), c.gather(2, idx)
        prev = tok
    return best_seq, best_len, best_score
