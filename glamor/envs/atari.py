"""Atari goal environments: the 14 games of ``goal_labels.json`` through ale-py, preprocessed as in the spec.

One agent step is ``frame_skip`` (4) emulator frames of the same action, each frame with sticky
actions (with probability 0.25 the previous frame's action is repeated instead). The observed
frame is the pixel-wise max of the last two grayscale frames emulated (also when a game over
ends the step early), one row cropped at the top and bottom (210x160 -> 208x160), then
area-resized to 80x104 (H x W; ``frame_shape=(104, 80)`` gives the reference code's
undistorted 2x downsample instead). Episodes start after 0 to 30
random no-op frames (Ms. Pac-Man after at least 200 more, when the maze has started moving),
use the full 18-action set, and also end at a life loss. Labels are bytes of the console RAM
at the addresses in ``goal_labels.json``.

All randomness (no-ops, sticky actions, goal rollouts) comes from ``self.np_random``: the
emulator runs with ALE's own sticky actions off and restarts from one saved post-reset state,
so an episode is a function of the reset seed and the actions. `_get_state`/`_set_state` use
ALE's ``cloneState``/``restoreState``.

Example:
    >>> import glamor.envs
    >>> env = glamor.envs.make("glamor/Pong-v0", episode_length=50)
    >>> obs, info = env.reset(seed=0)
    >>> obs["observation"].shape, env.label_names
    ((4, 80, 104), ('ball_x', 'ball_y', 'enemy_y', 'player_y'))
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np

from glamor.envs.goal_env import GoalEnv

FRAME_SHAPE = (80, 104)  # (H, W) after preprocessing, as the spec says
SCREEN_SHAPE = (210, 160)  # (H, W) of the emulator's screen
REFERENCE_FRAME_SHAPE = (104, 80)  # (H, W) of the reference code: an undistorted 2x downsample
NUM_ACTIONS = 18  # ALE's full action set; games ignore the actions they do not use
NOOP = 0
EXTRA_START_NOOPS = {"ms_pacman": 200}  # frames before the random no-ops (nothing moves before)


def preprocess(last_two: np.ndarray, shape: tuple[int, int] = FRAME_SHAPE) -> np.ndarray:
    """uint8 (2, 210, 160) grayscale screens -> uint8 `shape` (H, W): the max of the two, one row
    cropped at the top and bottom, then an area (box-filter) resize."""
    from PIL import Image

    screen = np.maximum(last_two[0], last_two[1])[1:-1]  # (208, 160)
    h, w = shape
    return np.asarray(Image.fromarray(screen).resize((w, h), Image.BOX))  # (H, W)


class AtariGoalEnv(GoalEnv):
    """One Atari game as a goal environment (see the module docstring).

    Args:
        game: a key of ``goal_labels.json["atari"]`` (ALE's ROM id), e.g. ``"pong"``.
        episode_length: k, agent steps per episode and per goal rollout (the spec: 50).
        frame_stack: frames in the observation (the spec: 4).
        frame_skip: emulator frames per agent step (the spec: 4).
        repeat_action_probability: sticky-action probability per emulator frame (the spec: 0.25).
        noop_max: at most this many random no-op frames at reset (the spec: 30).
        terminal_on_life_loss: end the episode when a life is lost (the spec: True).
        frame_shape: (H, W) of the frames: the spec's (80, 104), or the reference code's
            (104, 80), which is an exact 2x downsample of the cropped 208x160 screen.
        render_mode: None or "rgb_array" (the frame beside the goal).
    """

    def __init__(
        self,
        game: str = "pong",
        episode_length: int = 50,
        frame_stack: int = 4,
        frame_skip: int = 4,
        repeat_action_probability: float = 0.25,
        noop_max: int = 30,
        terminal_on_life_loss: bool = True,
        frame_shape: tuple[int, int] = FRAME_SHAPE,
        render_mode: str | None = None,
    ):
        from glamor.envs import goal_labels

        table = goal_labels()["atari"]
        if game not in table:
            raise ValueError(f"unknown Atari game {game!r}; known: {sorted(table)}")
        if frame_skip < 1 or noop_max < 0 or not 0.0 <= repeat_action_probability <= 1.0:
            raise ValueError(
                f"need frame_skip >= 1, noop_max >= 0, 0 <= repeat_action_probability <= 1; got "
                f"{frame_skip}, {noop_max}, {repeat_action_probability}"
            )
        self.game, self.ale_game = game, table[game]["ale_game"]
        self.cache_data = table[game]  # its RAM addresses: goal caches are keyed by them
        self.label_names = tuple(table[game]["ram"])
        self._ram_index = np.array(list(table[game]["ram"].values()), dtype=np.intp)
        self.frame_skip, self.noop_max = frame_skip, noop_max
        self.repeat_action_probability = repeat_action_probability
        self.terminal_on_life_loss = terminal_on_life_loss
        self.start_noops = EXTRA_START_NOOPS.get(game, 0)
        super().__init__(
            frame_shape=tuple(frame_shape),
            frame_stack=frame_stack,
            episode_length=episode_length,
            # A placeholder: goal sets estimate the ranges from random rollouts.
            label_ranges=np.full(len(self.label_names), 255.0),
            render_mode=render_mode,
        )
        self.action_space = gym.spaces.Discrete(NUM_ACTIONS)

        try:
            import ale_py
            from ale_py import roms
        except ImportError as e:
            raise ImportError(
                "Atari environments need ale-py (its ROMs ship with it): pip install 'glamor[envs]' "
                "(or pip install ale-py)"
            ) from e
        import PIL

        # Another emulator or resize could give other frames and RAM: goal caches are keyed by them.
        self.cache_versions = {"ale_py": ale_py.__version__, "pillow": PIL.__version__}
        ale_py.ALEInterface.setLoggerMode(ale_py.LoggerMode.Error)
        self.ale = ale_py.ALEInterface()
        self.ale.setFloat("repeat_action_probability", 0.0)  # sticky actions come from np_random
        self.ale.setInt("random_seed", 0)
        self.ale.loadROM(str(roms.get_rom_path(game)))
        self.ale.reset_game()
        # Every episode restarts from this state, so a reset depends on nothing but the seed.
        self._start_state = self.ale.cloneState(include_rng=True)
        # restoreState does not restore the screen, so keep the start screen too.
        self._start_screen = self.ale.getScreenGrayscale()
        self._ale_actions = [ale_py.Action(i) for i in range(NUM_ACTIONS)]
        self._screens = np.zeros((2, *SCREEN_SHAPE), dtype=np.uint8)  # the last two frames, oldest first
        self._last_action = NOOP
        self._lives = self.ale.lives()
        self._processed: np.ndarray | None = None

    # ---- the state machine ------------------------------------------------------------------
    def _capture(self) -> None:
        self._screens[0] = self._screens[1]
        self.ale.getScreenGrayscale(self._screens[1])
        self._processed = None

    def _reset_state(self) -> None:
        self.ale.restoreState(self._start_state)
        noops = self.start_noops + int(self.np_random.integers(self.noop_max + 1))
        self._screens[:] = self._start_screen  # both frames of the max, until two frames ran
        self._processed = None
        for i in range(noops):
            self.ale.act(self._ale_actions[NOOP])
            if i >= noops - 2:
                self._capture()
        self._last_action = NOOP
        self._lives = self.ale.lives()

    def _step_state(self, action: int) -> bool:
        keep_previous = self.np_random.random(self.frame_skip) < self.repeat_action_probability
        for i in range(self.frame_skip):
            if not keep_previous[i]:
                self._last_action = action
            self.ale.act(self._ale_actions[self._last_action])
            # Every frame is kept: a game over can end the step at any frame, and the max is then
            # of that frame and the one before it, as at a step's end. A capture costs ~16 us; the
            # two before a window's last two add 6-7% to a Pong or Seaquest step (A/B on AMD EPYC,
            # thread CPU time, 25 alternating rounds, 2026-12-07). No cheaper way is exact: ale-py
            # has no palette to convert raw frames (getScreen, ~1 us) later, and cloning the state
            # to replay a window costs 50-100 us.
            self._capture()
            if self.ale.game_over():
                break
        lives, self._lives = self._lives, self.ale.lives()
        return self.ale.game_over() or (self.terminal_on_life_loss and self._lives < lives)

    @classmethod
    def frame_from_image(cls, image: np.ndarray, frame_shape: tuple[int, int]) -> np.ndarray:
        """A picture of the emulator's whole screen (210x160) is made into a frame as the
        emulator's screens are (`preprocess`: the crop, then the area resize), exactly the frame
        an episode shows when its last two screens are that picture; other sizes as GoalEnv's."""
        if image.shape == SCREEN_SHAPE:
            return preprocess(np.stack([image, image]), tuple(frame_shape))
        return super().frame_from_image(image, frame_shape)

    def _frame(self) -> np.ndarray:
        if self._processed is None:
            self._processed = preprocess(self._screens, self.frame_shape)
        return self._processed

    def _labels(self) -> np.ndarray:
        return self.ale.getRAM()[self._ram_index].astype(np.float64)

    def _get_state(self):
        return (
            self.ale.cloneState(include_rng=True),
            self._screens.copy(),
            self._last_action,
            self._lives,
        )

    def _set_state(self, state) -> None:
        ale_state, screens, self._last_action, self._lives = state
        self.ale.restoreState(ale_state)
        self._screens[:] = screens
        self._processed = None
