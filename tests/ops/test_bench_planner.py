"""pytest-benchmark timings of the paper configuration (1 plan, 200 samples, horizon 50,
hidden 64, 18 actions, prior on): native sampling and beam search, and the eager reference.

Disabled by default (``--benchmark-disable`` in pyproject's addopts: each runs once, as a
test); time them with ``pytest tests/ops/test_bench_planner.py --benchmark-enable``. The full
comparison with a table and the machine's matmul peak is benchmarks/bench_planner.py.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pytest
import torch

from glamor import ops
from glamor.model import GlamorModel
from glamor.planning import reference

pytestmark = pytest.mark.skipif(
    not ops.available(), reason=f"glamor._C not built: {ops.import_error()}"
)

SAMPLES, WIDTH, HORIZON, GAMMA, SEED = 200, 200, 50, 0.99, 1234


@pytest.fixture(scope="module")
def paper_inputs():
    """A default-initialised GlamorModel at the paper's sizes, planning from random images."""
    torch.manual_seed(0)
    model = GlamorModel(num_actions=18, frame_stack=4, image_hw=(80, 104), lstm_hidden=64)
    g = torch.Generator().manual_seed(0)
    obs = torch.randint(0, 256, (1, 4, 80, 104), dtype=torch.uint8, generator=g)
    goal = torch.randint(0, 256, (1, 1, 80, 104), dtype=torch.uint8, generator=g)
    return model.planning_inputs(obs, goal, use_prior=True)


def test_bench_native_sample(benchmark, paper_inputs):
    actions, lengths, _ = benchmark(
        ops.sample_plans, paper_inputs, SAMPLES, HORIZON, SEED, GAMMA, None
    )
    assert actions.shape == (1, HORIZON) and 1 <= int(lengths[0]) <= HORIZON


def test_bench_native_beam(benchmark, paper_inputs):
    actions, lengths, _ = benchmark(ops.beam_search, paper_inputs, WIDTH, HORIZON, GAMMA, None)
    assert actions.shape == (1, HORIZON) and 1 <= int(lengths[0]) <= HORIZON


def test_bench_reference_sample(benchmark, paper_inputs):
    benchmark.extra_info["note"] = "eager PyTorch twin of test_bench_native_sample"
    native = ops.sample_plans(paper_inputs, SAMPLES, HORIZON, SEED, GAMMA, None)
    ref = benchmark(reference.sample_plans, paper_inputs, SAMPLES, HORIZON, SEED, GAMMA, None)
    assert torch.equal(native[0], ref[0]) and torch.equal(native[1], ref[1])


def test_bench_script_refuses_to_time_different_plans(monkeypatch):
    """benchmarks/bench_planner.py checks once that native and reference plan alike; when they
    do not, it stops instead of timing (and tabulating) different work."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
    try:
        import bench_planner
    finally:
        sys.path.pop(0)
    real = ops.sample_plans

    def off_by_one(*args):
        actions, lengths, scores = real(*args)
        return actions, lengths + 1, scores

    monkeypatch.setattr(ops, "sample_plans", off_by_one)
    case = dict(bench_planner.cases(quick=True)[0], horizon=3)
    with pytest.raises(AssertionError, match="plan differently"):
        bench_planner.run_case(case, 1, 10.0, argparse.Namespace(quick=True, compile=False))


def test_bench_script_times_the_contenders_in_alternating_rounds(monkeypatch):
    """benchmarks/bench_planner.py times native and reference calls in alternating rounds, not
    all native calls and then all reference ones: a busy spell of a shared machine while only
    the reference was timed (two-thread runs collapse then) inflated the speed-ups."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
    try:
        import bench_planner
    finally:
        sys.path.pop(0)
    calls = []
    native, ref = ops.sample_plans, reference.sample_plans
    monkeypatch.setattr(ops, "sample_plans", lambda *a: calls.append(("native", torch.get_num_threads())) or native(*a))
    monkeypatch.setattr(reference, "sample_plans", lambda *a: calls.append(("ref", torch.get_num_threads())) or ref(*a))
    threads = torch.get_num_threads()
    try:
        out = bench_planner.run_case(dict(bench_planner.cases(quick=True)[0], horizon=3), 3, 10.0,
                                     argparse.Namespace(quick=True, compile=False))
    finally:
        torch.set_num_threads(threads)
    assert out["native_equals_reference"] and out["native"]["runs"] == out["eager_2_threads"]["runs"] >= 3
    timed = calls[2 + 4:]  # after the equality check and one warm-up call each (--quick)
    rounds = [timed[i:i + 4] for i in range(0, len(timed), 4)]
    assert rounds[:2] == [[("native", 3), ("native", 1), ("ref", 2), ("ref", 1)],
                          [("ref", 1), ("ref", 2), ("native", 1), ("native", 3)]]
    assert len(timed) == 4 * out["native"]["runs"]
