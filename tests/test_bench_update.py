"""benchmarks/bench_update.py runs (also as `glamor bench update`) and its two LSTM forwards agree: the same loss and bitwise
the same gradients at the demo's sizes (the benchmark refuses to time them otherwise)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_bench_update_smoke(tmp_path):
    out = tmp_path / "update.json"
    r = subprocess.run(
        [sys.executable, "-m", "glamor", "bench", "update", "--presets", "gridworld", "--repeats", "1",
         "--json", str(out)],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,  # through the CLI, from anywhere
    )
    assert r.returncode == 0, r.stderr[-3000:]
    result = json.loads(out.read_text())
    (case,) = result["cases"]
    assert case["preset"] == "gridworld" and case["gradients_bitwise_equal"] is True
    assert case["batch"] == 256 and case["tokens"] <= 13
    assert all(v > 0 for v in case["median_s"].values())
    assert "| gridworld | 256 x" in out.with_suffix(".md").read_text()


def test_bench_update_rejects_bad_repeats(tmp_path):
    r = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_update.py"), "--repeats", "0",
         "--json", str(tmp_path / "u.json")],
        capture_output=True, text=True, timeout=120,
    )
    assert r.returncode != 0 and "argument --repeats: must be at least 1, got 0" in r.stderr


def test_bench_update_alternates_which_forward_goes_first(monkeypatch):
    """The timed updates alternate the two forwards and each goes first in turn (as bench_act's
    agents do): always timing 'unbind' second would give it the caches and freed allocator blocks
    'select' left, a bias in the ratio the README cites."""
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    import bench_update
    import torch

    from glamor.model import TokenLSTM

    calls = []
    select, unbind = bench_update.select_forward, TokenLSTM.forward
    monkeypatch.setattr(bench_update, "select_forward", lambda *a: calls.append("select") or select(*a))
    monkeypatch.setattr(TokenLSTM, "forward", lambda *a: calls.append("unbind") or unbind(*a))
    real_batch = bench_update.batch
    monkeypatch.setattr(bench_update, "batch", lambda name, gen: tuple(  # 16 of the preset's 256
        t[:16] for t in real_batch(name, gen)))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the benchmark runs (and quick on a shared machine)
    try:
        case = bench_update.run_case("gridworld", 4)
    finally:
        torch.set_num_threads(threads)
    assert case["gradients_bitwise_equal"] is True and case["repeats"] == 4
    assert calls[0::2] == calls[1::2]  # the IDM and the prior: two forwards per loss
    updates = calls[0::2]
    # the equality check, two warm-up rounds, then the timed ones
    assert updates[6:] == ["select", "unbind", "unbind", "select", "select", "unbind", "unbind", "select"]
