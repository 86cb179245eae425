"""Shared Omniglot fixtures: the shipped small subsets, decoded once per test session."""

from __future__ import annotations

from pathlib import Path

import pytest

OMNIGLOT_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "omniglot"


@pytest.fixture(scope="session")
def omniglot_dir() -> Path:
    if not (OMNIGLOT_DIR / "images_background_small1.zip").is_file():
        pytest.skip(f"Omniglot small subsets not found in {OMNIGLOT_DIR}")
    return OMNIGLOT_DIR


@pytest.fixture(scope="session")
def omniglot_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("omniglot_cache")


@pytest.fixture(scope="session")
def omniglot(omniglot_dir: Path, omniglot_cache_dir: Path):
    """Both small subsets, preprocessed (decoded once; the cache lives in a session tmp dir)."""
    from metarl.supervised.omniglot.data import load_omniglot

    return load_omniglot(omniglot_dir, cache_dir=omniglot_cache_dir)
