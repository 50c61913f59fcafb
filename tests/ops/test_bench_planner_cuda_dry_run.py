"""benchmarks/bench_planner_cuda.py runs on the CPU (--device cpu): every case, contender, table line
and target check of the GPU benchmark, so that the scarce GPU window does not find a bug in them;
and its nn.LSTM contender samples the same plan as the native op (it is a faithful contender)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from glamor import ops

pytestmark = pytest.mark.skipif(not ops.available(), reason=f"glamor._C not built: {ops.import_error()}")

ROOT = Path(__file__).resolve().parents[2]


def test_cuda_benchmark_dry_run_on_cpu(tmp_path):
    out = tmp_path / "planner_cuda.json"
    r = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_planner_cuda.py"), "--device", "cpu", "--quick",
         "--json", str(out)],
        capture_output=True, text=True, timeout=300,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    result = json.loads(out.read_text())
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        from bench_planner_cuda import TARGETS, cases
    finally:
        sys.path.pop(0)
    names = [c["name"] for c in cases(quick=True)]
    assert [c["name"] for c in result["cases"]] == names
    # on the CPU the op's plans are checked against the readable reference
    assert all(c["cuda_equals_cpu"] and c["compared_with"] == "reference" for c in result["cases"])
    # shares of the peak use the larger of its two readings (start and end), as the CPU benchmark does
    peak = max(result["peak"]["tflops"], result["peak_at_end"]["tflops"])
    assert result["peak_used_tflops"] == peak
    for c in result["cases"]:
        assert c["cuda"]["peak_share"] == pytest.approx(c["cuda"]["gflops"] / (peak * 1e3))
    paper = result["cases"][0]
    assert paper["nn_lstm"]["equals_cpu"] is True and paper["nn_lstm"]["median_ms"] > 0
    assert paper["eager_reference"]["median_ms"] > 0 and "error" in paper["graph_reference"]  # no CUDA graphs here
    assert set(result["targets"]) == {"paper_at_most_100_us", "paper_50x_eager", "paper_5x_graph",
                                      "sample_64x200_at_least_40pct_of_peak"}
    text = out.with_suffix(".md").read_text()
    for name in names:
        assert f"| {name} |" in text
    assert TARGETS in text and "equals the CPU op's" in text
    assert "compared with itself" not in text and "compares it with the readable reference" in text


def test_nn_lstm_contender_runs_without_tf32(monkeypatch):
    """cuDNN RNNs may use TF32 tensor cores unless torch.backends.cudnn.allow_tf32 is off: the
    nn.LSTM contender must do fp32 arithmetic, as the CUDA op and the peak it is compared with do."""
    import torch

    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import bench_planner_cuda as bpc
    finally:
        sys.path.pop(0)
    seen = []
    call = bpc.LstmSampler.__call__

    def recording(self, *args):
        seen.append(torch.backends.cudnn.allow_tf32)
        return call(self, *args)

    monkeypatch.setattr(bpc.LstmSampler, "__call__", recording)
    case = dict(bpc.cases(quick=True)[0], horizon=3)
    assert case["lstm"] and torch.backends.cudnn.allow_tf32
    out = bpc.run_case(case, 1.0, quick=True, device=torch.device("cpu"))
    assert out["nn_lstm"]["median_ms"] > 0 and seen and not any(seen)
    assert torch.backends.cudnn.allow_tf32  # restored
