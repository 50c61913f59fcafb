"""Metrics to TensorBoard and to a CSV, grouped by prefix (charts/, losses/, planner/, eval/).

The CSV (`metrics.csv` in the run directory) has one row per `log` call: env_step, wall time,
then one column per metric name known at creation (empty where a row has no value).

A resumed run passes `resume_step` (the checkpoint's env step) and `wall_offset` (the run's wall
time at that checkpoint): rows logged after the checkpoint by the stopped process (a later step,
or the final evaluation's row at the checkpoint's own step) are dropped from the CSV and purged
from TensorBoard, so every step is logged once, and the wall time goes on from `wall_offset`.
TensorBoard is purged from the next step, or, when a row at the checkpoint's own step goes (an
owed periodic evaluation done by a resume that then died), from that step, whose kept rows and
`glamor eval` videos are then logged again (the videos into the new event file, where the next
`glamor eval` does not replace them).
A finished run that is extended passes `evaluated` too: its final evaluation's row stays (the
extension does not evaluate that step again), and the wall time goes on from that row's.
A row cut short (a full disk, a kill during a write, a power cut: the end of its line missing,
or a cell that is not a number) is dropped too.

`sync` makes the rows logged so far durable, in the CSV and in TensorBoard's event file; the
trainer calls it before every checkpoint, so after a power cut the checkpoint a run resumes from
is never ahead of its metrics (before, the rows since the last rewrite could be lost while the
checkpoint after them was on disk, and the resumed run's curves had a gap).
"""

from __future__ import annotations

import contextlib
import csv
import errno
import io
import os
import time
import warnings
from pathlib import Path

from glamor import files
from glamor.files import fsync_dir, write_csv_atomically

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
                 resume_step: int | None = None, wall_offset: float | None = None, evaluated: bool = False):
        self.run_dir = Path(run_dir)
        self.writer = None
        self._events_named = False
        path = self.run_dir / "metrics.csv"
        kept, again, dropped = [], [], False
        if resume_step is not None:
            rows = read_rows(path)
            kept = self._rows_up_to(rows, resume_step, None if evaluated else wall_offset)
            again = [row for row in kept if int(row["env_step"]) == resume_step]
            # a row at the checkpoint's own step goes: TensorBoard loses that step, then gets the kept
            # ones (`again`, maybe none: the dropped row was the step's only one) back
            dropped = len(again) < sum(int(row["env_step"]) == resume_step for row in rows)
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            purge = None if resume_step is None else resume_step + (0 if dropped else 1)
            self.writer = SummaryWriter(str(self.run_dir / "tb"), purge_step=purge)
        try:
            if dropped and self.writer is not None:
                self._log_again(resume_step, again)
            self._open_csv(path, kept, resume_step, wall_offset, append)
        except BaseException:  # (a full disk, a metrics.csv that is not a file): the writer's thread and file go too
            if self.writer is not None:
                with contextlib.suppress(Exception):
                    self.writer.close()
            raise

    def _log_again(self, step: int, rows: list[dict]) -> None:
        """After a purge from `step` itself: the kept metrics.csv `rows` of that step to TensorBoard
        again, and the images `glamor eval` logged at that step (its videos, in their own event
        files, which the purge hides as it does every point logged before it at that step)."""
        for row in rows:
            for name in METRICS:
                if row.get(name):
                    self.writer.add_scalar(name, float(row[name]), step)
        from tensorboard.backend.event_processing.event_file_loader import LegacyEventFileLoader

        from glamor.reports import VIDEO_EVENTS

        for old in sorted((self.run_dir / "tb").glob(f"events.out.tfevents.*{VIDEO_EVENTS}")):
            with contextlib.suppress(Exception):  # (one cut short: the events read before the cut)
                for event in LegacyEventFileLoader(str(old)).Load():
                    if event.step == step and event.HasField("summary"):
                        self.writer._get_file_writer().add_event(event)

    def _open_csv(self, path: Path, kept: list[dict], resume_step: int | None, wall_offset: float | None,
                  append: bool) -> None:
        columns = ("env_step", "wall_time", *METRICS)
        if resume_step is not None or not (append and path.exists()):  # the header, and the rows kept
            write_csv_atomically(path, [columns, *([row.get(c, "") for c in columns] for row in kept)])
        # the wall time goes on from the checkpoint's, or from a kept row logged after it (an
        # extended run's final evaluation), so it never goes back
        self.went_on_from = max([wall_offset or 0.0, *(float(row["wall_time"]) for row in kept)])  # seconds
        self.start = time.time() - self.went_on_from
        self._file = open(path, "a", newline="")
        self._csv = csv.writer(self._file)
        self._warned: set[str] = set()

    @staticmethod
    def _rows_up_to(rows: list[dict], step: int, wall_time: float | None) -> list[dict]:
        """The CSV's whole `rows` (`read_rows`) logged up to a checkpoint at env step `step` and run
        wall time `wall_time` (seconds, None: unknown, or every row at `step` stays; the CSV's times
        are rounded to 0.01). Only rows at `step` itself can come after the checkpoint (its final
        evaluation's); an earlier step's stays whatever its time (an evaluation longer than the
        training after it)."""
        return [row for row in rows if row.get("wall_time") and (int(row["env_step"]) < step or (
            int(row["env_step"]) == step and (wall_time is None or float(row["wall_time"]) <= wall_time + 0.01)))]

    @property
    def elapsed(self) -> float:
        return time.time() - self.start

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

    def sync(self) -> None:
        """The CSV's rows so far, and TensorBoard's events, to the disk (fsync): called before a
        checkpoint, which must not be on the disk without the rows and points logged before it
        (a resume purges TensorBoard's later points, and nothing logs lost earlier ones again).
        The event file is found through the writer's private attributes: where they are missing
        (another torch or tensorboard), or the file was removed since its last point, it is only
        flushed, and the checkpoint goes on."""
        self._file.flush()
        _fsync(self._file.fileno())
        if self.writer is not None:
            self.writer.flush()  # (to the system: the writer's file is written and closed by name)
            name = _event_file_name(self.writer)
            if name is not None:
                try:
                    fd = os.open(name, files.FSYNC_OPEN)
                except FileNotFoundError:  # (removed since its last point: the next one makes it again)
                    return
                try:
                    _fsync(fd)
                finally:
                    os.close(fd)
                if not self._events_named:  # (the file's name in its folder, once)
                    fsync_dir(Path(name).parent)
                    self._events_named = True

    def close(self) -> None:
        """Close TensorBoard's writer and the CSV, both even when one fails (a full disk), then
        raise the first failure."""
        try:
            if self.writer is not None:
                self.writer.close()
        finally:
            self._file.close()


def _event_file_name(writer) -> str | None:
    """The path of the event file torch's SummaryWriter `writer` writes, found through private
    attributes (torch 2's and tensorboard's): None where they are not there (another version, or
    another writer), and its events are then only flushed, not fsynced."""
    try:
        name = writer._get_file_writer().event_writer._file_name
    except AttributeError:
        return None
    return name if isinstance(name, str) else None


def _fsync(fd: int) -> None:
    try:
        os.fsync(fd)
    except OSError as e:  # (a file system that cannot fsync, as files.fsync_dir allows: flushed is all it gets)
        if e.errno not in (errno.EINVAL, errno.ENOTSUP):
            raise


def read_rows(path: str | Path) -> list[dict]:
    """The whole rows of a metrics.csv (as dicts, in file order; none when it does not exist).
    A row cut short is left out: by a full disk or a kill during a write (too few cells, or the
    end of its line missing: the last row of a run that is still writing it), or by a power cut
    (NULs in its line): every reader (a resume, `glamor eval`'s plot, compare's curves) takes an
    integer env_step and a number or nothing in every other cell (the wall time, the metrics)."""
    path = Path(path)
    if not path.exists():
        return []

    def number(text, kind):
        try:
            return kind(text)
        except (TypeError, ValueError):
            return None

    with open(path, newline="", errors="replace") as f:
        text = f.read()
    if not text.endswith("\n"):  # a last row without the end of its line was cut short
        text = text[:text.rfind("\n") + 1]
    rows = []
    for row in csv.DictReader(io.StringIO(text, newline="")):
        if None in row or None in row.values():  # not as many fields as the header
            continue
        if number(row.get("env_step"), int) is None:
            continue
        if all(v == "" or number(v, float) is not None for k, v in row.items() if k != "env_step"):
            rows.append(row)
    return rows


def write_gif(writer, tag: str, gif: bytes, size: tuple[int, int], step: int) -> None:
    """An encoded GIF (size (H, W)) to a SummaryWriter as an image summary, which TensorBoard's
    images tab animates: the way `SummaryWriter.add_video` stores videos (which needs moviepy;
    the GIFs are encoded with pillow, glamor/reports.py)."""
    from tensorboard.compat.proto.summary_pb2 import Summary

    image = Summary.Image(height=size[0], width=size[1], colorspace=3, encoded_image_string=gif)
    writer._get_file_writer().add_summary(Summary(value=[Summary.Value(tag=tag, image=image)]), step)
