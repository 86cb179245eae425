"""Typed configs: YAML/flag coercion, validation messages, the shipped experiment files."""

from dataclasses import dataclass

import pytest

from metarl.config import ConfigError, experiment_file, from_mapping, option, read_yaml, validate
from metarl.supervised.sine import SineConfig


@dataclass
class Demo:
    mode: str = option("a", "a mode", choices=("a", "b"))
    rate: float = option(0.1, "a rate", minimum=0.0)
    count: int = option(0, "a count", minimum=0, exclusive_minimum=False)
    sizes: tuple[int, ...] = option((4, 4), "sizes", minimum=0)
    flag: bool = option(False, "a flag")


def test_values_are_coerced_from_strings_and_lists():
    demo = from_mapping(Demo, {"rate": "0.5", "count": "3", "sizes": "8,8", "flag": "yes"},
                        source="test")
    assert (demo.rate, demo.count, demo.sizes, demo.flag) == (0.5, 3, (8, 8), True)
    assert from_mapping(Demo, {"sizes": [16, 32]}, source="t").sizes == (16, 32)


@pytest.mark.parametrize("values, message", [
    ({"mode": "c"}, "mode='c' is not valid; choose from: a, b"),
    ({"rate": 0.0}, "rate=0.0 must be > 0"),
    ({"count": -1}, "count=-1 must be >= 0"),
    ({"sizes": (4, 0)}, "sizes=(4, 0) must be > 0"),
    ({"rate": float("nan")}, "rate=nan must be a number"),
])
def test_validation_names_the_bad_value(values, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        validate(from_mapping(Demo, values, source="test"))


def test_bad_types_and_unknown_keys_are_config_errors():
    with pytest.raises(ConfigError, match="count=2.5 is not a valid int"):
        from_mapping(Demo, {"count": 2.5}, source="test")
    with pytest.raises(ConfigError, match="unknown option.*speed in my.yaml; valid options: count"):
        from_mapping(Demo, {"speed": 1}, source="my.yaml")


def test_malformed_yaml_is_a_config_error(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("a: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        read_yaml(path)
    path.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="must hold a mapping"):
        read_yaml(path)


def test_shipped_sine_experiment_holds_the_paper_defaults():
    config = from_mapping(SineConfig, read_yaml(experiment_file("maml", "sine")), source="sine")
    validate(config)
    assert (config.num_batches, config.meta_batch_size, config.fast_lr, config.meta_lr,
            config.shots, config.hidden_sizes, config.num_steps) == (
        70000, 25, 0.01, 0.001, 10, (40, 40), 1)
