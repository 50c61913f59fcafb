"""benchmarks/gpu_check.sh on a machine where nothing runs (no time budget: every stage skips):
an earlier run's planner_cuda.{json,md} is not shown, nor copied to $OUT, as this run's."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "gpu_check.sh"


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_an_earlier_runs_benchmark_table_is_not_reported_as_this_runs(tmp_path):
    root = tmp_path / "repo"
    (root / "benchmarks" / "results").mkdir(parents=True)
    shutil.copy(SCRIPT, root / "benchmarks" / "gpu_check.sh")
    for name in ("planner_cuda.md", "planner_cuda.json"):  # committed from an earlier GPU run
        (root / "benchmarks" / "results" / name).write_text("| an earlier run's table |\n")
    r, out = _check(root, tmp_path / "out")
    assert "SKIP: benchmark" in r.stdout
    assert "an earlier run's table" not in r.stdout
    assert "planner_cuda.md: not written by this run" in r.stdout
    assert sorted(p.name for p in out.iterdir()) == ["summary.txt"]  # nothing of the earlier run

    future = time.time() + 3600  # as if this run's benchmark had written them
    for name in ("planner_cuda.md", "planner_cuda.json"):
        os.utime(root / "benchmarks" / "results" / name, (future, future))
    r, out = _check(root, tmp_path / "out2")
    assert "an earlier run's table" in r.stdout and "not written by this run" not in r.stdout
    assert sorted(p.name for p in out.iterdir()) == ["planner_cuda.json", "planner_cuda.md", "summary.txt"]


def _check(root: Path, out: Path):
    out.mkdir()
    r = subprocess.run(["bash", str(root / "benchmarks" / "gpu_check.sh")], capture_output=True, text=True,
                       timeout=60, env={"PATH": "/usr/bin:/bin", "BUDGET": "0", "PYTHON": "true", "OUT": str(out),
                                        "CUDA_HOME": str(root / "no-cuda")})
    assert r.returncode == 0, r.stderr[-2000:]
    return r, out


FAKE_PYTHON = """#!/bin/bash
# stands in for python: the build prints and then hangs ($FAKE_BUILD=hang) or fails; the rest fails
case "$1" in
  -) cat > /dev/null; exit 0 ;;
  setup.py) echo "compiling the extension"; [[ $FAKE_BUILD == hang ]] && exec sleep 30; exit 1 ;;
  *) exit 1 ;;
esac
"""


def _fake_run(tmp_path: Path, build: str, budget: int = 600):
    root = tmp_path / "repo"
    (root / "benchmarks").mkdir(parents=True)
    shutil.copy(SCRIPT, root / "benchmarks" / "gpu_check.sh")
    py = tmp_path / "python"
    py.write_text(FAKE_PYTHON)
    py.chmod(0o755)
    out = tmp_path / "out"
    out.mkdir()
    env = {"PATH": "/usr/bin:/bin", "BUDGET": str(budget), "PYTHON": str(py), "OUT": str(out),
           "CUDA_HOME": str(root / "no-cuda"), "FAKE_BUILD": build}
    proc = subprocess.Popen(["bash", str(root / "benchmarks" / "gpu_check.sh")], env=env, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return proc, out


def _kill_session(sid: int) -> None:
    """SIGKILL to every process of the session started for the script (timeout(1) puts its
    command in a process group of its own, so killing the script's group would leave it)."""
    import signal

    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == sid:  # the session id (field 6 of /proc/PID/stat)
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(stat.parent.name), signal.SIGKILL)


@pytest.mark.skipif(shutil.which("bash") is None or not Path("/proc/self/stat").exists(), reason="needs bash, /proc")
def test_a_stage_cut_off_while_running_leaves_its_log_and_name_in_out(tmp_path):
    """The device tool kills the whole command at its limit: what is in $OUT then comes back. A
    stage's log copied there only once the stage ended was lost with the stage that hung."""
    proc, out = _fake_run(tmp_path, "hang")
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            log = out / "build.log"
            if log.exists() and "compiling the extension" in log.read_text():
                break
            time.sleep(0.1)
        assert (out / "build.log").exists(), f"no build.log in $OUT while the build runs: {sorted(os.listdir(out))}"
        assert "compiling the extension" in (out / "build.log").read_text()
        assert "RUNNING  build" in (out / "summary.txt").read_text()
    finally:
        _kill_session(proc.pid)
        proc.communicate(timeout=30)


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_failed_stages_give_exit_code_1_and_the_benchmark_runs_before_the_sanitizers(tmp_path):
    proc, out = _fake_run(tmp_path, "fail")
    stdout, _ = proc.communicate(timeout=60)
    assert proc.returncode == 1, stdout[-3000:]
    summary = (out / "summary.txt").read_text().splitlines()
    assert summary[0].startswith("FAIL(1) build"), summary
    bench = next(i for i, line in enumerate(summary) if "benchmark" in line)
    sanitizer = next(i for i, line in enumerate(summary) if "compute-sanitizer" in line)
    assert bench < sanitizer, summary
    assert not any(line.startswith("RUNNING") for line in summary)
    assert "compiling the extension" in (out / "build.log").read_text()


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_a_sanitizer_that_refuses_the_device_is_a_skip_not_a_failure(tmp_path):
    """compute-sanitizer refuses the device on some machines (gVisor: 'Device not supported'):
    the memcheck stage is then a SKIP, not a FAIL that points at the kernels, and racecheck,
    refused as well, does not spend the budget."""
    sanitizer = tmp_path / "repo" / "no-cuda" / "bin" / "compute-sanitizer"
    sanitizer.parent.mkdir(parents=True)
    sanitizer.write_text("#!/bin/bash\necho '========= Error: Device not supported'\nexit 9\n")
    sanitizer.chmod(0o755)
    proc, out = _fake_run(tmp_path, "fail")
    stdout, _ = proc.communicate(timeout=60)
    summary = (out / "summary.txt").read_text().splitlines()
    lines = [line for line in summary if "compute-sanitizer" in line]
    assert len(lines) == 1 and lines[0].startswith("SKIP     compute-sanitizer (it does not support this device"), summary
    assert "Device not supported" in (out / "sanitizer.log").read_text()


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_the_smoke_check_and_cuda_tests_leave_the_benchmark_its_time(tmp_path):
    """With 200 s of budget, the smoke check and the tests (whose own limits add to 440 s) may
    use 30 s, so that the benchmark, the window's measurement, keeps its 170 s however long
    they run; before, a slow smoke check and tests could leave it under its 60 s minimum."""
    proc, out = _fake_run(tmp_path, "fail", budget=200)
    stdout, _ = proc.communicate(timeout=60)
    headers = (re.fullmatch(r"=+ (.*) \(at \d+ s, timeout (\d+) s\) =+", line) for line in stdout.splitlines())
    timeouts = {m[1]: int(m[2]) for m in headers if m}
    smoke_and_tests = [t for name, t in timeouts.items() if name.startswith(("smoke", "tests:"))
                       and "GlamorModel" not in name]
    assert len(smoke_and_tests) == 5 and max(smoke_and_tests) <= 30, timeouts
    bench = next(t for name, t in timeouts.items() if name.startswith("benchmark"))
    assert bench == 170, timeouts
