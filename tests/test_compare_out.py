"""`glamor compare --out` is the results' path without suffix (OUT.md, OUT.png, OUT.json): a folder,
one that exists or a path ending in '/', is refused before any training (the files would land
beside it), as is a path whose OUT.md, OUT.png or OUT.json is a folder."""

import pytest

from glamor import cli, compare

TINY = dict(total_env_steps=96, learning_starts=48, eval_episodes=4, eval_episodes_during_training=4,
            snapshot_every=48, torch_threads=1)


def _compare(tmp_path, out):
    return compare.run_compare(envs=["debug"], seeds=[0], methods=["gcsl"], budget="full", runs_dir=tmp_path / "runs",
                               out=out, widths=[], overrides=TINY, log=lambda *a: None)


@pytest.mark.parametrize("given,shown", [("co", "co"), ("co/", "co"), ("new/", "new")])
def test_a_folder_as_out_is_refused_before_any_training(tmp_path, monkeypatch, given, shown):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "co").mkdir()
    with pytest.raises(ValueError) as e:
        _compare(tmp_path, given)
    assert str(e.value) == (f"--out {given}: a folder; --out is the results' path without suffix, e.g. --out "
                            f"{shown}/compare writes {shown}/compare.md, .png and .json in it")
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["co"]  # nothing trained, nothing written


@pytest.mark.parametrize("given", ["res", "res.md"])
def test_an_out_whose_file_is_a_folder_is_refused(tmp_path, monkeypatch, given):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "res.png").mkdir()
    with pytest.raises(ValueError) as e:
        _compare(tmp_path, given)
    assert str(e.value) == f"--out {given}: res.png is a folder; name another path"
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["res.png"]


def test_cli_compare_names_a_folder_out(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "co").mkdir()
    sets = [a for k, v in TINY.items() for a in ("--set", f"{k}={v}")]
    assert cli.main(["compare", "--envs", "debug", "--seeds", "0", "--methods", "gcsl", "--budget", "full",
                     "--widths", "--runs-dir", "runs", "--out", "co/", *sets]) == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        "glamor compare: error: --out co/: a folder; --out is the results' path without suffix, e.g. --out "
        "co/compare writes co/compare.md, .png and .json in it")
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["co"]


def test_a_path_in_an_existing_folder_is_written_there(tmp_path):
    (tmp_path / "co").mkdir()
    _compare(tmp_path, tmp_path / "co" / "compare")
    assert sorted(p.name for p in (tmp_path / "co").iterdir()) == ["compare.json", "compare.md", "compare.png"]


def test_an_empty_runs_dir_is_refused_not_taken_for_the_default(tmp_path, monkeypatch, capsys):
    """`--runs-dir "$RUNS"` with RUNS unset trained in runs/compare-BUDGET, as if none were given."""
    monkeypatch.chdir(tmp_path)
    sets = [a for k, v in TINY.items() for a in ("--set", f"{k}={v}")]
    with pytest.raises(SystemExit) as e:
        cli.main(["compare", "--envs", "debug", "--seeds", "0", "--methods", "gcsl", "--budget", "full",
                  "--widths", "--runs-dir", "", "--out", "res", *sets])
    assert e.value.code == 2 and "argument --runs-dir: empty path" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []  # nothing trained, nothing written


def test_the_results_table_script_names_a_bad_argument_in_one_line(tmp_path, monkeypatch, capsys):
    """benchmarks/results_table.py raised the ValueError that `glamor compare` prints in one line."""
    import runpy
    from pathlib import Path

    monkeypatch.chdir(tmp_path)
    script = Path(__file__).resolve().parent.parent / "benchmarks" / "results_table.py"
    main = runpy.run_path(str(script))["main"]
    assert main(["--envs", "nope", "--runs-dir", "runs", "--out", "res"]) == 2
    assert capsys.readouterr().err.splitlines()[-1].startswith("glamor compare: error: --envs nope: not a preset")
    assert list(tmp_path.iterdir()) == []


def test_an_environment_id_given_to_envs_names_its_preset(tmp_path, monkeypatch, capsys):
    """`--envs` takes presets; an environment id there (glamor/GridWorld-v0) or a mistyped preset
    is answered with the preset meant, and where an id goes instead."""
    from glamor.cli import main

    monkeypatch.chdir(tmp_path)
    assert main(["compare", "--envs", "glamor/GridWorld-v0", "atari_gpu", "--out", "res"]) == 2
    err = capsys.readouterr().err
    assert "glamor/GridWorld-v0 (did you mean gridworld or gridworld_box?)" in err, err
    assert "atari_gpu (did you mean atari_cpu?)" in err and "--set env_id=" in err, err
    assert list(tmp_path.iterdir()) == []


def test_the_temporaries_of_a_killed_compare_with_that_out_are_removed(tmp_path):
    """OUT.md, OUT.png and OUT.json are each written to .OUT.SUFFIX.PID.tmp and renamed: a compare
    killed while it wrote them left those in --out's folder for good (a run's are swept when a
    process takes the run; nothing swept --out's). The next compare with that --out removes
    them; those of a compare still writing that --out, and other files', stay."""
    import subprocess
    import sys

    co = tmp_path / "co"
    co.mkdir()
    killed = [co / ".compare.md.4194305.tmp", co / ".compare.png.4194305.tmp.png", co / ".compare.json.4194305.tmp"]
    running = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        kept = [co / f".compare.json.{running.pid}.tmp", co / ".other.md.4194305.tmp", co / ".compare.md.tmp"]
        for path in killed + kept:
            path.write_text("half")
        _compare(tmp_path, co / "compare")
    finally:
        running.kill()
        running.wait()
    assert sorted(p.name for p in co.iterdir()) == sorted(
        ["compare.json", "compare.md", "compare.png", *(p.name for p in kept)])
