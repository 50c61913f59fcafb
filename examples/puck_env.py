"""Bring your own environment: a puck with momentum, as a glamor goal environment.

A puck slides on a square table with friction; five actions push it (none, up, down, left,
right) and it stops dead at the edges. Its velocity is invisible in one frame, so the
observation stacks two. Labels are the puck's position, and their ranges are estimated from
random rollouts like the paper's benchmarks (the base class does that when
``estimate_label_ranges`` is True, its default).

Train on it from the command line (gymnasium's ``module:id`` form imports this module, in the
training process and in every collection worker)::

    PYTHONPATH=examples glamor train --preset debug --env puck_env:Puck-v0 --set env_kwargs={}

or in Python::

    import glamor.envs, puck_env                  # importing registers Puck-v0
    env = glamor.envs.make("Puck-v0", episode_length=20)

A goal environment implements six methods on top of ``glamor.envs.GoalEnv`` (the contract is
in ``glamor/envs/goal_env.py``): ``_reset_state``, ``_step_state``, ``_frame``, ``_labels`` and
``_get_state`` / ``_set_state``, which let the base class roll out a random goal and come back.
Random draws must come from ``self.np_random`` so that a reset seed fixes the episode.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np

from glamor.envs import GoalEnv

PUSHES = np.array([(0.0, 0.0), (-1.0, 0.0), (1.0, 0.0), (0.0, -1.0), (0.0, 1.0)])  # (row, col)


class Puck(GoalEnv):
    """A puck on a table of ``size`` x ``size`` pixels; state: position and velocity in [0, 1] units."""

    def __init__(
        self,
        size: int = 24,
        push: float = 0.03,
        friction: float = 0.8,
        episode_length: int = 20,
        render_mode: str | None = None,
    ):
        if size < 8:
            raise ValueError(f"size must be >= 8 pixels, got {size}")
        if not 0.0 <= friction < 1.0:
            raise ValueError(f"friction must lie in [0, 1), got {friction}")
        self.size, self.push, self.friction = size, push, friction
        self.label_names = ("row", "col")
        super().__init__(
            frame_shape=(size, size),
            frame_stack=2,
            episode_length=episode_length,
            label_ranges=np.ones(2),  # replaced by the goal sets' estimate (estimate_label_ranges)
            render_mode=render_mode,
        )
        self.action_space = gym.spaces.Discrete(len(PUSHES))
        self._pos = np.zeros(2)
        self._vel = np.zeros(2)

    def _reset_state(self) -> None:
        self._pos = self.np_random.uniform(0.2, 0.8, size=2)
        self._vel = np.zeros(2)

    def _step_state(self, action: int) -> bool:
        self._vel = self.friction * self._vel + self.push * PUSHES[action]
        pos = self._pos + self._vel
        hit = (pos < 0.0) | (pos > 1.0)
        self._pos = np.clip(pos, 0.0, 1.0)
        self._vel[hit] = 0.0
        return False  # the puck never ends an episode early

    def _frame(self) -> np.ndarray:
        frame = np.zeros((self.size, self.size), dtype=np.uint8)
        r, c = np.round(self._pos * (self.size - 3)).astype(int)  # a 3x3 puck inside the table
        frame[r : r + 3, c : c + 3] = 255
        return frame

    def _labels(self) -> np.ndarray:
        return self._pos.copy()

    def _get_state(self):
        return self._pos.copy(), self._vel.copy()

    def _set_state(self, state) -> None:
        self._pos, self._vel = state[0].copy(), state[1].copy()


if "Puck-v0" not in gym.registry:
    gym.register("Puck-v0", entry_point=Puck)
