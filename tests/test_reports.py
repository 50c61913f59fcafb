"""Evaluation reports: the per-goal table, the success plot and the videos (files and TensorBoard)."""

import csv

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from glamor.config import preset
from glamor.evaluate import EpisodeResults
from glamor.reports import plot_success, read_success_curve, rollout_gif, write_reports
from glamor.train import Trainer, eval_goal_sets


def test_reports_of_a_small_run(tmp_path):
    cfg = preset("debug", progress=False, learning_starts=0, eval_episodes=5, eval_batch=5)
    tr = Trainer(cfg, tmp_path)
    tr.collect_round()
    tr.update()
    (tmp_path / "metrics.csv").write_text(
        "env_step,wall_time,eval/success_rate,eval/success_rate_no_prior,eval/random_success_rate\n"
        "10,1,0.1,0.2,0.0\n20,2,,,\n")
    details: dict = {}
    results = tr.evaluate(5, details=details, record=2)
    tr.close()
    written = write_reports(tmp_path, results, details, 30)

    rows = list(csv.DictReader(open(written["table"])))
    assert len(rows) == 3 * 5 and set(rows[0]) == {"set", "policy", "goal_id", "success", "steps", "label_distance"}
    mine = [r for r in rows if r["policy"] == "glamor"]
    assert np.mean([int(r["success"]) for r in mine]) == results["success_rate"]
    assert all(1 <= int(r["steps"]) <= cfg.episode_length for r in rows)

    png = Image.open(written["plot"])
    assert png.format == "PNG" and png.size == (640, 420)
    assert len(written["videos"]) == 2
    gif = Image.open(written["videos"][0])
    assert gif.format == "GIF" and gif.n_frames >= 2 and gif.width > gif.height  # goal beside frame
    steps = int(next(r for r in mine if r["goal_id"] == "0")["steps"])
    assert len(details[("eval", "glamor")].frames[0]) == steps + 1
    sets = eval_goal_sets(cfg, tr.env, 5, False)  # each recorded rollout keeps its own goal image
    for i, goal in enumerate(details[("eval", "glamor")].goal_frames):
        assert np.array_equal(goal, sets["eval"].frames[i])
    first = Image.open(written["videos"][1]).convert("L")  # the GIF shows the second goal on the left
    h, w = sets["eval"].frames[1].shape[-2:]
    scale = first.height // h
    assert np.array_equal(np.asarray(first)[::scale, ::scale][:h, :w], sets["eval"].frames[1].reshape(h, w))

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(tmp_path / "tb"), size_guidance={"images": 0})
    acc.Reload()
    assert "eval/video/eval/goal_000" in acc.Tags()["images"]


def test_success_curve_and_gif_helpers(tmp_path):
    (tmp_path / "metrics.csv").write_text("env_step,eval/success_rate\n5,0.5\n9,\n12,0.75\n")
    curves = read_success_curve(tmp_path / "metrics.csv")
    assert curves["eval/success_rate"] == [(5, 0.5), (12, 0.75)] and curves["eval/random_success_rate"] == []
    plot_success(curves, tmp_path / "p.png")
    plot_success({}, tmp_path / "empty.png")  # no evaluations yet: empty axes
    drawn, empty = (np.asarray(Image.open(tmp_path / n).convert("L")) for n in ("p.png", "empty.png"))
    assert drawn.shape == empty.shape and (drawn != empty).any()  # the curve is on the plot
    frames = [np.full((4, 6), v, np.uint8) for v in (0, 100, 200)]
    data, (h, w) = rollout_gif(frames, np.zeros((1, 4, 6), np.uint8), height=40)
    assert data[:6] in (b"GIF87a", b"GIF89a") and h == 40 and w == 10 * 13
    assert EpisodeResults(np.zeros(1, bool), np.ones(1, int), np.zeros(1)).frames is None  # no recording


def _logged_run_and_its_plot(tmp_path, monkeypatch) -> tuple[dict, dict]:
    """A run dir whose metrics.csv logged evaluations at steps 10 and 30; returns (what
    plot_success gets: its curves and, under "kw", its keywords; an evaluation's results)."""
    import glamor.reports as reports

    (tmp_path / "metrics.csv").write_text(
        "env_step,wall_time,eval/success_rate,eval/success_rate_no_prior,eval/random_success_rate\n"
        "10,1,0.1,0.2,0.0\n30,2,0.3,0.4,0.05\n")
    drawn = {}
    monkeypatch.setattr(reports, "plot_success", lambda curves, path, **kw: drawn.update(curves, kw=kw))
    return drawn, {"algo": "glamor", "success_rate": 0.9, "success_rate_no_prior": 0.8, "random_success_rate": 0.25}


def test_the_plot_shows_the_evaluation_just_run_at_the_step_training_logged(tmp_path, monkeypatch):
    """`glamor eval RUN` of a finished run: metrics.csv already has the training's final
    evaluation at the checkpoint's step, and the plot showed that one instead."""
    drawn, results = _logged_run_and_its_plot(tmp_path, monkeypatch)
    write_reports(tmp_path, results, {}, 30)
    assert drawn["eval/success_rate"] == [(10, 0.1), (30, 0.9)]
    assert drawn["eval/success_rate_no_prior"] == [(10, 0.2), (30, 0.8)]
    assert drawn["eval/random_success_rate"] == [(10, 0.0), (30, 0.25)]
    assert not drawn["kw"].get("marks")
    # A checkpoint older than the CSV's last rows (a kill after an evaluation, before its checkpoint):
    # the point goes in step order, in place of that step's own, not after the later ones.
    write_reports(tmp_path, results, {}, 10)
    assert drawn["eval/success_rate"] == [(10, 0.9), (30, 0.3)]


def test_the_plot_of_an_evaluation_of_other_settings_keeps_it_apart_from_the_runs_curves(tmp_path, monkeypatch):
    """`glamor eval RUN --set planner=sample`: its success.png joined the sampling planner's success
    to the end of the run's own (beam search's) training curve, as if the run had ended there."""
    drawn, results = _logged_run_and_its_plot(tmp_path, monkeypatch)
    write_reports(tmp_path, results, {}, 30, out_dir=tmp_path / "eval-planner=sample", setting="planner=sample")
    assert drawn["eval/success_rate"] == [(10, 0.1), (30, 0.3)]  # the run's own, as training logged them
    assert drawn["eval/random_success_rate"] == [(10, 0.0), (30, 0.05)]
    assert drawn["kw"]["marks"] == {"eval/success_rate": (30, 0.9), "eval/success_rate_no_prior": (30, 0.8),
                                    "eval/random_success_rate": (30, 0.25)}
    assert "planner=sample" in drawn["kw"]["title"]


def test_the_marks_of_an_evaluation_are_drawn(tmp_path):
    curves = {"eval/success_rate": [(10, 0.1), (30, 0.3)]}
    plot_success(curves, tmp_path / "lines.png")
    plot_success(curves, tmp_path / "marked.png", marks={"eval/success_rate": (30, 0.9)})
    lines, marked = (np.asarray(Image.open(tmp_path / n).convert("L")) for n in ("lines.png", "marked.png"))
    assert (lines != marked).any()


def test_the_legend_hides_no_part_of_the_axes(tmp_path):
    """The legend was drawn inside the axes' top right corner: success rates of about 0.84 to
    0.97 over the last quarter of training (where a good run's curve ends) lay under its text."""
    for algo in ("glamor", "gcsl"):
        plot_success({}, tmp_path / "empty.png", algo=algo)
        img = np.asarray(Image.open(tmp_path / "empty.png").convert("RGB")).astype(int)
        black = (img == 0).all(axis=2)
        rows = np.flatnonzero(black.sum(axis=1) > img.shape[1] // 2)  # the axes' top and bottom edges
        cols = np.flatnonzero(black.sum(axis=0) > (rows[-1] - rows[0]) // 2)  # and their sides
        inside = img[rows[0] + 1:rows[-1], cols[0] + 1:cols[-1]].reshape(-1, 3)
        colours = {tuple(c) for c in np.unique(inside, axis=0)}
        assert colours <= {(255, 255, 255), (225, 225, 225)}, algo  # the background and the grid lines only
        assert len(np.unique(img.reshape(-1, 3), axis=0)) > 3  # (the legend is drawn: below the axes)


def _tick_labels(img: np.ndarray) -> np.ndarray:
    """The band of the x ticks' labels: under the lowest edge of the axes (a row mostly black)."""
    bottom = np.flatnonzero((img == 0).all(axis=2).sum(axis=1) > img.shape[1] // 2)[-1]
    return img[bottom + 5:bottom + 22]


def test_the_last_step_is_written_whole(tmp_path):
    """The x tick labels started 14 px left of their tick: the last one, at the right edge, was
    cut by it, and a run of the spec's 1,000,000 steps read 1,000,0."""
    plot_success({"eval/success_rate": [(50_000 * i, 0.04 * i) for i in range(1, 21)]}, tmp_path / "p.png")
    band = _tick_labels(np.asarray(Image.open(tmp_path / "p.png").convert("L")).astype(int)[..., None])
    ink = np.flatnonzero((band < 128).any(axis=(0, 2)))
    last = ink[ink > ink.max() - 80]  # "750,000" ends 140 px to the left
    last = last[np.flatnonzero(np.diff(last) > 8)[-1] + 1:] if (np.diff(last) > 8).any() else last
    width = ImageDraw.Draw(Image.new("L", (1, 1))).textlength("1,000,000", font=ImageFont.load_default())
    assert last.max() - last.min() + 1 >= width - 4  # the whole label, not "1,000,0"
    assert ink.max() < band.shape[1] - 1 and ink.max() > band.shape[1] - 25  # inside the image, at its right


def test_a_report_that_fails_to_write_leaves_no_damaged_image(tmp_path, monkeypatch):
    """success.png and the GIFs were written in place: a write cut short (a full disk, a kill)
    left a damaged image, where the plot was the last evaluation's. They are written beside their
    place and renamed."""
    import glamor.reports as reports

    plot_success({}, tmp_path / "success.png")
    before = (tmp_path / "success.png").read_bytes()

    def full_disk(self, fp, *args, **kwargs):
        open(fp, "wb").write(b"GIF89a, then nothing")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Image.Image, "save", full_disk)
    with pytest.raises(OSError, match="No space"):
        plot_success({"eval/success_rate": [(1, 0.5)]}, tmp_path / "success.png")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["success.png"]
    assert (tmp_path / "success.png").read_bytes() == before

    monkeypatch.undo()
    frames = [np.zeros((4, 6), np.uint8), np.full((4, 6), 255, np.uint8)]
    res = EpisodeResults(np.zeros(1, bool), np.ones(1, int), np.zeros(1), frames=[frames], goal_frames=[frames[1]])
    write_bytes = reports.Path.write_bytes

    def full_disk_writing(self, data):
        write_bytes(self, data[:10])
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(reports.Path, "write_bytes", full_disk_writing)  # (the GIF's bytes, to its file)
    with pytest.raises(OSError, match="No space"):
        write_reports(tmp_path, {"algo": "glamor"}, {("eval", "glamor"): res}, 0, out_dir=tmp_path / "out")
    assert list((tmp_path / "out" / "videos").iterdir()) == [], "no damaged GIF passes for a video"


def test_the_curves_leave_out_rows_cut_short(tmp_path):
    """`glamor eval`'s plot and compare's curves read every row of metrics.csv: a row a power cut
    padded with NULs failed float() (the evaluation of a run after a power cut ended in
    'could not convert string to float'), and the last row of a run still writing it, cut inside
    its value, went into the curve as it was. Only whole rows are read (glamor.logger.read_rows)."""
    from glamor.compare import read_curve

    path = tmp_path / "metrics.csv"
    path.write_text("env_step,wall_time,eval/success_rate\r\n10,1.00,0.25\r\n20,2.00,0.5\x00\x00\r\n"
                    "30,3.00,0.75\r\n40,4.00,0.1")  # (0.125, still being written)
    assert read_success_curve(path)["eval/success_rate"] == [(10, 0.25), (30, 0.75)]
    assert read_curve(path, "eval/success_rate") == {10: 0.25, 30: 0.75}
