"""Metrics to TensorBoard and to a CSV, grouped by prefix (charts/, losses/, planner/, eval/).

The CSV (`metrics.csv` in the run directory) has one row per `log` call: env_step, wall time,
then one column per metric name known at creation (empty where a row has no value).
"""

from __future__ import annotations

import csv
import time
import warnings
from pathlib import Path

METRICS = (
    "losses/idm",
    "losses/prior",
    "losses/total",
    "charts/epsilon",
    "charts/env_steps_per_s",
    "charts/updates_per_s",
    "planner/plans_per_s",
    "eval/success_rate",
    "eval/success_rate_no_prior",
    "eval/random_success_rate",
)


class Logger:
    def __init__(self, run_dir: Path, tensorboard: bool = True, append: bool = False):
        self.run_dir = Path(run_dir)
        self.start = time.time()
        self.writer = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(self.run_dir / "tb"))
        path = self.run_dir / "metrics.csv"
        fresh = not (append and path.exists())
        self._file = open(path, "w" if fresh else "a", newline="")
        self._csv = csv.writer(self._file)
        if fresh:
            self._csv.writerow(["env_step", "wall_time", *METRICS])
        self._warned: set[str] = set()

    def log(self, env_step: int, metrics: dict[str, float]) -> None:
        for name, value in metrics.items():
            if self.writer is not None:
                self.writer.add_scalar(name, value, env_step)
            if name not in METRICS and name not in self._warned:
                self._warned.add(name)
                warnings.warn(f"metric {name!r} goes to TensorBoard only (not a CSV column)", stacklevel=2)
        row = [env_step, f"{time.time() - self.start:.2f}"]
        row += ["" if metrics.get(m) is None else f"{metrics[m]:.6g}" for m in METRICS]
        self._csv.writerow(row)
        self._file.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self._file.close()
