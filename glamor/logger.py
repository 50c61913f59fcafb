"""Metrics to TensorBoard and to a CSV, grouped by prefix (charts/, losses/, planner/, eval/).

The CSV (`metrics.csv` in the run directory) has one row per `log` call: env_step, wall time,
then one column per metric name known at creation (empty where a row has no value).

A resumed run passes `resume_step` (the checkpoint's env step): rows logged after it by the killed
process are dropped from the CSV and purged from TensorBoard, so every step is logged once, and
the wall time goes on from `wall_offset`.
"""

from __future__ import annotations

import csv
import time
import warnings
from pathlib import Path

from glamor.files import write_csv_atomically

METRICS = (
    "losses/idm",
    "losses/prior",
    "losses/total",
    "charts/epsilon",
    "charts/env_steps_per_s",
    "charts/updates_per_s",
    "charts/worker_restarts",
    "planner/plans_per_s",
    "eval/success_rate",
    "eval/success_rate_no_prior",
    "eval/random_success_rate",
)


class Logger:
    def __init__(self, run_dir: Path, tensorboard: bool = True, append: bool = False,
                 resume_step: int | None = None, wall_offset: float = 0.0):
        self.run_dir = Path(run_dir)
        self.start = time.time() - wall_offset
        self.writer = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            purge = None if resume_step is None else resume_step + 1
            self.writer = SummaryWriter(str(self.run_dir / "tb"), purge_step=purge)
        path = self.run_dir / "metrics.csv"
        columns = ("env_step", "wall_time", *METRICS)
        if resume_step is not None or not (append and path.exists()):  # the header, and the rows kept
            kept = self._rows_up_to(path, resume_step) if resume_step is not None else []
            write_csv_atomically(path, [columns, *([row.get(c, "") for c in columns] for row in kept)])
        self._file = open(path, "a", newline="")
        self._csv = csv.writer(self._file)
        self._warned: set[str] = set()

    @staticmethod
    def _rows_up_to(path: Path, step: int) -> list[dict]:
        """The CSV's rows (as dicts) logged at env_step <= step."""
        if not path.exists():
            return []
        with open(path, newline="") as f:
            return [row for row in csv.DictReader(f) if row.get("env_step") and int(row["env_step"]) <= step]

    @property
    def elapsed(self) -> float:
        return time.time() - self.start

    def log_gif(self, tag: str, gif: bytes, size: tuple[int, int], env_step: int) -> None:
        """An animated GIF (encoded bytes, size (H, W)) to TensorBoard's images tab, the way
        `SummaryWriter.add_video` stores videos (which needs moviepy; we encode with pillow)."""
        if self.writer is not None:
            write_gif(self.writer, tag, gif, size, env_step)

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


def write_gif(writer, tag: str, gif: bytes, size: tuple[int, int], step: int) -> None:
    """An encoded GIF to a SummaryWriter as an image summary (TensorBoard animates it)."""
    from tensorboard.compat.proto.summary_pb2 import Summary

    image = Summary.Image(height=size[0], width=size[1], colorspace=3, encoded_image_string=gif)
    writer._get_file_writer().add_summary(Summary(value=[Summary.Value(tag=tag, image=image)]), step)
