"""metarl.allocator: glibc's malloc thresholds are set by the command line, not by an import,
and can be left alone."""

import subprocess
import sys

import pytest

from metarl import allocator, run


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc only")
def test_tune_malloc_sets_the_thresholds_and_respects_the_opt_out(monkeypatch):
    assert allocator.tune_malloc() is True
    monkeypatch.setenv("METARL_KEEP_MALLOC", "1")
    assert allocator.tune_malloc() is False


def test_importing_metarl_still_works_with_the_opt_out():
    code = "import metarl, torch; print(torch.ones(3).sum().item())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={"METARL_KEEP_MALLOC": "1", "PATH": ""}, check=True)
    assert out.stdout.strip() == "3.0"


def test_importing_metarl_leaves_the_allocator_alone():
    """No import opens libc to call mallopt (tune_malloc's ctypes.CDLL(None))."""
    code = ("import ctypes; opened = []; real = ctypes.CDLL\n"
            "def spy(name, *args, **kwargs):\n"
            "    opened.append(name)\n"
            "    return real(name, *args, **kwargs)\n"
            "ctypes.CDLL = spy\n"
            "import metarl, metarl.experiment, metarl.rl.trainer, metarl.supervised.trainer\n"
            "print(opened.count(None))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "0"


def test_the_command_line_tunes_the_allocator(monkeypatch, capsys):
    calls = []
    monkeypatch.setattr(run, "tune_malloc", lambda: calls.append(1))
    assert run.main(["maml", "--task", "cosine"]) == 2
    assert calls == [1]
