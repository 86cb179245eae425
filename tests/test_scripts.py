"""metarl.scripts: the argument types and the one-line report the helper scripts share."""

import argparse
import ast
from pathlib import Path

import pytest

from metarl.config import ConfigError
from metarl.nonfinite import NonFiniteError
from metarl.scripts import (
    EXIT_BAD_INPUT,
    finite_float,
    non_negative_int,
    positive_float,
    positive_int,
    run_script,
)


def parser():
    parser = argparse.ArgumentParser(prog="bench")
    parser.add_argument("--rounds", type=positive_int, default=1)
    parser.add_argument("--seed", type=non_negative_int, default=0)
    parser.add_argument("--rate", type=positive_float, default=1.0)
    parser.add_argument("--shift", type=finite_float, default=0.0)
    return parser


@pytest.mark.parametrize("argv, said", [
    (["--rounds", "0"], "argument --rounds: 0 must be >= 1"),
    (["--rounds", "x"], "argument --rounds: 'x' is not a valid int"),
    (["--seed", "-1"], "argument --seed: -1 must be >= 0"),
    (["--rate", "0"], "argument --rate: 0 must be a finite number > 0"),
    (["--rate", "nan"], "argument --rate: 'nan' must be a finite number"),
    (["--shift=-inf"], "argument --shift: '-inf' must be a finite number"),
])
def test_argument_types_name_the_flag_and_the_bad_value(argv, said, capsys):
    with pytest.raises(SystemExit) as stopped:
        parser().parse_args(argv)
    assert stopped.value.code == 2
    assert said in capsys.readouterr().err


def test_argument_types_keep_good_values():
    args = parser().parse_args(["--rounds", "3", "--seed", "0", "--rate", "0.5", "--shift=-2"])
    assert (args.rounds, args.seed, args.rate, args.shift) == (3, 0, 0.5, -2.0)


@pytest.mark.parametrize("error", [ConfigError("fast_lr=nan must be finite"),
                                   NonFiniteError("curve.json: maml mean is nan")])
def test_run_script_reports_bad_input_in_one_line(error, capsys):
    def main():
        raise error
    assert run_script(main) == EXIT_BAD_INPUT
    assert capsys.readouterr().err == f"error: {error}\n"


def test_run_script_passes_the_status_and_keeps_a_bug_s_traceback():
    assert run_script(lambda: 3) == 3
    assert run_script(lambda: None) == 0
    with pytest.raises(ZeroDivisionError):
        run_script(lambda: 1 / 0)


def test_every_script_parser_takes_whole_flag_names_only():
    """argparse's default reads ``--hidden-size 8`` as ``--hidden-sizes 8``: every parser of the
    package, bench/ and experiments/ turns that off (``allow_abbrev=False``)."""
    root = Path(__file__).resolve().parent.parent
    built = []
    for path in sorted([*root.joinpath("metarl").rglob("*.py"), *root.joinpath("bench").glob("*.py"),
                        *root.joinpath("experiments").glob("*.py")]):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(
                    node.func, "id", None)) == "ArgumentParser":
                keywords = {k.arg: k.value for k in node.keywords}
                passed = (keywords.get("allow_abbrev") is not None
                          and getattr(keywords["allow_abbrev"], "value", None) is False)
                built.append((path.relative_to(root).as_posix(), passed))
    assert len(built) >= 20  # the scan finds the parsers
    assert [name for name, passed in built if not passed] == []


def test_a_report_script_refuses_a_prefix_of_its_flag(experiment_script, capsys):
    with pytest.raises(SystemExit) as stopped:
        experiment_script("training_blocks").main(["run", "--bl", "20"])
    assert stopped.value.code == 2
    assert "unrecognized arguments: --bl 20" in capsys.readouterr().err
