"""Command line: glamor train | eval | plan | envs | bench | compare.

    glamor train --preset gridworld --run-dir runs/demo
    glamor train --preset gridworld --algo gcsl --run-dir runs/gcsl
    glamor train --preset debug --set plan_width=16 --set lr=0.001
    glamor train --resume runs/demo   # also after Ctrl-C / SIGTERM, which save a checkpoint first
    glamor eval runs/demo [--videos 4]
    glamor plan runs/demo --frames now.png --goal goal.png
    glamor envs
    glamor bench planner --json planner.json
    glamor bench update   # training-update speed
    glamor bench lookup   # the training LSTMs' gate lookup, gather or take_rows
    glamor bench malloc   # training updates with glibc malloc's thresholds or glamor.allocator's
    glamor bench act      # closed-loop acting, goal encoding cached or not
    glamor compare --envs gridworld --seeds 0 1 2 --budget small --out results/gridworld_small
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import errno
import json
import runpy
import signal
import sys
import threading
import warnings
from pathlib import Path

from glamor.allocator import keep_freed_memory
from glamor.config import (
    MACHINE_FIELDS,
    PRESETS,
    TRAINING_FIELDS,
    Config,
    check_model_unchanged,
    field_value,
    preset,
)
from glamor.errors import EnvironmentUnavailable, OtherProcessFailed, printed
from glamor.interrupt import TrainingInterrupted


def _parse_overrides(pairs: list[str]) -> dict:
    out = {}
    for pair in pairs:
        if "=" not in pair:
            raise ValueError(f"--set takes NAME=VALUE, got {pair!r}")
        name, value = pair.split("=", 1)
        if value.lower() in ("true", "false"):
            out[name] = value.lower() == "true"
            continue
        try:
            out[name] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            out[name] = _json_container(value)  # a plain string, unless a dict or list written as JSON
    return out


def _json_container(value: str):
    """A dict or list written as JSON, as config.json holds them (`{"fast_render": false}`), or
    `value` itself: Python's literal syntax reads JSON's true, false and null as names, so such a
    dict came through as a string and was refused as one ('must be a dict'); no string field
    takes a text in braces or brackets."""
    if value.lstrip()[:1] not in ("{", "["):
        return value
    try:
        return json.loads(value)
    except ValueError:
        return value


def path_argument(text: str) -> str:
    """A path argument; an empty one (`--resume "$RUN"` with RUN unset) is refused, not a default."""
    if not text.strip():
        raise argparse.ArgumentTypeError("empty path")
    return text


def _steps(text: str) -> int:
    """A step count, also in float notation (1e6), as `--set total_env_steps=1e6` takes it."""
    try:
        return int(text)
    except ValueError:
        pass
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number of steps, got {text!r}") from None
    if not value.is_integer():
        raise argparse.ArgumentTypeError(f"must be a whole number of steps, got {text!r}")
    return int(value)


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _non_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be at least 0, got {value}")
    return value


def _check_env_arguments(overrides: dict, env_id: str, env_kwargs: dict) -> None:
    """Raise TypeError when a --set name is no config field but an argument of the environment
    (`--set frame_shape=[40,52]`, `--set noop_max=0`): it was refused as an unknown config field,
    which did not say that env_kwargs takes it."""
    from glamor import envs

    unknown = [name for name in overrides if name not in Config.__dataclass_fields__]
    theirs = {name: overrides[name] for name in unknown if name in envs.constructor_arguments(env_id)} if unknown else {}
    if theirs:
        one = len(theirs) == 1
        kept = {**env_kwargs, **theirs}
        keeps = f" (with the env_kwargs {env_kwargs} it has)" if env_kwargs else ""
        neither = [name for name in unknown if name not in theirs]
        also = f"; {', '.join(neither)}: neither (see glamor.config.Config)" if neither else ""
        raise TypeError(f"--set {', '.join(theirs)}: {'an argument' if one else 'arguments'} of the environment "
                        f"{env_id}, not {'a config field' if one else 'config fields'}: --set \"env_kwargs={kept!r}\" "
                        f"passes {'it' if one else 'them'}{keeps}{also}")


def _other_methods_fields(overrides: dict, algo: str) -> list[str]:
    """The fields in `overrides` that only the other method's agent or network reads (plan_width
    or lstm_hidden under algo=gcsl, gcsl_act under glamor)."""
    from glamor.agent import Agent, agent_class
    from glamor.gcsl import GCSLAgent

    def reads(agent) -> set[str]:
        return set(agent.CONFIG_FIELDS) | set(agent.model_class().CONFIG_FIELDS)

    method_fields = (reads(Agent) ^ reads(GCSLAgent)) - set(MACHINE_FIELDS)  # one method's
    return sorted(set(overrides) & (method_fields - reads(agent_class(algo))))


def _note_dropped_env_kwargs(name: str, overrides: dict) -> None:
    """A note when --set env_kwargs={...} drops keys of the preset's own env_kwargs for an
    environment of the preset's suite: the field is replaced whole, so `--preset atari_cpu --set
    env_kwargs={'noop_max': 0}` lost atari_cpu's 40x52 frame_shape (4x slower updates), unsaid."""
    from glamor import envs

    own = PRESETS[name].get("env_kwargs", {})
    given = overrides.get("env_kwargs")
    if not isinstance(given, dict) or "env_id" not in PRESETS[name]:
        return
    env_id = overrides.get("env_id", PRESETS[name]["env_id"])
    if envs.suite(env_id) != envs.suite(PRESETS[name]["env_id"]):
        return  # (another suite's environment: the preset's env_kwargs were not meant for it)
    dropped = {k: v for k, v in own.items() if k not in given}
    if dropped:
        kept = {**dropped, **given}
        print(f"note: --set env_kwargs replaces --preset {name}'s env_kwargs whole: "
              f"{', '.join(f'{k}={v!r}' for k, v in dropped.items())} now take{'s' if len(dropped) == 1 else ''} "
              f"the environment's default; to keep {'it' if len(dropped) == 1 else 'them'}, --set "
              f"\"env_kwargs={kept!r}\"", file=sys.stderr)


def _note_another_suites_preset(name: str, cfg) -> bool:
    """A note when `cfg.env_id` is a built-in environment of another suite than the preset's
    own (--preset atari --env glamor/reacher-hard-v0 keeps Atari's k = 50 and updates per
    episode, not Control's 100 and 2). It names the suite's CPU preset (atari_cpu, control_cpu)
    under a CPU preset or when the run computes on the CPU, the GPU-sized one otherwise.
    Returns whether it said so."""
    from glamor import envs
    from glamor.devices import resolve_device

    own, given = envs.suite(PRESETS[name]["env_id"]), envs.suite(cfg.env_id)
    if own is None or given is None or own == given:
        return False
    try:
        on_cpu = resolve_device(cfg.device).type == "cpu"
    except ValueError:  # a device this machine lacks: training names it next
        on_cpu = False
    cpu = name.endswith("_cpu") or on_cpu  # the spec's GPU budget takes many hours on a CPU
    suggestion = f"{given}_cpu" if cpu and f"{given}_cpu" in PRESETS else given  # presets: suites' names
    print(f"note: {cfg.env_id} is a{'n' if given == 'atari' else ''} {given} environment but --preset {name} has "
          f"{own}'s settings (episode_length {cfg.episode_length}, updates_per_episode {cfg.updates_per_episode}, "
          f"...); --preset {suggestion} has its suite's", file=sys.stderr)
    return True


# One update of the spec's full-size model and batch on one CPU core (an Atari update measured 1.8 s),
# and the fields that set its size: the GPU-budget note is for a run of that model taking hours.
CPU_SECONDS_PER_FULL_UPDATE = 1.8
_UPDATE_SIZE_FIELDS = ("encoder_channels", "embed_dim", "mix_hidden", "lstm_hidden", "batch_size")


def cmd_train(args) -> int:
    from glamor.devices import resolve_device
    from glamor.train import resume, train

    if args.resume:
        if args.env or args.seed is not None or args.run_dir or args.overwrite:
            raise ValueError(f"--resume RUN_DIR takes the run's own config.json; only --total-env-steps and "
                             f"--set {', '.join(MACHINE_FIELDS)} may change")
        if args.algo or args.preset:
            given = "--algo" if args.algo else "--preset"
            raise ValueError(f"--resume RUN_DIR takes the run's own config.json, so {given} has nothing to change")
        # resume() refuses --set fields other than the machine's
        # the table is the command's answer, with or without progress bars
        with _resume_hints(args.resume):
            resume(args.resume, total_env_steps=args.total_env_steps, machine=_parse_overrides(args.set), table=True)
        return 0
    overrides = _parse_overrides(args.set)
    flags = {"env_id": ("--env", args.env or None), "algo": ("--algo", args.algo or None),
             "total_env_steps": ("--total-env-steps", args.total_env_steps), "seed": ("--seed", args.seed)}
    for field, (flag, value) in flags.items():
        if value is None:
            continue
        if field in overrides and overrides[field] != value:  # the flag won silently
            raise ValueError(f"{flag} {value} and --set {field}={overrides[field]} disagree: give one")
        overrides[field] = value
    args.preset = args.preset or "gridworld"
    _check_env_arguments(overrides, overrides.get("env_id", PRESETS[args.preset]["env_id"]),
                         overrides.get("env_kwargs", PRESETS[args.preset].get("env_kwargs", {})))
    cfg = preset(args.preset, **overrides)
    _note_dropped_env_kwargs(args.preset, overrides)
    other_suite = _note_another_suites_preset(args.preset, cfg)
    other = _other_methods_fields(overrides, cfg.algo)
    if other:  # a note, not an error: a script may give both methods the same --set
        print(f"note: --set {', '.join(other)}: a {cfg.algo} run's agent and network do not read "
              f"{'it' if len(other) == 1 else 'them'} (kept in config.json, changing nothing)", file=sys.stderr)
    cpu_preset = f"{args.preset}_cpu"  # a GPU-sized preset has a CPU budget beside it
    # (not beside a note naming another suite's CPU preset: this one's is not the environment's)
    updates = int(cfg.total_env_steps // cfg.episode_length * cfg.updates_per_episode)
    full_size = all(getattr(cfg, f) == getattr(preset(args.preset), f) for f in _UPDATE_SIZE_FIELDS)
    # (only where it holds: a run made small by --set, a smoke test of 400 steps, is not hours long)
    if (cpu_preset in PRESETS and resolve_device(cfg.device).type == "cpu" and not other_suite and full_size
            and updates * CPU_SECONDS_PER_FULL_UPDATE >= 2 * 3600):
        print(f"note: --preset {args.preset} is the spec's GPU budget: {cfg.total_env_steps:,} environment "
              f"steps and {updates:,} updates of the full-size model, each taking seconds on a CPU core "
              f"(many hours in all); --preset {cpu_preset} runs the same protocol in about an hour on one core",
              file=sys.stderr)
    run_dir = args.run_dir or f"runs/{args.preset}-seed{cfg.seed}"
    if not args.overwrite:
        _check_not_another_run(run_dir, cfg, named=bool(args.run_dir))
    with _resume_hints(run_dir):
        train(cfg, run_dir, overwrite=args.overwrite, table=True)
    return 0


def _check_not_another_run(run_dir: str, cfg: Config, named: bool) -> None:
    """Refuse, naming the differing fields, to start `cfg` in a folder that holds a run of another
    config (without --overwrite): the folder's own refusal suggests `--resume RUN_DIR`, which
    would go on with that run's config (`glamor train --preset debug --algo gcsl` after `glamor
    train --preset debug`, both in the default runs/debug-seed0, resumed the GLAMOR run)."""
    path = Path(run_dir) / "config.json"
    if not path.is_file():
        return
    try:
        saved = Config.load(path)
    except (OSError, ValueError, TypeError):
        return  # a damaged config: training's own refusal says what the folder holds
    ours, theirs = cfg.to_dict(), saved.to_dict()
    differ = [k for k in ours if k not in MACHINE_FIELDS and k != "total_env_steps" and ours[k] != theirs[k]]
    if not differ:
        if saved.total_env_steps != cfg.total_env_steps:  # its --resume alone keeps its own total
            raise ValueError(f"run directory {run_dir} holds this run with total_env_steps={saved.total_env_steps:,}: "
                             f"`glamor train --resume {run_dir} --total-env-steps {cfg.total_env_steps}` trains it to "
                             f"{cfg.total_env_steps:,} steps; --overwrite starts it again")
        return  # the same run: the folder's own refusal names its --resume
    shown = ", ".join(f"{k}={theirs[k]!r}" for k in differ[:4]) + (f" and {len(differ) - 4} more" if len(differ) > 4
                                                                   else "")
    where = "" if named else " (the default run directory of --preset and --seed: name one with --run-dir)"
    raise ValueError(f"run directory {run_dir}{where} holds a run of another config ({shown}, not "
                     f"{', '.join(f'{k}={ours[k]!r}' for k in differ[:4])}): `glamor train --resume {run_dir}` "
                     f"would go on with that run's config; train this one in another --run-dir, or pass "
                     f"--overwrite to replace that run")


class Terminated(KeyboardInterrupt):
    """SIGTERM outside the training loop and its final evaluation (start-up, the results' writing),
    where the loop's own stop-and-save does not apply: it stops the command as Ctrl-C does (a new
    run that has no checkpoint yet is removed, a run with one names its resume), with exit status
    143."""

    exit_status = 128 + signal.SIGTERM


@contextlib.contextmanager
def _sigterm_as_interrupt():
    """SIGTERM raises Terminated in the block (unless the process ignores SIGTERM or handles it
    already, or this is not the main thread); the training loop's `stop_on_signal` takes over
    within it and gives it back."""
    if threading.current_thread() is not threading.main_thread() or \
            signal.getsignal(signal.SIGTERM) != signal.SIG_DFL:
        yield
        return

    def terminate(signum, frame):
        raise Terminated()

    signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


# A disk that is full, over quota or read-only: an OSError that may name no file (a write to an open file)
_DISK_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM)


@contextlib.contextmanager
def _resume_hints(run_dir: str):
    """A Ctrl-C that reaches the command line (one at start-up, or a second one: the training
    loop's own stop, and the final evaluation's, names the resume itself) says how the run goes
    on; so does a full or read-only disk, which also names the run when the error names no file
    in it."""
    from glamor import checkpoint, distributed
    from glamor.train import resume_command

    # (checkpoint.prev.pt alone: a kill between a save's two renames; resume falls back to it)
    resumable = lambda: any((Path(run_dir) / name).exists() for name in (checkpoint.CHECKPOINT,  # noqa: E731
                                                                        checkpoint.PREVIOUS))
    hint = f"`{resume_command(run_dir, distributed.world_size())}` goes on from its last checkpoint"  # (torchrun's)
    then = lambda: f"; with room to write (or write access) again, {hint}" if resumable() else ""  # noqa: E731
    try:
        with _disk_errors_name(run_dir, then), _sigterm_as_interrupt():
            yield
    except KeyboardInterrupt as e:
        if resumable():
            e.hint = hint  # main prints it
        raise


@contextlib.contextmanager
def _disk_errors_name(run_dir: str | Path, then=lambda: ""):
    """A full or read-only disk's error names the run folder the command was writing in when it
    names no file there, followed by `then()` (what to do next); a checkpoint's own failure,
    which names its resume, is left as it is."""
    try:
        yield
    except OSError as e:
        if e.errno not in _DISK_ERRNOS or "--resume" in str(e):
            raise
        where = "" if str(run_dir) in str(e) else f" (writing the run in {run_dir})"
        raise OSError(e.errno, f"{e.strerror or e}{f': {e.filename!r}' if e.filename else ''}{where}{then()}") from e


def _keep_training_facts(path: Path, results: dict) -> None:
    """A re-evaluation keeps what the results file it replaces said about training, when that
    file is of the same checkpoint (an extension of a finished run, cut short, is evaluated at a
    later step than its old eval.json, whose training time is not this checkpoint's)."""
    try:
        old = json.loads(path.read_text())
    except (OSError, ValueError):
        return
    if isinstance(old, dict) and "train_wall_time_s" in old and old.get("env_steps") == results.get("env_steps"):
        results.setdefault("train_wall_time_s", old["train_wall_time_s"])


def cmd_eval(args) -> int:
    from glamor.files import can_write
    from glamor.run_dir import check_is_run
    from glamor.run_lock import holding

    run_dir = check_is_run(args.run_dir, "glamor eval")
    if not can_write(run_dir):  # found before the evaluation's minutes, not after them
        raise ValueError(f"cannot write the evaluation's results in {run_dir}: the folder is not writable "
                         f"(copy the run somewhere writable and evaluate the copy)")
    # The evaluation writes the run (eval.json, its reports, TensorBoard): one that ended while a
    # training run finished replaced its final eval.json with an older checkpoint's, and two at once
    # deleted each other's videos. Refused before the evaluation's minutes, like any second command.
    with holding(run_dir, doing="evaluating"):
        from glamor import checkpoint

        checkpoint.remove_temporaries(run_dir)  # a killed evaluation's (or save's): nothing else would
        return _evaluate_run(args, run_dir)


def _evaluate_run(args, run_dir: Path) -> int:
    from glamor import checkpoint
    from glamor.reports import write_reports
    from glamor.results import format_table, results_name, write_results
    from glamor.train import check_config_is_the_checkpoints, evaluate_checkpoint

    cfg = Config.load(run_dir / "config.json")
    state = checkpoint.load_latest(run_dir, with_replay=False)  # read once: the one checked is the one evaluated
    if state is not None and "config" in state:  # (evaluate_checkpoint says when there is none)
        check_config_is_the_checkpoints(cfg, state, run_dir)
    overrides = _parse_overrides(args.set)
    _check_env_arguments(overrides, overrides.get("env_id", cfg.env_id), overrides.get("env_kwargs", cfg.env_kwargs))
    check_model_unchanged(cfg, overrides, "an evaluation")
    training = sorted(set(overrides) & set(TRAINING_FIELDS))
    if training:
        raise ValueError(f"--set {', '.join(training)}: only training reads {'it' if len(training) == 1 else 'them'}, "
                         "so the evaluation would be the run's own")
    other = _other_methods_fields(overrides, cfg.algo)
    if other:
        raise ValueError(f"--set {', '.join(other)}: a {cfg.algo} run's agent does not read "
                         f"{'it' if len(other) == 1 else 'them'}, so the evaluation would be the run's own")
    if "use_prior" in overrides:
        raise ValueError("--set use_prior: an evaluation reports GLAMOR with and without the prior either way "
                         "(success_rate and success_rate_no_prior)")
    # The machine's settings (device, eval_batch, ...) change no draw: still the run's own eval.json.
    changes = {k: v for k, v in overrides.items() if k not in MACHINE_FIELDS}
    if args.episodes is not None and changes.get("eval_episodes", args.episodes) != args.episodes:
        raise ValueError(f"--episodes {args.episodes} and --set eval_episodes={changes['eval_episodes']} "
                         f"disagree: give one")
    episodes = changes.pop("eval_episodes", args.episodes)  # --set eval_episodes=N is --episodes N
    if episodes is not None and field_value("eval_episodes", episodes) != cfg.eval_episodes:
        changes["eval_episodes"] = episodes  # another goal count is another results file; the run's own is not
    cfg = cfg.replace(**{**overrides, **changes})  # checked first: the name is made of the values it takes
    name = results_name(changes)
    details: dict = {}
    with _disk_errors_name(run_dir):
        results = evaluate_checkpoint(run_dir, cfg, details=details, record=4 if args.videos is None else args.videos,
                                      state=state)
        _keep_training_facts(run_dir / name, results)
        if changes:  # what this evaluation changed, whole: its file's name may not say (punctuation made '_', a
            results["overrides"] = {k: field_value(k, v) for k, v in sorted(changes.items())}  # long one cut)
        print(format_table(results))
        # The results file is written last, once its reports are: a new one says its evaluation's reports are
        # complete (before, eval.json was new and the reports missing or an older evaluation's). A kill or a
        # full disk while the reports are written leaves the one it was to replace, whose training facts
        # (train_wall_time_s, which nothing else holds) the next evaluation keeps.
        # An evaluation with --set leaves the run's own reports alone: its reports go to a folder named like its json.
        out_dir = run_dir if name == "eval.json" else run_dir / name.removesuffix(".json")
        setting = None if name == "eval.json" else name.removeprefix("eval-").removesuffix(".json")
        written = write_reports(run_dir, results, details, results["env_steps"], out_dir=out_dir, setting=setting)
        path = write_results(run_dir, results, name)
    print(f"wrote {path}")
    if results["env_steps"] < cfg.total_env_steps:  # (an interrupted run: the table alone did not say)
        print(f"note: {run_dir} is unfinished: these are the results of its newest checkpoint, of environment "
              f"step {results['env_steps']:,} of {cfg.total_env_steps:,}; `glamor train --resume {run_dir}` "
              f"trains it on", file=sys.stderr)
    videos = f"{len(written['videos'])} video(s) in {out_dir / 'videos'}" if written["videos"] else "no videos"
    print(f"wrote {written['table']}, {written['plot']} and {videos}")
    return 0


def load_gray(path: str, hw: tuple[int, int], env_id: str | None = None):
    """An image file as a uint8 (H, W) grayscale frame, made from a picture of another size as
    `env_id`'s environment makes its frames (`GoalEnv.frame_from_image`: an Atari screen, 210x160,
    cropped and area-resized as in training; a frame scaled up a whole number of times, area-resized
    back to it exactly; otherwise, or without `env_id`, resized bilinearly)."""
    import numpy as np
    from PIL import Image

    from glamor import envs

    notes = []
    try:
        image = Image.open(path)
        if image.mode in ("I", "I;16", "I;16B", "I;16L", "F"):  # convert("L") would clip, not rescale
            raise ValueError(f"it holds {image.mode} pixels (16-bit or float); frames are 8-bit grayscale "
                             f"(0..255): convert it to 8 bits first")
        if image.mode != "L":
            notes.append(f"converted {image.mode} to grayscale")
            image = image.convert("L")
        frame = np.array(image, dtype=np.uint8)  # decodes: a damaged file fails here at the latest
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
        # missing, not an image, damaged (PIL: SyntaxError), or too large for PIL to open safely
        raise ValueError(f"cannot read image {path}: {e}") from e
    if frame.shape != tuple(hw):
        kind = envs.env_class(env_id) if env_id else envs.GoalEnv
        notes.append(f"resized {frame.shape[0]}x{frame.shape[1]} to the model's {hw[0]}x{hw[1]} (H x W)")
        frame = np.asarray(kind.frame_from_image(frame, tuple(hw)), dtype=np.uint8)
    if notes:
        print(f"note: {path}: {', '.join(notes)}", file=sys.stderr)
    return frame


def cmd_plan(args) -> int:
    import numpy as np

    from glamor.agent import load_agent
    from glamor.gcsl import GCSLAgent

    agent = load_agent(args.checkpoint, **_parse_overrides(args.set))
    meta_hw, stack = agent.model.image_hw, agent.model.frame_stack
    env_id = agent.config.env_id  # its pictures made into frames as that environment makes them
    frames = [load_gray(f, meta_hw, env_id) for f in args.frames]
    if len(frames) > stack:
        raise ValueError(f"the model stacks {stack} frame(s); got {len(frames)} --frames")
    frames = [frames[0]] * (stack - len(frames)) + frames  # like a reset: repeat the oldest
    obs = np.stack(frames)[None]  # (1, S, H, W)
    goal = load_gray(args.goal, meta_hw, env_id)[None, None]  # (1, 1, H, W)
    trained, horizon = agent.config.horizon, args.horizon if args.horizon is not None else agent.horizon
    gcsl = isinstance(agent, GCSLAgent)
    if gcsl and not agent.model.time_conditioned:
        if args.horizon is not None:  # a plain policy's action does not depend on it
            print(f"note: --horizon {horizon}: this GCSL policy is not time-conditioned (gcsl_time=false), so it "
                  f"does not read the steps left: its action is the same for any --horizon", file=sys.stderr)
    elif horizon > trained:
        what = (f"its action for {horizon} steps left is extrapolation" if gcsl else
                f"its scores for plans past {trained} actions are extrapolation")
        print(f"note: horizon {horizon} is longer than the episodes the model learned from ({trained} "
              f"steps): {what}", file=sys.stderr)
    if gcsl:  # the GCSL baseline: a policy, so the next action, not a plan
        action = int(agent.act(obs, goal, horizon=horizon)[0][0])
        print(json.dumps({"action": action, "policy": "gcsl", "mode": agent.mode, "steps_left": horizon}))
        return 0
    plan = agent.plan(obs, goal, horizon=horizon)
    n = int(plan.lengths[0])
    print(json.dumps({"actions": plan.actions[0, :n].tolist(), "length": n, "score": float(plan.scores[0]),
                      "stop_after_first": n == 1, "planner": agent.method, "width": agent.width}))
    return 0


def cmd_envs(args) -> int:
    from glamor import envs

    for env_id in envs.registered():
        print(env_id)
    return 0


BENCHMARKS = ("planner", "act", "envs", "collect", "update", "lookup", "malloc")


def cmd_bench(args) -> int:
    if args.what is None:
        args.parser.error(f"which benchmark? one of {', '.join(BENCHMARKS)} (glamor bench WHAT --help)")
    script = Path(__file__).resolve().parent.parent / "benchmarks" / f"bench_{args.what}.py"
    if not script.exists():
        raise ValueError(f"no benchmark script {script} (benchmarks/ ships with the source tree)")
    if str(script.parent) not in sys.path:  # the scripts import their siblings, as when run directly
        sys.path.insert(0, str(script.parent))
    module = runpy.run_path(str(script))
    argv0, sys.argv[0] = sys.argv[0], f"glamor bench {args.what}"  # the scripts' argparse prog
    try:
        return module["main"](args.rest) or 0
    finally:
        sys.argv[0] = argv0


def cmd_compare(args) -> int:
    from glamor.compare import main as compare_main

    return compare_main(args)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="glamor", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train a GLAMOR agent, then evaluate it")
    t.add_argument("--preset", choices=sorted(PRESETS), help="settings to start from (default gridworld)")
    t.add_argument("--env", help="environment id (see `glamor envs`), overrides the preset's")
    t.add_argument("--algo", choices=["glamor", "gcsl"],
                   help="glamor (default) or gcsl, the goal-conditioned supervised baseline")
    t.add_argument("--run-dir", type=path_argument, help="where the run is written (default runs/PRESET-seedN)")
    t.add_argument("--overwrite", action="store_true", help="replace an existing run directory")
    t.add_argument("--resume", metavar="RUN_DIR", type=path_argument,
                   help="continue RUN_DIR from its last complete checkpoint (exactly, with deterministic=true)")
    t.add_argument("--total-env-steps", type=_steps, help="environment steps to train for (default: the preset's); "
                   "with --resume, extends the run")
    t.add_argument("--seed", type=int, help="the run's seed (default 0)")
    t.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", help="override a config field")
    t.set_defaults(func=cmd_train)

    e = sub.add_parser("eval", help="evaluate a run on held-out goals: eval.json, eval_goals.csv, success.png, videos/")
    e.add_argument("run_dir", type=path_argument)
    e.add_argument("--episodes", type=_positive, help="held-out goals (default: the run's eval_episodes; another "
                   "count writes eval-eval_episodes=N.json, leaving eval.json alone)")
    e.add_argument("--videos", type=_non_negative, default=None, metavar="N",
                   help="GIFs of the first N goals of each set, goal beside rollout (default 4; the run's own policy)")
    e.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                   help="override a config field (e.g. planner=sample, plan_width=64, gamma=0.95); "
                        "the results then go to eval-NAME=VALUE.json and its reports to the folder eval-NAME=VALUE/; "
                        f"the run's own eval.json and reports are kept (the machine's settings, "
                        f"{', '.join(MACHINE_FIELDS)}, change no result: with only those, eval.json is written)")
    e.set_defaults(func=cmd_eval)

    pl = sub.add_parser("plan", help="plan from image files: the current frame(s) and a goal image (a GCSL "
                                     "run: its next action)")
    pl.add_argument("checkpoint", type=path_argument, help="a run directory or a checkpoint file")
    pl.add_argument("--frames", nargs="+", required=True, metavar="IMAGE",
                    help="the current frames, oldest first (fewer than the stack: the oldest repeats)")
    pl.add_argument("--goal", required=True, metavar="IMAGE", help="the goal image")
    pl.add_argument("--horizon", type=_positive, help="most actions in the plan (default: the episode length); "
                    "a GCSL run: the steps left")
    pl.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                    help="override a planner setting (planner=sample, plan_width=64, use_prior=false)")
    pl.set_defaults(func=cmd_plan)

    v = sub.add_parser("envs", help="list the registered goal environments")
    v.set_defaults(func=cmd_envs)

    from glamor.compare import add_arguments as add_compare_arguments

    c = sub.add_parser("compare", help="train and evaluate GLAMOR, its ablations, GCSL and random over seeds; "
                                       "write a Markdown table and a plot (finished runs are reused)")
    add_compare_arguments(c)
    c.set_defaults(func=cmd_compare)

    b = sub.add_parser("bench", help="run a benchmark from benchmarks/")
    b.add_argument("what", nargs="?", choices=BENCHMARKS)  # optional, so that its absence is named alone
    b.add_argument("rest", nargs=argparse.REMAINDER, metavar="ARGS",
                   help="the benchmark's own arguments (glamor bench WHAT --help)")
    b.set_defaults(func=cmd_bench, parser=b)
    return p


def _one_line_warning(message, category, filename, lineno, line=None) -> str:
    return f"glamor: {category.__name__}: {message}\n"


def _raised_where(error: BaseException) -> str:
    """' (raised at FILE:LINE in FUNC)' when the error came from code of your own (an environment
    module), neither glamor nor an installed library: glamor's errors say what is wrong, while a
    user module's own error may need its place."""
    installed = (str(Path(__file__).parent), sys.prefix, sys.base_prefix, sys.exec_prefix, "<")
    for e in (error, error.__cause__):  # glamor's wrapper of another error: where that one came from
        tb = e.__traceback__ if e is not None else None
        while tb is not None and tb.tb_next is not None:
            tb = tb.tb_next
        if tb is None:
            continue
        code = tb.tb_frame.f_code
        if not code.co_filename.startswith(installed):
            return f" (raised at {code.co_filename}:{tb.tb_lineno} in {code.co_name})"
    return ""


# The commands that train or evaluate, whose process glibc's malloc thresholds are set for
# (glamor/allocator.py): the same results, fewer page faults per update. Not the benchmarks, whose
# before and after both run as glibc would.
MALLOC_COMMANDS = ("train", "eval", "compare")


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)  # no torch yet: the commands import it
    except KeyboardInterrupt:
        print("glamor: interrupted", file=sys.stderr)
        return 130
    formatwarning, warnings.formatwarning = warnings.formatwarning, _one_line_warning  # not our source lines
    thread_hook = threading.excepthook
    threading.excepthook = lambda failed: _one_line_thread_error(args.command, failed, thread_hook)
    if args.command in MALLOC_COMMANDS:  # this process is ours: its updates keep their memory (glamor/allocator.py)
        keep_freed_memory()
    try:
        return args.func(args)
    except (ValueError, TypeError, OSError, FloatingPointError, ImportError, NotImplementedError,
            EnvironmentUnavailable, OtherProcessFailed) as e:
        # OSError: a full disk, a read-only folder; ImportError: a simulator that is not installed;
        # NotImplementedError: a GoalEnv method one's own environment lacks;
        # EnvironmentUnavailable: no headless rendering, an environment that keeps crashing;
        # OtherProcessFailed: under torchrun, another process failed first (its output has the traceback)
        hint = getattr(e, "hint", None)  # (what to do next, where the error came with one)
        print(f"glamor {args.command}: error: {e}{_raised_where(e)}{f'; {hint}' if hint else ''}", file=sys.stderr)
        return 2
    except TrainingInterrupted as e:  # a checkpoint was written first
        print(f"glamor {args.command}: {e}", file=sys.stderr)
        return e.exit_status
    except KeyboardInterrupt as e:
        hint = getattr(e, "hint", None)
        what = "terminated (SIGTERM)" if isinstance(e, Terminated) else "interrupted"
        print(f"glamor {args.command}: {what}{f'; {hint}' if hint else ''}", file=sys.stderr)
        return getattr(e, "exit_status", 130)
    except Exception as e:
        if not printed(e):  # (Python prints its traceback)
            raise
        # a torchrun process printed it with its traceback before waiting for the others (glamor/distributed.py)
        hint = getattr(e, "hint", None)  # (what to do next: a traceback shows it only as a note, Python 3.11+)
        print(f"glamor {args.command}: error: {type(e).__name__}: {e} (its traceback is above)"
              f"{f'; {hint}' if hint else ''}", file=sys.stderr)
        return 1
    finally:
        warnings.formatwarning = formatwarning
        threading.excepthook = thread_hook


def _one_line_thread_error(command: str, failed, default) -> None:
    """A background thread's OSError (TensorBoard's writer on a full disk) in one line, not a
    traceback in the middle of the command's output; the command's own error follows."""
    if issubclass(failed.exc_type, OSError):
        name = failed.thread.name if failed.thread is not None else "a thread"
        print(f"glamor {command}: warning: background thread {name} stopped: {failed.exc_value}", file=sys.stderr)
    else:
        default(failed)


if __name__ == "__main__":
    sys.exit(main())
