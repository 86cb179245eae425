"""Fixtures shared by every test folder."""

import importlib.util
import os
from pathlib import Path

import pytest

# Ray, where a test starts it: every node and driver on the loopback address (Ray otherwise
# advertises the machine's outward address, which it resolves with a UDP "connection" to a
# public address), and no usage statistics sent.
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"  # Ray's node address falls back to loopback
os.environ["RAY_USAGE_STATS_ENABLED"] = "0"

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


@pytest.fixture(scope="session")
def ray_cluster():
    """One simulated two-node Ray cluster (``ray.cluster_utils.Cluster``) on 127.0.0.1 for the
    whole pytest run, this process connected as its driver; each node has 2 logical CPUs.
    Tests may add nodes (and must remove the ones they add); they must not shut it down."""
    import ray
    from ray.cluster_utils import Cluster

    node = {"num_cpus": 2, "num_gpus": 0, "node_ip_address": "127.0.0.1",
            "object_store_memory": 200 * 2**20}
    cluster = Cluster(initialize_head=True,
                      head_node_args={**node, "include_dashboard": False})
    cluster.add_node(**node)
    ray.init(address=cluster.address, _node_ip_address="127.0.0.1")
    yield cluster
    ray.shutdown()
    cluster.shutdown()
