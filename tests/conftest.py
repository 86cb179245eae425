"""Fixtures shared by every test folder."""

import importlib.util
from pathlib import Path

import pytest

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"
TEST_ENVS = Path(__file__).resolve().parent / "envs"


@pytest.fixture
def plugin_envs(monkeypatch):
    """``tests/envs`` on sys.path for the test: its plug-in families (``plugin_family``,
    ``faulty_families``) importable by name, as worker processes import them."""
    monkeypatch.syspath_prepend(str(TEST_ENVS))


@pytest.fixture(scope="session")
def experiment_script():
    """``experiment_script("reproduce_rl")``: the script ``experiments/NAME.py`` imported as a
    module (scripts are not a package), so a test can call its functions and ``main``."""
    loaded = {}

    def load(name: str):
        if name not in loaded:
            spec = importlib.util.spec_from_file_location(name, EXPERIMENTS / f"{name}.py")
            loaded[name] = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(loaded[name])
        return loaded[name]

    return load
