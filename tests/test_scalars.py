"""Reading a run's logged scalars back, a resumed run included."""

from __future__ import annotations

import pytest

from metarl.runs import Logger
from metarl.scalars import MissingScalarError, logged_scalar, logged_scalars, training_seconds


def log(run_dir, steps, offset, *, resumed_after=0):
    logger = Logger(run_dir, resumed_after=resumed_after)
    for step in steps:
        logger.scalars({"returns/step_1": step + offset, "time/iteration_s": 2.0}, step)
    logger.close()


def test_a_resumed_run_reads_as_tensorboard_shows_it(tmp_path):
    log(tmp_path, range(1, 8), 0.0)  # a run stopped after iteration 7, checkpoint at 5
    log(tmp_path, range(6, 10), 100.0, resumed_after=5)  # resumed: 6..9 logged again

    returns = logged_scalar(tmp_path, "returns/step_1")
    assert list(returns) == list(range(1, 10))
    assert [returns[step] for step in (1, 5, 6, 7, 9)] == [1.0, 5.0, 106.0, 107.0, 109.0]
    assert training_seconds(tmp_path) == pytest.approx(2.0 * 9)  # 6 and 7 counted once
    assert set(logged_scalars(tmp_path)) == {"returns/step_1", "time/iteration_s"}


def test_a_missing_tag_names_the_tags_the_run_logged(tmp_path):
    log(tmp_path, range(1, 3), 0.0)
    with pytest.raises(MissingScalarError, match=r"no scalar 'returns/step_2'; logged: "
                                                 r"returns/step_1, time/iteration_s"):
        logged_scalar(tmp_path, "returns/step_2")


def test_a_directory_without_events_has_no_scalars(tmp_path):
    assert logged_scalars(tmp_path) == {}
    assert training_seconds(tmp_path) == 0.0
    with pytest.raises(MissingScalarError, match="logged: nothing"):
        logged_scalar(tmp_path, "returns/step_1")
