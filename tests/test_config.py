import pytest

from glamor.config import PRESETS, Config, preset


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_build(name):
    cfg = preset(name)
    assert cfg.horizon == cfg.episode_length


def test_unknown_field_and_preset_are_named():
    with pytest.raises(TypeError, match="bogus"):
        Config().replace(bogus=1)
    with pytest.raises(ValueError, match="unknown preset 'nope'"):
        preset("nope")


@pytest.mark.parametrize("field,value", [("plan_width", 0), ("planner", "greedy"), ("episode_length", 0), ("gamma", 0.0)])
def test_invalid_values_are_named(field, value):
    with pytest.raises(ValueError, match=field):
        Config(**{field: value})


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
