"""The part GLAMOR's model and GCSL's policy share: an Impala encoder of the observation
(S stacked frames), another of the goal (one frame; not weight-shared), the state mix that reads
both, their sizes checked, and the checks of the images they take.

    obs (B, S, H, W) uint8  -> obs_encoder  -> ReLU -> obs_rep (B, D)  -\\
                                                                        state_mix -> (B, D)
    goal (B, 1, H, W) uint8 -> goal_encoder -> ReLU -> goal_rep (B, D) -/

A subclass adds its head(s) (GLAMOR: the IDM and prior LSTMs; GCSL: a linear action head).
"""

from __future__ import annotations

import contextlib
import numbers
import threading

import torch
from torch import nn

from glamor.nn.impala import ImpalaEncoder
from glamor.nn.mix import state_mix_mlp


class GoalConditioned(nn.Module):
    """Encoders and state mix of `embed_dim` D; `head_sizes` (e.g. lstm_hidden) are the
    subclass's own sizes, checked with the rest (ints >= 1)."""

    def __init__(self, num_actions: int, frame_stack: int, image_hw: tuple[int, int],
                 encoder_channels: tuple[int, ...], embed_dim: int, mix_hidden: int, **head_sizes: int):
        super().__init__()
        sizes = dict(num_actions=num_actions, frame_stack=frame_stack, embed_dim=embed_dim, mix_hidden=mix_hidden,
                     **head_sizes)
        bad = {k: v for k, v in sizes.items() if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1}
        if bad:
            raise ValueError(f"model sizes must be ints >= 1, got {bad}")
        self.sizes = {k: int(v) for k, v in sizes.items()}  # Python ints, the subclass's head sizes included
        num_actions, frame_stack, embed_dim, mix_hidden = (self.sizes[k] for k in ("num_actions", "frame_stack",
                                                                                   "embed_dim", "mix_hidden"))
        image_hw = _ints("image_hw", image_hw, "(height, width), two ints >= 1", length=2)
        encoder_channels = _ints("encoder_channels", encoder_channels, "the Impala stages' channels, ints >= 1")
        self.num_actions, self.frame_stack, self.image_hw = num_actions, frame_stack, image_hw
        self.obs_encoder = ImpalaEncoder(frame_stack, image_hw, encoder_channels, embed_dim)
        self.goal_encoder = ImpalaEncoder(1, image_hw, encoder_channels, embed_dim)
        self.state_mix = state_mix_mlp(embed_dim, mix_hidden)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def check_images(self, obs: torch.Tensor, goal: torch.Tensor) -> None:
        """Raise ValueError naming the argument when obs or goal is not what the model takes."""
        h, w = self.image_hw
        for name, x, c in (("obs", obs, self.frame_stack), ("goal", goal, 1)):
            if not isinstance(x, torch.Tensor):
                raise ValueError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
            if x.dtype != torch.uint8:
                hint = (" (frames hold 0..255; from floats in [0, 1]: (x * 255).round().to(torch.uint8))"
                        if x.is_floating_point() else "")
                raise ValueError(f"{name} must be uint8, got {x.dtype}{hint}")
            if x.dim() != 4 or tuple(x.shape[1:]) != (c, h, w):
                one = tuple(x.shape) in ((c, h, w), (h, w) if c == 1 else ())  # one observation or goal
                hint = (f" (one {name}: a batch of one is {name}[None]" + ("[None]" if x.dim() == 2 else "") +
                        "; Agent.act takes one as it is)" if one else "")
                raise ValueError(f"{name} must have shape (P, {c}, {h}, {w}), got {tuple(x.shape)}{hint}")
            if x.is_meta:
                raise ValueError(f"{name} is on the meta device, which holds shapes but no frames: pass "
                                 f"frames on the CPU or the model's device")
        if obs.shape[0] != goal.shape[0]:
            raise ValueError(f"obs and goal must have the same batch size, got {obs.shape[0]} and {goal.shape[0]}")

    def encode_goal(self, goal: torch.Tensor) -> torch.Tensor:
        """(P, 1, H, W) uint8 -> the goal representation (P, D) the state mix reads."""
        return torch.relu(self.goal_encoder(goal))


    def check_goal_rep(self, goal_rep, plans: int) -> None:
        """Raise ValueError unless goal_rep is a (plans, D) tensor of the model's dtype and device."""
        want = (plans, self.goal_encoder.fc.out_features)
        weight = self.goal_encoder.fc.weight
        if not isinstance(goal_rep, torch.Tensor) or tuple(goal_rep.shape) != want:
            raise ValueError(f"goal_rep must be a tensor of shape {want} (model.encode_goal of the goals), got "
                             f"{tuple(goal_rep.shape) if isinstance(goal_rep, torch.Tensor) else type(goal_rep).__name__}")
        if goal_rep.dtype != weight.dtype or goal_rep.device != weight.device:
            raise ValueError(f"goal_rep must be {weight.dtype} on {weight.device} (the model's), got "
                             f"{goal_rep.dtype} on {goal_rep.device}")


# torch's default dtype is one setting of the whole process, not of a thread: float32_weights
# holds this lock while it has changed it.
_DEFAULT_DTYPE_LOCK = threading.RLock()


@contextlib.contextmanager
def float32_weights():
    """A context in which modules are built with float32 weights whatever torch's default dtype:
    a run's network (`from_config`: training, `Agent.load`) is float32, as its checkpoints and the
    planners are, also for a caller who set torch.set_default_dtype(torch.float64), and its
    initial weights are the same draws either way.

    torch's default dtype is process-wide, so threads that build networks at once take turns
    here (a lock): two interleaved builds would otherwise restore each other's default, leaving
    a float64 caller's default float32, or one build float64. A thread of yours that makes
    tensors with the default dtype while another thread builds a network sees float32 during
    the build: pass `dtype=` there."""
    with _DEFAULT_DTYPE_LOCK:
        default = torch.get_default_dtype()
        torch.set_default_dtype(torch.float32)
        try:
            yield
        finally:
            torch.set_default_dtype(default)


def _ints(name: str, value, what: str, length: int | None = None) -> tuple[int, ...]:
    """value as a tuple of Python ints >= 1, or ValueError naming `name` and `what` it must be."""
    try:
        items = tuple(value)
    except TypeError:
        items = None
    if (items is None or isinstance(value, (str, bytes)) or len(items) < 1 or (length and len(items) != length)
            or any(isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1 for v in items)):
        raise ValueError(f"{name} must be {what}, got {value!r}")
    return tuple(int(v) for v in items)
