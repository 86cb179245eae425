"""The table of algorithms: each entry builds its own configs and trainer, and an unknown name
is a one-line ConfigError."""

import pytest

from metarl import experiment
from metarl.algorithms import ALGORITHMS, algorithm
from metarl.config import ConfigError


@pytest.mark.parametrize("name", sorted(ALGORITHMS))
def test_each_algorithm_builds_configs_of_its_own_class_with_shipped_defaults(name):
    entry = ALGORITHMS[name]
    config = experiment.make_config(name)
    assert isinstance(config, entry.config_class(entry.default))
    assert isinstance(config, entry.config_base())
    assert experiment.algo_of(config) == name
    assert getattr(config, entry.selector) == entry.default


def test_an_unknown_algorithm_is_a_config_error_naming_the_known_ones():
    known = ", ".join(ALGORITHMS)
    assert known.startswith("maml, maml_trpo, promp, ")
    with pytest.raises(ConfigError, match=rf"^algo='sarsa' is not valid; choose from: {known}$"):
        algorithm("sarsa")
    with pytest.raises(TypeError, match="not a metarl run config: dict"):
        experiment.algo_of({})
