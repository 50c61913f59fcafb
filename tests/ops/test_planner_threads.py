"""The native ops from several Python threads at once (they release the GIL): each call keeps its
own workspace, so results equal one-at-a-time calls. Run in a subprocess, where a crash (a
shared workspace resized under another call) reads as a failure instead of ending pytest."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from glamor import ops

pytestmark = pytest.mark.skipif(not ops.available(), reason="glamor._C is not built")

SCRIPT = textwrap.dedent("""
    import sys, threading, torch
    from planner_cases import random_inputs
    from glamor import ops

    torch.set_num_threads(int(sys.argv[1]))
    # Two different sizes, so the workspaces the calls need differ too.
    inputs = [random_inputs(2, 3, 6, 24, seed=4), random_inputs(2, 5, 3, 40, seed=7)]  # (M, P, n, H)
    actions = [torch.randint(0, 6, (3, 50, 6)), torch.randint(0, 3, (5, 20, 3))]  # (P, N, L)
    lengths = [torch.randint(1, 7, (3, 50)), torch.randint(1, 4, (5, 20))]
    calls = {
        "sample": lambda k: ops.sample_plans(inputs[k], 300, 12, 1, 0.99, None),
        "beam": lambda k: ops.beam_search(inputs[k], 64, 12, 0.99, None),
        "score": lambda k: (ops.score_plans(inputs[k], actions[k], lengths[k], 0.99, None),),
    }
    for name, call in calls.items():
        want = [call(k) for k in (0, 1)]
        wrong = [0, 0]

        def work(k):
            for _ in range(60):
                got = call(k)
                wrong[k] += not all(torch.equal(a, b) for a, b in zip(got, want[k]))

        threads = [threading.Thread(target=work, args=(k,)) for k in (0, 1)]
        [t.start() for t in threads]
        [t.join() for t in threads]
        print(name, wrong[0] + wrong[1])
""")


@pytest.mark.parametrize("torch_threads", [1, 2])
def test_concurrent_calls_from_python_threads_equal_sequential_ones(torch_threads):
    here = Path(__file__).resolve().parent
    out = subprocess.run([sys.executable, "-c", SCRIPT, str(torch_threads)], cwd=here, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, f"crashed (rc {out.returncode}): {out.stderr[-1500:]}"
    counts = dict(line.split() for line in out.stdout.split("\n") if line)
    assert counts == {"sample": "0", "beam": "0", "score": "0"}, counts
