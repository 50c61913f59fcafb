"""GridWorld: a pixel goal-reaching world rendered with numpy, the built-in environment.

Four rooms joined by doors (``size`` x ``size`` cells, outer walls included), an agent, and in
the ``box`` variant a box the agent pushes (it moves when the cell beyond it is free). Four
actions: up, down, left, right; moving into a wall leaves the agent where it is. The agent (and
the box) start on random free cells drawn from the reset seed, so the world is deterministic
under a seed.

Each cell is ``cell_px`` x ``cell_px`` pixels (2: a 22x22 frame): floor 0, wall 96, box 176, agent 255.
Labels are the agent's cell ``(row, col)``, and in the box variant also the box's cell. Their
range is the span of the interior (``size - 3``). Success needs the exact cells at every size:
the judge's tolerance is 10% of the range (the spec's) up to ``size`` 11, and half a cell in
larger worlds, where 10% of the span would take a neighbouring cell for the goal's.

Example:
    >>> import gymnasium as gym, glamor.envs
    >>> env = gym.make("glamor/GridWorld-v0")
    >>> obs, info = env.reset(seed=0)
    >>> obs["observation"].shape, info["labels"].shape
    ((1, 22, 22), (2,))
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np

from glamor.envs.goal_env import GoalEnv

FLOOR, WALL, BOX, AGENT = 0, 96, 176, 255
MOVES = np.array([(-1, 0), (1, 0), (0, -1), (0, 1)])  # up, down, left, right


def four_rooms(size: int) -> np.ndarray:
    """bool (size, size) wall map: outer walls, a cross of inner walls, one door per segment."""
    if size < 7 or size % 2 == 0:
        raise ValueError(f"size must be odd and >= 7, got {size}")
    walls = np.zeros((size, size), dtype=bool)
    walls[[0, -1], :] = walls[:, [0, -1]] = True
    mid = size // 2
    walls[mid, :] = walls[:, mid] = True
    a, b = (1 + mid) // 2, (mid + size - 1) // 2  # the middle of each wall segment
    walls[mid, a] = walls[mid, b + (size > 7)] = False  # doors in the horizontal wall
    walls[a + (size > 7), mid] = walls[b, mid] = False  # doors in the vertical wall
    return walls


class GridWorld(GoalEnv):
    """Four rooms with doors; optionally a box to push (see the module docstring)."""

    def __init__(
        self,
        size: int = 11,
        box: bool = False,
        cell_px: int = 2,
        frame_stack: int = 1,
        episode_length: int = 12,
        render_mode: str | None = None,
    ):
        if cell_px < 1:
            raise ValueError(f"cell_px must be >= 1, got {cell_px}")
        self.walls = four_rooms(size)
        self.size, self.box, self.cell_px = size, box, cell_px
        self.label_names = ("agent_row", "agent_col") + (("box_row", "box_col") if box else ())
        self.estimate_label_ranges = False
        self.moved_labels = (2, 3) if box else ()
        n_labels = len(self.label_names)
        super().__init__(
            frame_shape=(size * cell_px, size * cell_px),
            frame_stack=frame_stack,
            episode_length=episode_length,
            label_ranges=np.full(n_labels, size - 3, dtype=np.float64),
            render_mode=render_mode,
        )
        self.action_space = gym.spaces.Discrete(4)
        # Exact cells: from size 13 on, 10% of the span is a whole cell or more; then half a cell.
        span, tolerance = size - 3, GoalEnv.success_tolerance
        self.success_tolerance = tolerance if tolerance * span < 1 else 0.5 / span
        free = ~self.walls
        self._free_cells = np.argwhere(free)
        # Box starts where all four neighbours are free, so it can always be pushed somewhere.
        open_ = free.copy()
        open_[1:-1, 1:-1] &= free[:-2, 1:-1] & free[2:, 1:-1] & free[1:-1, :-2] & free[1:-1, 2:]
        open_[[0, -1], :] = open_[:, [0, -1]] = False
        self._box_cells = np.argwhere(open_)
        self._agent = np.zeros(2, dtype=np.int64)
        self._box = np.full(2, -1, dtype=np.int64)

    def _reset_state(self) -> None:
        rng = self.np_random
        if self.box:
            self._box = self._box_cells[rng.integers(len(self._box_cells))].copy()
            cells = [c for c in self._free_cells if not np.array_equal(c, self._box)]
            self._agent = cells[rng.integers(len(cells))].copy()
        else:
            self._agent = self._free_cells[rng.integers(len(self._free_cells))].copy()

    def _step_state(self, action: int) -> bool:
        target = self._agent + MOVES[action]
        if self.walls[tuple(target)]:
            return False
        if self.box and np.array_equal(target, self._box):
            beyond = self._box + MOVES[action]
            if self.walls[tuple(beyond)]:
                return False
            self._box = beyond
        self._agent = target
        return False

    def _frame(self) -> np.ndarray:
        cells = np.where(self.walls, WALL, FLOOR).astype(np.uint8)
        if self.box:
            cells[tuple(self._box)] = BOX
        cells[tuple(self._agent)] = AGENT
        px = self.cell_px
        return np.repeat(np.repeat(cells, px, axis=0), px, axis=1)  # (H, W)

    def _labels(self) -> np.ndarray:
        parts = [self._agent, self._box] if self.box else [self._agent]
        return np.concatenate(parts).astype(np.float64)

    @property
    def movable_objects(self) -> bool:
        """Whether anything but the agent can move (the box): what `objects_moved` looks for."""
        return self.box

    def objects_moved(self, frames: np.ndarray, goals: np.ndarray) -> np.ndarray:
        """bool (N,): whether the box lies elsewhere in `goals` than in `frames` (uint8 (N, H, W)
        each), read from the pixels; all False without a box."""
        if not self.box:
            return np.zeros(len(frames), dtype=bool)
        return ((frames == BOX) != (goals == BOX)).any(axis=(1, 2))

    def _get_state(self):
        return self._agent.copy(), self._box.copy()

    def _set_state(self, state) -> None:
        self._agent, self._box = state[0].copy(), state[1].copy()
