"""Typed configs: YAML/flag coercion, validation messages, the shipped experiment files."""

from dataclasses import dataclass

import pytest

from metarl.config import (
    ConfigError,
    experiment_file,
    from_mapping,
    option,
    read_yaml,
    resolve,
    validate,
)
from metarl.supervised.sine.problem import SineConfig


@dataclass
class Demo:
    mode: str = option("a", "a mode", choices=("a", "b"))
    rate: float = option(0.1, "a rate", minimum=0.0)
    count: int = option(0, "a count", minimum=0, exclusive_minimum=False)
    sizes: tuple[int, ...] = option((4, 4), "sizes", minimum=0)
    flag: bool = option(False, "a flag")
    limit: int | None = option(None, "an optional limit")


def test_values_are_coerced_from_strings_and_lists():
    demo = from_mapping(Demo, {"rate": "0.5", "count": "3", "sizes": "8,8", "flag": "yes"},
                        source="test")
    assert (demo.rate, demo.count, demo.sizes, demo.flag) == (0.5, 3, (8, 8), True)
    assert from_mapping(Demo, {"sizes": [16, 32]}, source="t").sizes == (16, 32)


def test_a_value_of_the_wrong_type_names_where_it_was_written():
    with pytest.raises(ConfigError, match=r"^count='two' is not a valid int \(from run/config\.yaml\)$"):
        from_mapping(Demo, {"count": "two"}, source="run/config.yaml")


@pytest.mark.parametrize("values, message", [
    ({"mode": "c"}, "mode='c' is not valid; choose from: a, b"),
    ({"rate": 0.0}, "rate=0.0 must be > 0"),
    ({"count": -1}, "count=-1 must be >= 0"),
    ({"sizes": (4, 0)}, "sizes=(4, 0) must be > 0"),
    ({"rate": float("nan")}, "rate=nan must be a finite number > 0"),
])
def test_validation_names_the_bad_value(values, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        validate(from_mapping(Demo, values, source="test"))


def test_bad_types_and_unknown_keys_are_config_errors():
    with pytest.raises(ConfigError, match="count=2.5 is not a valid int"):
        from_mapping(Demo, {"count": 2.5}, source="test")
    with pytest.raises(ConfigError, match="unknown option.*speed in my.yaml; valid options: count"):
        from_mapping(Demo, {"speed": 1}, source="my.yaml")


@pytest.mark.parametrize("values, message", [
    ({"rate": None}, "rate is empty; give a float"),
    ({"sizes": None}, "sizes is empty; give a list of int"),
    ({"mode": None}, "mode is empty; give a str"),
    ({"sizes": [40.7, 3.9]}, r"sizes=\[40.7, 3.9\] is not a valid list of int"),
    ({"sizes": [8, None]}, r"sizes=\[8, None\] is not a valid list of int"),
    ({"sizes": [True, 4]}, r"sizes=\[True, 4\] is not a valid list of int"),
    ({"sizes": 8}, "sizes=8 is not a valid list of int"),
    ({"count": True}, "count=True is not a valid int"),
    ({"rate": False}, "rate=False is not a valid float"),
    ({"mode": ["a"]}, r"mode=\['a'\] is not a valid str"),
])
def test_empty_values_bools_and_fractions_are_refused(values, message):
    with pytest.raises(ConfigError, match=message):
        from_mapping(Demo, values, source="test")


def test_empty_is_valid_where_the_annotation_allows_none_and_whole_floats_are_ints():
    demo = from_mapping(Demo, {"limit": None, "sizes": [40.0, 3.0], "count": 2.0}, source="t")
    assert demo.limit is None and demo.sizes == (40, 3) and demo.count == 2
    assert isinstance(demo.count, int) and all(isinstance(s, int) for s in demo.sizes)


def test_an_empty_yaml_value_is_refused_before_it_reaches_the_code(tmp_path):
    path = tmp_path / "empty.yaml"
    path.write_text("rate:\n")
    with pytest.raises(ConfigError, match="rate is empty; give a float"):
        from_mapping(Demo, read_yaml(path), source=str(path))


def test_a_resumed_config_may_change_only_the_listed_keys():
    def resumed(flags):
        return resolve(Demo, algo="none", task="none", config_file=None, flags=flags,
                       base={"rate": 0.1, "count": 1}, may_change=("count", "limit"))

    assert resumed({"count": 5, "rate": 0.1}).count == 5  # restating a saved value is fine
    message = (r"--resume cannot change rate \(saved 0.1, new 0.2\); sizes \(saved \(4, 4\), "
               r"new \(8,\)\): .* may change only count, limit$")
    with pytest.raises(ConfigError, match=message):
        resumed({"rate": 0.2, "sizes": [8], "count": 5})


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


def config_classes():
    from metarl.evaluate_run import EvaluateOptions
    from metarl.rl.config import MAMLTRPOConfig
    from metarl.supervised.omniglot.problem import OmniglotConfig

    return [SineConfig, OmniglotConfig, MAMLTRPOConfig, EvaluateOptions]


def numeric_fields(config_cls):
    """(name, type) of every int and float field, tuples of them included."""
    import dataclasses

    from metarl.config import field_types

    found = []
    for f in dataclasses.fields(config_cls):
        text = str(field_types(config_cls)[f.name])
        for kind in (float, int):
            if kind.__name__ in text and "bool" not in text:
                found.append((f.name, kind))
                break
    return found


@pytest.mark.parametrize("config_cls", config_classes(), ids=lambda c: c.__name__)
def test_every_numeric_field_refuses_non_finite_and_out_of_range_values(config_cls):
    import dataclasses

    from metarl.config import INT_MAX, field_types

    fields = numeric_fields(config_cls)
    assert len(fields) >= 8
    for name, kind in fields:
        is_tuple = "tuple" in str(field_types(config_cls)[name])
        bad = ([float("inf"), float("nan"), -float("inf")] if kind is float
               else [INT_MAX + 1, -(INT_MAX + 1)])
        for value in bad:
            config = dataclasses.replace(config_cls(), **{name: (value,) if is_tuple else value})
            with pytest.raises(ConfigError, match=f"^{name}="):
                validate(config)


@pytest.mark.parametrize("values, message", [
    ({"fraction": 1.0}, r"fraction=1.0 must be in \(0, 1\)"),
    ({"fraction": 0.0}, r"fraction=0.0 must be in \(0, 1\)"),
    ({"share": 1.5}, r"share=1.5 must be in \[0, 1\]"),
    ({"cap": 5}, "cap=5 must be <= 4"),
    ({"seed": 2**32}, r"seed=4294967296 must be in \[0, 4294967295\]"),
    ({"seed": -1}, r"seed=-1 must be in \[0, 4294967295\]"),
    ({"share": float("inf")}, r"share=inf must be a finite number in \[0, 1\]"),
    ({"free": float("-inf")}, "free=-inf must be a finite number$"),
])
def test_a_declared_range_is_checked_and_said_in_the_message(values, message):
    from metarl.config import seed_option

    @dataclass
    class Ranged:
        fraction: float = option(0.5, "open at both ends", minimum=0.0, maximum=1.0,
                                 exclusive_maximum=True)
        share: float = option(0.5, "closed", minimum=0.0, exclusive_minimum=False, maximum=1.0)
        cap: int = option(1, "at most 4", maximum=4)
        seed: int = seed_option(0, "a seed")
        free: float = option(0.0, "no range, finite still")

    validate(Ranged(fraction=0.999, share=1.0, cap=4, seed=2**32 - 1, free=-1e300))
    with pytest.raises(ConfigError, match=message):
        validate(from_mapping(Ranged, values, source="test"))


def test_a_key_value_number_without_a_dot_is_a_float_and_words_stay_words():
    from metarl.rl.config import MAMLTRPOConfig

    config = from_mapping(MAMLTRPOConfig, {"env_options": ["timestep=1e-2", "frame_skip=2",
                                                           "clock=paper"]},
                          source="the command line")
    assert config.env_options == {"timestep": 0.01, "frame_skip": 2, "clock": "paper"}
    with pytest.raises(ConfigError, match=r"env_options: x=nan must be a finite number"):
        validate(from_mapping(MAMLTRPOConfig, {"env_options": {"x": "nan"}}, source="f.yaml"))
    for text in ("nan", "NaN", "inf", "-Infinity"):  # a float to Python, so never a word
        with pytest.raises(ConfigError, match=r"env_options: x=.* must be a finite number"):
            validate(from_mapping(MAMLTRPOConfig, {"env_options": [f"x={text}"]},
                                  source="the command line"))
