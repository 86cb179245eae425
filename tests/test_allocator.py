"""metarl.allocator: glibc's malloc thresholds are set on import, and can be left alone."""

import subprocess
import sys

import pytest

from metarl import allocator


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
