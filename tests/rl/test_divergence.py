"""Meta-RL that turns non-finite: training stops with one line and keeps its last finite
checkpoint, rejected TRPO steps and non-finite episodes are counted and logged, and evaluation
refuses a policy that turns non-finite."""

import logging

import torch
from run_helpers import error_line, only_run_dir

from metarl.rl.config import MAMLTRPOConfig
from metarl.rl.maml_trpo import MAMLTRPO, StepInfo
from metarl.rl.trainer import REJECTED_IN_A_ROW_WARNING, MetaRLTrainer
from metarl.run import main
from metarl.training import train

TINY = ["--num-batches", "2", "--meta-batch-size", "2", "--fast-batch-size", "2",
        "--hidden-sizes", "8", "8", "--cg-iters", "2", "--num-workers", "1", "--torch-threads", "1",
        "--no-progress"]
REJECTED = StepInfo(False, float("nan"), float("nan"), 1, 0.0, 1.0, rejected_non_finite=True)


def tiny_trainer(**changes) -> MetaRLTrainer:
    return MetaRLTrainer(MAMLTRPOConfig(meta_batch_size=2, fast_batch_size=2, hidden_sizes=(8,),
                                        cg_iters=2, num_workers=1, **changes))


def test_a_huge_inner_step_stops_at_iteration_1_with_exit_1_and_no_checkpoint(tmp_path, capsys):
    assert main(["maml_trpo", *TINY, "--fast-lr", "1e30", "--output-dir", str(tmp_path)]) == 1
    line = error_line(capsys.readouterr().err)
    assert line.startswith("error: diverged at iteration 1: the policy's actions after "
                           "adaptation are non-finite in ")
    assert line.endswith("no checkpoint had been written yet, so there is nothing to resume")
    assert not (only_run_dir(tmp_path) / "checkpoint.pt").exists()


def test_a_policy_made_non_finite_by_its_step_stops_there_and_the_checkpoint_stays_finite(
        tmp_path, capsys, monkeypatch):
    original = MAMLTRPO.step
    calls = []

    def poisons_the_third(self, *args, **kwargs):
        info = original(self, *args, **kwargs)
        calls.append(1)
        if len(calls) == 3:
            with torch.no_grad():
                self.policy.layers[0].weight[0, 0] = float("nan")
        return info

    monkeypatch.setattr(MAMLTRPO, "step", poisons_the_third)
    assert main(["maml_trpo", *TINY, "--num-batches", "4", "--checkpoint-every", "2",
                 "--output-dir", str(tmp_path)]) == 1
    run_dir = only_run_dir(tmp_path)
    assert error_line(capsys.readouterr().err) == (
        "error: diverged at iteration 3: the policy after the TRPO step is non-finite "
        "(layers.0.weight: 1 of 16 values); the last finite checkpoint (iteration 2) is intact: "
        f"{run_dir / 'checkpoint.pt'}")
    state = torch.load(run_dir / "checkpoint.pt", weights_only=True)
    assert state["iteration"] == 2
    assert all(torch.isfinite(v).all() for v in state["policy"].values())


def test_steps_rejected_for_non_finite_values_are_counted_and_warned_after_n_in_a_row(
        tmp_path, caplog):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    with tiny_trainer(num_batches=REJECTED_IN_A_ROW_WARNING + 1) as trainer:
        original = trainer.learner.step
        infos = [REJECTED] * REJECTED_IN_A_ROW_WARNING + [None]
        trainer.learner.step = lambda *a, **k: infos.pop(0) or original(*a, **k)
        before = trainer.theta()
        with caplog.at_level(logging.WARNING, logger="metarl"):
            train(trainer, tmp_path, progress=False)
    warnings = [r.getMessage() for r in caplog.records if "in a row" in r.getMessage()]
    assert warnings == [f"warning: iteration {REJECTED_IN_A_ROW_WARNING}: the TRPO step was "
                        f"rejected for a non-finite KL or surrogate in "
                        f"{REJECTED_IN_A_ROW_WARNING} iterations in a row, so the policy has "
                        "not changed since iteration 0 (trpo/rejected_nonfinite)"]
    events = EventAccumulator(str(tmp_path), size_guidance={"scalars": 0})
    events.Reload()
    streak = [e.value for e in events.Scalars("trpo/rejected_nonfinite")]
    assert streak == [*range(1, REJECTED_IN_A_ROW_WARNING + 1), 0]  # an accepted step resets it
    # The rejections left θ as it was until the last step.
    state = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert not torch.equal(state["policy"]["layers.0.weight"], before["layers.0.weight"])


def test_episodes_that_end_at_a_flagged_non_finite_state_are_counted_and_warned_once(
        plugin_envs, caplog):
    with tiny_trainer(env="faulty_families:FlaggedLine", normalize_actions=False) as trainer:
        with caplog.at_level(logging.WARNING, logger="metarl"):
            first, second = trainer.step(), trainer.step()
    # Task 0 of the two (target 1.0) goes non-finite at step 3: its 2 episodes before and its
    # 2 after adaptation, in each iteration.
    assert first["episodes/non_finite"] == second["episodes/non_finite"] == 4
    assert first["trpo/rejected_nonfinite"] == 0
    warnings = [r.getMessage() for r in caplog.records if "non-finite state" in r.getMessage()]
    assert warnings == ["warning: iteration 1: 4 episodes of faulty_families:FlaggedLine ended "
                        "at a non-finite state the env flagged (they end there as terminated; "
                        "counted per iteration in episodes/non_finite)"]


def test_evaluate_refuses_a_policy_that_turns_non_finite_while_it_adapts(tmp_path, capsys):
    assert main(["maml_trpo", *TINY, "--output-dir", str(tmp_path)]) == 0
    run_dir = only_run_dir(tmp_path)
    capsys.readouterr()
    assert main(["evaluate", "--run", str(run_dir), "--num-tasks", "2", "--steps", "2",
                 "--later-lr-scale", "1e30", "--no-progress"]) == 1
    line = error_line(capsys.readouterr().err)
    assert line.startswith("error: evaluating maml on navigation_2d: the policy")
    assert "after 2 adaptation steps" in line and "non-finite" in line
    assert not (run_dir / "evaluation" / "curve.json").exists()  # no score for it


def test_evaluate_refuses_to_score_episodes_that_ended_at_a_flagged_non_finite_state(
        tmp_path, capsys, plugin_envs):
    assert main(["maml_trpo", "--env", "faulty_families:FlaggedLine", "--no-normalize-actions",
                 *TINY, "--output-dir", str(tmp_path)]) == 0
    run_dir = only_run_dir(tmp_path)
    capsys.readouterr()
    assert main(["evaluate", "--run", str(run_dir), "--env", "faulty_families:FlaggedLine",
                 "--num-tasks", "2", "--steps", "1", "--no-progress"]) == 1
    # Held-out task 0 (target 1.0) goes non-finite in its 2 episodes: cut short at reward 0,
    # they would score better than complete ones, so the evaluation names them and stops.
    line = error_line(capsys.readouterr().err)
    assert line.startswith("error: evaluating maml on faulty_families:FlaggedLine: 2 of 4 "
                           "episodes of the policy after 0 adaptation steps ended at a state "
                           "the env flagged non-finite (held-out task(s) 0)")
    assert not (run_dir / "evaluation" / "curve.json").exists()  # no score for it


def test_an_env_that_emits_nan_unflagged_stops_training_with_one_line(tmp_path, capsys,
                                                                      plugin_envs):
    # (through sampler workers too: tests/rl/test_workers.py)
    out = tmp_path / "runs"
    assert main(["maml_trpo", "--env", "faulty_families:DivergingTasksLine",
                 "--no-normalize-actions", *TINY, "--output-dir", str(out)]) == 2
    assert error_line(capsys.readouterr().err).startswith(
        "error: faulty_families:DivergingTasksLine: step returned non-finite (NaN/inf, or beyond "
        "float32's ±3.4e38) observations or rewards in ")
