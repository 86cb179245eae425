"""Plug-in families that break the protocol, and --env names of no valid form: one line naming
the family and the method at fault (or the valid forms), exit status 2, no traceback."""

import numpy as np
import pytest

from metarl import envs
from metarl.run import main

TINY = ["--num-batches", "1", "--meta-batch-size", "2", "--fast-batch-size", "1",
        "--hidden-sizes", "4", "--cg-iters", "1", "--num-workers", "1", "--torch-threads", "1",
        "--no-normalize-actions", "--no-progress"]


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("\n") == 1, err
    assert err.startswith("error: ")
    return err[len("error: "):].rstrip("\n")


def refused_before_any_run_directory(env: str, tmp_path, capsys) -> str:
    """The one error line of a maml_trpo run on ``env``, which must stop with exit status 2
    before it writes anything."""
    out = tmp_path / "runs"
    assert main(["maml_trpo", "--env", env, *TINY, "--output-dir", str(out)]) == 2
    line = one_error_line(capsys)
    assert not out.exists()
    return line


@pytest.mark.parametrize(("name", "says"), [
    ("NoTasks", "sample_tasks(2) returned 0 tasks; it must return a list of exactly 2 task dicts"),
    ("TooFewTasks", "sample_tasks(2) returned 1 task; it must return a list of exactly 2 task "
                    "dicts"),
    ("NoneTasks", "sample_tasks(2) returned None, not a list; it must return a list of exactly "
                  "2 task dicts"),
    ("NotDictTasks", "sample_tasks(2) returned 0.0 as task 0, not a dict; it must return a list "
                     "of exactly 2 task dicts"),
    ("RefusedTasks", "sample_tasks(2) returned task 0 = {'target': 'far'}, which its own "
                     "set_task refuses: task['target'] must be a float"),
])
def test_a_sample_tasks_that_breaks_the_protocol_is_one_line_before_any_run_directory(
        tmp_path, capsys, plugin_envs, name, says):
    line = refused_before_any_run_directory(f"faulty_families:{name}", tmp_path, capsys)
    assert line.startswith(f"faulty_families:{name}: {says}")


@pytest.mark.parametrize(("name", "method"), [("NanResetLine", "reset"),
                                              ("NanRewardLine", "step"),
                                              ("HugeObsLine", "step")])
def test_an_env_that_returns_nan_is_one_line_naming_the_family_and_method(tmp_path, capsys,
                                                                          plugin_envs, name,
                                                                          method):
    assert main(["maml_trpo", "--env", f"faulty_families:{name}", *TINY,
                 "--output-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if not line.startswith("run directory:")]
    assert "Traceback" not in err and len(lines) == 1
    assert lines[0].startswith(f"error: faulty_families:{name}: {method} returned non-finite "
                               f"(NaN/inf, or beyond float32's ±3.4e38) observations or rewards in 2 of 2 instances")


@pytest.mark.parametrize("name", [":", ".mod:X", "mod:", "a b", "x:Y:Z", "metarl.envs:"])
def test_an_env_name_of_no_valid_form_lists_the_valid_forms(tmp_path, capsys, name):
    assert main(["maml_trpo", "--env", name, *TINY, "--output-dir", str(tmp_path)]) == 2
    line = one_error_line(capsys)
    assert line.startswith(f"invalid env {name!r}; known task families: navigation_2d, ")
    assert ("valid forms: a known name, a Gymnasium id of a task env such as "
            "metarl/Navigation2D-v0, or package.module:ClassName of a task env") in line
    with pytest.raises(envs.UnknownEnvError, match="invalid env"):
        envs.resolve(name)


@pytest.mark.parametrize(("name", "says"), [
    ("BrokenInit", "__init__ raised RuntimeError: no licence file"),
    ("BrokenSampleTasks", "sample_tasks(2) raised ZeroDivisionError: integer division or modulo "
                          "by zero"),
    ("BrokenSetTask", "sample_tasks(2) returned task 0 = {'target': 0.0}, which its own set_task "
                      "refuses: AttributeError: 'NoneType' object has no attribute 'target'"),
    ("KeyErrorSetTask", "sample_tasks(2) returned task 0 = {'target': 0.0}, which its own "
                        "set_task refuses: KeyError: 'goal'"),
    ("CrashingStep", "step raised KeyError: 'velocity'"),
    ("FourTupleStep", "step returned 4 values, the old gym API's (obs, reward, done, info); "
                      "Gymnasium's step returns 5: (obs, reward, terminated, truncated, info)"),
    ("WrongSizeStep", "step returned observations of [3] values; its observation_space holds 1"),
    ("VectorReward", "step returned the reward array([-1., -2.]); a reward must be one real "
                     "number"),
    ("NoneReward", "step returned the reward None; a reward must be one real number"),
    ("ListInfo", "step returned info []; info must be a dict"),
])
def test_a_family_whose_own_code_fails_is_one_line_naming_it_and_the_method(
        tmp_path, capsys, plugin_envs, name, says):
    for workers in ("0", "2"):  # in the process, and through sampler workers
        assert main(["maml_trpo", "--env", f"faulty_families:{name}", *TINY,
                     "--num-workers", workers, "--output-dir", str(tmp_path)]) == 2
        err = capsys.readouterr().err
        lines = [line for line in err.splitlines() if not line.startswith("run directory:")]
        assert "Traceback" not in err and len(lines) == 1, err
        assert lines[0] == f"error: faulty_families:{name}: {says}"


@pytest.mark.parametrize(("env", "says"), [
    ("faulty_families:NoObservationSpace", "faulty_families:NoObservationSpace: the env's "
     "observation_space is None, not a gymnasium space (set a gymnasium.spaces.Box in its "
     "__init__)"),
    ("faulty_families:ZeroHorizon", "'faulty_families:ZeroHorizon': horizon = 0 is not an "
     "episode length (the steps of one episode: an int >= 1)"),
    ("faulty_families:TextHorizon", "'faulty_families:TextHorizon': horizon = '20' is not an "
     "episode length"),
    ("faulty_families:NotAnEnv", "is not a task family: it is not a subclass of gymnasium.Env"),
    ("faulty_families:not_a_class", "unknown env 'faulty_families:not_a_class': "
     "faulty_families.not_a_class is a function, not a class; name the task env class"),
    ("faulty_families.DivergingLine", "unknown env 'faulty_families.DivergingLine' (a class in a "
     "module is named module:Class: did you mean 'faulty_families:DivergingLine'?)"),
    ("faulty_familis:DivergingLine", "cannot import module 'faulty_familis' (No module named "
     "'faulty_familis'; is its folder the current directory or on PYTHONPATH?)"),
    ("faulty_families:WordTasks+oracle", "faulty_families:WordTasks+oracle: an oracle observes "
     "numeric task values (numbers or arrays of numbers); got task {'target': 0.0, 'corner': "
     "'ne'}"),
    ("faulty_families:RefusedDefaultTask+oracle", "faulty_families:RefusedDefaultTask: set_task "
     "raised ValueError: task['target'] must be a float"),
])
def test_a_class_that_is_no_task_family_is_one_line_before_any_run_directory(
        tmp_path, capsys, plugin_envs, env, says):
    assert says in refused_before_any_run_directory(env, tmp_path, capsys)


def test_a_bool_reward_is_a_number(plugin_envs):
    batch = envs.make_batched("faulty_families:BoolReward", 2)
    batch.set_tasks([{"target": 0.0}] * 2)
    batch.reset([0, 1])
    rewards = [batch.step(np.zeros((2, 1)))[1].tolist() for _ in range(2)]
    assert rewards == [[1.0, 1.0], [0.0, 0.0]]


def test_the_oracle_leaves_a_task_the_caller_gave_to_the_caller(plugin_envs):
    with pytest.raises(ValueError, match="task\\['target'\\] must be a float") as refused:
        envs.make("faulty_families:RefusedDefaultTask+oracle", task={"target": "far"})
    assert not isinstance(refused.value, envs.NotATaskFamilyError)
