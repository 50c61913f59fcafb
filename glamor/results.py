"""What an evaluation's results are called and where they are kept: each policy's label and plot
colour, the eval/ metrics a run logs, and reading and writing a results JSON file (eval.json,
`eval-NAME=VALUE.json`, a sweep's). No torch here: `glamor compare` and the command line's
argument parsing read these without loading the model code.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

from glamor.config import field_value
from glamor.files import write_text_atomically

POLICY_LABELS = {"glamor": "GLAMOR", "glamor_no_prior": "GLAMOR, no prior", "gcsl": "GCSL", "random": "random"}
# The eval/ columns of metrics.csv and the eval.json keys they log: the run's own policy's success
# (GLAMOR's, or GCSL's in a GCSL run), GLAMOR's without the prior and the random policy's.
EVAL_METRICS = {"eval/success_rate": "success_rate", "eval/success_rate_no_prior": "success_rate_no_prior",
                "eval/random_success_rate": "random_success_rate"}

# Each policy's colour in every plot (compare's too; gcsl_time: time-conditioned GCSL's runs).
COLOURS = {"glamor": (31, 119, 180), "glamor_no_prior": (255, 127, 14), "gcsl": (44, 160, 44),
           "gcsl_time": (214, 39, 40), "random": (127, 127, 127)}


def read_results(path: Path, requires: tuple[str, ...] = ()) -> dict:
    """A results JSON file (eval.json, a sweep's), or a ValueError naming it when it is damaged:
    not JSON, not a dict, or without a field its readers use (`check_results`; `requires` adds
    fields one caller needs, e.g. "sets/eval/glamor/plans_per_s", "*" standing for every goal set)."""
    def damaged(why: str) -> ValueError:
        return ValueError(f"{path} is damaged ({why}): delete it, and `glamor eval` writes it again")

    try:
        results = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:  # (not text: a write lost to a crash, another file)
        raise damaged(str(e)) from None
    if not isinstance(results, dict):
        raise damaged(f"it holds a {type(results).__name__}, not results")
    problems = check_results(results, requires)
    if problems:
        raise damaged("; ".join(problems))
    return results


RESULT_FIELDS = {"success_rate": "a number", "ci95": "a pair of numbers", "episodes": "an integer",
                 "mean_steps": "a number"}  # each policy's in each goal set, as `evaluate` writes them


def _is(value, kind: str) -> bool:
    def number(v):
        return isinstance(v, (int, float)) and not isinstance(v, bool)

    if kind == "a number":
        return number(value)
    if kind == "an integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "a pair of numbers":
        return isinstance(value, list) and len(value) == 2 and all(map(number, value))
    if kind == "a string":
        return isinstance(value, str)
    return True  # any value


def check_results(results: dict, requires: tuple[str, ...] = ()) -> list[str]:
    """What an evaluation's results lack for `format_table` and `glamor compare`: a top-level
    success_rate, and goal sets under "sets", each with its goal_digest and at least one policy's
    RESULT_FIELDS; env_steps, when there, an integer. Each problem names its field by its path
    ("sets/eval/glamor/ci95"); none: []."""
    missing, wrong = [], []

    def check(d: dict, key: str, kind: str, where: str) -> None:
        if key not in d:
            missing.append(where + key)
        elif not _is(d[key], kind):
            wrong.append(f"{where}{key} is not {kind}")

    check(results, "success_rate", "a number", "")
    if "env_steps" in results:
        check(results, "env_steps", "an integer", "")
    sets = results.get("sets", {})
    if "sets" not in results:
        missing.append("sets")
    elif not isinstance(sets, dict) or not sets:
        wrong.append("sets holds no goal set")
        sets = {}
    for name, row in sets.items():
        if not isinstance(row, dict):
            wrong.append(f"sets/{name} is not a goal set's results")
            continue
        check(row, "goal_digest", "a string", f"sets/{name}/")
        policies = {k: v for k, v in row.items() if k != "goal_digest"}
        if not policies:
            wrong.append(f"sets/{name} holds no policy's results")
        for policy, r in policies.items():
            if not isinstance(r, dict):
                wrong.append(f"sets/{name}/{policy} is not a policy's results")
                continue
            for key, kind in RESULT_FIELDS.items():
                check(r, key, kind, f"sets/{name}/{policy}/")
    for field in requires:
        _require(results, field.split("/"), "", missing)
    problems = ([f"missing {', '.join(dict.fromkeys(missing))}"] if missing else []) + wrong
    return problems


def _require(d, parts: list[str], where: str, missing: list[str]) -> None:
    """Each path of `parts` ("*": every key but goal_digest) that `d` lacks, appended to `missing`."""
    if not parts or not isinstance(d, dict):
        return  # a value of another kind is check_results' to name
    head, rest = parts[0], parts[1:]
    keys = [k for k in d if k != "goal_digest"] if head == "*" else [head]
    for key in keys:
        if key in d:
            _require(d[key], rest, f"{where}{key}/", missing)
        else:
            missing.append(where + key)


def write_results(run_dir: Path, results: dict, name: str = "eval.json") -> Path:
    return write_text_atomically(Path(run_dir) / name, json.dumps(results, indent=2) + "\n")


def format_table(results: dict) -> str:
    """The evaluation as a Markdown table: one row per goal set and policy."""
    lines = ["| goals | policy | success | 95% CI | episodes | mean steps |", "|---|---|---|---|---|---|"]
    labels = dict(POLICY_LABELS)
    if (results.get("policy") or {}).get("time_conditioned"):  # a gcsl_time run (compare's label too)
        labels["gcsl"] = "GCSL, time-conditioned"
    for name, row in results["sets"].items():
        for policy, label in labels.items():
            if policy not in row:
                continue
            r = row[policy]
            lines.append(
                f"| {name} | {label} | {r['success_rate']:.3f} | [{r['ci95'][0]:.3f}, {r['ci95'][1]:.3f}] "
                f"| {r['episodes']} | {r['mean_steps']:.1f} |"
            )
    return "\n".join(lines)


def results_name(overrides: dict | None = None) -> str:
    """eval.json, or for an evaluation with config overrides eval-NAME=VALUE,....json, so a
    re-evaluation with another planner never replaces the run's own results. Each value is
    named as the config holds it (config.field_value), so plan_width=200.0 and plan_width=200,
    the same evaluation, write the same file. A value with other characters than letters,
    digits, '.', '_' and '-' (an env_kwargs dict, an env_id module:id) is written with them as
    '_' and a digest of the overrides' canonical JSON appended (--HASH), so two evaluations that
    differ only in punctuation (env_kwargs={"a b": 1} and {"a_b": 1}) never share a file."""
    if not overrides:
        return "eval.json"
    values = {k: field_value(k, v) for k, v in sorted(overrides.items())}
    texts = {k: v if isinstance(v, str) else json.dumps(v, sort_keys=True, separators=(",", ":"))
             if isinstance(v, (dict, list)) else str(v) for k, v in values.items()}
    exact = all(re.fullmatch(r"[A-Za-z0-9._-]+", text) for text in texts.values())
    tag = ",".join(f"{k}={text if exact else _readable(text)}" for k, text in texts.items())
    digest = hashlib.sha1(json.dumps(values, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    if len(tag) > 150:  # file names end at 255 bytes: keep the start readable, a digest tells them apart
        return f"eval-{tag[:120]}...{digest[:12]}.json"
    return f"eval-{tag}.json" if exact else f"eval-{tag}--{digest[:10]}.json"


def _readable(text: str) -> str:
    """`text` (a value's JSON or string) in a file name: quotes dropped, every run of other
    characters than letters, digits, '.' and '-' one '_' (none at the ends)."""
    return re.sub(r"[^A-Za-z0-9.-]+", "_", text.replace('"', "")).strip("_") or "empty"
