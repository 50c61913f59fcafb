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

from glamor.files import write_text_atomically

POLICY_LABELS = {"glamor": "GLAMOR", "glamor_no_prior": "GLAMOR, no prior", "gcsl": "GCSL", "random": "random"}
# The eval/ columns of metrics.csv and the eval.json keys they log: the run's own policy's success
# (GLAMOR's, or GCSL's in a GCSL run), GLAMOR's without the prior and the random policy's.
EVAL_METRICS = {"eval/success_rate": "success_rate", "eval/success_rate_no_prior": "success_rate_no_prior",
                "eval/random_success_rate": "random_success_rate"}

# Each policy's colour in every plot (compare's too; gcsl_time: time-conditioned GCSL's runs).
COLOURS = {"glamor": (31, 119, 180), "glamor_no_prior": (255, 127, 14), "gcsl": (44, 160, 44),
           "gcsl_time": (214, 39, 40), "random": (127, 127, 127)}


def read_results(path: Path) -> dict:
    """A results JSON file (eval.json, a sweep's), or a ValueError naming it when it is damaged."""
    try:
        results = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path} is damaged ({e}): delete it, and `glamor eval` writes it again") from None
    if not isinstance(results, dict):
        raise ValueError(f"{path} is damaged (it holds a {type(results).__name__}, not results): delete it, "
                         f"and `glamor eval` writes it again")
    return results


def write_results(run_dir: Path, results: dict, name: str = "eval.json") -> Path:
    return write_text_atomically(Path(run_dir) / name, json.dumps(results, indent=2) + "\n")


def format_table(results: dict) -> str:
    """The evaluation as a Markdown table: one row per goal set and policy."""
    lines = ["| goals | policy | success | 95% CI | episodes | mean steps |", "|---|---|---|---|---|---|"]
    for name, row in results["sets"].items():
        for policy, label in POLICY_LABELS.items():
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
    re-evaluation with another planner never replaces the run's own results."""
    if not overrides:
        return "eval.json"
    tag = re.sub(r"[^A-Za-z0-9=,._-]", "_", ",".join(f"{k}={v}" for k, v in sorted(overrides.items())))
    if len(tag) > 150:  # file names end at 255 bytes: keep the start readable, a digest tells them apart
        tag = f"{tag[:120]}...{hashlib.sha1(tag.encode()).hexdigest()[:12]}"
    return f"eval-{tag}.json"
