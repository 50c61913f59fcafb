"""benchmarks/random_baseline.py: rows of environments rerun with --only replace their own, and
every row is saved as soon as it is measured."""

import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "random_baseline.py"


def _run(out, only):
    r = subprocess.run([sys.executable, str(SCRIPT), "--only", only, "--episodes", "3", "--out", str(out)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    return json.loads((out / "random_baseline.json").read_text())["rows"]


def test_only_updates_its_rows_and_keeps_the_others(tmp_path):
    first = _run(tmp_path, "GridWorld")  # GridWorld-v0 and GridWorldBox-v0
    assert [r["env"] for r in first] == ["glamor/GridWorld-v0", "glamor/GridWorldBox-v0"]
    assert all(r["episodes"] == 3 and 0 <= r["success_rate"] <= 1 for r in first)
    second = _run(tmp_path, "GridWorldBox")
    assert [r["env"] for r in second] == ["glamor/GridWorld-v0", "glamor/GridWorldBox-v0"]
    assert second[0] == first[0] and "cpu" in second[0]["machine"]  # kept as it was, with its machine
    assert second[1]["seconds"] != first[1]["seconds"]  # measured again
    table = (tmp_path / "random_baseline.md").read_text()
    assert table.count("| glamor/GridWorld") == 2


def test_an_interrupted_run_keeps_the_rows_it_measured(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(SCRIPT.parent))
    script = importlib.import_module("random_baseline")
    old = {"env": "gone/Removed-v0", "k": 5, "labels": ["x"], "episodes": 3, "success_rate": 0.0,
           "ci95": [0.0, 0.5], "median_label_distance": 0.5, "seconds": 1.0, "machine": {"cpu": "old"}}
    (tmp_path / "random_baseline.json").write_text(json.dumps({"machine": {"cpu": "old"}, "rows": [old]}))
    measured = []

    def one_then_interrupt(env_id, episodes):
        if measured:
            raise KeyboardInterrupt
        measured.append(env_id)
        return {**old, "env": env_id, "success_rate": 0.25}

    monkeypatch.setattr(script, "random_success", one_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        script.main(["--episodes", "3", "--out", str(tmp_path)])
    rows = json.loads((tmp_path / "random_baseline.json").read_text())["rows"]
    # A full run keeps what it measured and drops environments no longer registered.
    assert [(r["env"], r["success_rate"]) for r in rows] == [(measured[0], 0.25)]
    assert "cpu" in rows[0]["machine"] and rows[0]["machine"]["cpu"] != "old"
    assert f"| {measured[0]} |" in (tmp_path / "random_baseline.md").read_text()


def test_two_runs_at_once_keep_each_others_rows(tmp_path, monkeypatch):
    """save() read the .json, added its row and wrote it back: two runs at once (one per
    environment, to use two machines' cores) both read the old rows and the one that wrote last
    dropped the other's. One at a time reads and writes it back (bench_args.updating)."""
    import threading
    import time

    monkeypatch.syspath_prepend(str(SCRIPT.parent))
    script = importlib.import_module("random_baseline")
    write = script.write_results
    both_read = threading.Barrier(2, timeout=2)

    def slow_write(*args, **kwargs):  # each waits for the other to have read before it writes
        try:
            both_read.wait()
        except threading.BrokenBarrierError:  # (held one at a time: the other waits for this write)
            pass
        time.sleep(0.05)
        return write(*args, **kwargs)

    monkeypatch.setattr(script, "write_results", slow_write)
    row = {"k": 5, "labels": ["x"], "episodes": 3, "success_rate": 0.0, "ci95": [0.0, 0.5],
           "median_label_distance": 0.5, "seconds": 1.0}
    runs = [threading.Thread(target=script.save, args=({**row, "env": env}, tmp_path, ["a/A-v0", "b/B-v0"]))
            for env in ("a/A-v0", "b/B-v0")]
    for t in runs:
        t.start()
    for t in runs:
        t.join()
    rows = json.loads((tmp_path / "random_baseline.json").read_text())["rows"]
    assert [r["env"] for r in rows] == ["a/A-v0", "b/B-v0"]
