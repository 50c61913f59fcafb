"""What both agents share (`glamor.agent.Agent`, GLAMOR's planner, and `glamor.gcsl.GCSLAgent`,
the GCSL baseline's policy): building one from a config or from a trained run's checkpoint,
taking one observation or a batch, and epsilon-greedy exploration.

A subclass names the `Config.algo` whose runs it acts for (`ALGO`), the network it acts with
(`model_class`) and the config fields it reads (`CONFIG_FIELDS`, field -> constructor argument).
`load_agent` loads whichever of the two a run trained.
"""

from __future__ import annotations

import inspect
import warnings
from pathlib import Path

import numpy as np
import torch

from glamor import checkpoint, planning
from glamor.config import MODEL_FIELDS, Config, check_model_unchanged
from glamor.devices import resolve_device
from glamor.errors import did_you_mean
from glamor.exploration import epsilon_greedy
from glamor.run_dir import check_is_run, runs_under


class AgentBase:
    ALGO: str = ""  # the Config.algo this agent acts for
    CONFIG_FIELDS: dict[str, str] = {}  # config field -> the constructor argument it becomes

    @classmethod
    def model_class(cls) -> type:
        """The network this agent acts with (it has `from_config(cfg, num_actions, frame_stack, image_hw)`)."""
        raise NotImplementedError

    @classmethod
    def check_network(cls, network, name: str) -> None:
        """Raise ValueError unless `network` (the constructor's argument `name`) is this agent's model_class."""
        want = cls.model_class()
        if not isinstance(network, want):
            # torch.compile's wrapper holds it as _orig_mod, DistributedDataParallel's as module
            inner = next((a for a in ("_orig_mod", "module") if isinstance(getattr(network, a, None), want)), None)
            hint = f" that wraps one: pass {name}.{inner} (the same weights)" if inner else ""
            raise ValueError(f"{name} must be a {want.__name__}, got {type(network).__name__}{hint}")

    @staticmethod
    def check_cache_goals(cache_goals) -> bool:
        """The constructor's `cache_goals`, which must be a bool (a string such as "no" is truthy)."""
        if not isinstance(cache_goals, bool):
            raise ValueError(f"cache_goals must be True or False, got {cache_goals!r}")
        return cache_goals

    @classmethod
    def from_config(cls, model, cfg, **overrides):
        kwargs = {argument: getattr(cfg, field) for field, argument in cls.CONFIG_FIELDS.items()}
        return cls(model, **{**kwargs, **overrides})

    @classmethod
    def load(cls, path: str | Path, device: str | torch.device = "cpu", **overrides):
        """An agent from a run directory (its newest complete checkpoint) or a checkpoint file;
        no environment is built. `overrides` replace config fields the agent reads or set its
        constructor's arguments. The model is in eval mode on `device`; `agent.config` is the
        run's config with the overrides, those given by an argument's name under its field's
        (method="sample" sets planner); `horizon` is an argument alone: it sets `agent.horizon`
        (act's default plan length), and `agent.config.horizon` stays the run's episode length.
        A run trained with backend='native' loads with
        backend='reference' (the same plans), with a warning, where the native ops cannot
        plan on `device` (glamor._C not built here, or no CUDA kernels for the GPU); an explicit
        backend='native' override raises there at the first plan instead.

        Example:
            >>> agent = Agent.load("runs/demo", plan_width=64)  # doctest: +SKIP
        """
        state, trained = read_checkpoint(path)
        if trained.algo != cls.ALGO:
            raise ValueError(f"{path} holds a {trained.algo} run, not a {cls.ALGO} one: load it with "
                             f"{_AGENTS[trained.algo]}.load, or glamor.agent.load_agent for either")
        return cls._from_checkpoint(path, state, trained, device, overrides)

    @classmethod
    def _from_checkpoint(cls, path, state: dict, trained: Config, device, overrides: dict):
        fields = set(Config.__dataclass_fields__)
        arguments = set(inspect.signature(cls.__init__).parameters) - {"self", "model", "policy"}
        unknown = sorted(set(overrides) - fields - arguments)
        if unknown:
            hints = "".join(f"; {u}{did_you_mean(u, fields | arguments)}" for u in unknown
                            if did_you_mean(u, fields | arguments))
            raise ValueError(f"unknown setting(s) {unknown}{hints}: overrides are config fields "
                             f"(glamor.config.Config) or {cls.__name__} arguments {sorted(arguments)}")
        unread = sorted(set(overrides) & (fields - set(cls.CONFIG_FIELDS) - set(MODEL_FIELDS) - arguments))
        if unread:
            read = sorted(set(cls.CONFIG_FIELDS) & fields)  # `horizon` is a Config property, not a field
            hint = ("; episode_length is the length the model trained on, a plan's length is the horizon "
                    "argument (horizon=N)" if "episode_length" in unread else "")
            if "torch_threads" in unread:  # a run's setting for its own process, which an agent leaves alone
                hint += "; torch_threads: call torch.set_num_threads(N) in your process (the planners use torch's threads)"
            other = _read_by_other_agents(cls, unread)
            if other:
                hint += "; " + "; ".join(f"{sorted(names)} {'are' if len(names) > 1 else 'is'} read by {name} "
                                         f"({algo} runs)" for algo, name, names in other)
            raise ValueError(f"{unread}: {cls.__name__} does not read these settings (a {cls.ALGO} run's agent; "
                             f"they are training, evaluation or another algorithm's settings); it reads the "
                             f"config fields {read} and its arguments {sorted(arguments)}{hint}")
        both = sorted(f"{field} and {argument}" for field, argument in cls.CONFIG_FIELDS.items()
                      if field != argument and field in overrides and argument in overrides)
        if both:
            raise ValueError(f"{', '.join(both)} name one setting (a config field and the argument it becomes): "
                             f"give one of them")
        check_model_unchanged(trained, overrides, "loading its agent")
        cfg = trained.replace(**{k: v for k, v in overrides.items() if k in fields})
        meta = checkpoint.model_meta(state)
        model = cls.model_class().from_config(cfg, meta["num_actions"], meta["frame_stack"], tuple(meta["image_hw"]))
        checkpoint.load_weights(model, state)
        model = model.to(resolve_device(str(device))).eval()  # a torch.device is checked too
        if "backend" in cls.CONFIG_FIELDS and "backend" not in overrides and cfg.backend == "native":
            missing = planning.native_missing(model.device)
            if missing is not None:  # a setting of the machine it trained on (config.MACHINE_FIELDS)
                warnings.warn(f"{path} trained with backend='native', which cannot plan on {model.device} here "
                              f"({missing}): this agent plans with backend='reference', the same plans (slower); "
                              f"load it with backend='reference' to say so, or backend='native' to refuse",
                              RuntimeWarning, stacklevel=3)
                cfg = cfg.replace(backend="reference")
        agent = cls.from_config(model, cfg, **{k: v for k, v in overrides.items() if k not in fields})
        # an override under an argument's name (method="sample") is the config field's too (planner)
        agent.config = cfg.replace(**{field: getattr(agent, argument) for field, argument in cls.CONFIG_FIELDS.items()
                                      if field in fields and argument in overrides and argument not in fields})
        return agent

    @property
    def num_actions(self) -> int:
        return self.model.num_actions

    def __repr__(self) -> str:
        settings = ", ".join(f"{argument}={getattr(self, argument)!r}" for argument in self.CONFIG_FIELDS.values())
        return f"{type(self).__name__}({settings}, actions={self.num_actions}, device={str(self.model.device)!r})"

    def _as_batch(self, obs, goal, keys):
        """`act`'s inputs as a batch: (obs (P, S, H, W), goal (P, 1, H, W), keys, whether it was
        one observation (S, H, W) with one goal (1, H, W) or (H, W)), numpy arrays or tensors as
        given; the shapes of one observation checked against the model's."""
        obs, goal = as_array(obs, "obs"), as_array(goal, "goal")
        if obs.ndim not in (3, 4):
            raise ValueError(f"obs must be uint8 frames (S, H, W) or a batch (P, S, H, W), got shape {tuple(obs.shape)}")
        single = obs.ndim == 3
        if single:
            want = (self.model.frame_stack, *self.model.image_hw)
            if obs.shape != want:
                rgb = " (an RGB image? frames are grayscale)" if obs.shape[-1] in (3, 4) else ""
                raise ValueError(f"one observation must be the model's (S, H, W) = {want} grayscale frames, "
                                 f"got shape {obs.shape}{rgb}")
            hw = obs.shape[-2:]
            if goal.shape not in (hw, (1, *hw)):
                raise ValueError(f"one observation {obs.shape} (S, H, W) takes one goal of shape {hw} or "
                                 f"{(1, *hw)} (a grayscale image of the same size), got {goal.shape}")
            obs, goal = obs[None], goal.reshape(1, 1, *hw)
            if keys is not None:  # (a tensor on a GPU too, which numpy cannot read)
                keys = keys.reshape(-1) if isinstance(keys, torch.Tensor) else np.asarray(keys).reshape(-1)
        return obs, goal, keys, single

    def epsilon_greedy(self, actions: np.ndarray, epsilon: float) -> np.ndarray:
        """Each action replaced by a uniform random one with probability `epsilon`."""
        return epsilon_greedy(self.rng, self.num_actions, actions, epsilon)

    def forget_goals(self) -> None:
        """Drop the cached goal encoding (needed only after writing weights through `.data`;
        see glamor/goal_cache.py)."""
        self._goals.clear()


# Config.algo -> the agent that acts for its runs
_AGENTS = {"glamor": "glamor.agent.Agent", "gcsl": "glamor.gcsl.GCSLAgent"}


def _read_by_other_agents(cls, names: list[str]) -> list[tuple[str, str, list[str]]]:
    """(algo, agent, the names it reads) for each other algorithm's agent that reads some of `names`:
    `plan_width` given to a GCSL run's agent is a GLAMOR planner setting."""
    import importlib

    found = []
    for algo, qualified in _AGENTS.items():
        module, name = qualified.rsplit(".", 1)
        agent = getattr(importlib.import_module(module), name)
        read = [n for n in names if n in agent.CONFIG_FIELDS]
        if agent is not cls and read:
            found.append((algo, qualified, read))
    return found


def read_checkpoint(path: str | Path) -> tuple[dict, Config]:
    """A run directory's newest complete checkpoint, or a checkpoint file, and its config."""
    path = Path(path)  # warnings point at the user's call: 4 frames up (warn, note_left_aside, here, load)
    if path.is_file():
        checkpoint.note_left_aside(path.parent, stacklevel=4)  # as load_latest does for a run directory
    state = checkpoint.load_latest(path, with_replay=False, stacklevel=4) if path.is_dir() else checkpoint.load(path)
    if state is None:
        if path.is_dir() and runs_under(path):  # a folder of runs (those of glamor compare, too)
            check_is_run(path, "loading an agent")  # (names them)
        raise FileNotFoundError(f"{path} holds no complete checkpoint")
    if not {"model", "config", "model_meta"} <= set(state):
        raise ValueError(f"{path} is not a glamor run's checkpoint (it has no model weights, config "
                         f"and model_meta)")
    return state, Config.from_dict(state["config"], f"{state.get('path', str(path))}'s config")


def as_array(x, name: str) -> torch.Tensor | np.ndarray:
    """A tensor as it is (on any device: GPU tensors stay), anything array-like as a numpy array."""
    if isinstance(x, torch.Tensor):
        return x
    if x is None or isinstance(x, (str, bytes, dict)):
        raise ValueError(f"{name} must be uint8 frames (a numpy array or a tensor), got {type(x).__name__}")
    return np.asarray(x)


def as_tensor(x, name: str) -> torch.Tensor:
    """`as_array`, then a CPU tensor sharing a numpy array's memory, or a copy of an array
    torch cannot share: a view with negative strides (np.flip, [::-1]) or read-only memory
    (np.asarray of a PIL image; glamor never writes to its inputs)."""
    x = as_array(x, name)
    if isinstance(x, torch.Tensor):
        return x
    if not x.flags.writeable or any(s < 0 for s in x.strides):
        x = np.array(x)
    return torch.as_tensor(x)

