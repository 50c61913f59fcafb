"""The goal-environment contract every GLAMOR environment follows (gridworld, Atari, Control).

An episode starts at `reset()`, the agent is shown a goal image, and it has `episode_length`
steps to reach a state that matches it. Observations are dicts of uint8 images::

    {"observation":   (frame_stack, H, W)  the last frames, oldest first,
     "desired_goal":  (1, H, W)            the goal image (the goal state's last frame),
     "achieved_goal": (1, H, W)}           the current last frame

`info["labels"]` holds the ground-truth labels of the current state (float64, one per label
name), `info["goal_labels"]` the goal's, `info["goal_image_digest"]` a fingerprint of the goal image
and `info["is_success"]` the judge's verdict against the goal's labels: every label within
`success_tolerance` (10%) of its range. Labels judge success only; nothing learns from them.
`compute_reward` is batched and returns that same verdict as 0/1 for the goal the info was
made for; for another desired goal (hindsight relabelling, as SB3's HER does) it judges by
pixel equality, since only the episode's own goal has labels in the info.

A goal is a `Goal`: the image and the labels read at the same state. Pass one through
`reset(options={"goal": goal})`; without one the environment makes its own from a random-policy
rollout of exactly `episode_length` steps from the reset state (the spec's goal distribution), or
up to the step that ends the episode earlier (an Atari life loss).

Subclasses implement the state machine: `_reset_state`, `_step_state`, `_frame`, `_labels`,
`_get_state`/`_set_state` (to roll out a goal and come back), and set `label_names`,
`label_ranges`, `action_space` (Discrete) and the frame shape. `_frame` and `_labels` may return
arrays they reuse or update in place: the base class copies (and checks) what they return.
"""

from __future__ import annotations

import hashlib
from collections import deque
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np


@dataclass(frozen=True)
class Goal:
    """A goal: its image and the labels of the state it shows.

    Attributes:
        frame: uint8 (1, H, W), the goal state's last frame.
        labels: float64 (L,), ground-truth labels at the goal state.
        seed: the reset seed of the rollout that made it (None if unknown); evaluation resets
            with it so the agent starts where the goal's rollout started.
    """

    frame: np.ndarray
    labels: np.ndarray
    seed: int | None = None


def judge_success(
    labels: np.ndarray, goal_labels: np.ndarray, label_ranges: np.ndarray, tolerance: float = 0.1
) -> np.ndarray:
    """The spec's success judge, batched over leading dims.

    Args:
        labels: (..., L) labels of the reached states.
        goal_labels: (..., L) labels of the goals.
        label_ranges: (L,) max minus min of each label over random rollouts.
        tolerance: fraction of the range each label may be off by.

    Returns:
        bool (...): every label within `tolerance * range` of the goal's.
    """
    labels = np.asarray(labels, dtype=np.float64)
    goal_labels = np.asarray(goal_labels, dtype=np.float64)
    ranges = np.asarray(label_ranges, dtype=np.float64)
    if labels.shape[-1:] != ranges.shape or goal_labels.shape[-1:] != ranges.shape:
        raise ValueError(
            f"labels {labels.shape} and goal_labels {goal_labels.shape} must end with the "
            f"number of labels {ranges.shape[0]}"
        )
    return np.all(np.abs(labels - goal_labels) <= tolerance * ranges, axis=-1)


def goal_image_digest(frame: np.ndarray) -> int:
    """A 63-bit fingerprint of a goal image (uint8 (1, H, W)): `info["goal_image_digest"]`, by which
    `compute_reward` tells the goal an info was made for from a relabelled one."""
    frame = np.ascontiguousarray(frame, dtype=np.uint8)
    h = hashlib.blake2b(frame.tobytes(), digest_size=8, person=repr(frame.shape).encode()[:16])
    return int.from_bytes(h.digest(), "little") >> 1  # (fits an int64)


def label_distance(labels: np.ndarray, goal_labels: np.ndarray, label_ranges: np.ndarray) -> np.ndarray:
    """float64 (...): the largest |label - goal label| / range over the labels (..., L), in the
    judge's units: a state succeeds when it is at most the tolerance. A label of zero range
    must match exactly, so it adds 0 where it does and inf where it does not (never its raw
    difference, which could read as within the tolerance of a state that failed)."""
    diff = np.abs(np.asarray(labels, dtype=np.float64) - np.asarray(goal_labels, dtype=np.float64))
    ranges = np.asarray(label_ranges, dtype=np.float64)
    scaled = np.where(ranges > 0, diff / np.where(ranges > 0, ranges, 1.0), np.where(diff > 0, np.inf, 0.0))
    return scaled.max(axis=-1)


def _is_int(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


class GoalEnv(gym.Env):
    """Base class of GLAMOR's goal environments (see the module docstring for the contract)."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 8}
    label_names: tuple[str, ...] = ()
    success_tolerance: float = 0.1
    estimate_label_ranges: bool = True
    """True: goal sets estimate label_ranges from random rollouts (the spec); False: the env's
    declared label_ranges are exact (gridworld)."""
    moved_labels: tuple[int, ...] = ()
    """Label indices of movable objects, for held-out goals in which they moved (box variant)."""
    cache_data: Any = None
    """JSON data the env reads beside its source (Atari's RAM addresses, Control's label slices):
    cached goal sets are keyed by it (glamor/goals.py)."""
    cache_versions: dict[str, str] | None = None
    """The versions of what simulates and draws the env outside this package (ale-py, MuJoCo,
    dm_control, the GL backend and driver): cached goal sets are keyed by them, so goals made by another
    simulator, whose frames or labels may differ, are built again (glamor/goals.py)."""

    def __init__(
        self,
        frame_shape: tuple[int, int],
        frame_stack: int,
        episode_length: int,
        label_ranges: np.ndarray,
        render_mode: str | None = None,
    ):
        name = type(self).__name__
        shape = tuple(frame_shape) if isinstance(frame_shape, (tuple, list, np.ndarray)) else None
        if shape is None or len(shape) != 2 or not all(_is_int(v) and v >= 1 for v in shape):
            raise ValueError(f"{name}: frame_shape must be (H, W), two ints >= 1, got {frame_shape!r}")
        for arg, value in (("frame_stack", frame_stack), ("episode_length", episode_length)):
            if not _is_int(value) or value < 1:
                raise ValueError(f"{name}: {arg} must be an int >= 1, got {value!r}")
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        try:
            ranges = np.array(label_ranges, dtype=np.float64)
        except (TypeError, ValueError):
            ranges = None
        if ranges is None or ranges.ndim != 1 or len(ranges) < 1 or not (np.isfinite(ranges) & (ranges >= 0)).all():
            raise ValueError(f"{name}: label_ranges must be a 1-D array of at least one finite range >= 0 (one per "
                             f"label; placeholders such as ones when goal sets estimate them), got {label_ranges!r}")
        self.frame_shape = tuple(int(v) for v in shape)
        self.frame_stack = int(frame_stack)
        self.episode_length = int(episode_length)
        self.label_ranges = ranges
        self.render_mode = render_mode
        h, w = self.frame_shape
        image = lambda c: gym.spaces.Box(0, 255, (c, h, w), dtype=np.uint8)  # noqa: E731
        self.observation_space = gym.spaces.Dict(
            {"observation": image(frame_stack), "desired_goal": image(1), "achieved_goal": image(1)}
        )
        self._frames: deque[np.ndarray] = deque(maxlen=frame_stack)
        self._goal: Goal | None = None
        self._goal_image_digest = 0
        self._t = 0
        self._ended = False

    # ---- to implement -------------------------------------------------------------------
    def _reset_state(self) -> None:
        """Reset the underlying state using self.np_random."""
        raise self._not_implemented("_reset_state")

    def _step_state(self, action: int) -> bool:
        """Apply `action`; return True if the episode terminated (e.g. an Atari life loss)."""
        raise self._not_implemented("_step_state")

    def _frame(self) -> np.ndarray:
        """The current frame, uint8 (H, W)."""
        raise self._not_implemented("_frame")

    def _labels(self) -> np.ndarray:
        """The current ground-truth labels, float64 (L,)."""
        raise self._not_implemented("_labels")

    def _get_state(self) -> Any:
        """An opaque copy of the state (to roll out a goal and come back)."""
        raise self._not_implemented("_get_state")

    def _set_state(self, state: Any) -> None:
        raise self._not_implemented("_set_state")

    @classmethod
    def frame_from_image(cls, image: np.ndarray, frame_shape: tuple[int, int]) -> np.ndarray:
        """A grayscale picture of the environment (uint8 (H, W) of any size: a screenshot, a saved
        screen) as the uint8 `frame_shape` frame an episode would show the agent; `glamor plan`
        reads its image files through it. Here: a picture a whole number of times the frame's
        height and width (a frame scaled up for viewing, pixel for pixel: a gridworld's 22x22 as
        88x88) is area-resized, which gives that frame back exactly; another size is resized
        bilinearly. An environment that makes its frames by shrinking a larger screen overrides
        it to shrink a picture of that screen alike (Atari: its crop and area resize), so a model
        is not shown pixels unlike those it learned from."""
        from PIL import Image

        h, w = frame_shape
        if image.shape == (h, w):
            return image
        whole = image.shape[0] % h == 0 and image.shape[1] % w == 0  # (each pixel a block: its mean is it)
        return np.asarray(Image.fromarray(image).resize((w, h), Image.BOX if whole else Image.BILINEAR))

    def _not_implemented(self, method: str) -> NotImplementedError:
        return NotImplementedError(f"{type(self).__name__} must implement {method}() (the GoalEnv contract: "
                                   f"_reset_state, _step_state, _frame, _labels, _get_state, _set_state)")

    # ---- the contract -------------------------------------------------------------------
    @property
    def goal(self) -> Goal:
        assert self._goal is not None, "call reset() first"
        return self._goal

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self._goal = None  # a reset that fails (a goal refused, a broken rollout) leaves step() refused
        self._reset_state()
        self._t = 0
        self._ended = False
        frame = self._current_frame()
        self._frames.clear()
        for _ in range(self.frame_stack):
            self._frames.append(frame)
        goal = (options or {}).get("goal")
        if goal is None:
            goal = self.random_goal(seed)
        self._goal = self._check_goal(goal)
        self._goal_image_digest = goal_image_digest(self._goal.frame)
        return self._observation(), self._info()

    def step(self, action):
        if self._goal is None:
            raise RuntimeError("step() called before reset()")
        if self._ended:
            raise RuntimeError(f"step() after the episode ended (terminated, or truncated after "
                               f"{self.episode_length} steps); call reset()")
        # Discrete.contains takes a Python bool for 0 or 1 (bool is an int), though not NumPy's:
        # a bool is a caller's mistake (a flag passed for an action), refused alike in both forms.
        if isinstance(action, bool) or not self.action_space.contains(action):
            raise ValueError(f"action must be an int in [0, {self.action_space.n}), got {action!r}")
        terminated = self._advance(int(action))
        self._t += 1
        self._frames.append(self._current_frame())
        info = self._info()
        reward = float(info["is_success"])
        truncated = self._t >= self.episode_length and not terminated
        self._ended = terminated or truncated
        return self._observation(), reward, terminated, truncated, info

    def random_goal(self, seed: int | None = None) -> Goal:
        """A goal from a random-policy rollout of exactly episode_length steps from now, or
        up to the step that ends the episode (an Atari life loss): goals stay reachable within
        an episode, which ends there too.

        The environment's state is restored afterwards; the actions come from np_random.
        """
        saved, before = self._get_state(), self._current_labels()
        for _ in range(self.episode_length):
            if self._advance(int(self.np_random.integers(self.action_space.n))):
                break
        goal = Goal(self._current_frame()[None], self._current_labels(), seed)
        self._set_state(saved)
        if not np.array_equal(self._current_labels(), before):
            raise ValueError(f"{type(self).__name__}: after _set_state(_get_state()) around a goal rollout the labels "
                             f"are {self._current_labels()}, not {before} as before it: _get_state() must return a "
                             f"copy of the state (not a reference the steps change) and _set_state() must restore it")
        return goal

    def compute_reward(self, achieved_goal, desired_goal, info) -> np.ndarray:
        """Batched success (1.0) or not (0.0).

        Judged from `info["labels"]` against `info["goal_labels"]` (info may be one dict or a
        sequence of dicts) where `desired_goal` is the goal the info was made for (its image
        matches `info["goal_image_digest"]`; an info without a digest is taken to be for it); from
        pixel equality of the images elsewhere: for a relabelled desired goal (hindsight, SB3's
        HER), whose labels no info holds, and without labels (or with info None).
        """
        a, d = np.asarray(achieved_goal), np.asarray(desired_goal)
        pixels = np.all(a == d, axis=(-1, -2, -3))  # batch_shape
        batch_shape = pixels.shape
        if isinstance(info, dict) and "labels" in info and "goal_labels" in info:
            labels, goal_labels = np.asarray(info["labels"]), np.asarray(info["goal_labels"])
            digests = info.get("goal_image_digest")
        elif info is not None and not isinstance(info, dict) and len(info) and all(
                "labels" in i and "goal_labels" in i for i in info):  # as for one dict: else the images
            labels = np.stack([i["labels"] for i in info])
            goal_labels = np.stack([i["goal_labels"] for i in info])
            digests = [i.get("goal_image_digest") for i in info]
        else:
            return pixels.astype(np.float64)
        ok = judge_success(labels, goal_labels, self.label_ranges, self.success_tolerance).reshape(batch_shape)
        if digests is not None:  # the goal each info was made for, or another (relabelled) one
            wanted = np.broadcast_to(d, (*batch_shape, *d.shape[-3:])).reshape(-1, *d.shape[-3:])
            made_for = np.broadcast_to(np.asarray(digests, dtype=object), batch_shape).reshape(-1)
            own = [g is None or goal_image_digest(w) == int(g) for w, g in zip(wanted, made_for)]
            ok = np.where(np.reshape(own, batch_shape), ok, pixels)
        return ok.astype(np.float64)

    def render(self):
        """The current frame beside the goal, as RGB (H, 2W + 2, 3)."""
        if self.render_mode != "rgb_array":
            return None
        frame, goal = self._current_frame(), self.goal.frame[0]
        gap = np.full((frame.shape[0], 2), 128, np.uint8)
        gray = np.concatenate([frame, gap, goal], axis=1)
        return np.repeat(gray[..., None], 3, axis=-1)

    # ---- helpers ------------------------------------------------------------------------
    def _advance(self, action: int) -> bool:
        """`_step_state(action)`, its answer checked: True, False (or None: not ended)."""
        ended = self._step_state(action)
        if ended is None or isinstance(ended, (bool, np.bool_)):
            return bool(ended)
        raise ValueError(f"{type(self).__name__}._step_state() must return True (the episode ended) or False, "
                         f"got {ended!r}")

    def _current_frame(self) -> np.ndarray:
        """A checked copy of `_frame()` (an env may draw every frame into one buffer)."""
        frame = np.array(self._frame(), copy=True)
        if frame.shape != self.frame_shape or frame.dtype != np.uint8:
            raise ValueError(f"{type(self).__name__}._frame() must return a uint8 grayscale frame of shape "
                             f"{self.frame_shape} (H, W), got {frame.dtype} {frame.shape}")
        return frame

    def _current_labels(self) -> np.ndarray:
        """A float64 copy of `_labels()` (an env may update one array in place), checked."""
        want = f"{type(self).__name__}._labels() must return {self.label_ranges.shape[0]} finite numbers"
        try:
            labels = np.array(self._labels(), dtype=np.float64, copy=True)
        except (TypeError, ValueError) as e:
            raise ValueError(f"{want}, got values that are not numbers ({e})") from None
        if labels.shape != self.label_ranges.shape:
            raise ValueError(f"{want} ({', '.join(self.label_names)}), got shape {labels.shape}")
        if not np.isfinite(labels).all():  # (a NaN would judge every goal, and the ranges, wrongly)
            names = [self.label_names[i] if i < len(self.label_names) else f"label {i}"
                     for i in np.flatnonzero(~np.isfinite(labels))]
            raise ValueError(f"{want}, got {labels} ({', '.join(names)} not finite)")
        return labels

    def _check_goal(self, goal: Goal) -> Goal:
        expected = (1, *self.frame_shape)
        frame = np.asarray(goal.frame)
        if frame.shape != expected or frame.dtype != np.uint8:
            raise ValueError(
                f"goal.frame must be uint8 {expected}, got {frame.dtype} {frame.shape}"
            )
        if np.shape(goal.labels) != self.label_ranges.shape:
            raise ValueError(
                f"goal.labels must have shape {self.label_ranges.shape} "
                f"({', '.join(self.label_names)}), got {np.shape(goal.labels)}"
            )
        return goal

    def _observation(self) -> dict[str, np.ndarray]:
        return {
            "observation": np.stack(self._frames),
            "desired_goal": self.goal.frame.copy(),
            "achieved_goal": self._frames[-1][None].copy(),
        }

    def _info(self) -> dict[str, Any]:
        labels = self._current_labels()
        success = judge_success(labels, self.goal.labels, self.label_ranges, self.success_tolerance)
        return {"labels": labels, "goal_labels": self.goal.labels.copy(), "goal_image_digest": self._goal_image_digest,
                "is_success": bool(success)}
