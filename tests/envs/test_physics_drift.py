"""``experiments/physics_drift.py``: a record of fixed rollouts, and the comparison of two."""

import numpy as np
import pytest


def test_a_record_matches_itself_and_a_perturbed_copy_shows_the_change(experiment_script,
                                                                        tmp_path, capsys):
    script = experiment_script("physics_drift")
    path = tmp_path / "a.npz"
    assert script.main([str(path), "--families", "cheetah_vel"]) == 0
    same = tmp_path / "b.npz"
    assert script.main([str(same), "--families", "cheetah_vel"]) == 0
    arrays = dict(np.load(path))
    arrays["cheetah_vel:v5:obs"][10:] += 1e-3  # a change from the tenth action on
    np.savez(tmp_path / "c.npz", **arrays)
    capsys.readouterr()
    script.main(["--compare", str(path), str(same)])
    rows = [line for line in capsys.readouterr().out.splitlines() if "cheetah_vel" in line]
    assert len(rows) == 2 and all("| 0.0e+00 | 0.0e+00 | 0.0e+00 |" in row for row in rows)
    script.main(["--compare", str(path), str(tmp_path / "c.npz")])
    (v5,) = [line for line in capsys.readouterr().out.splitlines() if "| v5 |" in line]
    assert "| 0.0e+00 | 1.0e-03 | 1.0e-03 |" in v5


def test_record_or_compare_must_be_chosen(experiment_script, capsys):
    script = experiment_script("physics_drift")
    with pytest.raises(SystemExit) as stop:
        script.main([])
    assert stop.value.code == 2
    assert "give OUT.npz to record" in capsys.readouterr().err
