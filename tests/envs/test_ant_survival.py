"""``experiments/ant_survival.py``: episode lengths of a randomly acting ant, one line errors."""

import pytest


def test_gentle_noise_keeps_the_ant_upright_and_both_tables_print(experiment_script, capsys):
    script = experiment_script("ant_survival")
    assert script.main(["--sigmas", "0.1", "--control-steps", "0.05", "--episodes", "2",
                        "--policies", "0.1:0"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[2] == "| 0.05 | 0.1 | 200 | 200 | 100% |"  # σ = 0.1 never leaves [0.2, 1]
    (row,) = [line for line in lines if line.startswith("| 0.1 | 0 |")]
    assert row.endswith("| 100% |")  # a zero-mean policy of σ = 0.1: the same noise


def test_bad_options_are_refused_naming_the_value(experiment_script, capsys):
    script = experiment_script("ant_survival")
    for argv, named in ((["--control-steps", "0.015"], "--control-steps 0.015"),
                        (["--policies", "0.3"], "--policies 0.3"),
                        (["--policies", "0:1"], "--policies 0:1")):
        with pytest.raises(SystemExit) as stop:
            script.main(argv)
        assert stop.value.code == 2
        assert named in capsys.readouterr().err.splitlines()[-1]


@pytest.mark.parametrize("argv, named", [
    (["--sigmas", "nan"], "argument --sigmas: 'nan' must be a finite number"),
    (["--sigmas", "1", "inf"], "argument --sigmas: 'inf' must be a finite number"),
    (["--policies", "nan:1"], "--policies nan:1: STD must be a finite number > 0"),
    (["--policies", "1:nan"], "--policies 1:nan: STD must be a finite number > 0 and SCALE"),
    (["--policies", "inf:1"], "--policies inf:1"),
    (["--control-steps", "nan"], "--control-steps nan: must be a positive multiple"),
    (["--control-steps", "inf"], "--control-steps inf: must be a positive multiple"),
    (["--control-steps", "1e10"], "at most 10 s"),
    (["--seed", "-1"], "argument --seed: -1 must be >= 0"),
    (["--episodes", "0"], "argument --episodes: 0 must be >= 1"),
])
def test_non_finite_and_out_of_range_values_are_refused(experiment_script, capsys, argv, named):
    with pytest.raises(SystemExit) as stop:
        experiment_script("ant_survival").main(argv)
    assert stop.value.code == 2
    assert named in capsys.readouterr().err.splitlines()[-1]
