"""evaluate's options declared once: each kind's defaults, the options only one kind takes, and
the baselines each kind declares as plug-ins."""

import numpy as np
import pytest
import torch

from metarl.config import ConfigError
from metarl.evaluation_options import (
    ONLY_FOR,
    EvalDefaults,
    EvaluateOptions,
    refuse_other_kinds,
    shot_counts,
    with_defaults,
)
from metarl.supervised.problem import HeldOut, Start
from metarl.supervised.sine.problem import SineProblem


def test_only_unset_options_take_the_kind_defaults():
    defaults = EvalDefaults(num_tasks=600, steps=10, later_lr_scale=1.0, baselines=True)
    chosen = with_defaults(EvaluateOptions(steps=0, baselines=False, seed=3), defaults)
    assert (chosen.num_tasks, chosen.steps, chosen.later_lr_scale, chosen.baselines) == (
        600, 0, 1.0, False)
    assert chosen.seed == 3 and chosen.shots is None  # options without a kind default stay


def test_each_kind_declares_its_defaults():
    from metarl.rl.config import MAMLTRPOConfig
    from metarl.rl.evaluate import eval_defaults

    assert SineProblem().eval_defaults() == EvalDefaults(600, 10, 1.0, True)
    assert eval_defaults(MAMLTRPOConfig(env="navigation_2d")) == EvalDefaults(40, 4, 0.5, False)
    assert eval_defaults(MAMLTRPOConfig(env="cheetah_dir")).steps == 3


def test_an_option_of_another_kind_is_refused_by_its_flag():
    options = EvaluateOptions(episodes_per_task=3, env="pkg:Env", num_tasks=5)
    with pytest.raises(ConfigError) as refused:
        refuse_other_kinds(options, "supervised", "RUN is a supervised 'sine' run")
    assert str(refused.value) == ("--episodes-per-task, --env: only for meta-RL runs; RUN is "
                                  "a supervised 'sine' run")
    refuse_other_kinds(options, "meta-RL", "RUN is a MAML-TRPO run")  # its own: accepted
    with pytest.raises(ConfigError, match="^--shots: only for supervised runs; RUN"):
        refuse_other_kinds(EvaluateOptions(shots=(2,)), "meta-RL", "RUN is a MAML-TRPO run")
    fields = set(EvaluateOptions.__dataclass_fields__)
    assert set(ONLY_FOR) <= fields and set(ONLY_FOR.values()) == {"supervised", "meta-RL"}


def test_shots_default_to_the_run_s_and_several_must_increase():
    assert shot_counts(EvaluateOptions(), 1) == (1,)
    assert shot_counts(EvaluateOptions(shots=(5,)), 1) == (5,)
    assert shot_counts(EvaluateOptions(shots=(1, 5, 10)), 1) == (1, 5, 10)
    for shots in ((5, 1), (1, 5, 5)):
        with pytest.raises(ConfigError, match=f"^--shots {' '.join(map(str, shots))}: give each "
                                              "value once, in increasing order"):
            shot_counts(EvaluateOptions(shots=shots), 1)


def sine_held_out(problem, tasks=4, steps=2, iterations=2):
    generator = torch.Generator().manual_seed(0)
    support, query, described = problem.meta_batch_with_tasks(tasks, generator, query_size=7)
    return HeldOut(support, query, described, steps, [0.01] * steps, iterations, iterations,
                   batch_size=3, lr=1e-3, seed=0, progress=False)


def test_sine_declares_its_baselines_rows_and_panel():
    problem = SineProblem(shots=5, hidden_sizes=(8,))
    held_out = sine_held_out(problem)
    pretrained, oracle = problem.baselines()
    assert (pretrained.name, oracle.name) == ("pretrained", "oracle")
    start = pretrained.run(problem, held_out)["pretrained"]
    assert isinstance(start, Start) and set(start.params) == set(dict(
        problem.build_model().named_parameters()))
    curve = oracle.run(problem, held_out)["oracle"]
    assert curve.shape == (4, 3) and np.all(curve == curve[:, :1])  # flat: not adapted
    rows = problem.task_rows(held_out.tasks)
    amplitude, phase = held_out.tasks
    assert rows[1] == {"amplitude": float(amplitude[1]), "phase": float(phase[1])}
    assert (problem.episode_title(5), problem.episode_meta()) == ("K=5", {})
    assert callable(problem.fits_panel({"pretrained": start}, held_out))


def test_the_rl_baselines_run_in_the_papers_order_and_a_random_init_is_fresh():
    from pathlib import Path

    from metarl.rl.baselines import BASELINES, BaselineSetting
    from metarl.rl.config import MAMLTRPOConfig

    assert [baseline.name for baseline in BASELINES] == ["pretrained", "random init", "oracle"]
    config = MAMLTRPOConfig(env="navigation_2d", hidden_sizes=(8, 8))
    setting = BaselineSetting(config, Path("unused"), {"pretrained": None, "oracle": None},
                              iterations=1, seed=4, obs_size=2, act_size=2, progress=False)
    start = BASELINES[1].start(setting)
    assert start.fine_tune and start.trained is None and start.config is config
    assert start.theta["layers.0.weight"].shape == (8, 2)
    again = BASELINES[1].start(setting)
    assert torch.equal(start.theta["layers.0.weight"], again.theta["layers.0.weight"])


def test_the_figure_names_its_x_axis_as_the_evaluation_says():
    from metarl.evaluation import curve_figure

    curves = {"rl2": np.arange(6.0).reshape(2, 3)}
    assert curve_figure(curves, metric="return", title="t", iterations=1
                        ).axes[0].get_xlabel() == "adaptation steps"
    figure = curve_figure(curves, metric="return", title="t", iterations=1, x_label="episodes")
    assert figure.axes[0].get_xlabel() == "episodes"


def test_the_rl_baselines_iterations_are_checked_once_before_anything_runs():
    from metarl.rl.config import MAMLTRPOConfig
    from metarl.rl.evaluate import baseline_iterations

    untrained = MAMLTRPOConfig(env="navigation_2d", num_batches=0)
    with pytest.raises(ConfigError, match="would train for 0 iterations"):
        baseline_iterations(untrained, EvaluateOptions(baselines=True))
    given = EvaluateOptions(baselines=True, pretrained="P", oracle="O")
    assert baseline_iterations(untrained, given) == 0  # none is trained here
    assert baseline_iterations(untrained, EvaluateOptions(baselines=False)) == 0
    with pytest.raises(ConfigError, match="^--baseline-iterations=0 must be >= 1"):
        baseline_iterations(untrained, EvaluateOptions(baselines=True, baseline_iterations=0))
    assert baseline_iterations(untrained, EvaluateOptions(baselines=True,
                                                          baseline_iterations=7)) == 7


@pytest.mark.parametrize("kind", ["rl", "sine"])
def test_the_baselines_options_without_baselines_are_refused(kind):
    from metarl.rl.config import MAMLTRPOConfig
    from metarl.rl.evaluate import eval_defaults

    defaults = (eval_defaults(MAMLTRPOConfig(env="navigation_2d")) if kind == "rl" else
                SineProblem().eval_defaults())
    given = [{"baseline_iterations": 7}] + ([{"pretrained": "P"}, {"oracle": "O",
                                              "baseline_iterations": 7}] if kind == "rl" else [])
    for options in given:
        # not asked for (RL's default) or turned off: the options would do nothing
        for baselines in ((None, False) if kind == "rl" else (False,)):
            with pytest.raises(ConfigError, match=r"^--(pretrained|oracle, --baseline-iterations"
                                                  r"|baseline-iterations): only with --baselines"):
                with_defaults(EvaluateOptions(baselines=baselines, **options), defaults)
    on = with_defaults(EvaluateOptions(baselines=True, baseline_iterations=7), defaults)
    assert on.baselines and on.baseline_iterations == 7


def test_the_help_texts_state_the_defaults_each_kind_declares():
    """The flags' help says the defaults in words; they must be those the kinds declare."""
    import dataclasses

    from metarl.rl.config import MAMLTRPOConfig
    from metarl.rl.evaluate import eval_defaults

    helps = {f.name: f.metadata["help"] for f in dataclasses.fields(EvaluateOptions)}
    sine = SineProblem().eval_defaults()
    navigation, cheetah = (eval_defaults(MAMLTRPOConfig(env=env))
                           for env in ("navigation_2d", "cheetah_vel"))
    assert f"{sine.num_tasks} sine" in helps["num_tasks"]
    assert f"{navigation.num_tasks} RL" in helps["num_tasks"]
    assert f"{sine.steps} sine" in helps["steps"]
    assert f"MAML-TRPO and ProMP: {navigation.steps} navigation, {cheetah.steps} otherwise" in helps["steps"]
    assert (f"{navigation.later_lr_scale} for RL and {sine.later_lr_scale:g} for supervised"
            in helps["later_lr_scale"])
    assert sine.baselines and not navigation.baselines
    assert "on for supervised runs, off for RL" in helps["baselines"]


def test_a_later_step_size_needs_a_later_step():
    from metarl.evaluation_options import EvalDefaults, with_defaults

    defaults = EvalDefaults(num_tasks=40, steps=3, later_lr_scale=0.5, baselines=False)
    with pytest.raises(ConfigError, match=r"^--later-lr-scale=0.25 sets the size of steps 2.., "
                                          r"but the curve has 1 step\(s\); give --steps 2"):
        with_defaults(EvaluateOptions(steps=1, later_lr_scale=0.25), defaults)
    assert with_defaults(EvaluateOptions(later_lr_scale=0.25), defaults).steps == 3
    assert with_defaults(EvaluateOptions(steps=1), defaults).later_lr_scale == 0.5
