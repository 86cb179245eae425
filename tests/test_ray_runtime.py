"""``metarl.ray_runtime``: an address nothing answers at, and a local runtime that does not
start, each end in one line instead of Ray's endless retries or its traceback."""

import re
import socket

import pytest
from run_helpers import one_error_line

from metarl.config import ConfigError
from metarl.ray_runtime import RayRuntime, RayStartError, check_reachable
from metarl.run import main

ray = pytest.importorskip("ray")


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def not_connected(monkeypatch):
    """As if this process had not joined Ray yet (the tests' cluster may be joined), with
    ``ray.init`` failing the test if it is reached."""
    monkeypatch.setattr(ray, "is_initialized", lambda: False)

    def init(**kwargs):
        raise AssertionError(f"ray.init reached with {kwargs}")

    monkeypatch.setattr(ray, "init", init)


@pytest.mark.parametrize("prefix", ["", "ray://"])
def test_an_address_nothing_listens_at_is_refused_at_once(prefix, not_connected):
    address = f"{prefix}127.0.0.1:{closed_port()}"
    with pytest.raises(ConfigError, match=rf"^could not connect to the Ray cluster at "
                                          rf"'{re.escape(address)}': Connection refused \(is "
                                          rf"the head node running"):
        RayRuntime(address)


def test_an_ipv6_address_in_brackets_is_reached(not_connected):
    with socket.socket(socket.AF_INET6) as server:
        try:
            server.bind(("::1", 0))
        except OSError:
            pytest.skip("no IPv6 loopback on this machine")
        server.listen()
        check_reachable(f"[::1]:{server.getsockname()[1]}")  # no error: it answers


def test_a_host_that_does_not_resolve_is_named(not_connected):
    with pytest.raises(ConfigError, match=r"'nowhere\.invalid:6379': cannot resolve the host "
                                          r"'nowhere\.invalid'"):
        check_reachable("nowhere.invalid:6379")


def test_a_port_out_of_range_is_named():
    with pytest.raises(ConfigError, match=r"'127.0.0.1:70000': port 70000 must be in 1..65535"):
        check_reachable("127.0.0.1:70000")


def test_auto_is_left_to_ray():
    check_reachable("auto")  # Ray answers it at once: no running cluster, or its address


def test_at_the_command_line_it_is_one_line_and_exit_2(not_connected, capsys, tmp_path):
    port = closed_port()
    assert main(["maml_trpo", "--env", "navigation_2d", "--sampler", "ray", "--ray-address",
                 f"127.0.0.1:{port}", "--num-batches", "1", "--no-progress",
                 "--output-dir", str(tmp_path)]) == 2
    assert one_error_line(capsys).startswith(
        f"error: could not connect to the Ray cluster at '127.0.0.1:{port}': Connection refused")


def test_a_local_runtime_that_does_not_start_is_one_line_and_exit_1(monkeypatch, capsys,
                                                                    tmp_path):
    monkeypatch.setattr(ray, "is_initialized", lambda: False)

    def init(**kwargs):  # what Ray raises when its node does not come up in time
        raise Exception("The current node timed out during startup. This could happen "
                        "because some of the raylet failed to startup or the GCS has become "
                        "overloaded.")

    monkeypatch.setattr(ray, "init", init)
    with pytest.raises(RayStartError, match="^a local Ray runtime did not start: The current "
                                            "node timed out during startup"):
        RayRuntime()
    assert main(["maml_trpo", "--env", "navigation_2d", "--sampler", "ray",
                 "--num-batches", "1", "--no-progress", "--output-dir", str(tmp_path)]) == 1
    assert one_error_line(capsys).startswith("error: a local Ray runtime did not start: ")
