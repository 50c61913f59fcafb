import pytest

from glamor.config import PRESETS, Config, preset


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_build_round_trip_and_take_overrides(name, tmp_path):
    """A preset is Config's defaults with its own fields; it passes Config's checks, survives a
    save and load unchanged, and an override changes that one field only."""
    import dataclasses

    cfg, default = preset(name), Config()
    for field in dataclasses.fields(Config):
        want = PRESETS[name].get(field.name, getattr(default, field.name))
        got = getattr(cfg, field.name)
        assert (list(got) if isinstance(got, tuple) else got) == (list(want) if isinstance(want, tuple) else want), (
            field.name)
    cfg.save(tmp_path / "config.json")
    assert Config.load(tmp_path / "config.json") == cfg
    other = preset(name, seed=cfg.seed + 7)
    assert other.seed == cfg.seed + 7 and other.replace(seed=cfg.seed) == cfg


def test_unknown_field_and_preset_are_named():
    with pytest.raises(TypeError, match="bogus"):
        Config().replace(bogus=1)
    with pytest.raises(ValueError, match="unknown preset 'nope'"):
        preset("nope")


@pytest.mark.parametrize("field,value", [("plan_width", 0), ("planner", "greedy"), ("episode_length", 0), ("gamma", 0.0)])
def test_invalid_values_are_named(field, value):
    with pytest.raises(ValueError, match=field):
        Config(**{field: value})


def test_a_value_refused_because_of_another_field_says_the_rule():
    with pytest.raises(ValueError, match=r"replay_capacity=21 \(must be at least 2 \* episode_length \+ 2"):
        Config(episode_length=10, replay_capacity=21)
    Config(episode_length=10, replay_capacity=22)


def test_epsilon_schedule_is_the_spec():
    cfg = Config()  # 1.0 -> 0.1 linearly over 3e5 steps, then 0.1
    assert cfg.epsilon(0) == 1.0
    assert cfg.epsilon(150_000) == pytest.approx(0.55)
    assert cfg.epsilon(300_000) == pytest.approx(0.1)
    assert cfg.epsilon(2_000_000) == pytest.approx(0.1)


def test_config_round_trips(tmp_path):
    cfg = preset("gridworld", seed=5)
    cfg.save(tmp_path / "c.json")
    assert Config.load(tmp_path / "c.json") == cfg


def test_a_config_equals_itself_after_a_save_and_load(tmp_path):
    cfg = preset("atari_cpu")  # env_kwargs hold a tuple, which JSON turns into a list
    cfg.save(tmp_path / "config.json")
    assert Config.load(tmp_path / "config.json") == cfg
    with pytest.raises(ValueError, match="env_kwargs"):
        preset("debug", env_kwargs={"f": object()})


@pytest.mark.parametrize("env_kwargs", [{3: "a"}, {"f": {None: 1}}, {"f": [{(1, 2): 0}]}])
def test_env_kwargs_keys_that_json_would_turn_into_strings_are_refused(env_kwargs):
    with pytest.raises(ValueError, match="env_kwargs keys must be strings"):
        preset("debug", env_kwargs=env_kwargs)


@pytest.mark.parametrize("field,value,needs", [
    ("lr", "abc", "must be a number"), ("use_prior", "no", "must be true or false"),
    ("plan_width", "abc", "must be an integer"), ("num_envs", 2.5, "must be an integer"),
    ("encoder_channels", 8, "must be a list of integers"), ("seed", True, "must be an integer"),
    ("clip_logq", "low", "must be a number or None"), ("env_kwargs", [1], "must be a dict"),
])
def test_mistyped_values_name_the_type_they_need(field, value, needs):
    """What `--set NAME=VALUE` hands over when the user mistypes: refused before anything runs."""
    with pytest.raises(ValueError, match=f"{field}=.*{needs}"):
        preset("debug", **{field: value})


def test_numbers_take_their_fields_type():
    cfg = preset("debug", total_env_steps=1e6, lr=1, clip_logq=-2, encoder_channels=[8, 8])
    assert cfg.total_env_steps == 1_000_000 and type(cfg.total_env_steps) is int
    assert type(cfg.lr) is float and type(cfg.clip_logq) is float and cfg.encoder_channels == (8, 8)
    assert preset("debug", clip_logq=None).clip_logq is None
    import numpy as np  # numpy scalars (a sweep over np.arange) are their Python numbers

    cfg = preset("debug", seed=np.int64(3), lr=np.float32(0.5), use_prior=np.bool_(False),
                 encoder_channels=np.array([8, 8]), plan_width=np.uint8(9))
    assert (cfg.seed, cfg.lr, cfg.use_prior, cfg.encoder_channels, cfg.plan_width) == (3, 0.5, False, (8, 8), 9)
    assert type(cfg.seed) is int and type(cfg.lr) is float and type(cfg.use_prior) is bool
    with pytest.raises(ValueError, match="seed=.*must be an integer"):
        preset("debug", seed=np.float64(2.5))


@pytest.mark.parametrize("field,value", [
    ("embed_dim", 0), ("encoder_channels", []), ("encoder_channels", [6]), ("eval_batch", 0), ("lr", -1.0),
    ("grad_clip", 0.0), ("vector", "threads"), ("snapshot_every", 0), ("torch_threads", -1), ("eps_end", 1.5),
    ("updates_per_episode", float("inf")), ("lr", float("nan")), ("clip_logq", float("-inf")), ("seed", -1),
    ("seed", 2**31), ("eval_seed", 2**40), ("train_start", "reset"), ("clip_logq", 0.0), ("clip_logq", -1e-4),
])
def test_degenerate_sizes_and_rates_are_refused(field, value):
    with pytest.raises(ValueError, match=f"{field}=.* \\(must be "):
        preset("debug", **{field: value})


@pytest.mark.parametrize("field,value,rule", [
    ("plan_width", 0, "plan_width=0 (must be in [1, 2**31 - 1]"),
    ("plan_width", 2**31, "plan_width=2147483648 (must be in [1, 2**31 - 1] (the planners index candidates with int32)"),
    ("planner", "greedy", "planner='greedy' (must be one of 'sample', 'beam')"),
    ("gamma", 1.5, "gamma=1.5 (must be in (0, 1])"),
    ("lr", float("nan"), "lr=nan (must be finite)"),
    ("encoder_channels", [6], "encoder_channels=(6,) (must be one or more multiples of 4"),
    ("seed", -1, "seed=-1 (must be in [0, 2**31))"),
])
def test_a_refused_value_is_told_the_allowed_range(field, value, rule):
    with pytest.raises(ValueError) as info:
        preset("debug", **{field: value})
    assert rule in str(info.value)


def test_fewer_goal_candidates_than_training_goals_is_refused():
    """The training goals are chosen from the candidates: fewer candidates cannot work (goal
    building used to roll out num_train_goals candidates instead, unlike the config said)."""
    with pytest.raises(ValueError, match=r"goal_candidates=10 \(must be at least num_train_goals"):
        Config(num_train_goals=20, goal_candidates=10)
    Config(num_train_goals=20, goal_candidates=20)


def test_an_integer_too_large_for_a_float_field_is_named():
    """`--set lr=1000...0` (400 digits) is an int float() cannot hold: refused by name, not an
    OverflowError traceback."""
    with pytest.raises(ValueError, match=r"lr=inf \(must be finite\)"):
        Config(lr=10**400)


@pytest.mark.parametrize("make,message", [
    (lambda: preset("debug", plan_widht=3), r"plan_widht \(did you mean plan_width\?\)"),
    (lambda: preset("debug", lrr=1, zzz=2), r"\['lrr', 'zzz'\]; lrr \(did you mean lr\?\); see"),
    (lambda: preset("gridwrld"), r"unknown preset 'gridwrld' \(did you mean gridworld or gridworld_box\?\)"),
    (lambda: preset("atari_gpu"), r"\(did you mean atari_cpu\?\)"),
])
def test_a_mistyped_field_or_preset_names_the_one_meant(make, message):
    """A newcomer's typo in a --set name or a preset was refused with the bare list (every Config
    field is 50 names); the closest ones are named too."""
    with pytest.raises((TypeError, ValueError), match=message):
        make()


@pytest.mark.parametrize("env_id,meant", [
    ("glamor/pong-v0", "glamor/Pong-v0"), ("Pong-v0", "glamor/Pong-v0"), ("pong", "glamor/Pong-v0"),
    ("glamor/MsPacman", "glamor/MsPacman-v0"), ("reacher", "glamor/reacher-hard-v0"),
    ("glamor/point_mass-v0", "glamor/point_mass-easy-v0"), ("glamor/GridWrld-v0", "glamor/GridWorld-v0"),
    ("glamor/Nope-v0", None),
])
def test_a_mistyped_environment_id_names_the_one_meant(env_id, meant):
    """Gymnasium ids are exact (namespace, case, version): the id a typo most likely meant is named
    first, and an id close to none gets no guess. Once ale-py is imported (by an earlier test, or a
    user's), gymnasium knows its own Pong-v0: that one is refused as not a GoalEnv, with the guess."""
    import re

    from glamor import envs

    with pytest.raises((ValueError, TypeError),
                       match=f"unknown environment '{re.escape(env_id)}'|^{re.escape(env_id)} is a ") as e:
        envs.make(env_id, 5)
    if meant is None:
        assert "did you mean" not in str(e.value)
    else:
        assert f"(did you mean {meant}" in str(e.value), str(e.value)


def test_gymnasiums_own_atari_id_is_refused_with_the_glamor_id_meant():
    """With ale-py imported, gymnasium registers its own Pong-v0 (an AtariEnv): `--env Pong-v0`
    was refused as not a GoalEnv without naming glamor/Pong-v0."""
    ale_py = pytest.importorskip("ale_py")
    import gymnasium as gym

    from glamor import envs

    gym.register_envs(ale_py)
    with pytest.raises(TypeError, match=r"^Pong-v0 is a \w+, not a glamor.envs.GoalEnv \(did you mean glamor/Pong-v0\?\)"):
        envs.make("Pong-v0", 5)


def test_plan_width_is_bounded_as_the_planners_take_it():
    """A plan_width over the planning ops' int32 bound passed the config and failed at the first
    plan (for `glamor compare`'s sweep: after every run's training)."""
    from glamor import planning

    assert preset("debug", plan_width=planning.MAX_SIZE).plan_width == planning.MAX_SIZE
    planning.check_plan_args(1, planning.MAX_SIZE, 1.0)  # the largest the config allows, the planners take
    with pytest.raises(ValueError, match="plan_width"):
        preset("debug", plan_width=planning.MAX_SIZE + 1)
    with pytest.raises(ValueError, match="width"):
        planning.check_plan_args(1, planning.MAX_SIZE + 1, 1.0)
