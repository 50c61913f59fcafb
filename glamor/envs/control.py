"""DeepMind Control goal environments: the 7 tasks of ``goal_labels.json`` through dm_control.

Actions are discretised as the spec says: ``grid`` gives every joint action with each dimension
in {-1, 0, 1} (3^d actions, index 0 all -1, in ``itertools.product`` order); ``one_axis``
(manipulator) gives a no-op (index 0) then one dimension at a time at -1 or +1 (2d + 1 actions).
Values are scaled to the task's action bounds (all [-1, 1] in the suite). Each agent step repeats
the action ``action_repeat`` times (4 for point_mass, 1 otherwise). The frame is camera 0 rendered
at 80x104 (H x W) and converted to grayscale (ITU-R 601 luma). Labels are slices of the task's
physics observation.

Rendering is headless: unless ``MUJOCO_GL`` is already set, the first control environment probes
EGL, then OSMesa, sets ``MUJOCO_GL`` to the first that works (before dm_control is imported), and
fails with the system package to install when neither does. With ``fast_render=True`` (default)
multisampling is off, the shadow map is 512 px and the offscreen buffer is the frame's size: a
2-7x faster software render. Shadows look the same; edges lose their anti-aliasing (about 1 gray
level on average, up to ~100 on edge pixels); ``fast_render=False`` keeps dm_control's defaults.

All randomness comes from ``self.np_random``: each reset draws the task's initial-state seed from
it, and `_get_state`/`_set_state` save the full MuJoCo integration state (warm start included,
so a rollout and its replay agree bit for bit) and the task's random state.

Example:
    >>> import glamor.envs
    >>> env = glamor.envs.make("glamor/reacher-hard-v0", episode_length=100)
    >>> obs, info = env.reset(seed=0)
    >>> obs["observation"].shape, int(env.action_space.n), env.label_names
    ((4, 80, 104), 9, ('position_0', 'position_1'))
"""

from __future__ import annotations

import ctypes.util
import importlib.metadata
import itertools
import os
import subprocess
import sys

import gymnasium as gym
import numpy as np

from glamor.envs.goal_env import GoalEnv
from glamor.errors import EnvironmentUnavailable

FRAME_SHAPE = (80, 104)  # (H, W)
CAMERA_ID = 0
LUMA = np.array([299, 587, 114], dtype=np.uint32)  # ITU-R 601, per mille

# Backends in order of preference: (MUJOCO_GL value, shared library, Debian/Ubuntu package).
GL_BACKENDS = (("egl", "EGL", "libegl1"), ("osmesa", "OSMesa", "libosmesa6"))
_PROBE = "import mujoco; c = mujoco.GLContext(8, 8); c.make_current(); c.free()"


def _probe_gl(backend: str) -> str | None:
    """None if MuJoCo can make an offscreen context with `backend`, else why not."""
    env = {**os.environ, "MUJOCO_GL": backend, "PYOPENGL_PLATFORM": backend}
    try:
        out = subprocess.run(
            [sys.executable, "-c", _PROBE], env=env, capture_output=True, text=True, timeout=120
        )
    except subprocess.TimeoutExpired:
        return "timed out creating a context"
    if out.returncode == 0:
        return None
    lines = (out.stderr or out.stdout).strip().splitlines()
    return lines[-1] if lines else f"exit status {out.returncode}"


def select_gl_backend(probe=_probe_gl, find_library=ctypes.util.find_library) -> str:
    """Set ``MUJOCO_GL`` for headless rendering unless the user already did; return it.

    Tries EGL, then OSMesa. Call it before dm_control is imported (dm_control reads
    ``MUJOCO_GL`` once, at import).

    Raises:
        EnvironmentUnavailable: neither works; the message names the packages to install.
    """
    if os.environ.get("MUJOCO_GL"):
        return os.environ["MUJOCO_GL"]
    failures = []
    for backend, library, package in GL_BACKENDS:
        if find_library(library) is None:
            failures.append(f"{backend}: lib{library} not found (Debian/Ubuntu package {package})")
            continue
        why = probe(backend)
        if why is None:
            os.environ["MUJOCO_GL"] = backend
            return backend
        failures.append(f"{backend}: {why} (Debian/Ubuntu package {package})")
    raise EnvironmentUnavailable(
        "DeepMind Control environments render headless with EGL or OSMesa, and neither works "
        "here:\n  " + "\n  ".join(failures) + "\nInstall one, e.g. `apt-get install libegl1` "
        "(EGL, with Mesa or the NVIDIA driver) or `apt-get install libosmesa6` (OSMesa, CPU "
        "only), or set MUJOCO_GL yourself."
    )


# dm_control's other MUJOCO_GL values (dm_control/_render/constants.py): GLFW's, and no renderer's
GLFW_ALIASES = ("on", "enable", "enabled", "true", "1")
NO_RENDERER_ALIASES = ("off", "disable", "disabled", "false", "0")


def gl_failure(backend: str, error: Exception) -> str:
    """The message for a rendering backend that was chosen (or set by the user) but fails."""
    packages = {"egl": "libegl1", "osmesa": "libosmesa6", "glfw": "libglfw3 and a display"}
    # dm_control's other names: of GLFW (MUJOCO_GL=1 is GLFW, not a typo), and of no renderer at all
    # (compared as dm_control does, case and all); a value MuJoCo has no backend for (a typo) wants
    # another value, not a package
    if backend in packages:
        fix = f"Install {packages[backend]} (Debian/Ubuntu package), or unset"
    elif backend in GLFW_ALIASES:
        fix = f"MUJOCO_GL={backend} is GLFW's: install {packages['glfw']} (Debian/Ubuntu package), or unset"
    elif backend in NO_RENDERER_ALIASES:
        fix = (f"MUJOCO_GL={backend} turns MuJoCo's rendering off, and a control environment's observations are "
               f"frames: set egl or osmesa (glfw with a display), or unset")
    else:
        fix = (f"MUJOCO_GL={backend} names none of the backends glamor renders with (egl, osmesa; glfw with a "
               f"display): set one of them, or unset")
    return (
        f"MuJoCo rendering with MUJOCO_GL={backend} failed ({type(error).__name__}: {error}). "
        f"{fix} MUJOCO_GL to let glamor pick EGL or OSMesa."
    )


def _package_version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:  # (not installed as a distribution)
        return "unknown"


def _gl_renderer(physics) -> str:
    """The OpenGL vendor, renderer and version strings of `physics`'s rendering context."""
    try:
        from OpenGL import GL

        with physics.contexts.gl.make_current() as ctx:
            strings = ctx.call(lambda: [GL.glGetString(s) for s in (GL.GL_VENDOR, GL.GL_RENDERER, GL.GL_VERSION)])
        return " | ".join(s.decode(errors="replace") for s in strings)
    except Exception:  # noqa: BLE001 - a key part, never worth failing a build over
        return "unknown"


def discrete_actions(kind: str, minimum: np.ndarray, maximum: np.ndarray) -> np.ndarray:
    """float64 (n, d) table of the discretised actions, scaled to [minimum, maximum].

    Args:
        kind: "grid" (every dimension in {-1, 0, 1}: 3^d rows) or "one_axis" (a no-op, then one
            dimension at -1 or +1: 2d + 1 rows).
    """
    d = len(minimum)
    if kind == "grid":
        unit = np.array(list(itertools.product((-1.0, 0.0, 1.0), repeat=d)))  # (3^d, d)
    elif kind == "one_axis":
        unit = np.zeros((2 * d + 1, d))
        for i in range(d):
            unit[1 + 2 * i, i], unit[2 + 2 * i, i] = -1.0, 1.0
    else:
        raise ValueError(f"discretisation must be 'grid' or 'one_axis', got {kind!r}")
    lo, hi = np.asarray(minimum, np.float64), np.asarray(maximum, np.float64)
    return lo + (unit + 1.0) / 2.0 * (hi - lo)


class ControlGoalEnv(GoalEnv):
    """One DeepMind Control task as a goal environment (see the module docstring).

    Args:
        domain, task: a key ``"domain/task"`` of ``goal_labels.json["control"]``.
        episode_length: k, agent steps per episode and per goal rollout (the spec: 100).
        frame_stack: frames in the observation (the spec: 4).
        action_repeat: physics control steps per agent step (None: the table's value).
        fast_render: rendering options for speed that barely change the image (see above).
        frame_shape: (H, W) the camera renders: the spec's (80, 104), or smaller for a CPU budget.
        render_mode: None or "rgb_array" (the frame beside the goal).
    """

    def __init__(
        self,
        domain: str = "reacher",
        task: str = "hard",
        episode_length: int = 100,
        frame_stack: int = 4,
        action_repeat: int | None = None,
        fast_render: bool = True,
        frame_shape: tuple[int, int] = FRAME_SHAPE,
        render_mode: str | None = None,
    ):
        from glamor.envs import goal_labels

        table = goal_labels()["control"]
        name = f"{domain}/{task}"
        if name not in table:
            raise ValueError(f"unknown control task {name!r}; known: {sorted(table)}")
        entry = table[name]
        self.cache_data = entry  # its labels, action repeat and discretisation: goal caches are keyed by them
        self.domain, self.task_name = domain, task
        self.action_repeat = int(entry["action_repeat"] if action_repeat is None else action_repeat)
        if self.action_repeat < 1:
            raise ValueError(f"action_repeat must be >= 1, got {action_repeat}")
        self._label_slices = [
            (key, np.asarray(idx, np.intp)) for key, idx in entry["labels"].items()
        ]
        self.label_names = tuple(f"{key}_{i}" for key, idx in self._label_slices for i in idx)
        super().__init__(
            frame_shape=tuple(frame_shape),
            frame_stack=frame_stack,
            episode_length=episode_length,
            # A placeholder: goal sets estimate the ranges from random rollouts.
            label_ranges=np.ones(len(self.label_names)),
            render_mode=render_mode,
        )

        backend = select_gl_backend()
        try:
            from dm_control import suite
            from dm_control.mujoco.engine import Camera
        except ModuleNotFoundError as e:
            raise ImportError(
                "DeepMind Control environments need dm_control and mujoco: pip install 'glamor[envs]' "
                "(or pip install dm_control==1.0.50 mujoco==3.17.0: mujoco 4 breaks dm_control)"
            ) from e
        except Exception as e:  # dm_control loads the OpenGL backend at import
            raise EnvironmentUnavailable(gl_failure(backend, e)) from e
        self._env = suite.load(domain, task, task_kwargs={"random": 0})
        self.physics, self.task = self._env.physics, self._env.task
        try:  # what follows fails: the physics and any GL context a camera made are freed (close)
            self._n_sub_steps = round(self._env.control_timestep() / self.physics.timestep())
            spec = self._env.action_spec()
            self._actions = discrete_actions(entry["discretisation"], spec.minimum, spec.maximum)
            self.action_space = gym.spaces.Discrete(len(self._actions))

            h, w = self.frame_shape
            vis = self.physics.model.vis
            if fast_render:
                vis.quality.offsamples = 0
                vis.quality.shadowsize = 512
                vis.global_.offwidth, vis.global_.offheight = w, h
            else:  # dm_control's defaults, the offscreen buffer grown where the frame would not fit
                vis.global_.offwidth = max(int(vis.global_.offwidth), w)
                vis.global_.offheight = max(int(vis.global_.offheight), h)
            try:
                self._camera = Camera(self.physics, height=h, width=w, camera_id=CAMERA_ID)
            except Exception as e:
                raise EnvironmentUnavailable(gl_failure(backend, e)) from e
            import mujoco
            from dm_control import _render

            # Other physics or another renderer give other labels or frames: goal caches are keyed by
            # them (the backend in use: dm_control read MUJOCO_GL once, when it was imported; and the
            # OpenGL driver behind it: EGL is the NVIDIA driver on a GPU machine, Mesa's on a CPU one).
            self.cache_versions = {"mujoco": mujoco.__version__, "dm_control": _package_version("dm_control"),
                                   "gl": str(_render.BACKEND), "gl_renderer": _gl_renderer(self.physics)}
            self._state_kind = mujoco.mjtState.mjSTATE_INTEGRATION
            self._gray: np.ndarray | None = None
        except BaseException:
            self.close()
            raise

    # ---- the state machine ------------------------------------------------------------------
    def _reset_state(self) -> None:
        # The task draws the initial state from its own RandomState: seed it from np_random.
        self.task._random = np.random.RandomState(int(self.np_random.integers(2**31)))
        with self.physics.reset_context():
            self.task.initialize_episode(self.physics)
        self._gray = None

    def _step_state(self, action: int) -> bool:
        control = self._actions[action]
        for _ in range(self.action_repeat):  # what dm_control's Environment.step does, sans reward
            self.task.before_step(control, self.physics)
            self.physics.step(self._n_sub_steps)
            self.task.after_step(self.physics)
        self._gray = None
        return self.task.get_termination(self.physics) is not None

    def _frame(self) -> np.ndarray:
        if self._gray is None:
            rgb = self._camera.render()  # (H, W, 3) uint8
            self._gray = ((rgb @ LUMA + 500) // 1000).astype(np.uint8)  # (H, W)
        return self._gray

    def _labels(self) -> np.ndarray:
        obs = self.task.get_observation(self.physics)
        return np.concatenate(
            [np.asarray(obs[key], np.float64).reshape(-1)[idx] for key, idx in self._label_slices]
        )

    def _get_state(self):
        return self.physics.get_state(self._state_kind), self.task.random.get_state()

    def _set_state(self, state) -> None:
        physics_state, random_state = state
        self.physics.set_state(physics_state, self._state_kind)
        self.physics.forward()  # positions, contacts and sensors of the restored state
        self.task.random.set_state(random_state)
        self._gray = None

    def close(self) -> None:
        """Free the scene, the physics and its rendering contexts (a closed environment cannot be
        used). Also what a constructor that failed after loading the task calls."""
        camera = self.__dict__.pop("_camera", None)
        if camera is not None:
            camera._scene.free()  # as dm_control's own Physics.render does
        physics = self.__dict__.get("physics")
        if physics is not None:
            physics.free()  # (freeing it again does nothing)
        super().close()
