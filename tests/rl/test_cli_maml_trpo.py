"""``python -m metarl.run maml_trpo`` and ``evaluate`` on RL runs, with tiny budgets."""

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from run_helpers import only_run_dir

from metarl.core.maml import stack_params
from metarl.run import main

BUILTIN_ENVS = ["navigation_2d", "cheetah_vel", "cheetah_dir", "ant_vel", "ant_dir", "ant_goal"]
TINY = ["--num-batches", "2", "--meta-batch-size", "2", "--fast-batch-size", "2",
        "--hidden-sizes", "8", "8", "--cg-iters", "2", "--num-workers", "1", "--no-progress"]


@pytest.mark.parametrize("env", BUILTIN_ENVS)
def test_every_builtin_env_trains_and_writes_its_run_directory(env, tmp_path):
    assert main(["maml_trpo", "--env", env, *TINY, "--output-dir", str(tmp_path)]) == 0
    run_dir = only_run_dir(tmp_path)
    assert run_dir.name.startswith(f"maml_trpo__{env}__0__")
    saved = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert saved["env"] == env and saved["algo"] == "maml_trpo"
    assert saved["max_kl"] == 0.01  # the shipped experiments/maml_trpo/{env}.yaml defaults
    # The ant starts with small actions (at σ = 1 it leaves its healthy height at once), and
    # so does cheetah_vel (it adapts better from there).
    gentle = env.startswith("ant") or env == "cheetah_vel"
    assert (saved["init_std"], saved["init_mean_scale"]) == ((0.3, 0.01) if gentle else (1.0, 1.0))
    assert list(run_dir.glob("events.out.tfevents.*"))
    state = torch.load(run_dir / "checkpoint.pt", weights_only=True)
    assert state["iteration"] == 2 and state["algo"] == "maml_trpo"


def test_resume_after_a_stop_equals_an_uninterrupted_run(tmp_path):
    common = [*TINY[2:], "--checkpoint-every", "1"]  # TINY without --num-batches
    assert main(["maml_trpo", "--num-batches", "3", *common, "--output-dir",
                 str(tmp_path / "full")]) == 0
    assert main(["maml_trpo", "--num-batches", "2", *common, "--output-dir",
                 str(tmp_path / "cut")]) == 0
    cut = only_run_dir(tmp_path / "cut")
    assert main(["maml_trpo", "--resume", str(cut), "--num-batches", "3", "--no-progress"]) == 0
    full = torch.load(only_run_dir(tmp_path / "full") / "checkpoint.pt", weights_only=True)
    resumed = torch.load(cut / "checkpoint.pt", weights_only=True)
    assert resumed["iteration"] == 3
    for name, value in full["policy"].items():
        torch.testing.assert_close(resumed["policy"][name], value, rtol=0, atol=0)


def test_evaluate_writes_the_adaptation_curve_with_baselines(tmp_path, monkeypatch):
    import metarl.rl.evaluate as rl_evaluate

    adapted = []
    original = rl_evaluate.adapt
    monkeypatch.setattr(rl_evaluate, "adapt", lambda *a, **k: adapted.append(
        k["step_size"]) or original(*a, **k))
    assert main(["maml_trpo", *TINY, "--output-dir", str(tmp_path)]) == 0
    run_dir = only_run_dir(tmp_path)
    assert main(["evaluate", "--run", str(run_dir), "--num-tasks", "3", "--steps", "2",
                 "--baselines", "--baseline-iterations", "1", "--no-progress"]) == 0
    out = run_dir / "evaluation"
    result = json.loads((out / "curve.json").read_text())
    assert set(result["methods"]) == {"maml", "pretrained", "random init", "oracle"}
    assert all(len(m["mean"]) == 3 for m in result["methods"].values())
    assert adapted == [0.1, 0.05] * 3  # maml, pretrained, random init; the oracle is not adapted
    assert result["published_maml"][:2] == [-40.4, -11.7]
    assert result["published_oracle"] == -2.29
    assert (out / "curve.csv").exists() and (out / "curve.png").stat().st_size > 10_000
    with open(out / "per_task.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 4 * 3 * 3  # methods x tasks x steps, each with its goal
    for method, summary in result["methods"].items():
        for step, mean in enumerate(summary["mean"]):
            returns = [float(r["mean return"]) for r in rows
                       if r["method"] == method and r["step"] == str(step)]
            assert sum(returns) / 3 == pytest.approx(mean, rel=1e-4, abs=1e-4)
    goals = {(r["goal_0"], r["goal_1"]) for r in rows}
    assert len(goals) == 3  # every method on the same three held-out goals
    assert list(out.glob("events.out.tfevents.*"))
    assert list((out / "pretrained").glob("*/checkpoint.pt"))
    (oracle_checkpoint,) = (out / "oracle").glob("*/checkpoint.pt")
    saved = torch.load(oracle_checkpoint, weights_only=True)["config"]
    assert saved["env"] == "navigation_2d+oracle" and saved["num_steps"] == 0


def test_evaluate_refuses_an_oracle_run_of_another_family(tmp_path, capsys):
    assert main(["maml_trpo", *TINY, "--output-dir", str(tmp_path / "maml")]) == 0
    run_dir = only_run_dir(tmp_path / "maml")
    assert main(["maml_trpo", *TINY, "--num-steps", "0", "--output-dir", str(tmp_path / "plain")
                 ]) == 0
    plain = only_run_dir(tmp_path / "plain")
    capsys.readouterr()
    assert main(["evaluate", "--run", str(run_dir), "--num-tasks", "2", "--steps", "1",
                 "--baselines", "--pretrained", str(plain), "--oracle", str(plain),
                 "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "'navigation_2d'" in err and "'navigation_2d+oracle'" in err


def test_an_oracle_trains_from_its_family_defaults(tmp_path):
    assert main(["maml_trpo", "--env", "cheetah_dir+oracle", "--num-steps", "0",
                 "--num-batches", "1", "--fast-batch-size", "2", "--hidden-sizes", "8", "8",
                 "--cg-iters", "2", "--num-workers", "1", "--no-progress",
                 "--output-dir", str(tmp_path)]) == 0
    run_dir = only_run_dir(tmp_path)
    assert run_dir.name.startswith("maml_trpo__cheetah_dir+oracle__0__")
    saved = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert saved["env"] == "cheetah_dir+oracle"
    assert saved["meta_batch_size"] == 40  # experiments/maml_trpo/cheetah_dir.yaml, not 20
    state = torch.load(run_dir / "checkpoint.pt", weights_only=True)
    assert state["policy"]["layers.0.weight"].shape == (8, 21)  # 20 observations + direction


def test_evaluate_takes_the_test_batch_and_later_step_size(tmp_path, capsys, monkeypatch):
    import metarl.rl.evaluate as rl_evaluate

    sampled = []

    def spy(trainer, theta, tasks, **kwargs):
        episodes = trainer.sampler.sample(tasks, stack_params(theta, len(tasks)), seed=0)
        sampled.append(tuple(episodes.mask.shape[1:]))  # (tasks, episodes per task)
        return original(trainer, theta, tasks, **kwargs)

    original = rl_evaluate.adaptation_returns
    monkeypatch.setattr(rl_evaluate, "adaptation_returns", spy)
    assert main(["maml_trpo", *TINY, "--output-dir", str(tmp_path)]) == 0
    run_dir = only_run_dir(tmp_path)
    assert main(["evaluate", "--run", str(run_dir), "--num-tasks", "2", "--steps", "3",
                 "--episodes-per-task", "5", "--later-lr-scale", "0.25", "--no-progress"]) == 0
    result = json.loads((run_dir / "evaluation" / "curve.json").read_text())
    assert result["episodes_per_task"] == 5 and sampled == [(2, 5)]
    assert result["step_sizes"] == pytest.approx([0.1, 0.025, 0.025])
    capsys.readouterr()
    assert main(["evaluate", "--run", str(run_dir), "--later-lr-scale", "0"]) == 2
    assert "later_lr_scale=0.0 must be > 0" in capsys.readouterr().err
    assert main(["evaluate", "--run", str(run_dir), "--episodes-per-task", "0"]) == 2
    assert "episodes_per_task=0 must be >= 1" in capsys.readouterr().err


def test_evaluate_draws_batches_of_env_steps_like_the_paper(tmp_path, capsys, monkeypatch):
    import metarl.rl.evaluate as rl_evaluate

    budgets = []
    original = rl_evaluate.sample_env_steps
    monkeypatch.setattr(rl_evaluate, "sample_env_steps", lambda sampler, *a: budgets.append(
        (sampler.episodes_per_task, a[-1])) or original(sampler, *a))
    assert main(["maml_trpo", *TINY, "--output-dir", str(tmp_path)]) == 0
    run_dir = only_run_dir(tmp_path)
    assert main(["evaluate", "--run", str(run_dir), "--num-tasks", "2", "--steps", "1",
                 "--env-steps-per-task", "300", "--no-progress"]) == 0
    result = json.loads((run_dir / "evaluation" / "curve.json").read_text())
    # navigation_2d's horizon is 100: three episodes side by side, one batch per step.
    assert budgets == [(3, 300), (3, 300)]
    assert result["env_steps_per_task"] == 300 and result["episodes_per_task"] == 3
    capsys.readouterr()
    assert main(["evaluate", "--run", str(run_dir), "--env-steps-per-task", "300",
                 "--episodes-per-task", "3"]) == 2
    assert "not both" in capsys.readouterr().err
    assert main(["evaluate", "--run", str(run_dir), "--env-steps-per-task", "99"]) == 2
    assert "must be >= the horizon of navigation_2d (100)" in capsys.readouterr().err


@pytest.mark.parametrize("argv, expected", [
    (["maml_trpo", "--env", "cheetah_speed"], "unknown"),
    (["maml_trpo", "--max-kl", "0"], "max_kl=0.0 must be > 0"),
    (["maml_trpo", "--fast-batch-size", "-2"], "fast_batch_size=-2 must be > 0"),
    (["maml_trpo", "--ls-backtrack-ratio", "1.5"], "ls_backtrack_ratio=1.5 must be in (0, 1)"),
    (["maml_trpo", "--gamma", "1.1"], "gamma=1.1 must be in [0, 1]"),
    (["maml_trpo", "--nonlinearity", "sigmoid"], "nonlinearity='sigmoid' is not valid; choose"),
    (["maml_trpo", "--hvp-subsample", "2"], "hvp_subsample=2.0 must be in (0, 1]"),
])
def test_bad_rl_input_exits_2_with_one_line(argv, expected, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert expected in err and err.count("\n") == 1


def test_unknown_env_lists_the_known_ones(capsys):
    assert main(["maml_trpo", "--env", "cheetah_speed"]) == 2
    err = capsys.readouterr().err
    assert "cheetah_speed" in err and "cheetah_vel" in err and "navigation_2d" in err


def test_checkpoint_of_another_env_or_architecture_is_refused_and_kept(tmp_path, capsys):
    assert main(["maml_trpo", *TINY, "--output-dir", str(tmp_path)]) == 0
    run_dir = only_run_dir(tmp_path)
    checkpoint = run_dir / "checkpoint.pt"
    before = checkpoint.read_bytes()
    config = run_dir / "config.yaml"
    original = config.read_text()
    config.write_text(original.replace("- 8\n- 8", "- 16\n- 16"))
    assert main(["maml_trpo", "--resume", str(run_dir), "--num-batches", "4",
                 "--no-progress"]) == 2
    assert "hidden_sizes=" in capsys.readouterr().err
    config.write_text(original.replace("env: navigation_2d", "env: cheetah_vel"))
    assert main(["maml_trpo", "--resume", str(run_dir), "--num-batches", "4",
                 "--no-progress"]) == 2
    assert "env=" in capsys.readouterr().err
    assert checkpoint.read_bytes() == before


def test_corrupt_rl_checkpoint_is_a_clear_error(tmp_path, capsys):
    assert main(["maml_trpo", *TINY, "--output-dir", str(tmp_path)]) == 0
    checkpoint = only_run_dir(tmp_path) / "checkpoint.pt"
    checkpoint.write_bytes(checkpoint.read_bytes()[:100])
    assert main(["evaluate", "--checkpoint", str(checkpoint)]) == 2
    assert "corrupt or unreadable" in capsys.readouterr().err


def test_the_readme_plug_in_family_trains_by_module_and_class(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[2]))  # the repo root
    env = "examples.point_mass:PointMassEnv"
    assert main(["maml_trpo", "--env", env, *TINY, "--output-dir", str(tmp_path)]) == 0
    saved = yaml.safe_load((only_run_dir(tmp_path) / "config.yaml").read_text())
    assert saved["env"] == env


def test_a_bad_task_for_the_plug_in_family_is_refused():
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    try:
        from examples.point_mass import PointMassEnv
    finally:
        sys.path.pop(0)
    with pytest.raises(ValueError, match="mass in"):
        PointMassEnv(task={"target": 0.0, "mass": 9.0})


def test_a_baseline_is_evaluated_with_its_own_policy_and_action_scaling(tmp_path, monkeypatch):
    """A relu pretrained run that acts without normalize_actions, next to a tanh MAML run that
    normalises (navigation_2d's default): its curve is what evaluating it alone gives."""
    import metarl.rl.evaluate as rl_evaluate

    used = []
    original = rl_evaluate.adaptation_returns
    monkeypatch.setattr(rl_evaluate, "adaptation_returns", lambda trainer, *a, **k: used.append(
        (trainer.policy.nonlinearity, trainer.spec.normalize_actions)) or original(
        trainer, *a, **k))
    assert main(["maml_trpo", *TINY, "--output-dir", str(tmp_path / "maml")]) == 0
    assert main(["maml_trpo", *TINY, "--num-steps", "0", "--nonlinearity", "relu",
                 "--no-normalize-actions", "--output-dir", str(tmp_path / "plain")]) == 0
    run_dir, plain = only_run_dir(tmp_path / "maml"), only_run_dir(tmp_path / "plain")
    assert main(["evaluate", "--run", str(run_dir), "--num-tasks", "2", "--steps", "1",
                 "--baselines", "--pretrained", str(plain), "--baseline-iterations", "1",
                 "--no-progress"]) == 0
    # maml, pretrained, random init, oracle (trained here, with the run's policy)
    assert used == [("tanh", True), ("relu", False), ("tanh", True), ("tanh", True)]
    result = json.loads((run_dir / "evaluation" / "curve.json").read_text())
    pretrained = result["baselines"]["pretrained"]
    assert (pretrained["nonlinearity"], pretrained["normalize_actions"]) == ("relu", False)
    assert pretrained["run"] == str(plain) and pretrained["iteration"] == 2
    # Same held-out tasks, seeds and episode count: step 0 is the plain run evaluated alone.
    assert main(["evaluate", "--run", str(plain), "--num-tasks", "2", "--steps", "0",
                 "--output", str(tmp_path / "alone"), "--no-progress"]) == 0
    alone = json.loads((tmp_path / "alone" / "curve.json").read_text())
    assert result["methods"]["pretrained"]["mean"][0] == alone["methods"]["maml"]["mean"][0]


def test_a_cached_baseline_is_reused_only_for_the_same_policy(tmp_path):
    out = tmp_path / "evaluation"
    evaluate = ["evaluate", "--num-tasks", "2", "--steps", "1", "--baselines",
                "--baseline-iterations", "1", "--output", str(out), "--no-progress"]
    assert main(["maml_trpo", *TINY, "--output-dir", str(tmp_path / "tanh")]) == 0
    assert main(["maml_trpo", *TINY, "--nonlinearity", "relu", "--output-dir",
                 str(tmp_path / "relu")]) == 0
    tanh_run, relu_run = only_run_dir(tmp_path / "tanh"), only_run_dir(tmp_path / "relu")
    assert main([*evaluate, "--run", str(tanh_run)]) == 0
    assert main([*evaluate, "--run", str(tanh_run)]) == 0  # reused: still one of each
    assert len(list((out / "pretrained").glob("*/checkpoint.pt"))) == 1
    assert main([*evaluate, "--run", str(relu_run)]) == 0  # not the tanh one: trains its own
    assert len(list((out / "pretrained").glob("*/checkpoint.pt"))) == 2
    result = json.loads((out / "curve.json").read_text())
    assert {result["baselines"][kind]["nonlinearity"] for kind in ("pretrained", "oracle")} == {
        "relu"}


def test_evaluate_refuses_an_adapting_run_as_a_baseline_and_zero_baseline_iterations(
        tmp_path, capsys):
    assert main(["maml_trpo", *TINY, "--output-dir", str(tmp_path)]) == 0
    run_dir = only_run_dir(tmp_path)
    capsys.readouterr()
    assert main(["evaluate", "--run", str(run_dir), "--num-tasks", "2", "--steps", "1",
                 "--baselines", "--pretrained", str(run_dir), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "num_steps=1" in err and "a baseline is multi-task TRPO (num_steps: 0)" in err
    assert err.count("\n") == 1
    assert main(["evaluate", "--run", str(run_dir), "--baselines", "--baseline-iterations", "0",
                 "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "--baseline-iterations=0 must be >= 1" in err and err.count("\n") == 1
    assert not (run_dir / "evaluation" / "pretrained").exists()  # refused before any training


def test_a_plug_in_env_the_sampler_cannot_serve_exits_2_with_one_line(tmp_path, plugin_envs,
                                                                        capsys):
    out = tmp_path / "runs"
    # --num-workers 0: sharded over processes for a plug-in; refused before any worker starts
    assert main(["maml_trpo", "--env", "faulty_families:UnboundedLine", "--normalize-actions",
                 *TINY, "--num-workers", "0", "--output-dir", str(out)]) == 2
    err = capsys.readouterr().err
    assert "faulty_families:UnboundedLine has low=[-inf]" in err
    assert "--no-normalize-actions" in err and err.count("\n") == 1
    assert main(["maml_trpo", "--env", "faulty_families:MismatchedLine",
                 "--no-normalize-actions", *TINY, "--output-dir", str(out)]) == 2
    err = capsys.readouterr().err
    assert "batched env has observations of size 2" in err and err.count("\n") == 1
    assert not out.exists()  # no run directory left behind


def test_init_std_sets_the_initial_policy_and_stays_fixed_on_resume(tmp_path, capsys):
    import math

    from metarl.rl.config import MAMLTRPOConfig
    from metarl.rl.trainer import build_policy

    policy = build_policy(MAMLTRPOConfig(init_std=0.5), 2, 2)
    assert torch.allclose(policy.log_std, torch.full((2,), math.log(0.5)))
    assert main(["maml_trpo", *TINY, "--num-batches", "0", "--init-std", "0.25",
                 "--output-dir", str(tmp_path)]) == 0
    run_dir = only_run_dir(tmp_path)
    state = torch.load(run_dir / "checkpoint.pt", weights_only=True)
    assert state["config"]["init_std"] == 0.25
    assert torch.allclose(state["policy"]["log_std"], torch.full((2,), math.log(0.25)))
    capsys.readouterr()
    assert main(["maml_trpo", "--resume", str(run_dir), "--init-std", "1.0"]) == 2
    assert "init_std (saved 0.25, new 1.0)" in capsys.readouterr().err


def test_init_mean_scale_starts_the_mean_near_zero():
    from metarl.rl.config import MAMLTRPOConfig
    from metarl.rl.trainer import build_policy

    obs = torch.randn(256, 20, generator=torch.Generator().manual_seed(0)) * 3
    default = build_policy(MAMLTRPOConfig(), 20, 6)
    small = build_policy(MAMLTRPOConfig(init_mean_scale=0.01), 20, 6)
    torch.testing.assert_close(small.layers[-1].weight, default.layers[-1].weight * 0.01)
    torch.testing.assert_close(small.layers[0].weight, default.layers[0].weight)  # same seed
    with torch.no_grad():
        assert default(obs)[0].abs().mean() > 0.3
        assert small(obs)[0].abs().mean() < 0.01


def alive(pid: int) -> bool:
    """Whether process ``pid`` runs (a zombie, dead and not yet reaped, does not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def gone(pids: list[int], timeout_s: float = 10.0) -> bool:
    """Whether every process in ``pids`` has ended within ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while any(alive(pid) for pid in pids):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


WORKERS = [*TINY, "--checkpoint-every", "1", "--num-workers", "2"]  # two iterations


def test_sigterm_stops_the_workers_and_says_how_to_resume(tmp_path, capsys, monkeypatch):
    from metarl.rl.trainer import MetaRLTrainer

    real_step, workers = MetaRLTrainer.step, []

    def terminated_at_the_first_step(self):
        workers.extend(self.sampler.pids)
        os.kill(os.getpid(), signal.SIGTERM)  # the handler raises on return from the call
        return real_step(self)

    monkeypatch.setattr(MetaRLTrainer, "step", terminated_at_the_first_step)
    assert main(["maml_trpo", *WORKERS, "--output-dir", str(tmp_path)]) == 143
    run_dir = only_run_dir(tmp_path)
    err = capsys.readouterr().err
    assert err.endswith(f"interrupted; no checkpoint was written yet in {run_dir}, so there is "
                        f"nothing to resume\n")
    assert len(workers) == 2 and gone(workers)


def test_a_dead_worker_is_one_line_with_the_resume_hint(tmp_path, capsys, monkeypatch):
    from metarl.rl.trainer import MetaRLTrainer

    real_step, killed = MetaRLTrainer.step, []

    def a_worker_killed_at_the_second_step(self):
        if self.iteration == 1 and not killed:
            killed.append(self.sampler.pids[1])
            os.kill(killed[0], signal.SIGKILL)
            assert gone(killed)
        return real_step(self)

    monkeypatch.setattr(MetaRLTrainer, "step", a_worker_killed_at_the_second_step)
    assert main(["maml_trpo", *WORKERS, "--output-dir", str(tmp_path)]) == 1
    run_dir = only_run_dir(tmp_path)
    err = capsys.readouterr().err
    last = err.splitlines()[-1]
    assert last.startswith("error: sampler worker 1 ") and "killed by signal SIGKILL" in last
    assert last.endswith(f"the last checkpoint is intact: continue with --resume {run_dir}")
    assert "Traceback" not in err and err.count("\n") == 2  # the run directory, the error
    assert main(["maml_trpo", "--resume", str(run_dir), "--no-progress"]) == 0  # from 1 to 2
    assert torch.load(run_dir / "checkpoint.pt", weights_only=True)["iteration"] == 2


def test_resume_refuses_a_config_yaml_edited_outside_what_may_change(tmp_path, capsys):
    assert main(["maml_trpo", *TINY, "--output-dir", str(tmp_path)]) == 0
    run_dir = only_run_dir(tmp_path)
    config = run_dir / "config.yaml"
    config.write_text(config.read_text().replace("max_kl: 0.01", "max_kl: 0.05").replace(
        "num_workers: 1", "num_workers: 2"))
    capsys.readouterr()
    assert main(["maml_trpo", "--resume", str(run_dir), "--num-batches", "3"]) == 2
    err = capsys.readouterr().err
    assert "was edited to max_kl=0.05 (checkpoint: 0.01)" in err and "num_workers=" not in err
    assert err.count("\n") == 1


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (children, their children, ...), read from /proc."""
    parents = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        parents[int(stat.parent.name)] = int(fields[1])
    found, frontier = [], [pid]
    while frontier:
        children = [child for child, parent in parents.items() if parent in frontier]
        found += children
        frontier = children
    return found


@pytest.mark.slow
def test_sigterm_to_the_process_group_stops_the_run_and_every_worker(tmp_path):
    """As ``timeout`` or a job scheduler does it: the run, its forkserver and its workers all
    get SIGTERM at once."""
    command = [sys.executable, "-m", "metarl.run", "maml_trpo", "--env", "cheetah_vel", *TINY,
               "--num-batches", "1000", "--checkpoint-every", "1", "--num-workers", "2",
               "--output-dir", str(tmp_path)]
    with subprocess.Popen(command, start_new_session=True, stderr=subprocess.PIPE,
                          text=True) as process:
        deadline = time.monotonic() + 120
        while not list(tmp_path.glob("*/checkpoint.pt")) and time.monotonic() < deadline:
            time.sleep(0.2)
        below = descendants(process.pid)
        os.killpg(process.pid, signal.SIGTERM)
        assert process.wait(timeout=60) == 143
        err = process.stderr.read()
    run_dir = only_run_dir(tmp_path)
    assert err.splitlines()[-1] == (f"interrupted; the last checkpoint is intact: continue "
                                    f"with --resume {run_dir}")
    assert "Traceback" not in err
    assert len(below) >= 2 and gone(below)
