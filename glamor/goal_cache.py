"""The goal encoding of the last batch of goals, reused while the same goals come back.

A closed loop acts at every step from a new observation towards the same goals, and the goal
encoder's output depends only on the goals and its weights: `GoalEncodingCache` encodes a goal
batch once and hands back the same tensor while the batch (compared exactly, where it was given:
numpy goals on the host) and the weights are unchanged. The same numbers as encoding again (the
same encoder on the same batch), so plans and actions are bitwise those of an uncached agent.
Both agents use it: `glamor.agent.Agent` (GLAMOR) and `glamor.gcsl.GCSLAgent`.

The weights count as changed after any torch optimiser step (fused ones included: they write
parameters without raising their version counters, so every step in the process is counted), an
in-place write to a parameter (load_state_dict, copy_) or a parameter's storage replaced (`.to`,
`.half`, assignment; the cache holds the storages it keyed on, so a new one cannot take an old
address); so does a change of the float32 matmul precision or TF32 settings. Not seen: writes
through `.data` or a numpy view (call `clear()` after one). Weights made under
torch.inference_mode carry no version counter, so such a model is not cached, nor is anything
encoded under torch.autocast (the GCSL agent's; GLAMOR's agent encodes with autocast off, in
float32 as its planners read it).

Example:
    >>> from glamor.model import GlamorModel
    >>> m = GlamorModel(3, 1, (24, 24), (4, 4, 4), 16, 16, 8)
    >>> cache, goal = GoalEncodingCache(), torch.zeros(2, 1, 24, 24, dtype=torch.uint8)
    >>> cache(m, goal) is cache(m, goal.clone())
    True
"""

from __future__ import annotations

import torch
from torch.optim.optimizer import register_optimizer_step_post_hook

_OPTIMIZER_STEPS = [0]  # optimiser steps taken in this process, by any torch optimiser


def _count_optimizer_step(optimizer, args, kwargs) -> None:
    _OPTIMIZER_STEPS[0] += 1


register_optimizer_step_post_hook(_count_optimizer_step)


def _float32_settings() -> tuple:
    """The global settings that change float32 convolution and matmul results (TF32 on GPUs)."""
    return (torch.get_float32_matmul_precision(), torch.backends.cuda.matmul.allow_tf32,
            torch.backends.cudnn.allow_tf32)


class GoalEncodingCache:
    """`cache(model, goal)` -> model.encode_goal(goal) (P, D) on the model's device, from the
    last call's result when nothing it depends on has changed. `model` has `goal_encoder` (an
    nn.Module), `encode_goal` and `device`; goal is a uint8 tensor (P, 1, H, W) on any device."""

    def __init__(self):
        self._entry: dict | None = None

    def __call__(self, model, goal: torch.Tensor) -> torch.Tensor:
        encoder = model.goal_encoder
        tensors = (*encoder.parameters(), *encoder.buffers())
        if any(t.is_inference() for t in tensors) or torch.is_autocast_enabled(model.device.type):
            return self._encode(model, goal)  # no version counters to key on; autocast's dtype and state vary
        weights = (id(encoder), encoder.training, _OPTIMIZER_STEPS[0], _float32_settings(),
                   *((t.data_ptr(), t._version) for t in tensors))
        entry = self._entry
        if (entry is not None and entry["weights"] == weights and entry["goal"].shape == goal.shape
                and entry["goal"].device == goal.device and torch.equal(entry["goal"], goal)):
            return entry["rep"]
        rep = self._encode(model, goal)
        self._entry = {"goal": goal.clone(), "weights": weights, "rep": rep,
                       "storages": [t.untyped_storage() for t in tensors]}  # their addresses stay taken
        return rep

    def __getstate__(self) -> dict:
        """A pickled or deep-copied cache starts empty: its entry keys on this process's storage
        addresses, which a copy's weights do not have, and the storages it holds to keep those
        addresses taken (untyped, as views of the weights) are what torch cannot pickle
        (an agent that had acted failed `pickle.loads` and `torch.save`)."""
        return {"_entry": None}

    @staticmethod
    def _encode(model, goal: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return model.encode_goal(goal.to(model.device))  # (P, D)

    def clear(self) -> None:
        """Forget the cached encoding (needed only after writing weights through `.data`)."""
        self._entry = None
