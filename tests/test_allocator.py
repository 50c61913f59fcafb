"""glamor/allocator.py: the malloc thresholds that `glamor train | eval | compare` set, so that a
training update does not fault in the pages the previous one freed."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
glibc = pytest.mark.skipif(not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc",
                           reason="glibc's malloc only")

# An update's pattern: many blocks of a few MB (together far over glibc's trim threshold), all
# freed at the end; the page faults of the timed rounds, per round. Transparent huge pages are off
# for this process (prctl PR_SET_THP_DISABLE): where they are on for all memory (enabled=always,
# the default of several distributions) a fault maps 2 MB, and the 24 MB glibc gives back and
# takes again per round would be a few dozen faults, not thousands.
ROUNDS = """
import ctypes, json, resource, sys
ctypes.CDLL(None).prctl(41, 1, 0, 0, 0)  # PR_SET_THP_DISABLE (Linux 3.15 on; 4 kB faults whatever THP's setting)
import numpy as np
from glamor.allocator import keep_freed_memory
applied = keep_freed_memory() if sys.argv[1] == "keep" else None
def round_():
    blocks = [np.ones(2**21, np.float32) for _ in range(12)]  # 12 x 8 MB, every page written
    del blocks
for _ in range(3):
    round_()
f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(5):
    round_()
print(json.dumps({"applied": applied, "faults": (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0) / 5}))
"""


def _rounds(mode: str, **env) -> dict:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_") and k != "GLIBC_TUNABLES"}
    environ.update(env, PYTHONPATH=str(ROOT))
    r = subprocess.run([sys.executable, "-c", ROUNDS, mode], capture_output=True, text=True, env=environ,
                       timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    return json.loads(r.stdout)


@glibc
# glibc.malloc.hugetlb=1 (glibc 2.35 on; older ones ignore it) asks for transparent huge pages for
# malloc's memory as THP's enabled=always gives them to all: the counts must not depend on it
@pytest.mark.parametrize("env", [{}, {"GLIBC_TUNABLES": "glibc.malloc.hugetlb=1"}])
def test_freed_blocks_stay_mapped_for_the_next_round(env):
    default, kept = _rounds("default", **env), _rounds("keep", **env)
    assert kept["applied"] is True
    # glibc's own thresholds give part of the 96 MB back and fault it in again every round (6k
    # pages, 24 MB, with glibc 2.36); kept, the blocks come back from the heap as they were
    assert default["faults"] > 2_000, default
    assert kept["faults"] < default["faults"] / 20, (default, kept)


@glibc
@pytest.mark.parametrize("env", [{"MALLOC_TRIM_THRESHOLD_": "1000000"}, {"MALLOC_MMAP_THRESHOLD_": "65536"},
                                 {"GLIBC_TUNABLES": "glibc.malloc.trim_threshold=1000000"}])
def test_the_users_own_malloc_settings_are_left_alone(env):
    assert _rounds("keep", **env)["applied"] is False


@pytest.mark.parametrize("command,sets", [("train", True), ("eval", True), ("compare", True), ("bench", False),
                                          ("envs", False)])
def test_the_commands_that_train_or_evaluate_set_it(monkeypatch, command, sets):
    """`glamor train | eval | compare` set it before they start; the benchmarks, which time glibc's
    default as a baseline, and the other commands leave the process's malloc as it is."""
    import glamor.cli as cli

    calls = []
    monkeypatch.setattr(cli, "keep_freed_memory", lambda: calls.append("set") or True)
    for name in ("cmd_train", "cmd_eval", "cmd_compare", "cmd_bench", "cmd_envs"):
        monkeypatch.setattr(cli, name, lambda args: calls.append(args.command) or 0)
    argv = {"train": ["train"], "eval": ["eval", "runs/x"], "compare": ["compare"], "bench": ["bench", "update"],
            "envs": ["envs"]}[command]
    assert cli.main(argv) == 0
    assert calls == (["set", command] if sets else [command])
