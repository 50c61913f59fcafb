"""`glamor compare`: GLAMOR, its ablations, GCSL and a random policy side by side, over seeds,
on the same held-out goals, with one command that regenerates the results table.

Runs: every (algorithm, setting, environment preset, seed) in the lists given is trained in
`RUNS/<env>/<algo>-<setting>/seed<N>/` with the chosen budget (glamor.config.BUDGETS), then:

- a run whose eval.json exists is finished: it is reused, never retrained (its config must
  match the one asked for, or the command stops and names the differing fields);
- a run with a config.json but no eval.json of its last step (an interrupted run, also one
  `glamor eval` evaluated) continues from its newest checkpoint with the `glamor train --resume`
  machinery (from scratch when it has none; --set of device, torch_threads, backend, eval_batch or
  progress applies); a run dir whose config differs, finished or not, or that holds files but no run, is
  refused: nothing is deleted; `--set vector=async` (environments in worker processes, no other
  results) applies to the GLAMOR runs it starts (a run it resumes keeps its own, and says so), GCSL's stay in
  process (its policy acts at every step);
- GLAMOR runs are evaluated again for the evaluation-time ablations, each written once to
  `sweep-<planner>-w<width>.json` (`-g<N>` added for N goals fewer than eval_episodes) and reused
  while the run's evaluated checkpoint is the one it came from: planner width (1, 10, 200, 1000 by default)
  for beam search and sampling. "GLAMOR, no prior" and "random" come from every GLAMOR run's
  own evaluation (glamor.evaluate.evaluate reports both). The sweep's options (--widths, --planners,
  --sweep-episodes) are refused, before any training, when --methods has no glamor (and --planners
  and --sweep-episodes when --widths has no value, no sweep); a width the
  planners cannot take (over their int32 bound, for beam search over the environment's actions)
  is refused before any training too.

Every evaluation records its goal set's digest; the table is written only when all runs of an
environment were evaluated on the identical goal list.

A run is trained, resumed or swept only while compare holds its lock (`glamor.run_lock`), and its
eval.json is read while compare shares it with other readers (two compares of the same finished
runs read them at once): one that another process trains or evaluates meanwhile is refused by
name (run it again once that process has ended: finished runs and sweeps are reused).

A Ctrl-C or SIGTERM during training saves that run's checkpoint and names the compare command
that goes on from there (the same command: finished runs and sweeps are reused).

Outputs, next to each other, written after each environment (the header names the ones still
to run) and replaced whole: `OUT.md` (the tables), `OUT.png` (success against environment steps
for each method, and success against planner width) and `OUT.json` (the numbers); a compare
killed while it wrote them leaves its temporaries (.OUT.md.PID.tmp), which the next compare with
that --out removes. Success rates
are means over seeds with a 95% Student-t interval over the seeds' success rates (with one seed,
in the tables: that run's own Wilson interval over its goals; the curves over training, whose
evaluations keep only their rates, then have none). The random policy's draws are seeded by
eval_seed, the same in every run, so its rates repeat across seeds and their interval is zero-width
by construction: OUT.md says so under the table, OUT.json in the row's `ci95_note` (beside
`ci95_over_goals`, one run's Wilson interval) and in `curve_notes`. An environment
is named by its preset, and by the environment its runs trained on when `--set env_id=ID` gives
another ("atari with env_id=ID"; OUT.json: each summary's `env_id`).

Example:
    glamor compare --envs gridworld --seeds 0 1 2 --budget small --out results/gridworld_small
    glamor compare --envs gridworld gridworld_box --seeds 0 1 2 --budget full   # a GPU machine
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import json
import math
import os
import shlex
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

from glamor.config import MACHINE_FIELDS, PRESETS
from glamor.files import remove_temporaries, write_atomically, write_text_atomically
from glamor.interrupt import TrainingInterrupted
from glamor.results import COLOURS, EVAL_METRICS, read_results
from glamor.run_lock import LOCK_NAME

# Training-time methods -> config overrides; `gcsl_time` is GCSL with the steps left as an input.
METHODS = {"glamor": {}, "gcsl": {"algo": "gcsl"}, "gcsl_time": {"algo": "gcsl", "gcsl_time": True}}
DEFAULT_METHODS = tuple(METHODS)
SETTINGS = {"default": {}}  # named config variants a run may use (`--setting`)
DEFAULT_WIDTHS = (1, 10, 200, 1000)
DEFAULT_PLANNERS = ("beam", "sample")
# Fields that do not change what a run computes: a finished run is reused whatever they are.
# (eval_batch is a machine field: evaluation draws are keyed by goal and step.)
NEUTRAL_FIELDS = {*MACHINE_FIELDS, "vector"}
# Fields the comparison sets itself, per run (--seeds, --methods): --set may not override them.
CONTROLLED_FIELDS = {"seed": "--seeds", "algo": "--methods", "gcsl_time": "--methods"}
# Rows of the main table: (method label, algo of the run it comes from, policy key in eval.json).
ROWS = (("GLAMOR", "glamor", "glamor"), ("GLAMOR, no prior", "glamor", "glamor_no_prior"),
        ("GCSL", "gcsl", "gcsl"), ("GCSL, time-conditioned", "gcsl_time", "gcsl"), ("random", "glamor", "random"))
CURVES = tuple((label, method, column, COLOURS[colour]) for label, method, column, colour in (
    ("GLAMOR", "glamor", "eval/success_rate", "glamor"),
    ("GLAMOR, no prior", "glamor", "eval/success_rate_no_prior", "glamor_no_prior"),
    ("GCSL", "gcsl", "eval/success_rate", "gcsl"),
    ("GCSL, time-conditioned", "gcsl_time", "eval/success_rate", "gcsl_time"),
    ("random", "glamor", "eval/random_success_rate", "random")))
# The random policy's draws are seeded by eval_seed, the same in every run: its rates repeat across
# seeds, so its interval over seeds is zero-width by construction. OUT.md says so under the table,
# OUT.json in the row's (and curve's) note.
SAME_DRAWS = ("The random policy's draws are seeded by `eval_seed`, the same in every run, so its "
              "rows repeat across seeds (an interval over seeds says nothing there).")
SAME_DRAWS_JSON = ("zero-width by construction, not a measured certainty: the random policy's draws are seeded by "
                   "eval_seed, the same in every run, so every seed's rate is the same")
T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
        2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042)


@dataclass(frozen=True)
class RunSpec:
    """One training run of the comparison."""

    algo: str  # a key of METHODS
    setting: str  # a key of SETTINGS
    env: str  # a preset name of glamor.config.PRESETS
    seed: int

    def run_dir(self, root: str | Path) -> Path:
        return Path(root) / self.env / f"{self.algo}-{self.setting}" / f"seed{self.seed}"

    def config(self, budget: str, overrides: dict | None = None):
        from glamor.config import apply_budget, preset

        overrides = dict(overrides or {})
        # (the environment's fields through preset(), which says when its env_kwargs go to one of yours)
        env = {k: overrides[k] for k in ("env_id", "env_kwargs") if k in overrides}
        cfg = preset(self.env, seed=self.seed, progress=False, **METHODS[self.algo], **SETTINGS[self.setting], **env)
        if cfg.algo == "gcsl" and overrides.get("vector") == "async":  # (a neutral field: no other results)
            del overrides["vector"]  # GCSL's policy acts at every step: its environments stay in process
        return apply_budget(cfg, budget).replace(**overrides)


def t975(df: int) -> float:
    """The 97.5% quantile of Student's t with `df` degrees of freedom: the table to 30, then the
    Cornish-Fisher expansion around the normal's 1.96 (within 1e-4 of the exact value there)."""
    if df <= len(T975):
        return T975[df - 1]
    z = 1.959964
    return z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)


def seed_interval(values) -> tuple[float, float, float]:
    """Mean and 95% Student-t interval (clipped to [0, 1]) of per-seed rates; NaN bounds for one seed.
    Rates that are all the same (the random policy's, drawn from eval_seed in every run) give
    exactly [rate, rate]: their float mean (3 * 0.025 / 3) is off in the last bit, which made a
    zero-width interval [0.02499..., 0.02500...1] that the random notes did not recognise."""
    n = len(values)
    if n >= 2 and len(set(values)) == 1:
        return values[0], values[0], values[0]
    mean = sum(values) / n
    if n < 2:
        return mean, math.nan, math.nan
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    half = t975(n - 1) * sd / math.sqrt(n)
    return mean, max(0.0, mean - half), min(1.0, mean + half)


def _differing(a, b) -> list[str]:
    da, db = a.to_dict(), b.to_dict()
    return sorted(k for k in da if k not in NEUTRAL_FIELDS and da[k] != db.get(k))


def _finished(run_dir: Path, cfg) -> bool:
    """An eval.json of the run's last step: `glamor eval` of an interrupted run writes one too."""
    path = run_dir / "eval.json"
    try:
        return read_results(path).get("env_steps", math.inf) >= cfg.total_env_steps
    except FileNotFoundError:  # (also one a `glamor eval` removed as this looked: its resume is refused by name)
        return False


def ensure_trained(cfg, run_dir: Path, log=print) -> str:
    """Train `cfg` in `run_dir` unless it is finished; returns "reused", "resumed" or "trained".
    A run dir with another config, or with files but no run, is refused (nothing is deleted)."""
    from glamor.config import Config
    from glamor.train import resume, train

    run_dir = Path(run_dir)
    saved = Config.load(run_dir / "config.json") if (run_dir / "config.json").exists() else None
    if saved is not None and _differing(saved, cfg):
        state = "a finished" if _finished(run_dir, saved) else "an unfinished"  # by its own config's steps
        raise ValueError(f"{run_dir} is {state} run with another config (fields {_differing(saved, cfg)}); "
                         f"use another --runs-dir, or delete it to retrain")
    # (a run another process has just started holds only its lock file: train refuses it by name)
    if saved is None and run_dir.is_dir() and any(p.name != LOCK_NAME for p in run_dir.iterdir()):
        raise ValueError(f"{run_dir} holds files but no glamor run (no config.json); compare trains its runs "
                         f"there: move them away or use another --runs-dir")
    if saved is None:
        train(cfg, run_dir, overwrite=True)
        return "trained"
    if _finished(run_dir, cfg):
        return "reused"
    log(f"  resuming {run_dir}")
    if saved.vector != cfg.vector:  # (a neutral field: not refused, and resume takes the machine fields only)
        log(f"  note: {run_dir} resumes with its own vector={saved.vector!r}, not {cfg.vector!r}: a resumed run "
            f"keeps its vector (--set of {', '.join(MACHINE_FIELDS)} applies)")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # "no checkpoint yet: from the beginning"
        resume(run_dir, machine={k: getattr(cfg, k) for k in MACHINE_FIELDS},  # --set device=... applies
               retrain_hint="delete the run directory for compare to train it again")
    return "resumed"


def read_run_results(run_dir: Path, algo: str) -> dict:
    """A trained run's eval.json, read while holding the run's lock, shared with other readers
    (another compare of the same runs): a run another process took up meanwhile (a `glamor eval`
    replacing its eval.json, a resume extending it) is refused by name (RunInUse), not read as it
    changes."""
    from glamor.run_lock import RunLock

    lock = RunLock()
    try:
        lock.acquire(run_dir, shared=True)
    except OSError as e:  # (RunInUse is a ValueError: raised)
        # a run folder this process cannot write (finished runs on a read-only mount or another user's,
        # --out elsewhere): it cannot take the lock, and read them before it took one
        if e.errno not in (errno.EACCES, errno.EPERM, errno.EROFS):
            raise
    try:
        return read_results(run_dir / "eval.json", requires=_run_fields(algo))
    finally:
        lock.release()


def _run_fields(algo: str) -> tuple[str, ...]:
    """The fields of a run's eval.json that the table reads: in every goal set, the policies of
    its ROWS and the random policy's (the table's random row comes from any method's runs)."""
    return tuple(f"sets/*/{key}" for key in sorted({key for _, a, key in ROWS if a == algo} | {"random"}))


def _write_json(path: Path, obj) -> None:
    write_text_atomically(path, json.dumps(obj, indent=2) + "\n")


def ensure_sweep(run_dir: Path, cfg, planner: str, width: int, episodes: int, env_steps: int | None = None) -> dict:
    """GLAMOR (with the prior) at one planner and width, evaluated once and kept in the run dir
    as sweep-<planner>-w<width>.json (on the first `episodes` held-out goals; -g<episodes> added
    to the name when that is fewer than eval_episodes). A file of another checkpoint than the
    run's evaluated one (its `env_steps`) is evaluated again; a run whose newest readable checkpoint
    is not that one (a damaged checkpoint.pt: load_latest takes the one before) is refused. The
    evaluation holds the run's lock (`glamor.run_lock`), as `glamor eval` does: a run another
    process trains or evaluates meanwhile is refused by name (RunInUse), not read part-way."""
    from glamor import checkpoint
    from glamor import train as training
    from glamor.run_lock import holding

    episodes = training.goals_to_evaluate(episodes, cfg)
    goals = "" if episodes == cfg.eval_episodes else f"-g{episodes}"
    path = Path(run_dir) / f"sweep-{planner}-w{width}{goals}.json"
    if path.exists():
        try:
            saved = read_results(path, requires=("sets/eval/glamor/plans_per_s",))  # what summarize reads
        except ValueError as e:  # a cache of an evaluation: evaluate again
            warnings.warn(f"{e}; evaluating again", RuntimeWarning, stacklevel=2)
            saved = {}
        if saved.get("episodes") == episodes and (env_steps is None or saved.get("env_steps") == env_steps):
            return saved  # evaluated before, on these goals, from this checkpoint
    t0 = time.time()
    # Held while the checkpoint is read and the sweep written: a training run extending it (or a
    # `glamor eval`) meanwhile made the checkpoint another step's, and the error below then said to
    # delete the run directory that process was writing.
    with holding(run_dir, doing="evaluating"):
        checkpoint.remove_temporaries(run_dir)  # a killed sweep's, or evaluation's
        state = checkpoint.load_latest(Path(run_dir), with_replay=False)  # (a damaged newest one: the one before)
        if env_steps is not None and state is not None and state.get("env_step") != env_steps:
            raise ValueError(f"{run_dir}: its newest readable checkpoint is of environment step "
                             f"{state.get('env_step')}, its eval.json of step {env_steps}: a sweep would evaluate "
                             f"another model than the table reports; delete the run directory for compare to train "
                             f"it again, or leave the sweep out (--widths with no value)")
        results = training.evaluate_checkpoint(run_dir, cfg.replace(planner=planner, plan_width=width),
                                               episodes=episodes, policies=("glamor",), state=state,
                                               set_names=("eval",))  # the sweep table reports the usual held-out goals
        results["eval_wall_time_s"] = time.time() - t0
        _write_json(path, results)
    return results


def read_curve(metrics_csv: Path, column: str) -> dict[int, float]:
    """{env_step: value} of one eval/ column of a metrics.csv (the last value of each step; its
    whole rows, `glamor.logger.read_rows`: not the last one of a run still writing it)."""
    from glamor.logger import read_rows

    return {int(row["env_step"]): float(row[column]) for row in read_rows(metrics_csv) if row.get(column)}


def run_curve(run_dir: Path, results: dict, column: str) -> dict[int, float]:
    """{env_step: value} of one eval/ column of a run: its metrics.csv's, with the value of its
    eval.json (`results`) at the step that evaluated, as the table reports it. The CSV's row of
    the final evaluation is written after eval.json (a kill between the two leaves it out, and a
    resume finds the run finished) and `glamor eval` may evaluate that step again."""
    curve = read_curve(run_dir / "metrics.csv", column)
    key, step = EVAL_METRICS[column], results.get("env_steps")
    if step is not None and results.get(key) is not None:
        curve[step] = float(results[key])
    return curve


# ---- aggregation ------------------------------------------------------------------------------
def _fmt_ci(lo: float, hi: float) -> str:
    return "n/a" if math.isnan(lo) else f"[{lo:.3f}, {hi:.3f}]"


def summarize(env: str, runs: dict, sweeps: dict, env_id: str | None = None) -> dict:
    """The numbers of one environment.

    Args:
        env: the preset; env_id: the environment its runs trained on (another than the preset's
            under --set env_id=..., which `env_label` names).
        runs: {(algo, seed): (run_dir, eval.json dict)}.
        sweeps: {(planner, width, seed): sweep json dict} of the GLAMOR runs.
    """
    digests: dict[tuple[str, int], set] = {}
    for res in [r for _, r in runs.values()] + list(sweeps.values()):
        for name, row in res["sets"].items():
            first = next(v for k, v in row.items() if k != "goal_digest")
            digests.setdefault((name, first["episodes"]), set()).add(row["goal_digest"])
    mixed = {k: sorted(v) for k, v in digests.items() if len(v) > 1}
    if mixed:
        raise ValueError(f"{env}: runs were evaluated on different goal lists {mixed}; the comparison would "
                         f"not be on the same goals (results from an older glamor, whose digests did not "
                         f"cover the label ranges: run `glamor eval RUN_DIR` again and delete its sweep-*.json)")
    set_lists = {key: tuple(sorted(res["sets"])) for key, (_, res) in runs.items()}
    if len(set(set_lists.values())) > 1:  # (one run evaluated with eval_moved, another without)
        listed = "; ".join(f"{algo} seed {seed}: {', '.join(sets)}" for (algo, seed), sets in sorted(set_lists.items()))
        raise ValueError(f"{env}: runs were evaluated on different goal sets ({listed}); the table compares each "
                         f"set across runs: evaluate them alike (`glamor eval RUN_DIR`)")
    out: dict = {"env": env, "env_id": env_id, "goal_digests": {f"{n}/{e}": next(iter(v)) for (n, e), v in digests.items()},
                 "methods": {}, "curves": {}, "sweep": [], "one_seed": len({s for _, s in runs}) == 1}
    set_names = list(next(iter(runs.values()))[1]["sets"]) if runs else []
    for set_name in set_names:
        for label, algo, key in ROWS:
            if key == "random" and not any(a == algo for a, _ in runs):
                algo = min(a for a, _ in runs)  # every run evaluates the random policy on the same goals
            seeds = sorted(s for a, s in runs if a == algo)
            rows = [runs[(algo, s)][1]["sets"][set_name][key] for s in seeds]
            if not rows:
                continue
            rates = [r["success_rate"] for r in rows]
            mean, lo, hi = seed_interval(rates)
            if len(rows) == 1:  # one seed: the run's own Wilson interval over its goals
                lo, hi = rows[0]["ci95"]
            row = out["methods"][f"{set_name}/{label}"] = dict(
                set=set_name, method=label, seeds=seeds, success_rate=mean, ci95=[lo, hi], per_seed=rates,
                mean_steps=sum(r["mean_steps"] for r in rows) / len(rows), episodes=rows[0]["episodes"],
                env_steps=[runs[(algo, s)][1].get("env_steps") for s in seeds])
            if key == "random" and len(rows) > 1 and len(set(rates)) == 1:  # the same draws in every run
                row.update(ci95_note=f"{SAME_DRAWS_JSON}; ci95_over_goals is one run's Wilson interval over its goals",
                           ci95_over_goals=list(rows[0]["ci95"]))
    for label, algo, column, _ in CURVES:
        if column == "eval/random_success_rate" and runs and not any(a == algo for a, _ in runs):
            algo = min(a for a, _ in runs)  # as the table's random row: every run logs the random policy's
        per_seed = [run_curve(Path(d), res, column) for (a, _), (d, res) in sorted(runs.items()) if a == algo]
        if not per_seed:
            continue
        steps = sorted(set.intersection(*(set(c) for c in per_seed)))
        out["curves"][label] = [(st, *seed_interval([c[st] for c in per_seed])) for st in steps]
        if column == "eval/random_success_rate" and len(per_seed) > 1 and all(
                lo == hi for _, _, lo, hi in out["curves"][label]):  # the same draws in every run, as the table's
            out.setdefault("curve_notes", {})[label] = SAME_DRAWS_JSON
    for planner, width in sorted({(p, w) for p, w, _ in sweeps}):
        rows = [sweeps[(p, w, s)]["sets"]["eval"]["glamor"] for p, w, s in sorted(sweeps) if (p, w) == (planner, width)]
        mean, lo, hi = seed_interval([r["success_rate"] for r in rows])
        if len(rows) == 1:  # one seed: the sweep's own Wilson interval over its goals, as the methods' rows
            lo, hi = rows[0]["ci95"]
        out["sweep"].append(dict(planner=planner, width=width, success_rate=mean, ci95=[lo, hi],
                                 per_seed=[r["success_rate"] for r in rows], episodes=rows[0]["episodes"],
                                 mean_steps=sum(r["mean_steps"] for r in rows) / len(rows),
                                 plans_per_s=sum(r["plans_per_s"] for r in rows) / len(rows)))
    return out


def env_label(summary: dict) -> str:
    """An environment's name in the outputs: its preset, and the environment its runs trained on
    when that is not the preset's own (--set env_id=...)."""
    env, env_id = summary["env"], summary.get("env_id")
    if env_id is None or env_id == PRESETS.get(env, {}).get("env_id"):
        return env
    return f"{env} with env_id={env_id}"


def markdown(summaries: list[dict], header: str) -> str:
    """The comparison as Markdown: per environment, the methods, success against env steps, and
    the planner sweep."""
    lines = [header, ""]
    for s in summaries:
        lines += [f"### {env_label(s)}", "",
                  "Goal lists (set/episodes: digest), identical for every run and evaluation: "
                  + ", ".join(f"`{k}: {v}`" for k, v in s["goal_digests"].items()), "",
                  "| goals | method | success (mean over seeds) | "
                  + ("95% CI (Wilson, over goals: one seed)" if s.get("one_seed") else "95% CI over seeds")
                  + " | per seed | mean steps used | goals per seed | env steps |",
                  "|---|---|---|---|---|---|---|---|"]
        for m in s["methods"].values():
            per = ", ".join(f"{v:.3f}" for v in m["per_seed"])
            steps = sorted({x for x in m["env_steps"] if x is not None})
            lines.append(f"| {m['set']} | {m['method']} | {m['success_rate']:.3f} | {_fmt_ci(*m['ci95'])} | {per} "
                         f"| {m['mean_steps']:.1f} | {m['episodes']} | {', '.join(f'{x:,}' for x in steps)} |")
        if any(m.get("ci95_note") for m in s["methods"].values()):
            lines += ["", SAME_DRAWS]
        if s["curves"]:
            steps = sorted({st for pts in s["curves"].values() for st, *_ in pts})
            lines += ["", "Success against environment steps (mean over seeds; the periodic evaluations use "
                      "`eval_episodes_during_training` goals, the last one `eval_episodes`):", "",
                      "| method | " + " | ".join(f"{st:,}" for st in steps) + " |",
                      "|---|" + "---|" * len(steps)]
            for label, pts in s["curves"].items():
                by_step = {st: mean for st, mean, _, _ in pts}
                cells = [f"{by_step[st]:.3f}" if st in by_step else "" for st in steps]
                lines.append(f"| {label} | " + " | ".join(cells) + " |")
        if s["sweep"]:
            lines += ["", "Planning compute (GLAMOR with the prior, one trained run per seed, evaluated again):", "",
                      "| planner | width | success | "
                      + ("95% CI (Wilson, over goals: one seed)" if s.get("one_seed") else "95% CI over seeds")
                      + " | per seed | mean steps used | plans/s | goals |",
                      "|---|---|---|---|---|---|---|---|"]
            for r in s["sweep"]:
                per = ", ".join(f"{v:.3f}" for v in r["per_seed"])
                lines.append(f"| {r['planner']} | {r['width']} | {r['success_rate']:.3f} | {_fmt_ci(*r['ci95'])} "
                             f"| {per} | {r['mean_steps']:.2f} | {r['plans_per_s']:.0f} | {r['episodes']} |")
        lines.append("")
    return "\n".join(lines)


# ---- plot -------------------------------------------------------------------------------------
def plot(summaries: list[dict], path: Path) -> None:
    """One row per environment: success against env steps (left) and against planner width
    (right, log scale), with 95% intervals over seeds as vertical bars (one seed: the sweep's
    Wilson intervals over its goals, the curves none); drawn with pillow."""
    from PIL import Image, ImageDraw, ImageFont

    from glamor.reports import tick_label_x

    PW, PH, left, right, top, bottom = 520, 380, 56, 16, 40, 86
    with_sweep = any(s["sweep"] for s in summaries)  # no sweep: no empty width panels
    img = Image.new("RGB", ((2 if with_sweep else 1) * PW, PH * max(len(summaries), 1)), "white")
    d = ImageDraw.Draw(img)
    font = ImageFont.load_default()

    def panel(ox, oy, title, xlabel, x_lo, x_hi, xfmt, xticks, series, to_x):
        def xy(x, v):
            return (ox + left + (PW - left - right) * (to_x(x) - to_x(x_lo)) / ((to_x(x_hi) - to_x(x_lo)) or 1),
                    oy + PH - bottom - (PH - top - bottom) * v)

        d.rectangle([ox + left, oy + top, ox + PW - right, oy + PH - bottom], outline="black")
        for i in range(6):
            _, y = xy(x_lo, i / 5)
            d.line([ox + left - 4, y, ox + PW - right, y], fill=(225, 225, 225) if 0 < i < 5 else "black")
            d.text((ox + left - 30, y - 6), f"{i / 5:.1f}", fill="black", font=font)
        for t in xticks:
            x, _ = xy(t, 0)
            d.line([x, oy + PH - bottom, x, oy + PH - bottom + 4], fill="black")
            d.text((tick_label_x(d, xfmt(t), font, x, ox, ox + PW), oy + PH - bottom + 8), xfmt(t), fill="black",
                   font=font)
        d.text((ox + PW // 2 - 40, oy + PH - bottom + 24), xlabel, fill="black", font=font)
        d.text((ox + left, oy + 12), title, fill="black", font=font)
        for k, (label, color, pts) in enumerate(series):
            xys = [xy(x, m) for x, m, _, _ in pts]
            if len(xys) > 1:
                d.line(xys, fill=color, width=2)
            dx = 4 * (k - (len(series) - 1) / 2)  # side by side, so equal points' bars stay visible
            for (x, _, lo, hi), (px, py) in zip(pts, xys):
                if not math.isnan(lo):
                    d.line([px + dx, xy(x, lo)[1], px + dx, xy(x, hi)[1]], fill=color, width=1)
                d.ellipse([px - 3, py - 3, px + 3, py + 3], fill=color)
            lx, ly = ox + 8 + 170 * (k % 3), oy + PH - 38 + 18 * (k // 3)  # the legend: rows of 3 under the axis
            d.line([lx, ly + 6, lx + 16, ly + 6], fill=color, width=2)
            d.text((lx + 22, ly), label, fill="black", font=font)

    for row, s in enumerate(summaries):
        oy = row * PH
        series = [(label, color, s["curves"][label]) for label, _, _, color in CURVES if s["curves"].get(label)]
        x_hi = max([p[0] for _, _, pts in series for p in pts] or [1])
        ci = "one seed" if s.get("one_seed") else "95% CI over seeds"
        panel(0, oy, f"{env_label(s)}: success on held-out goals (mean, {ci})", "environment steps",
              0, x_hi, lambda t: f"{t:,.0f}", [x_hi * i / 4 for i in range(5)], series, lambda x: x)
        if not with_sweep:
            continue
        colors = {"beam": (31, 119, 180), "sample": (214, 39, 40)}
        sweep = [(f"GLAMOR, {p}", colors.get(p, (0, 0, 0)),
                  [(r["width"], r["success_rate"], *r["ci95"]) for r in s["sweep"] if r["planner"] == p])
                 for p in dict.fromkeys(r["planner"] for r in s["sweep"])]
        widths = sorted({r["width"] for r in s["sweep"]}) or [1, 10]
        sweep_ci = "one seed, Wilson 95% CI over goals" if s.get("one_seed") else "mean, 95% CI over seeds"
        panel(PW, oy, f"{env_label(s)}: success against planner width ({sweep_ci})", "planner width (log)", widths[0],
              max(widths[-1], widths[0] + 1), str, widths, sweep, lambda x: math.log10(x))
    img.save(path)


# ---- the command ------------------------------------------------------------------------------
def run_compare(envs: list[str], seeds: list[int], methods: list[str], budget: str, runs_dir: Path, out: Path,
                widths: list[int] | None = None, planners: list[str] | None = None, sweep_episodes: int | None = None,
                setting: str = "default", overrides: dict | None = None, log=print) -> list[dict]:
    """Train (or reuse, or resume) every run, evaluate the sweeps, write OUT.md/.png/.json.

    widths and planners: the planner sweep's (None: DEFAULT_WIDTHS and DEFAULT_PLANNERS where a
    GLAMOR run is compared; widths [] is no sweep). The sweep evaluates GLAMOR runs: without
    "glamor" in `methods`, a width, planner or sweep_episodes given is refused (it would be dropped),
    as are planners or sweep_episodes given beside an empty `widths`, and sweep_episodes above the
    runs' eval_episodes (the goals their held-out sets hold), before any training.

    Returns the per-environment summaries (see `summarize`).
    """
    unknown = [m for m in methods if m not in METHODS]
    if unknown or setting not in SETTINGS:
        raise ValueError(f"unknown method(s) {unknown} or setting {setting!r}; methods: {sorted(METHODS)}, "
                         f"settings: {sorted(SETTINGS)}")
    if "glamor" not in methods or (widths is not None and len(widths) == 0):  # no sweep (widths [] or ()): what
        # only the sweep reads is refused, not dropped
        given = ([f"--widths {' '.join(map(str, widths))}"] if widths else []) \
            + ([f"--planners {' '.join(planners)}"] if planners is not None else []) \
            + ([f"--sweep-episodes {sweep_episodes}"] if sweep_episodes is not None else [])
        why = (f"the planner sweep evaluates GLAMOR runs, and --methods {' '.join(methods)} has none; add glamor to "
               f"--methods" if "glamor" not in methods else "--widths with no value runs no sweep; give it widths")
        if given:
            raise ValueError(f"{', '.join(given)}: {why}, or leave {'it' if len(given) == 1 else 'them'} out")
        widths = []
    widths = list(DEFAULT_WIDTHS if widths is None else widths)
    planners = list(DEFAULT_PLANNERS if planners is None else planners)
    controlled = sorted(set(overrides or {}) & set(CONTROLLED_FIELDS))
    if controlled:
        raise ValueError(f"--set {', '.join(controlled)}: the comparison sets these per run; use "
                         f"{', '.join(CONTROLLED_FIELDS[k] for k in controlled)} instead")
    bad = [f"--widths {w}" for w in widths if w < 1] + [f"--seeds {x}" for x in seeds if x < 0]
    if sweep_episodes is not None and sweep_episodes < 1:
        bad.append(f"--sweep-episodes {sweep_episodes}")
    if bad:
        raise ValueError(f"{', '.join(bad)}: widths and goal counts must be at least 1, seeds at least 0")
    empty = [f"--{name}" for name, values in (("envs", envs), ("seeds", seeds), ("methods", methods),
                                              ("planners", planners)) if not values]
    if empty:
        raise ValueError(f"{', '.join(empty)}: give at least one value")
    repeated = [f"--{name} {' '.join(map(str, sorted({v for v in values if values.count(v) > 1})))}"
                for name, values in (("envs", list(envs)), ("seeds", list(seeds)), ("methods", list(methods)),
                                     ("widths", list(widths)), ("planners", list(planners)))
                if len(set(values)) < len(values)]
    if repeated:
        raise ValueError(f"{', '.join(repeated)}: each value once")
    not_presets = [env for env in envs if env not in PRESETS]
    if not_presets:
        from glamor.envs import bare_name
        from glamor.errors import did_you_mean

        hints = "".join(f"; {env}{did_you_mean(env, PRESETS, key=bare_name)}" for env in not_presets
                        if did_you_mean(env, PRESETS, key=bare_name))
        raise ValueError(f"--envs {' '.join(not_presets)}: not a preset{hints}; --envs takes presets: "
                         f"{sorted(PRESETS)} (an environment id goes in --set env_id=...)")
    for env in envs:  # every run's config before any training (or any folder made): a bad one costs nothing
        for seed in seeds:
            for algo in methods:
                RunSpec(algo, setting, env, seed).config(budget, overrides)
        if "glamor" in methods and widths:
            glamor_cfg = RunSpec("glamor", setting, env, seeds[0]).config(budget, overrides)
            if sweep_episodes is not None and sweep_episodes > glamor_cfg.eval_episodes:  # (the sweep would cut
                # it to those, with a warning, once every run had trained)
                raise ValueError(f"--sweep-episodes {sweep_episodes}: the runs' held-out goal sets hold eval_episodes="
                                 f"{glamor_cfg.eval_episodes} goals each{f' ({env})' if len(envs) > 1 else ''}; give "
                                 f"at most {glamor_cfg.eval_episodes} (more goals: --set eval_episodes=N, which "
                                 f"trains the runs with it)")
            _check_sweep_widths(env, glamor_cfg, planners, widths)
    out = _check_out(out)
    command = _command(envs, seeds, methods, budget, runs_dir, out, widths, planners, sweep_episodes, setting,
                       overrides)
    t_start = time.time()
    statuses: dict[str, int] = {}
    summaries = []
    with _continues_with(command):
        for env in envs:
            runs, sweeps = {}, {}
            for seed in seeds:
                for algo in methods:
                    spec = RunSpec(algo, setting, env, seed)
                    cfg, run_dir = spec.config(budget, overrides), spec.run_dir(runs_dir)
                    t0 = time.time()
                    try:
                        status = ensure_trained(cfg, run_dir, log)
                    except TrainingInterrupted as e:  # the whole comparison goes on from where it stopped
                        raise TrainingInterrupted(e.signum, e.env_step, e.run_dir, continue_with=command,
                                                  final_evaluation=e.final_evaluation) from None
                    statuses[status] = statuses.get(status, 0) + 1
                    res = read_run_results(run_dir, algo)
                    log(f"{env} {algo} seed {seed}: {status} ({time.time() - t0:.0f} s), success {res['success_rate']:.3f}")
                    runs[(algo, seed)] = (run_dir, res)
            for (algo, seed), (run_dir, _) in sorted(runs.items()):
                if algo != "glamor":
                    continue
                cfg = RunSpec(algo, setting, env, seed).config(budget, overrides)
                for planner in planners:
                    for width in widths:
                        t0 = time.time()
                        r = ensure_sweep(run_dir, cfg, planner, width,
                                         cfg.eval_episodes if sweep_episodes is None else sweep_episodes,
                                         env_steps=runs[(algo, seed)][1].get("env_steps"))
                        sweeps[(planner, width, seed)] = r
                        log(f"{env} seed {seed} {planner} width {width}: success {r['success_rate']:.3f} "
                            f"({time.time() - t0:.0f} s)")
            summaries.append(summarize(env, runs, sweeps, RunSpec(methods[0], setting, env, seeds[0])
                                       .config(budget, overrides).env_id))
            files = write_outputs(out, summaries, envs, seeds, budget, command)  # each environment's table kept
    log(f"wrote {', '.join(map(str, files))} ({time.time() - t_start:.0f} s; runs: {statuses})")
    return summaries


def _check_sweep_widths(env: str, cfg, planners: list[str], widths: list[int]) -> None:
    """Each sweep width, as the planners take it (glamor.planning: at most MAX_SIZE, an int32
    bound; beam search's at most MAX_SIZE // num_actions where n**horizon does not cap it),
    before any training: a width too wide stopped the command at its sweep, after the training."""
    for planner in planners:
        for width in widths:
            try:
                cfg.replace(planner=planner, plan_width=width)
            except ValueError as e:
                raise ValueError(f"--widths {width}: {e}") from None
    if "beam" in planners:
        from glamor import envs as glamor_envs
        from glamor import planning

        try:  # (its action count)
            built = glamor_envs.make(cfg.env_id, cfg.episode_length, **cfg.env_kwargs)
        except Exception:  # noqa: BLE001 - a fast refusal only: finished runs and sweeps need no environment
            return  # (to regenerate a table where it cannot be built); training, or a sweep, says why
        num_actions = int(built.action_space.n)
        built.close()
        for width in widths:
            try:
                planning.check_beam_width(num_actions, cfg.horizon, width)
            except ValueError as e:
                raise ValueError(f"--widths {width:,} with --planners beam on {env}: {e}") from None


@contextlib.contextmanager
def _continues_with(command: str):
    """A Ctrl-C outside a run's training and final evaluation (a sweep; a second Ctrl-C) names
    the command that goes on, as their own stop does (its TrainingInterrupted names it itself)."""
    try:
        yield
    except TrainingInterrupted:
        raise
    except KeyboardInterrupt as e:
        e.hint = f"`{command}` goes on from there (finished runs and sweeps are reused)"  # the CLI prints it
        raise


def write_outputs(out: Path, summaries: list[dict], envs: list[str], seeds: list[int], budget: str,
                  command: str) -> tuple[Path, ...]:
    """OUT.md, OUT.png and OUT.json of the environments done so far (each file replaced whole);
    while some are still to run, the header says which."""
    done = [s["env"] for s in summaries]
    so_far = "" if len(done) == len(envs) else f" so far ({len(done)} of {len(envs)} environments; to run: " \
        f"{', '.join(e for e in envs if e not in done)})"
    header = (f"## Results: {', '.join(map(env_label, summaries))}, budget `{budget}`, seeds {', '.join(map(str, seeds))}{so_far}\n\n"
              f"Written by `{command}`. Every method is evaluated on the same held-out goals; "
              f"GLAMOR replans every step and may stop early, GCSL and random run the fixed horizon; success "
              f"is judged at the final state.")
    md, png, js = (Path(f"{out}{suffix}") for suffix in OUT_SUFFIXES)
    md_text = markdown(summaries, header)
    js_text = json.dumps(_nan_to_null({"envs": envs, "done": done, "seeds": seeds, "budget": budget,
                                       "summaries": summaries}), indent=2) + "\n"

    # Each file is written beside its target before any replaces its old one (the PNG first, the JSON
    # last): a plot or a write that fails (a full disk) leaves the three files of the last write as they
    # were, not a new table beside the old numbers.
    def md_then_png(tmp_md: Path) -> None:
        tmp_md.write_text(md_text)
        write_atomically(png, lambda tmp: plot(summaries, tmp), suffix=".png")

    def json_then_md(tmp_json: Path) -> None:
        tmp_json.write_text(js_text)
        write_atomically(md, md_then_png)

    write_atomically(js, json_then_md)
    return md, png, js


def _nan_to_null(obj):
    """`obj` with NaN (one seed's interval over seeds) as None: json.dumps writes NaN, which is
    not JSON (JSON.parse, jq and most readers other than Python's refuse the file)."""
    if isinstance(obj, float) and math.isnan(obj):
        return None
    if isinstance(obj, dict):
        return {k: _nan_to_null(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_nan_to_null(v) for v in obj]
    return obj


OUT_SUFFIXES = (".md", ".png", ".json")


def _check_out(out) -> Path:
    """--out as a path without suffix (a given .md/.png/.json is dropped, other dots are kept),
    its folder made and written to once, so a bad --out fails before any training, and the
    temporaries of its files that a killed compare left there removed. A folder (one that exists,
    or a path ending in '/') is refused: OUT.md would be written beside it."""
    text = str(out)
    if not text.strip():
        raise ValueError("--out must name a path (OUT.md, OUT.png and OUT.json are written)")
    out = Path(out)
    if text.endswith(("/", os.sep)) or out.is_dir():
        raise ValueError(f"--out {text}: a folder; --out is the results' path without suffix, e.g. --out "
                         f"{out / 'compare'} writes {out / 'compare'}.md, .png and .json in it")
    if out.suffix in OUT_SUFFIXES:
        out = out.with_suffix("")
    folders = [f"{out}{suffix}" for suffix in OUT_SUFFIXES if Path(f"{out}{suffix}").is_dir()]
    if folders:
        raise ValueError(f"--out {text}: {', '.join(folders)} {'is a folder' if len(folders) == 1 else 'are folders'}"
                         f"; name another path")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        probe = out.parent / f".{out.name}.probe"
        probe.write_text("")
        probe.unlink()
    except OSError as e:
        raise ValueError(f"--out {out}: cannot write there ({e.strerror or e})") from None
    # a killed compare's temporaries of these files (a running one's stay: a second compare of this --out)
    remove_temporaries(out.parent, names=tuple(f"{out.name}{suffix}" for suffix in OUT_SUFFIXES))
    return out


def _command(envs, seeds, methods, budget, runs_dir, out, widths, planners, sweep_episodes, setting,
             overrides) -> str:
    """The `glamor compare` command line that writes these results again (defaults left out)."""
    parts = ["glamor compare", "--envs", *map(shlex.quote, envs), "--seeds", *map(str, seeds)]
    if list(methods) != list(DEFAULT_METHODS):
        parts += ["--methods", *methods]
    parts += ["--budget", budget]
    if setting != "default":
        parts += ["--setting", setting]
    if list(widths) != list(DEFAULT_WIDTHS) and "glamor" in methods:  # (no GLAMOR run: no sweep)
        parts += ["--widths", *map(str, widths)]
    if list(planners) != list(DEFAULT_PLANNERS) and widths:
        parts += ["--planners", *planners]
    if sweep_episodes:
        parts += ["--sweep-episodes", str(sweep_episodes)]
    for name, value in (overrides or {}).items():
        parts += ["--set", shlex.quote(f"{name}={value}")]
    parts += ["--runs-dir", shlex.quote(str(runs_dir)), "--out", shlex.quote(str(out))]
    return " ".join(parts)


def add_arguments(p: argparse.ArgumentParser) -> None:
    from glamor.cli import path_argument  # (cli imports this module lazily: no cycle at import)

    p.add_argument("--envs", nargs="+", default=["gridworld"], metavar="PRESET",
                   help="environment presets (gridworld, gridworld_box, ...; default gridworld)")
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--methods", nargs="+", default=list(DEFAULT_METHODS), choices=sorted(METHODS),
                   help="trained methods (default all: glamor, gcsl and gcsl_time, GCSL given the steps left). "
                        "GLAMOR's no-prior and the random policy come with every GLAMOR run")
    p.add_argument("--setting", default="default", choices=sorted(SETTINGS))
    p.add_argument("--budget", default="small", help="small (this machine) or full (the presets' settings)")
    p.add_argument("--widths", nargs="*", type=int,
                   help=f"planner widths of the evaluation-time sweep of the GLAMOR runs (default "
                        f"{' '.join(map(str, DEFAULT_WIDTHS))}; none: no sweep)")
    p.add_argument("--planners", nargs="+", choices=list(DEFAULT_PLANNERS),
                   help="planners of the sweep (default both)")
    p.add_argument("--sweep-episodes", type=int, help="goals per sweep evaluation, at most eval_episodes (the default)")
    p.add_argument("--runs-dir", type=path_argument, help="where the runs live (default runs/compare-BUDGET)")
    p.add_argument("--out", help="output path without suffix, not a folder: OUT.md, OUT.png and OUT.json "
                                 "(default results/ENVS_BUDGET)")
    p.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                   help="override a config field of every run (e.g. torch_threads=1)")


def main(args: argparse.Namespace) -> int:
    from glamor.cli import _check_env_arguments, _parse_overrides

    overrides = _parse_overrides(args.set)
    for env in dict.fromkeys(e for e in args.envs if e in PRESETS):  # (not presets: run_compare names them)
        # an environment's argument (--set noop_max=0) is named as such, not as an unknown config field
        _check_env_arguments(overrides, overrides.get("env_id", PRESETS[env]["env_id"]),
                             overrides.get("env_kwargs", PRESETS[env].get("env_kwargs", {})))
    out = args.out if args.out is not None else f"results/{'_'.join(args.envs)}_{args.budget}"  # "" is refused
    runs_dir = Path(args.runs_dir or f"runs/compare-{args.budget}")
    run_compare(args.envs, args.seeds, args.methods, args.budget, runs_dir, out, args.widths, args.planners,
                args.sweep_episodes, args.setting, overrides)
    return 0
