"""What a planner needs of the model, computed once per plan: `PlanningInputs`.

The LSTM input at step t is Linear([cond; onehot(a_{t-1})]), linear in both parts, and the
LSTM's input-to-gate product is linear too. So for one plan the input-to-gate term is a constant
vector plus one column per previous action. The gate table holds both, summed:

    gate_table[m, p, a] = W_ih (A cond_p + B[:, a] + b) + b_ih + b_hh    for actions a < n
    gate_table[m, p, n] = W_ih (A cond_p + b) + b_ih + b_hh               the start (no action)

Per step a planner then needs only the recurrent product W_hh h, a table lookup, the gate
non-linearities, the head and a log-softmax. m indexes the models: 0 the IDM q, 1 the prior p
(absent when the prior is off).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

# The magnitude below which the planners' float32 gate and logit sums stay finite (and the native
# CPU ops' bound on each gate_table and w_hh element, csrc/checks.h's CHECK_GATE_RANGE).
GATE_LIMIT = 2.0**126


@dataclass(frozen=True)
class PlanningInputs:
    """Per-plan tensors of both LSTMs (float32, contiguous, one device).

    Attributes:
        gate_table: (M, P, n+1, 4H) input-to-gate terms by previous token (row n: start).
        h0: (M, P, H) initial hidden state.
        c0: (M, P, H) initial cell state.
        w_hh: (M, 4H, H) recurrent weights, gate order i, f, g, o.
        head_w: (M, n+2, H) head weights (logits of the n actions, END, PAD).
        head_b: (M, n+2) head bias.
    """

    gate_table: torch.Tensor
    h0: torch.Tensor
    c0: torch.Tensor
    w_hh: torch.Tensor
    head_w: torch.Tensor
    head_b: torch.Tensor

    @property
    def num_models(self) -> int:
        return self.gate_table.shape[0]

    @property
    def num_plans(self) -> int:
        return self.gate_table.shape[1]

    @property
    def num_actions(self) -> int:
        return self.head_w.shape[1] - 2

    @property
    def hidden(self) -> int:
        return self.h0.shape[-1]

    def tensors(self) -> tuple[torch.Tensor, ...]:
        return (self.gate_table, self.h0, self.c0, self.w_hh, self.head_w, self.head_b)

    def validate(self) -> PlanningInputs:
        """Check shapes, dtypes and (on the CPU) finiteness; raise ValueError naming the offending
        tensor. On a GPU the values are not read (that would wait for it): non-finite inputs give
        non-finite scores, which `glamor.planning.on_host` refuses as a plan is copied back."""
        M, P, rows, G = self.gate_table.shape if self.gate_table.dim() == 4 else (0,) * 4
        n, H = rows - 1, G // 4
        expected = {
            "gate_table": (M, P, n + 1, 4 * H),
            "h0": (M, P, H),
            "c0": (M, P, H),
            "w_hh": (M, 4 * H, H),
            "head_w": (M, n + 2, H),
            "head_b": (M, n + 2),
        }
        if self.gate_table.device.type == "meta":  # shapes only: nothing to plan from
            raise ValueError("gate_table is on the meta device (shapes, no values): plan from real tensors")
        if M not in (1, 2) or n < 1 or H < 1 or G % 4:
            raise ValueError(
                f"gate_table must be (M in {{1, 2}}, P, n+1 >= 2, 4H), got {tuple(self.gate_table.shape)}"
            )
        for name, shape in expected.items():
            t = getattr(self, name)
            if tuple(t.shape) != shape:
                raise ValueError(f"{name} must have shape {shape}, got {tuple(t.shape)}")
            if t.dtype != torch.float32:
                raise ValueError(f"{name} must be float32, got {t.dtype}")
            if t.device != self.gate_table.device:
                raise ValueError(f"{name} is on {t.device}, gate_table on {self.gate_table.device}")
            if t.device.type == "cpu" and not torch.isfinite(t).all():
                raise ValueError(f"{name} has NaN or infinite values (planning inputs come from the model's "
                                 f"weights and the images: are the weights NaN, or large enough to overflow "
                                 f"float32?)")
        if self.gate_table.device.type == "cpu":
            self._check_magnitudes()
        return self

    def _check_magnitudes(self) -> None:
        """Refuse finite inputs whose planning would overflow float32 (ValueError naming them).

        Beyond about 2^126 a gate's pre-activation (h @ w_hh^T plus its table row) can overflow
        to inf - inf = NaN: the reference then gives NaN scores, which `plan` refuses, while the
        native kernels (which also scale the gates by up to 2 log2(e)) clamp the NaN back into
        range and return a plan made of it, and a logit (h @ head_w^T + head_b) that large makes
        the log-softmax's differences overflow. Both are bounded here, in float64, by the
        largest such sum the planners can form: |h| is at most max(|h0|, 1) (after the first
        step h = sig(o) tanh(c)), so every backend refuses these inputs alike."""
        if self.gate_table.numel() == 0 or self.head_w.numel() == 0:
            return
        n = self.num_actions  # the PAD logit (row n + 1) is never used
        gt, w_hh, h0 = self.gate_table.detach(), self.w_hh.detach(), self.h0.detach()
        head_w, head_b = self.head_w.detach()[:, : n + 1], self.head_b.detach()[:, : n + 1]
        # First a looser bound from maxima (a few reductions; inf where it overflows): nearly
        # every call stops here. Only above it are the exact bounds worked out.
        loose_gates = float(gt.abs().max()) + float(w_hh.abs().sum(-1).max()) * max(float(h0.abs().max()), 1.0)
        loose_logits = float(head_w.abs().sum(-1).max()) + float(head_b.abs().max())
        if loose_gates < GATE_LIMIT and loose_logits < GATE_LIMIT:
            return
        h = h0.abs().clamp(min=1.0).double()  # (M, P, H); maxima are exact in float32
        gates = (gt.abs().amax(dim=2).double()  # (M, P, 4H)
                 + torch.einsum("mgk,mpk->mpg", w_hh.abs().double(), h))
        if float(gates.max()) >= GATE_LIMIT:
            raise ValueError(f"gate_table, w_hh and h0 give LSTM gate pre-activations up to "
                             f"{float(gates.max()):.3g} (|gate_table| + |w_hh| @ max(|h0|, 1)), at least 2^126 = "
                             f"{GATE_LIMIT:.3g}, where float32 planning overflows (inf - inf = NaN): the model's "
                             f"weights or initial state have diverged")
        logits = head_w.abs().double().sum(-1) + head_b.abs().double()  # |h| <= 1 where the head reads it
        if float(logits.max()) >= GATE_LIMIT:
            raise ValueError(f"head_w and head_b give logits up to {float(logits.max()):.3g} (|head_w| @ 1 + "
                             f"|head_b|), at least 2^126 = {GATE_LIMIT:.3g}, where float32 planning's "
                             f"log-softmax overflows: the model's weights have diverged")

    def contiguous(self) -> PlanningInputs:
        return PlanningInputs(*(t.contiguous() for t in self.tensors()))
