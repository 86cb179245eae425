"""bench/*.py given bad input: one line naming the bad value (and the valid choices), exit status
2, no traceback, before any benchmark runs; and bench/gpu.py's TRPO part on a tiny batch.

Most cases call a script's ``main`` in this process, as ``sys.exit(run_script(main))`` does (the
scripts' imports are then paid once); one runs ``python bench/envs.py`` itself."""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from metarl.scripts import EXIT_BAD_INPUT, run_script

BENCH = Path(__file__).resolve().parents[1] / "bench"
_LOADED: dict = {}


@pytest.fixture
def bench_script(monkeypatch):
    """``bench_script("envs")``: ``bench/envs.py`` imported as a module (once), with
    ``bench/`` on sys.path for its ``import common``, as ``python bench/envs.py`` has it."""
    monkeypatch.syspath_prepend(str(BENCH))

    def load(name: str):
        if name not in _LOADED:
            spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
            _LOADED[name] = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(_LOADED[name])
        return _LOADED[name]

    return load


def exit_status(main) -> int:
    """The exit status of ``sys.exit(run_script(main))``: argparse's own errors included."""
    try:
        return run_script(main)
    except SystemExit as stopped:
        return stopped.code


@pytest.mark.parametrize("script, argv, said", [
    ("envs", ["--env", "navigation_2d", "--compare-paper-clock"],
     "error: navigation_2d: unknown env option 'clock'; navigation_2d takes no env options"),
    ("envs", ["--env", "navigation_2d", "--rounds", "0"],
     "envs.py: error: argument --rounds: 0 must be >= 1"),
    ("envs", ["--env", "navigation_2d", "--sync-steps", "-1"],
     "envs.py: error: argument --sync-steps: -1 must be >= 0"),
    ("sampling", ["--env", "navigation_2d", "--num-tasks", "0"],
     "sampling.py: error: argument --num-tasks: 0 must be >= 1"),
    ("rl2_sampling", ["--tasks", "0"], "rl2_sampling.py: error: argument --tasks: 0 must be >= 1"),
    ("meta_iteration", ["--env", "cheetah_vel", "--curvature", "bogus"],
     "error: curvature='bogus' is not valid; choose from: gauss_newton, exact"),
    ("meta_rl", ["--episodes", "-1"], "meta_rl.py: error: argument --episodes: -1 must be >= 1"),
    ("meta_rl", ["--meta-batch-size", "1", "--episodes", "1"],
     "meta_rl.py: error: --meta-batch-size 1 x --episodes 1 gives RL² 1 trial(s)"),
    ("scaling", ["--env", "cheetah_vel", "--bandwidth-gbit", "nan"],
     "scaling.py: error: argument --bandwidth-gbit: 'nan' must be a finite number"),
    ("gpu", ["--part", "trpo", "--tasks", "0"], "gpu.py: error: argument --tasks: 0 must be >= 1"),
    ("report", ["--envs", "nope"], "error: unknown env 'nope'; known task families"),
])
def test_bad_input_is_one_line_naming_it(script, argv, said, bench_script, monkeypatch, capsys):
    module = bench_script(script)
    monkeypatch.setattr(sys, "argv", [f"{script}.py", *argv])
    assert exit_status(module.main) == EXIT_BAD_INPUT
    out, err = capsys.readouterr()
    assert out == ""
    messages = [line for line in err.splitlines() if "error:" in line]
    assert len(messages) == 1, err
    assert messages[0].startswith(said)


def test_the_command_line_gives_one_line_without_a_traceback(tmp_path):
    done = subprocess.run([sys.executable, str(BENCH / "envs.py"), "--env", "nope"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == EXIT_BAD_INPUT, done.stderr
    assert done.stdout == ""
    assert done.stderr.startswith("error: unknown env 'nope'; known task families: navigation_2d")
    assert done.stderr.count("\n") == 1, done.stderr


def test_rl2_sampling_sizes_keep_the_values_given(bench_script):
    sizes = bench_script("rl2_sampling").sizes
    given = argparse.Namespace(env="navigation_2d", tasks=3, trials=None, episodes=1)
    assert sizes(given) == (3, 20, 1)
    assert sizes(argparse.Namespace(env="cheetah_vel", tasks=None, trials=None,
                                    episodes=None)) == (40, 20, 2)


@pytest.fixture
def one_torch_thread():
    """PyTorch on one thread for the test, as ``bench/gpu.py`` runs by default (``--threads
    1``): two threads on a busy 2-core machine make the step many times slower."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_gpu_bench_times_a_trpo_step_on_the_cpu(bench_script, one_torch_thread):
    import torch

    args = argparse.Namespace(tasks=1, episodes=1, rounds=1)
    result = bench_script("gpu").trpo_step(args, torch.device("cpu"))
    assert result["env_steps"] == 2 * result["horizon"]
    assert result["learner_s"] > 0
