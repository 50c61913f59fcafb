"""benchmarks/bench_lookup.py runs (also as `glamor bench lookup`), and the training LSTMs' two gate
lookups it times agree: the same loss and bitwise the same gradients (it refuses to time them otherwise)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_bench_lookup_smoke(tmp_path):
    out = tmp_path / "lookup.json"
    r = subprocess.run(
        [sys.executable, "-m", "glamor", "bench", "lookup", "--presets", "gridworld", "--repeats", "1",
         "--json", str(out)],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,  # through the CLI, from anywhere
    )
    assert r.returncode == 0, r.stderr[-3000:]
    (case,) = json.loads(out.read_text())["cases"]
    assert case["preset"] == "gridworld" and case["gradients_bitwise_equal"] is True
    assert case["batch"] == 256 and case["tokens"] <= 13 and case["gate_width"] == 256
    assert all(v > 0 for v in [*case["median_s"].values(), *case["lookup_median_s"].values()])
    assert "| gridworld | 256 x" in out.with_suffix(".md").read_text()


def test_bench_lookup_refuses_lookups_that_differ(monkeypatch):
    """A lookup whose gradients are not bitwise gather's is refused, not timed: here take_rows
    with its tokens' order reversed (index_add_ then sums each row's gradients backwards)."""
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    import bench_lookup
    import bench_update
    import pytest
    import torch

    take = bench_lookup.LOOKUPS["take_rows (now)"]
    monkeypatch.setitem(bench_lookup.LOOKUPS, "take_rows (now)",
                        lambda table, tokens: take(table, tokens.flip(1)).flip(1))
    real_batch = bench_update.batch  # (training_case's batch, made smaller)
    monkeypatch.setattr(bench_update, "batch", lambda name, gen: tuple(t[:64] for t in real_batch(name, gen)))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with pytest.raises(AssertionError, match="different losses or gradients"):
            bench_lookup.run_case("gridworld", 1)
    finally:
        torch.set_num_threads(threads)
    import glamor.model

    assert glamor.model.take_rows is take  # put back after the refusal
