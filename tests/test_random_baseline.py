"""benchmarks/random_baseline.py: rows of environments rerun with --only replace their own."""

import json
import subprocess
import sys
from pathlib import Path

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
