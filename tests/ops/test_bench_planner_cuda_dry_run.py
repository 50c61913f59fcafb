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
                                      "sample_64x200_at_least_40pct_of_peak", "cuda_equals_cpu_in_every_case"}
    assert result["valid"] is True and result["targets"]["cuda_equals_cpu_in_every_case"] is True
    text = out.with_suffix(".md").read_text()
    for name in names:
        assert f"| {name} |" in text
    assert TARGETS in text and "equals the CPU op's" in text
    assert "compared with itself" not in text and "compares it with the readable reference" in text
    assert "INVALID" not in text


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


def _bench_module():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import bench_planner_cuda
    finally:
        sys.path.pop(0)
    return bench_planner_cuda


def _small_cases(bpc, monkeypatch) -> list[dict]:
    """The benchmark's cases (their names) at small sizes, and a small peak matmul: a run of main in seconds."""
    small = [dict(c, horizon=3, width=min(c["width"], 32), plans=min(c["plans"], 2)) for c in bpc.cases(quick=True)]
    monkeypatch.setattr(bpc, "cases", lambda quick: small)
    peak = bpc.fp32_peak_tflops
    monkeypatch.setattr(bpc, "fp32_peak_tflops", lambda size, device: peak(128, device))
    return small


def test_contenders_are_timed_in_alternating_rounds():
    """One call of each contender per round, the order reversed every other round (as
    bench_planner.py): a GPU clock or a co-tenant changing mid-run then slows every contender
    alike instead of biasing the ratio against the one being timed then."""
    import torch

    bpc = _bench_module()
    calls = []
    contenders = {name: (lambda name=name: calls.append(name)) for name in "abc"}
    timed = bpc.time_alternating(contenders, warmup={"a": 2, "b": 0, "c": 1}, min_runs=4, max_runs=4,
                                 device=torch.device("cpu"))
    assert calls == ["a", "a", "c"] + ["a", "b", "c", "c", "b", "a"] * 2
    assert {name: t["runs"] for name, t in timed.items()} == {"a": 4, "b": 4, "c": 4}


def test_run_case_times_its_contenders_together(monkeypatch):
    import torch

    bpc = _bench_module()
    seen = []
    real = bpc.time_alternating

    def spy(contenders, **kw):
        seen.append(sorted(contenders))
        return real(contenders, **kw)

    monkeypatch.setattr(bpc, "time_alternating", spy)
    case = dict(bpc.cases(quick=True)[0], horizon=3, width=16)
    out = bpc.run_case(case, 1.0, quick=True, device=torch.device("cpu"))
    # the CUDA graph cannot be captured on the CPU; the other three run in the same rounds
    assert seen == [["cuda", "eager_reference", "nn_lstm"]]
    assert out["cuda"]["runs"] == out["eager_reference"]["runs"] == out["nn_lstm"]["runs"]


def test_a_cuda_op_that_plans_differently_invalidates_the_run(monkeypatch, tmp_path):
    """A fast but wrong kernel must not come out as a speed-up: its cases get no speed-ups, the
    targets are not met, the table and JSON say the run is invalid and main exits 1."""
    bpc = _bench_module()
    real = bpc.ops.sample_plans

    def wrong(*args, **kwargs):
        actions, lengths, scores = real(*args, **kwargs)
        actions = actions.clone()
        actions[0, 0] = (actions[0, 0] + 1) % 18  # one action of the first plan
        return actions, lengths, scores

    _small_cases(bpc, monkeypatch)
    monkeypatch.setattr(bpc.ops, "sample_plans", wrong)
    out = tmp_path / "planner_cuda.json"
    assert bpc.main(["--device", "cpu", "--quick", "--json", str(out)]) == 1
    result = json.loads(out.read_text())
    assert result["valid"] is False
    assert not any(result["targets"].values())
    for c in result["cases"]:
        assert c["cuda_equals_cpu"] == (c["method"] == "beam"), c["name"]
        if c["method"] == "sample":
            assert "actions differ for plans [0]" in c["mismatch"]
            assert not any(k.startswith("speedup_vs") for k in c)
    text = out.with_suffix(".md").read_text()
    assert text.startswith("INVALID: ")
    assert "| paper: sample 1 x 200 |" in text and "none: the plans differ" in text


def test_a_case_that_raises_does_not_lose_the_other_cases(monkeypatch, tmp_path):
    """The GPU window runs the benchmark once: a case whose op raises (a cluster launch the driver
    refuses, a size the kernels do not take) is recorded as failed and the later cases (here the
    64-plan throughput case) are still measured and written; the run is invalid and exits 1."""
    bpc = _bench_module()

    def refused(*args, **kwargs):
        raise RuntimeError("cluster launch refused")

    small = _small_cases(bpc, monkeypatch)
    monkeypatch.setattr(bpc.ops, "beam_search", refused)
    out = tmp_path / "planner_cuda.json"
    assert bpc.main(["--device", "cpu", "--quick", "--json", str(out)]) == 1
    result = json.loads(out.read_text())
    assert [c["name"] for c in result["cases"]] == [c["name"] for c in small]
    for c in result["cases"]:
        if c["method"] == "beam":
            assert c["error"] == "RuntimeError: cluster launch refused" and not c["cuda_equals_cpu"]
        else:
            assert "error" not in c and c["cuda_equals_cpu"] and c["cuda"]["median_ms"] > 0
    assert result["valid"] is False and not result["targets"]["cuda_equals_cpu_in_every_case"]
    text = out.with_suffix(".md").read_text()
    assert text.startswith("INVALID: ") and "| beam 1 x 200 | failed |" in text
    assert "| sample 64 x 200 | " in text and "beam 1 x 1024: FAILED: RuntimeError: cluster launch refused" in text
