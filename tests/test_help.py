"""The help pages: each renders, names its choices, and shows every option's default."""

from __future__ import annotations

import re

import pytest

from metarl.config import EXPERIMENTS_DIR
from metarl.run import commands, main

#: The task families metarl ships defaults for: the six of the MAML paper.
FAMILIES = sorted(path.stem for path in (EXPERIMENTS_DIR / "maml_trpo").glob("*.yaml"))


def help_page(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    """The page ``python -m metarl.run *argv --help`` prints; it must exit with status 0."""
    try:
        status = main([*argv, "--help"])
    except SystemExit as exit_:  # argparse's own --help
        status = exit_.code
    captured = capsys.readouterr()
    assert status == 0, captured.err
    assert captured.err == ""
    return captured.out


def options(page: str) -> dict[str, str]:
    """Each option of a help page (its first flag) with its whole help text, -h left out."""
    entries: dict[str, str] = {}
    flag = None
    for line in page.splitlines():
        match = re.match(r"  (--?[\w-]+)", line)
        if match:
            flag = match.group(1)
            entries[flag] = line
        elif flag is not None and line.startswith("   "):
            entries[flag] += " " + line.strip()
        else:
            flag = None
    entries.pop("-h", None)
    return entries


def test_top_level_page_lists_each_command_with_an_example(capsys):
    page = help_page(capsys)
    for command in commands():
        assert re.search(rf"^  {command}\s+\S", page, re.MULTILINE), command
        assert f"python -m metarl.run {command} --" in page, command
    assert "``" not in page and "RESUME_MAY_CHANGE" not in page


def test_maml_page_lists_the_tasks_and_every_tasks_options(capsys):
    page = help_page(capsys, "maml")
    assert re.search(r"^  sine\s", page, re.MULTILINE)
    assert re.search(r"^  omniglot\s", page, re.MULTILINE)
    flags = options(page)
    assert {"--hidden-sizes", "--ways", "--data-dir", "--shots"} <= set(flags)
    assert "0.01 for sine, 0.4 for omniglot" in flags["--fast-lr"]


def test_maml_trpo_page_lists_the_families_and_the_chosen_ones_defaults(capsys):
    page = help_page(capsys, "maml_trpo")
    assert len(FAMILIES) == 6
    for family in FAMILIES:
        assert re.search(rf"^  {family}\s", page, re.MULTILINE), family
    assert "(default: 20)" in options(page)["--meta-batch-size"]  # navigation_2d.yaml
    cheetah = options(help_page(capsys, "maml_trpo", "--env", "cheetah_vel"))
    assert "(default: 40)" in cheetah["--meta-batch-size"]  # cheetah_vel.yaml
    assert "(default: 0.3)" in cheetah["--init-std"]  # over the built-in 1.0


@pytest.mark.parametrize("argv", [("maml",), ("maml_trpo",), ("maml_trpo", "--env", "ant_dir"),
                                  ("promp",), ("promp", "--env", "ant_dir"), ("evaluate",)])
def test_every_option_shows_its_default(capsys, argv):
    flags = options(help_page(capsys, *argv))
    assert len(flags) > 10
    missing = [flag for flag, text in flags.items()
               if "(default: " not in text and "(required" not in text]
    assert missing == []


def test_promp_page_lists_the_families_and_its_own_options(capsys):
    page = help_page(capsys, "promp")
    for family in FAMILIES:
        assert re.search(rf"^  {family}\s", page, re.MULTILINE), family
    flags = options(page)
    assert "(default: 0.3)" in flags["--clip-eps"]  # experiments/promp/navigation_2d.yaml
    assert "(default: 5)" in flags["--num-outer-steps"]
    assert "--max-kl" not in flags and "--curvature" not in flags
    assert "(default: 40)" in options(help_page(capsys, "promp", "--env", "ant_dir"))[
        "--meta-batch-size"]


def test_choices_are_named_on_the_page(capsys):
    page = help_page(capsys, "maml_trpo")
    assert "--nonlinearity {tanh,relu}" in page
    assert "--curvature {gauss_newton,exact}" in page
