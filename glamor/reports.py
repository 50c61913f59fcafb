"""Evaluation reports a person can look at, written by `glamor eval RUN_DIR`:

- `eval_goals.csv`: one row per goal set, policy and goal: goal id, success, steps used and the
  label distance (max over labels of |label - goal| / range; success is every label within the
  environment's success_tolerance: 0.1, the spec's, except half a cell on gridworlds above size 11);
- `success.png`: success rate against environment steps, drawn with pillow: the lines are the
  run's own evaluations, metrics.csv's eval/ columns, with the evaluation just run in place of the
  one at its step; an evaluation of other settings (`glamor eval --set ...`, `--episodes N`)
  leaves those lines as training logged them and is drawn beside them as squares, its settings
  in the title;
- `videos/<set>_goal<id>.gif`: the goal image beside the run's own policy's rollout (GLAMOR's,
  or GCSL's in a GCSL run), for the first goals of each set; the same GIFs go to TensorBoard
  (images tab) under `eval/video/<set>/goal_<id>`, in an event file of their own
  (`tb/*.eval_videos`) that the next evaluation replaces, as it replaces videos/.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from glamor.files import write_atomically, write_csv_atomically
from glamor.results import COLOURS, EVAL_METRICS, POLICY_LABELS

# The end of the name of the TensorBoard event file that holds an evaluation's GIFs: each
# evaluation removes the one before it wrote (two evaluations of a step showed two GIFs of each goal).
VIDEO_EVENTS = ".eval_videos"

# The plotted series of each algorithm's runs: (metrics.csv column, policy, colour). A run logs
# its own policy's success as eval/success_rate, whichever algorithm it trains (EVAL_METRICS).
SERIES = {algo: tuple((column, policy, COLOURS[policy]) for column, policy in series) for algo, series in {
    "glamor": (("eval/success_rate", "glamor"), ("eval/success_rate_no_prior", "glamor_no_prior"),
               ("eval/random_success_rate", "random")),
    "gcsl": (("eval/success_rate", "gcsl"), ("eval/random_success_rate", "random")),
}.items()}


def write_goal_table(path: str | Path, details: dict) -> None:
    """details: {(set name, policy): EpisodeResults} -> a CSV with one row per goal."""
    rows = [["set", "policy", "goal_id", "success", "steps", "label_distance"]]
    for (name, policy), res in details.items():
        rows += [[name, policy, i, int(res.success[i]), int(res.steps[i]), f"{res.label_distance[i]:.4f}"]
                 for i in range(len(res.success))]
    write_csv_atomically(path, rows)


def read_success_curve(metrics_csv: str | Path) -> dict[str, list[tuple[int, float]]]:
    """(env_step, value) of each eval/ series in a metrics.csv, in file order."""
    from glamor.logger import read_rows

    curves: dict[str, list[tuple[int, float]]] = {name: [] for name in EVAL_METRICS}
    for row in read_rows(metrics_csv):  # (whole rows: a power cut's NULs failed float() here)
        for name in curves:
            if row.get(name):
                curves[name].append((int(row["env_step"]), float(row[name])))
    return curves


def tick_label_x(draw, text: str, font, x: float, lo: float, hi: float) -> float:
    """Where a tick's label starts: centred on the tick at `x`, moved inside [lo, hi] (the image's
    or the panel's edges) when it would cross one (the last tick's at the right edge was cut:
    1,000,000 steps read "1,000,0")."""
    width = draw.textlength(text, font=font)
    return min(max(x - width / 2, lo), hi - width - 2)


def plot_success(curves: dict[str, list[tuple[int, float]]], path: str | Path, title: str = "",
                 algo: str = "glamor", marks: dict[str, tuple[int, float]] | None = None) -> None:
    """A line plot (PNG) of success rate (0..1) against environment steps: the series an `algo`
    run logs (SERIES), and `marks`, one (step, value) of some series each, as squares of the
    series' colour, not joined to its line (an evaluation of other settings); the legend is
    under the axes, where it hides no point (inside their top right corner it covered the high
    success rates of late training, where a run's curve ends); the file is replaced whole
    (glamor.files.write_atomically)."""
    W, H, left, right, top, bottom = 640, 420, 60, 20, 36, 70
    img = Image.new("RGB", (W, H), "white")
    d = ImageDraw.Draw(img)
    font = ImageFont.load_default()
    marks = marks or {}
    steps = [s for pts in curves.values() for s, _ in pts] + [s for s, _ in marks.values()]
    x_max = max(steps) if steps else 1
    x_max = x_max if x_max > 0 else 1

    def xy(step, value):
        return (left + (W - left - right) * step / x_max, H - bottom - (H - top - bottom) * value)

    d.rectangle([left, top, W - right, H - bottom], outline="black")
    for i in range(6):  # y ticks 0, 0.2, ..., 1
        v = i / 5
        _, y = xy(0, v)
        d.line([left - 4, y, W - right, y], fill=(225, 225, 225) if 0 < i < 5 else "black")
        d.text((left - 34, y - 6), f"{v:.1f}", fill="black", font=font)
    for i in range(5):  # x ticks
        s = x_max * i / 4
        x, _ = xy(s, 0)
        d.line([x, H - bottom, x, H - bottom + 4], fill="black")
        label = f"{s:,.0f}"
        d.text((tick_label_x(d, label, font, x, 0, W), H - bottom + 8), label, fill="black", font=font)
    d.text((W // 2 - 50, H - bottom + 24), "environment steps", fill="black", font=font)
    d.text((left, 8), title or "success rate on held-out goals", fill="black", font=font)
    for k, (name, policy, color) in enumerate(SERIES[algo]):
        pts = [xy(s, v) for s, v in curves.get(name, [])]
        if len(pts) > 1:
            d.line(pts, fill=color, width=2)
        for x, y in pts:
            d.ellipse([x - 3, y - 3, x + 3, y + 3], fill=color)
        lx, ly = left + 180 * k, H - 22  # a row under the axis label
        d.line([lx, ly + 6, lx + 18, ly + 6], fill=color, width=2)
        if name in marks:
            x, y = xy(*marks[name])
            d.rectangle([x - 5, y - 5, x + 5, y + 5], outline=color, width=2)
            d.rectangle([lx + 5, ly + 2, lx + 13, ly + 10], outline=color, width=2)
        d.text((lx + 24, ly), POLICY_LABELS[policy], fill="black", font=font)
    write_atomically(path, lambda tmp: img.save(tmp, format="PNG"))


def rollout_gif(frames: list[np.ndarray], goal: np.ndarray, height: int = 160, ms: int = 200) -> tuple[bytes, tuple]:
    """An animated GIF: the goal image (left) beside each frame of the rollout (right).

    Args:
        frames: uint8 (H, W) frames, the start first.
        goal: uint8 (H, W) or (1, H, W) goal image.

    Returns:
        the GIF's bytes and its size (H, W).
    """
    goal = np.asarray(goal).reshape(np.shape(frames[0]))
    scale = max(1, height // goal.shape[0])
    gap = np.full((goal.shape[0], max(1, goal.shape[1] // 10)), 255, np.uint8)
    images = []
    for f in frames:
        panel = np.concatenate([goal, gap, f], axis=1)
        panel = np.kron(panel, np.ones((scale, scale), np.uint8))  # nearest-neighbour upscale
        images.append(Image.fromarray(panel, mode="L").convert("P"))
    buf = io.BytesIO()
    images[0].save(buf, format="GIF", save_all=True, append_images=images[1:] + [images[-1]] * 2,
                   duration=ms, loop=0)
    return buf.getvalue(), (images[0].height, images[0].width)


def write_reports(run_dir: str | Path, results: dict, details: dict, env_step: int,
                  out_dir: str | Path | None = None, setting: str | None = None) -> dict:
    """The table, the plot and the videos of one evaluation (see the module docstring), in
    `out_dir` (default: the run directory, whose videos also go to TensorBoard). GIFs of an
    earlier evaluation there are removed first (in TensorBoard too), so videos/ holds this
    evaluation's only.
    `setting`: what the evaluation changed from the run's config ("planner=sample"), whose
    results the plot draws beside the run's own curves, not in them (None: the run's own).

    Returns {"table": path, "plot": path, "videos": [paths]}.
    """
    from torch.utils.tensorboard import SummaryWriter

    from glamor.logger import write_gif

    run_dir = Path(run_dir)
    out_dir = Path(out_dir) if out_dir is not None else run_dir
    to_tensorboard = out_dir == run_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    for old in (out_dir / "videos").glob("*_goal*.gif"):
        old.unlink()
    if to_tensorboard:
        for old in (run_dir / "tb").glob(f"events.out.tfevents.*{VIDEO_EVENTS}"):
            old.unlink()
    write_goal_table(out_dir / "eval_goals.csv", details)
    algo = results.get("algo", "glamor")
    curves = read_success_curve(run_dir / "metrics.csv")
    points = {name: (env_step, float(results[EVAL_METRICS[name]])) for name, _, _ in SERIES[algo]
              if EVAL_METRICS[name] in results}
    if setting is None:  # in place of training's evaluation at that step; in step order (a checkpoint
        # older than the CSV's last rows, after a kill, goes between them)
        for name, point in points.items():
            curves[name] = sorted([p for p in curves[name] if p[0] != env_step] + [point])
        plot_success(curves, out_dir / "success.png", algo=algo)
    else:  # other settings' results are not a point of the run's curves: beside them
        title = f"success rate on held-out goals: lines, the run's own evaluations; squares, {setting}"
        title = title if len(title) <= 100 else title[:97] + "..."
        plot_success(curves, out_dir / "success.png", title=title, algo=algo, marks=points)
    videos = []
    writer = None
    for (name, policy), res in details.items():
        if policy != SERIES[algo][0][1] or not res.frames:  # the run's own policy, whose frames were kept
            continue
        (out_dir / "videos").mkdir(exist_ok=True)
        if to_tensorboard:
            writer = writer or SummaryWriter(str(run_dir / "tb"), filename_suffix=VIDEO_EVENTS)
        for i, (frames, goal) in enumerate(zip(res.frames, res.goal_frames)):
            gif, size = rollout_gif(frames, goal)
            path = out_dir / "videos" / f"{name}_goal{i:03d}.gif"
            write_atomically(path, lambda tmp, gif=gif: tmp.write_bytes(gif))
            if writer is not None:
                write_gif(writer, f"eval/video/{name}/goal_{i:03d}", gif, size, env_step)
            videos.append(path)
    if writer is not None:
        writer.close()
    return {"table": out_dir / "eval_goals.csv", "plot": out_dir / "success.png", "videos": videos}
