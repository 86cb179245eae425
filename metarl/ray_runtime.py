"""Ray for metarl: importing it (an optional extra), and one runtime per user.

:class:`RayRuntime` joins a cluster (``auto``, ``host:port``, ``ray://host:port``) or, with no
address, starts a local runtime of its own: bound to 127.0.0.1, no dashboard, one CPU per usable
core, its workers at normal priority (Ray's default worker niceness, 15, lets any other job on
the machine starve them). Where this process already runs Ray (a script that called
``ray.init``), that runtime is used and left running. ``ray.init`` installs a SIGTERM handler
of its own (a stack dump, then death); the process's handler is put back, so that the command
line's SIGTERM still stops a run like Ctrl-C, with its resume message.
"""

from __future__ import annotations

import contextlib
import signal
import socket
import threading
from collections.abc import Iterator

from metarl.config import ConfigError
from metarl.envs.base import usable_cores

#: What to install for Ray (``--sampler ray``, ``experiments/grid.py``).
RAY_EXTRA = 'pip install -e ".[ray]"'
#: Seconds to wait for a cluster's ``HOST:PORT`` to accept a connection before giving up (Ray
#: itself retries an unreachable address without end).
CONNECT_TIMEOUT_S = 10.0


class RayStartError(RuntimeError):
    """A local Ray runtime that failed to start (not bad input: the machine's resources, a
    port in use, a timeout)."""


def import_ray(what: str = "this"):
    """The ``ray`` module; a ``ConfigError`` saying that ``what`` needs it and naming the extra
    to install when it is missing."""
    try:
        import ray
    except ImportError as error:
        raise ConfigError(f"{what} needs Ray, which is not installed ({error}); install it "
                          f"with: {RAY_EXTRA}") from None
    return ray


class RayRuntime:
    """Ray for one user (a sampler, a grid): joins ``address`` or starts a local runtime;
    ``close()`` ends what it started (a runtime already running in this process is used and
    left as it was). ``what`` names the user in the error when Ray is not installed."""

    def __init__(self, address: str | None = None, what: str = "this"):
        ray = self.ray = import_ray(what)
        self.owned = not ray.is_initialized()
        if not self.owned:
            return
        with keeping_sigterm():
            self._start(address)

    def _start(self, address: str | None) -> None:
        ray = self.ray
        if address:
            check_reachable(address)
        try:
            if address:
                ray.init(address=address, log_to_driver=True)
            else:
                # A runtime of its own (never one another program started), its actors at the
                # priority of the learner and of the local sampler's processes (Ray's default
                # worker niceness, 15, lets any other job on the machine starve them).
                ray.init(address="local", _node_ip_address="127.0.0.1", include_dashboard=False,
                         num_cpus=usable_cores(), log_to_driver=True,
                         _system_config={"worker_niceness": 0})
        except (ConnectionError, ValueError, RuntimeError) as error:
            where = f"the Ray cluster at {address!r}" if address else "a local Ray runtime"
            raise ConfigError(f"could not connect to {where}: {first_line(error)} (valid "
                              f"--ray-address: empty for a local runtime, auto, host:port or "
                              f"ray://host:port; a cluster with Ray's token authentication "
                              f"also needs RAY_AUTH_MODE=token and its token on this "
                              f"machine)") from None
        except Exception as error:  # Ray raises plain Exception when its node does not start
            if address:
                raise ConfigError(f"could not connect to the Ray cluster at {address!r}: "
                                  f"{first_line(error)}") from None
            raise RayStartError(f"a local Ray runtime did not start: {first_line(error)} "
                                f"(see Ray's logs under /tmp/ray/session_latest/logs)") from None

    def close(self) -> None:
        if self.owned and self.ray.is_initialized():
            self.ray.shutdown()
        self.owned = False


def check_reachable(address: str, timeout: float = CONNECT_TIMEOUT_S) -> None:
    """A ``ConfigError`` unless ``HOST:PORT`` (or ``ray://HOST:PORT``; an IPv6 host in
    brackets) accepts a TCP connection within ``timeout`` seconds; ``auto`` and other forms are
    left to Ray, which answers them at once."""
    host, colon, port = address.removeprefix("ray://").rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not colon or not port.isdigit() or not host:
        return
    if not 0 < int(port) < 65536:
        raise ConfigError(f"--ray-address {address!r}: port {port} must be in 1..65535")
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except socket.gaierror:
        reason = f"cannot resolve the host {host!r}"
    except TimeoutError:
        reason = f"no answer within {timeout:g} s"
    except OSError as error:
        reason = str(error.strerror or error)
    else:
        return
    raise ConfigError(f"could not connect to the Ray cluster at {address!r}: {reason} (is the "
                      f"head node running and its port open to this machine?)")


@contextlib.contextmanager
def keeping_sigterm() -> Iterator[None]:
    """Keep this process's SIGTERM handler across ``ray.init``, which installs its own (a stack
    dump, then death): the command line's handler stops a run like Ctrl-C, with the resume
    message, and the user's actors or tasks are stopped on the way out."""
    main = threading.current_thread() is threading.main_thread()
    previous = signal.getsignal(signal.SIGTERM) if main else None
    try:
        yield
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def first_and_last_line(error: BaseException) -> str:
    """An error's first and last non-empty lines: for an error Ray forwards with a traceback
    (an actor whose constructor raised), what happened and the exception that says why."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    if len(lines) <= 1:
        return lines[0] if lines else type(error).__name__
    return f"{lines[0].rstrip(':')}: {lines[-1]}"


def first_line(error: BaseException) -> str:
    """An error's first non-empty line (Ray's errors run to many)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[0] if lines else type(error).__name__
