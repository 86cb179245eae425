"""Task sampling (reproducible, inside the distribution) and task validation errors."""

import numpy as np
import pytest

from metarl import envs
from metarl.envs.tasks import TaskError

DISTRIBUTIONS = {  # docs/tasks.md
    "navigation_2d": ("goal", -0.5, 0.5),
    "cheetah_vel": ("velocity", 0.0, 2.0),
    "cheetah_dir": ("direction", None, None),
    "ant_vel": ("velocity", 0.0, 3.0),
    "ant_dir": ("direction", None, None),
    "ant_goal": ("goal", -3.0, 3.0),
}


@pytest.mark.parametrize("name", list(DISTRIBUTIONS))
def test_sample_tasks_reproducible_and_in_distribution(name):
    key, low, high = DISTRIBUTIONS[name]
    env = envs.make(name).unwrapped
    env.reset(seed=3)
    tasks = env.sample_tasks(400)
    env.reset(seed=3)
    assert env.sample_tasks(400) == tasks
    assert envs.sample_tasks(name, 400, seed=3) == envs.sample_tasks(name, 400, seed=3)
    assert envs.sample_tasks(name, 5, seed=3) != envs.sample_tasks(name, 5, seed=4)
    assert all(set(task) == {key} for task in tasks)
    values = np.array([task[key] for task in tasks])
    if low is None:
        assert set(values.tolist()) == {-1.0, 1.0}
        assert 0.4 < np.mean(values == 1.0) < 0.6
    else:
        assert values.min() >= low and values.max() <= high
        assert values.min() < low + 0.1 * (high - low) and values.max() > high - 0.1 * (high - low)
    for task in tasks[:5]:
        env.set_task(task)  # sampled tasks are valid tasks
        assert env.task == task


BAD_TASKS = [
    ("cheetah_vel", {"velocity": 2.5}, r"'velocity'.*outside.*\[0, 2\]"),
    ("cheetah_vel", {"velocity": -0.1}, r"outside"),
    ("cheetah_vel", {"velocity": float("nan")}, r"finite"),
    ("cheetah_vel", {"velocity": "fast"}, r"'velocity'"),
    ("cheetah_vel", {"velocity": [1.0]}, r"'velocity'\] must be a float"),
    ("cheetah_vel", {"speed": 1.0}, r"missing keys \['velocity'\].*unexpected keys \['speed'\]"),
    ("cheetah_vel", {"velocity": 1.0, "extra": 0}, r"unexpected keys \['extra'\]"),
    ("cheetah_dir", {"direction": 0.5}, r"'direction'\] must be one of -1, 1"),
    ("cheetah_dir", {"direction": True}, r"'direction'"),
    ("ant_goal", {"goal": [1.0, 4.0]}, r"outside.*\[-3, 3\]"),
    ("ant_goal", {"goal": [1.0]}, r"'goal'\] must be 2 floats"),
    ("navigation_2d", {"goal": 0.2}, r"'goal'\] must be 2 floats"),
    ("navigation_2d", [0.1, 0.2], r"must be a dict"),
]


@pytest.mark.parametrize(("name", "task", "message"), BAD_TASKS)
def test_bad_task_raises_clear_error(name, task, message):
    env = envs.make(name).unwrapped
    with pytest.raises(TaskError, match=message) as error:
        env.set_task(task)
    assert isinstance(error.value, ValueError)
    with pytest.raises(TaskError, match=message):
        envs.make(name, task=task)


def test_set_tasks_needs_one_task_per_instance():
    batch = envs.make_batched("navigation_2d", 3)
    with pytest.raises(ValueError, match="needs 3 tasks"):
        batch.set_tasks([{"goal": [0.0, 0.0]}] * 2)
    with pytest.raises(RuntimeError, match="set_tasks"):
        batch.reset(seeds=[0, 1, 2])


def test_tasks_are_plain_values():
    task = envs.make("ant_goal").unwrapped
    task.set_task({"goal": np.array([1, 2])})
    assert task.task == {"goal": [1.0, 2.0]} and type(task.task["goal"][0]) is float
