"""``experiments/physics_drift.py``: a record of fixed rollouts, and the comparison of two."""

import re

import numpy as np
import pytest

from metarl.scripts import run_script


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


def test_a_file_that_is_no_record_is_named_in_one_line(experiment_script, tmp_path):
    script = experiment_script("physics_drift")
    (tmp_path / "curve.json").write_text('{"metric": "return"}')
    (tmp_path / "zero.npz").write_bytes(b"")
    np.savez(tmp_path / "nokeys.npz", x=np.zeros(3))
    np.savez(tmp_path / "nan.npz", mujoco=np.array("4.0"), families=np.array(["cheetah_vel"]),
             **{f"cheetah_vel:{clock}:{part}": np.array([np.nan])
                for clock in ("v5", "paper") for part in ("obs", "rewards")})
    for name, said in (("missing.npz", "missing.npz: no such file"),
                       ("curve.json", "curve.json is not a physics_drift record"),
                       ("zero.npz", "zero.npz is not a physics_drift record"),
                       ("nokeys.npz", "nokeys.npz is not a physics_drift record (no 'mujoco' "
                                      "entry)"),
                       ("nan.npz", "'cheetah_vel:v5:obs' holds a non-finite value")):
        with pytest.raises(SystemExit, match=re.escape(said)):
            script.main(["--compare", str(tmp_path / name), str(tmp_path / name)])


def test_an_unusable_out_is_refused_before_any_rollout(experiment_script, tmp_path,
                                                       monkeypatch, capsys):
    script = experiment_script("physics_drift")
    monkeypatch.setattr(script, "rollout", lambda *a: pytest.fail("rolled out"))
    (tmp_path / "folder").mkdir()
    (tmp_path / "file").write_text("")
    for out, said in (("rec", "OUT .*rec: give a file name ending in .npz"),
                      ("folder", "OUT .*folder is a folder")):
        with pytest.raises(SystemExit, match=said):
            script.main([str(tmp_path / out), "--families", "cheetah_vel"])
    blocked = str(tmp_path / "file" / "rec.npz")
    assert run_script(lambda: script.main([blocked, "--families", "cheetah_vel"])) == 2
    assert "file is a file, not a folder" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "folder"]
