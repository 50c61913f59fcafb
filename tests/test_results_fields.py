"""A results file that is JSON but lacks the fields its readers use is named as damaged (a
ValueError, as for one that is not JSON), never a KeyError: `glamor train --resume` of a finished
run names its eval.json, `glamor compare` names a run's eval.json and evaluates a sweep's again."""

import json

import pytest

import glamor.train as train_module
from glamor import cli, compare
from glamor.config import preset
from glamor.results import read_results

TINY = dict(total_env_steps=96, learning_starts=48, eval_episodes=4, eval_episodes_during_training=4,
            snapshot_every=48, torch_threads=1)
FIX = "delete it, and `glamor eval` writes it again"
POLICY = {"success_rate": 0.5, "ci95": [0.1, 0.9], "episodes": 4, "mean_steps": 3.0}
GOOD = {"success_rate": 0.5, "env_steps": 96, "sets": {"eval": {"goal_digest": "d", "glamor": POLICY}}}


@pytest.mark.parametrize("results,why", [
    ({}, "missing success_rate, sets"),
    ({"episodes": 16, "env_steps": 240}, "missing success_rate, sets"),
    ({"success_rate": 0.5}, "missing sets"),
    ({**GOOD, "sets": {}}, "sets holds no goal set"),
    ({**GOOD, "sets": {"eval": {"goal_digest": "d"}}}, "sets/eval holds no policy's results"),
    ({**GOOD, "sets": {"eval": {"glamor": {"success_rate": 0.5}}}},
     "missing sets/eval/goal_digest, sets/eval/glamor/ci95, sets/eval/glamor/episodes, sets/eval/glamor/mean_steps"),
    ({**GOOD, "success_rate": "high", "env_steps": 9.5},
     "success_rate is not a number; env_steps is not an integer"),
    ({**GOOD, "sets": {"eval": {"goal_digest": "d", "glamor": {**POLICY, "ci95": [0.1]}}}},
     "sets/eval/glamor/ci95 is not a pair of numbers"),
])
def test_a_results_file_without_its_fields_is_named_as_damaged(tmp_path, results, why):
    path = tmp_path / "eval.json"
    path.write_text(json.dumps(results))
    with pytest.raises(ValueError) as e:
        read_results(path)
    assert str(e.value) == f"{path} is damaged ({why}): {FIX}"


def test_a_caller_names_the_fields_it_needs_besides(tmp_path):
    path = tmp_path / "sweep-beam-w1.json"
    path.write_text(json.dumps(GOOD))
    assert read_results(path) == GOOD
    assert read_results(path, requires=("sets/*/glamor",)) == GOOD
    with pytest.raises(ValueError) as e:
        read_results(path, requires=("sets/eval/glamor/plans_per_s", "sets/*/random"))
    assert str(e.value) == f"{path} is damaged (missing sets/eval/glamor/plans_per_s, sets/eval/random): {FIX}"


def test_resume_of_a_finished_run_names_an_eval_json_without_fields(tmp_path, capsys):
    run = tmp_path / "run"
    train_module.train(preset("debug", progress=False, **TINY), run)
    (run / "eval.json").write_text("{}\n")
    capsys.readouterr()
    assert cli.main(["train", "--resume", str(run)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "KeyError" not in err
    assert f"glamor train: error: {run / 'eval.json'} is damaged (missing success_rate, sets): {FIX}" in err


def _compare(tmp_path):
    return compare.run_compare(envs=["debug"], seeds=[0], methods=["glamor"], budget="full",
                               runs_dir=tmp_path / "runs", out=tmp_path / "table", widths=[1], planners=["beam"],
                               overrides=TINY, log=lambda *a: None)


def test_compare_names_a_runs_eval_json_without_fields_and_evaluates_such_a_sweep_again(tmp_path, monkeypatch):
    _compare(tmp_path)
    run = tmp_path / "runs" / "debug" / "glamor-default" / "seed0"
    own = json.loads((run / "eval.json").read_text())
    sweep = json.loads((run / "sweep-beam-w1.json").read_text())

    def forbidden(*a, **k):
        raise AssertionError("a run with an eval.json was trained again")

    monkeypatch.setattr(train_module, "train", forbidden)
    monkeypatch.setattr(train_module, "resume", forbidden)
    without_random = {**own, "sets": {"eval": {k: v for k, v in own["sets"]["eval"].items() if k != "random"}}}
    for results, why in (({}, "missing success_rate, sets"),
                         ({k: v for k, v in own.items() if k != "sets"}, "missing sets"),
                         (without_random, "missing sets/eval/random")):  # the table's random row reads it
        (run / "eval.json").write_text(json.dumps(results))
        with pytest.raises(ValueError) as e:
            _compare(tmp_path)
        assert str(e.value) == f"{run / 'eval.json'} is damaged ({why}): {FIX}"

    (run / "eval.json").write_text(json.dumps(own))
    path = run / "sweep-beam-w1.json"
    path.write_text(json.dumps({"episodes": 4, "env_steps": 96}))  # its episodes and step: a cache hit before
    with pytest.warns(RuntimeWarning) as caught:
        summaries = _compare(tmp_path)
    assert [str(w.message) for w in caught] == [f"{path} is damaged (missing success_rate, sets): {FIX}; "
                                                f"evaluating again"]
    again = json.loads(path.read_text())
    timeless = [{k: v for k, v in r["sets"]["eval"]["glamor"].items() if k != "plans_per_s"} for r in (again, sweep)]
    assert timeless[0] == timeless[1] and again["sets"]["eval"]["goal_digest"] == sweep["sets"]["eval"]["goal_digest"]
    assert summaries[0]["sweep"][0]["success_rate"] == sweep["success_rate"]


def test_a_time_conditioned_gcsl_runs_table_says_so():
    """A gcsl_time run's own table (glamor train/eval) labelled it plain 'GCSL' (compare tells them apart)."""
    from glamor.results import format_table

    row = {"success_rate": 0.5, "ci95": [0.4, 0.6], "episodes": 10, "mean_steps": 12.0}
    results = {"sets": {"eval": {"gcsl": row, "random": row}}, "policy": {"act": "greedy", "time_conditioned": True}}
    assert "| eval | GCSL, time-conditioned | 0.500 |" in format_table(results)
    results["policy"]["time_conditioned"] = False
    assert "| eval | GCSL | 0.500 |" in format_table(results)
    del results["policy"]  # a GLAMOR run's results have none
    assert "| eval | GCSL | 0.500 |" in format_table(results)


def test_a_re_evaluation_keeps_the_training_time_of_its_own_checkpoint_only(tmp_path):
    """`glamor eval` copied train_wall_time_s from the eval.json it replaced whatever step that
    one was of: an extension cut short at step 72 of a run finished at 48 reported the step-48
    run's training time as its own."""
    import json

    from glamor.cli import _keep_training_facts

    path = tmp_path / "eval.json"
    path.write_text(json.dumps({"env_steps": 48, "train_wall_time_s": 12.5}))
    same, later = {"env_steps": 48}, {"env_steps": 72}
    _keep_training_facts(path, same)
    _keep_training_facts(path, later)
    assert same == {"env_steps": 48, "train_wall_time_s": 12.5} and later == {"env_steps": 72}


def test_a_results_or_config_file_that_is_not_text_is_named_as_damaged(tmp_path):
    """A file of bytes that are not UTF-8 (a write lost to a crash, another file copied over it)
    raised UnicodeDecodeError, which names no file: `glamor eval: error: 'utf-8' codec can't
    decode byte 0xff in position 0`."""
    from glamor.config import Config

    for name in ("eval.json", "config.json"):
        (tmp_path / name).write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ValueError, match=rf"^{tmp_path / 'eval.json'} is damaged \(.*codec.*\): {FIX}"):
        read_results(tmp_path / "eval.json")
    with pytest.raises(ValueError, match=rf"^{tmp_path / 'config.json'} is not valid JSON .*: a damaged run config"):
        Config.load(tmp_path / "config.json")
