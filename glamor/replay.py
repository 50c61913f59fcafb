"""Replay of whole episodes, each frame stored once, and the spec's hindsight relabelling sampler.

Storage is a ring of `capacity` slots. An episode of L actions fills L+1 consecutive slots:
slot j holds the newest frame of observation t (uint8 (H, W)), the action taken there (-1 at
the last observation), t, and the episode's length. A frame stack is rebuilt by index from the
slots before it (repeating the episode's first frame). Writing over the start of an old episode
invalidates the rest of it, so every valid slot's stack and goal lie in its own episode.

Memory: capacity x (H x W + 17) bytes. The reference capacity 3e5 of 80x104 frames is 2.5 GB.

Hindsight relabelling: a slot i is drawn uniformly over valid slots, k ~ UniformInt[1, k_max]
clipped to the steps left in its episode (0 at the last observation: the target is END alone);
the goal is the frame k steps ahead; the target is the k actions, END, then PAD up to k_max+1.
"""

from __future__ import annotations

import numpy as np


class Replay:
    """Episodes of uint8 frames (H, W), stored once; see the module docstring."""

    def __init__(self, capacity: int, frame_shape: tuple[int, int], frame_stack: int, num_actions: int):
        if capacity < 2:
            raise ValueError(f"capacity must be >= 2, got {capacity}")
        self.capacity, self.frame_shape = capacity, tuple(frame_shape)
        self.frame_stack, self.num_actions = frame_stack, num_actions
        self.frames = np.zeros((capacity, *frame_shape), dtype=np.uint8)
        self.actions = np.full(capacity, -1, dtype=np.int64)
        self.step = np.zeros(capacity, dtype=np.int32)  # t within the episode
        self.length = np.zeros(capacity, dtype=np.int32)  # the episode's number of actions
        self.valid = np.zeros(capacity, dtype=bool)
        self.cursor = 0  # next slot to write
        self.episodes_added = 0
        self.transitions_added = 0

    def __len__(self) -> int:
        return int(self.valid.sum())

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in (self.frames, self.actions, self.step, self.length, self.valid))

    def add_episode(self, frames: np.ndarray, actions: np.ndarray) -> None:
        """Store one episode: frames uint8 (L+1, H, W) (each observation's newest frame) and
        actions int (L,)."""
        frames, actions = np.asarray(frames), np.asarray(actions, dtype=np.int64)
        L = len(actions)
        if frames.dtype != np.uint8 or frames.shape != (L + 1, *self.frame_shape):
            raise ValueError(
                f"frames must be uint8 ({L + 1}, {self.frame_shape[0]}, {self.frame_shape[1]}) for "
                f"{L} actions, got {frames.dtype} {frames.shape}"
            )
        if L + 1 > self.capacity:
            raise ValueError(f"an episode of {L + 1} frames does not fit capacity {self.capacity}")
        if L and (actions.min() < 0 or actions.max() >= self.num_actions):
            raise ValueError(f"actions must be in [0, {self.num_actions})")
        slots = (self.cursor + np.arange(L + 1)) % self.capacity
        # Invalidate the rest of the episode whose start we overwrite.
        end = slots[-1]
        nxt = (end + 1) % self.capacity
        while self.valid[nxt] and self.step[nxt] != 0:
            self.valid[nxt] = False
            nxt = (nxt + 1) % self.capacity
        self.frames[slots] = frames
        self.actions[slots] = np.append(actions, -1)
        self.step[slots] = np.arange(L + 1)
        self.length[slots] = L
        self.valid[slots] = True
        self.cursor = (end + 1) % self.capacity
        self.episodes_added += 1
        self.transitions_added += L

    def stacks(self, slots: np.ndarray) -> np.ndarray:
        """uint8 (B, S, H, W): the frame stacks of observations at `slots`, oldest first."""
        back = np.arange(self.frame_stack - 1, -1, -1)  # (S,) how far back each frame is
        offsets = np.minimum(back[None, :], self.step[slots][:, None])  # clamp at episode start
        return self.frames[(slots[:, None] - offsets) % self.capacity]

    def sample(self, batch_size: int, k_max: int, rng: np.random.Generator, *,
               prefer=None, prefer_fraction: float = 0.0):
        """A relabelled batch.

        With `prefer` (a function of the newest observation frames and the goal frames, uint8
        (N, H, W) each, -> bool (N,)), up to round(prefer_fraction * batch_size) pairs are the
        first preferred ones among 16 x batch_size uniform draws, the rest the first others
        (topped up from either side when one runs short). Without it, the spec's sampler.

        Returns:
            obs uint8 (B, S, H, W), goal uint8 (B, 1, H, W), targets int64 (B, k_max+1)
            (actions, END = n, then PAD = n+1), and k int64 (B,).
        """
        valid = np.flatnonzero(self.valid)
        if len(valid) == 0:
            raise RuntimeError("cannot sample from an empty replay")
        draws = batch_size if prefer is None else 16 * batch_size
        slots = valid[rng.integers(len(valid), size=draws)]
        left = (self.length[slots] - self.step[slots]).astype(np.int64)
        k = np.minimum(rng.integers(1, k_max + 1, size=draws), left)  # (draws,)
        if prefer is not None:
            hit = np.asarray(prefer(self.frames[slots], self.frames[(slots + k) % self.capacity]), dtype=bool)
            want = min(round(prefer_fraction * batch_size), int(hit.sum()))
            want = max(want, batch_size - int((~hit).sum()))
            pick = np.concatenate([np.flatnonzero(hit)[:want], np.flatnonzero(~hit)[: batch_size - want]])
            slots, k = slots[pick], k[pick]
        n = self.num_actions
        ahead = np.arange(k_max + 1)  # (T,)
        acts = self.actions[(slots[:, None] + ahead[None]) % self.capacity]  # (B, T)
        targets = np.where(ahead[None] < k[:, None], acts, n + 1)  # actions, then PAD
        targets[np.arange(batch_size), k] = n  # END
        goal = self.frames[(slots + k) % self.capacity][:, None]
        return self.stacks(slots), goal, targets.astype(np.int64), k

    def state_dict(self) -> dict:
        return {name: getattr(self, name) for name in
                ("frames", "actions", "step", "length", "valid", "cursor", "episodes_added", "transitions_added")}

    def load_state_dict(self, state: dict, *, take: bool = False) -> None:
        """Restore a `state_dict()`; every array's shape is checked before anything changes.

        Arrays are copied in, unless `take`: then each array of the replay's own dtype (C order,
        writeable) becomes the replay's, with no copy, so a resume holds one replay in memory,
        not two. Take only arrays that nothing else holds, such as those a checkpoint file was
        just read into (`glamor.checkpoint.load_arrays`), never another replay's `state_dict()`.
        """
        for name, value in state.items():
            current = getattr(self, name)
            if isinstance(current, np.ndarray) and current.shape != np.shape(value):
                raise ValueError(f"replay {name} has shape {np.shape(value)}, expected {current.shape}")
        for name, value in state.items():
            current = getattr(self, name)
            if not isinstance(current, np.ndarray):
                setattr(self, name, int(value))
            elif take and _can_take(value, current.dtype):
                setattr(self, name, value)
            else:
                current[...] = value


def _can_take(value, dtype: np.dtype) -> bool:
    """Whether a replay can use `value` as its own array of `dtype` as it is."""
    return (isinstance(value, np.ndarray) and value.dtype == dtype and value.flags.c_contiguous
            and value.flags.writeable and value.flags.aligned)
