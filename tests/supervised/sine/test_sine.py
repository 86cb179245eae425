"""Sine regression: the task distribution, the batched model and a short learning run."""

import math

import pytest
import torch

from metarl.core.maml import parameters_of, stack_params
from metarl.supervised.curves import adaptation_curve
from metarl.supervised.pretrained import pretrain_jointly
from metarl.supervised.sine.problem import SineConfig, SineProblem, SineTasks
from metarl.supervised.trainer import MetaLearner


def test_tasks_and_points_lie_in_the_spec_distribution():
    generator = torch.Generator().manual_seed(0)
    amplitude, phase = SineTasks().sample_tasks(2000, generator)
    assert 0.1 <= amplitude.min() and amplitude.max() <= 5.0
    assert 0.0 <= phase.min() and phase.max() <= math.pi
    assert amplitude.std() > 1.0  # spread over the range, not a constant
    x, y = SineTasks().sample_points(amplitude[:3], phase[:3], 50, generator)
    assert x.shape == y.shape == (3, 50, 1)
    assert -5 <= x.min() and x.max() <= 5
    torch.testing.assert_close(y[1], amplitude[1] * torch.sin(x[1] - phase[1]))


def test_task_forward_equals_the_module_per_task():
    torch.manual_seed(0)
    model = SineProblem().build_model()
    x = torch.randn(4, 7, 1)
    stacked = stack_params(parameters_of(model), 4)
    out = model.task_forward(stacked, x)
    for i in range(4):
        torch.testing.assert_close(out[i], model(x[i]))


def test_same_seed_same_meta_batches():
    problem = SineProblem()
    a = problem.meta_batch(5, torch.Generator().manual_seed(3))
    b = problem.meta_batch(5, torch.Generator().manual_seed(3))
    for left, right in zip(a[0] + a[1], b[0] + b[1]):
        assert torch.equal(left, right)


@pytest.mark.parametrize("seed", [0, pytest.param(1, marks=pytest.mark.slow)])  # seed 1: -m slow
def test_short_training_beats_the_pretrained_baseline_after_one_step(seed):
    """1500 meta-iterations (a few seconds): post-update MSE falls well below the baseline.

    Measured over seeds 0-3: MAML 0.91-1.02 after one step, pretrained 2.69-3.02.
    """
    torch.set_num_threads(1)
    problem = SineProblem()
    learner = MetaLearner(problem, SineConfig(seed=seed))
    for _ in range(1500):
        learner.step()
    support, query = problem.meta_batch(200, torch.Generator().manual_seed(100 + seed),
                                        query_size=100)
    maml = adaptation_curve(learner.task_losses, learner.task_scores,
                            parameters_of(learner.model), support, query, steps=1,
                            step_size=0.01).mean(dim=0)

    torch.manual_seed(seed)
    baseline_model = problem.build_model()
    baseline = pretrain_jointly(problem, baseline_model, iterations=500, batch_size=25, lr=1e-3,
                                generator=torch.Generator().manual_seed(seed))
    learner.model = baseline_model
    pretrained = adaptation_curve(learner.task_losses, learner.task_scores, baseline, support,
                                  query, steps=1, step_size=0.01).mean(dim=0)

    assert maml[1] < 0.5 * pretrained[1]
    assert maml[1] < 1.5
    assert maml[1] < maml[0]  # the single step is what helps


def tiny_run(tmp_path, **changes):
    """A sine MetaLearner trained for ``num_batches`` (default 4) small meta-iterations."""
    from metarl.training import train

    config = SineConfig(**{"num_batches": 4, "meta_batch_size": 2, "eval_every": 3,
                           "eval_tasks": 4, "eval_steps": 2, "checkpoint_every": 100,
                           **changes})
    learner = MetaLearner(SineProblem(), config)
    train(learner, tmp_path / "run", progress=False)
    return learner


def custom_scalar_layouts(run_dir):
    """The custom-scalars layouts in a run's TensorBoard events, each as the tags it charts."""
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
    from tensorboard.plugins.custom_scalar import layout_pb2

    layouts = []
    for path in sorted(run_dir.glob("events.out.tfevents.*")):
        for event in EventFileLoader(str(path)).Load():
            for value in event.summary.value:
                if value.tag == "custom_scalars__config__":
                    layout = layout_pb2.Layout()
                    layout.ParseFromString(value.tensor.string_val[0])
                    layouts.append([tag for category in layout.category
                                    for chart in category.chart
                                    for tag in chart.multiline.tag])
    return layouts


def test_the_curve_chart_is_laid_out_once_its_tags_are_written(tmp_path):
    tiny_run(tmp_path, num_batches=2)  # before the first held-out curve (every 3)
    assert custom_scalar_layouts(tmp_path / "run") == []
    tiny_run(tmp_path / "later", num_batches=4)
    tags = ["adaptation/mse_step_0", "adaptation/mse_step_1", "adaptation/mse_step_2"]
    assert custom_scalar_layouts(tmp_path / "later" / "run") == [tags]


def test_evaluate_shows_progress_and_fits_the_baselines_to_the_run(tmp_path, capsys,
                                                                  monkeypatch):
    from metarl.evaluation_options import EvaluateOptions
    from metarl.supervised import evaluate
    from metarl.supervised.evaluate import evaluate_supervised

    monkeypatch.setattr(evaluate, "MAX_BASELINE_ITERATIONS", 7)  # the oracle's: quick here
    learner = tiny_run(tmp_path, num_batches=5)
    options = EvaluateOptions(num_tasks=8, steps=2)
    result = evaluate_supervised(learner, tmp_path / "eval", options, lambda c: SineProblem(),
                                 progress=True)
    err = capsys.readouterr().err
    for phase in ("pretrained baseline: training", "oracle baseline: training",
                  "maml: adaptation curve", "pretrained: adaptation curve"):
        assert phase in err
    assert "5/5" in err and "7/7" in err  # pretrained as long as the run; the oracle in full
    assert (result["baseline_iterations"], result["oracle_iterations"]) == (5, 7)
    assert result["iteration"] == 5
    assert (tmp_path / "eval" / "curve.png").stat().st_size > 10_000
    monkeypatch.setattr(evaluate, "report", lambda *args, meta, **kwargs: meta)  # no figure
    quiet = EvaluateOptions(num_tasks=8, steps=2, baseline_iterations=3)
    meta = evaluate_supervised(learner, tmp_path / "quiet", quiet, lambda c: SineProblem(),
                               progress=False)
    assert capsys.readouterr().err == ""
    assert (meta["baseline_iterations"], meta["oracle_iterations"]) == (3, 3)


def test_default_baseline_iterations_follow_the_run_up_to_a_cap():
    from metarl.supervised.evaluate import MAX_BASELINE_ITERATIONS, default_baseline_iterations

    assert default_baseline_iterations(200) == 200
    assert default_baseline_iterations(70000) == MAX_BASELINE_ITERATIONS == 10000
    assert default_baseline_iterations(0) == 0
