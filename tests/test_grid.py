"""``experiments/grid.py``: a tiny grid on the tests' two-node Ray cluster; bad input."""

import _thread
import json
import os
import signal
import sys
import threading
import time

import pytest
import torch
from run_helpers import one_error_line

from metarl import experiment

#: A tiny grid without its budget, for tests that set their own.
TINY_RUNS = ["--envs", "navigation_2d", "--set", "meta_batch_size=2", "--set", "fast_batch_size=2",
             "--set", "hidden_sizes=8,8", "--set", "cg_iters=2", "--num-tasks", "2",
             "--episodes-per-task", "2", "--cpus-per-run", "1"]
TINY = [*TINY_RUNS, "--set", "num_batches=2"]


@pytest.fixture(scope="module")
def grid(experiment_script):
    return experiment_script("grid")


def iteration(run_dir) -> int:
    return torch.load(f"{run_dir}/checkpoint.pt", weights_only=True)["iteration"]


def test_a_grid_trains_resumes_tabulates_then_skips_what_is_done(grid, ray_cluster, tmp_path,
                                                                  capsys):
    argv = [*TINY, "--seeds", "0", "1", "2", "--output-dir", str(tmp_path),
            "--ray-address", ray_cluster.address]
    fresh, stopped, corrupt = grid.plan(grid.parse_args(argv))
    assert fresh["name"] == ("maml_trpo__navigation_2d__seed0__cg_iters=2__fast_batch_size=2"
                             "__hidden_sizes=8-8__meta_batch_size=2")
    # seed 1 stopped after its first iteration; seed 2's checkpoint is junk
    first = experiment.make_config("maml_trpo", **{**stopped["options"], "num_batches": 1})
    experiment.train(first, run_dir=stopped["run_dir"])
    (tmp_path / corrupt["name"]).mkdir()
    (tmp_path / corrupt["name"] / "checkpoint.pt").write_bytes(b"junk")

    assert grid.main(argv) == 1  # one run failed, the others went on
    out = capsys.readouterr()
    records = json.loads((tmp_path / "grid_results.json").read_text())
    assert [r["status"] for r in records] == ["trained", "resumed at iteration 1", "failed"]
    assert len({r["node_id"] for r in records}) == 2  # spread over both nodes
    assert "checkpoint" in records[2]["error"] and "Traceback" not in records[2]["error"]
    assert iteration(fresh["run_dir"]) == iteration(stopped["run_dir"]) == 2
    table = (tmp_path / "grid_table.md").read_text()
    assert table in out.out and "| mean of 2 |" in table and "| seed 1 | 2 |" in table
    assert f"- {corrupt['name']}: " in table and "1 of 3 runs failed" in out.err

    assert grid.main([*argv[:-2], "--dry-run"]) == 0  # as this machine's files say
    assert capsys.readouterr().out.startswith(f"done: {fresh['name']}\ndone: {stopped['name']}")
    assert grid.main(argv) == 1  # again: the two done runs are skipped
    records = json.loads((tmp_path / "grid_results.json").read_text())
    assert [r["status"] for r in records] == ["done", "done", "failed"]
    assert (tmp_path / "grid_table.md").read_text() == table
    assert grid.main([*argv, "--num-tasks", "3"]) == 1  # another protocol: evaluated again
    records = json.loads((tmp_path / "grid_results.json").read_text())
    assert [r["status"] for r in records] == ["evaluated", "evaluated", "failed"]
    assert [r["curve"]["num_tasks"] for r in records[:2]] == [3, 3]


@pytest.mark.parametrize("flags, message", [
    (["--envs", "nope"], "unknown env 'nope'; known task families: navigation_2d"),
    (["--envs", "navigation_2d", "--set", "speed=1"], "unknown option(s) speed"),
    (["--envs", "navigation_2d", "--grid", "fast_lr=0.1,-1"], "fast_lr=-1.0 must be > 0"),
    (["--envs", "navigation_2d", "--set", "seed=3"], "seed: set by this script"),
    (["--envs", "navigation_2d", "--set", "resume=x"], "resume: set by this script"),
    (["--envs", "navigation_2d", "--set", "config_file=x.yaml"], "config_file: set by this"),
    (["--envs", "navigation_2d", "--seeds", "0", "1", "0"], "--seeds 0 1 0: 0 given more than once"),
    (["--envs", "navigation_2d", "navigation_2d"], "navigation_2d given more than once"),
    (["--algo", "maml", "maml", "--tasks", "sine"], "--algo maml maml: maml given more than once"),
    (["--envs", "navigation_2d", "--set", "fast_lr=0.1", "--set", "fast-lr=0.2"],
     "--set fast_lr: given twice; give it once"),
    (["--envs", "navigation_2d", "--grid", "fast_lr=0.1", "--grid", "fast_lr=0.2"],
     "--grid fast_lr: given twice; give it once with every value, V1,V2,..."),
    (["--envs", "navigation_2d", "--gpus-per-run", "1"], "--gpus-per-run 1 with device='cpu': "
                                                         "the runs would hold GPUs"),
    (["--envs", "navigation_2d", "--grid", "num_batches=1,2"], "give it with --set"),
    (["--envs", "navigation_2d", "--ray-address", "nowhere"], "is not valid; give auto"),
    (["--tasks", "sine"], "--tasks is for the other algorithm; maml_trpo takes --envs"),
    (["--algo", "maml_trpo", "protonet", "--envs", "navigation_2d"],
     "--algo maml_trpo protonet: some take --envs and some --tasks"),
    (["--algo", "protonet", "maml", "--tasks", "sine"], "protonet cannot do task='sine'"),
    (["--envs", "navigation_2d", "--set", "device=auto"], "device='auto' needs GPUs: give "
                                                          "--gpus-per-run"),
    (["--envs", "navigation_2d", "--set", "sampler=ray"], "sampler='ray': a grid's runs sample"),
    (["--envs", "navigation_2d", "--set", "ray_actors=2"], "ray_actors: settings of the Ray "
                                                           "sampler, which a grid's runs do not"),
    (["--envs", "cheetah_vel", "--set", "env_options={frame_skip: 0}"], "frame_skip"),
    (["--envs", "cheetah_vel", "--set", "env_options={gravity: 1}"], "valid env options"),
    (["--algo", "rl2", "--envs", "navigation_2d", "--episodes-per-task", "2"],
     "--episodes-per-task is not for rl2 runs (their evaluation takes no test batches); it is "
     "for maml_trpo, promp"),
    (["--algo", "protonet", "--tasks", "omniglot", "--episodes-per-task", "2"],
     "--episodes-per-task is not for protonet runs"),
])
def test_bad_input_stops_with_one_line_before_anything_starts(grid, tmp_path, capsys, flags,
                                                              message):
    with pytest.raises(SystemExit) as stop:
        status = grid.main([*flags, "--output-dir", str(tmp_path / "out")])
        raise SystemExit(status)
    assert stop.value.code == 2
    line = one_error_line(capsys)
    assert line.startswith("grid.py: error: ") and message in line
    assert not (tmp_path / "out").exists()


def test_more_gpus_per_run_than_any_node_has_stops_before_a_run_waits_for_one(
        grid, ray_cluster, tmp_path, capsys):
    assert grid.main([*TINY, "--set", "device=auto", "--gpus-per-run", "1",
                      "--output-dir", str(tmp_path)]) == 2
    assert one_error_line(capsys) == ("grid.py: error: --gpus-per-run 1: no node of the cluster "
                                      "has that many GPUs (the most: 0)")
    assert not list(tmp_path.iterdir())


def test_an_output_dir_that_is_a_file_stops_before_anything_starts(grid, tmp_path, capsys):
    (tmp_path / "file").write_text("")
    assert grid.main([*TINY, "--output-dir", str(tmp_path / "file" / "grid")]) == 2
    assert "is a file, not a folder" in one_error_line(capsys)


def test_without_ray_it_names_the_extra_to_install(grid, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray raises ImportError
    assert grid.main([*TINY, "--output-dir", str(tmp_path)]) == 2
    line = one_error_line(capsys)
    assert line.startswith("grid.py: error: grid.py needs Ray, which is not installed")
    assert line.endswith('install it with: pip install -e ".[ray]"')


@pytest.mark.parametrize("stop, status", [(_thread.interrupt_main, 130),
                                          (lambda: os.kill(os.getpid(), signal.SIGTERM), 143)],
                         ids=["ctrl-c", "sigterm"])
def test_a_stop_cancels_the_runs_and_a_rerun_resumes_them(grid, ray_cluster, tmp_path, capsys,
                                                          stop, status):
    argv = [*TINY_RUNS, "--set", "checkpoint_every=1", "--output-dir", str(tmp_path),
            "--ray-address", ray_cluster.address]
    budget = ["--set", "num_batches=100000"]
    (run,) = grid.plan(grid.parse_args([*argv, *budget]))
    checkpoint = tmp_path / run["name"] / "checkpoint.pt"

    def interrupt_after_a_checkpoint():
        deadline = time.monotonic() + 60
        while not checkpoint.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        stop()

    threading.Thread(target=interrupt_after_a_checkpoint, daemon=True).start()
    assert grid.main([*argv, *budget]) == status
    assert "interrupted: the runs were cancelled" in capsys.readouterr().err
    stopped_at = iteration(tmp_path / run["name"])
    time.sleep(1.0)
    assert iteration(tmp_path / run["name"]) == stopped_at  # the task no longer trains

    assert grid.main([*argv, "--set", f"num_batches={stopped_at + 1}"]) == 0
    (record,) = json.loads((tmp_path / "grid_results.json").read_text())
    assert record["status"] == f"resumed at iteration {stopped_at}"


def test_a_dry_run_lists_supervised_runs_without_ray(grid, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    argv = ["--algo", "maml", "--tasks", "sine", "--seeds", "0", "1", "--grid",
            "hidden_sizes=[40,40],[80,80]", "--output-dir", str(tmp_path), "--dry-run"]
    assert grid.main(argv) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[:2] == ["new: maml__sine__seed0__hidden_sizes=40-40",
                         "new: maml__sine__seed1__hidden_sizes=40-40"]
    assert lines[-1] == f"4 runs under {tmp_path}" and list(tmp_path.iterdir()) == []


def test_a_mapping_option_names_one_run_whatever_its_key_order(grid):
    one = grid.value_text({"timestep": 0.02, "frame_skip": 1})
    assert one == grid.value_text({"frame_skip": 1, "timestep": 0.02}) == (
        "frame_skip=1-timestep=0.02")


def test_several_algorithms_make_one_grid_named_by_algorithm(grid, tmp_path, capsys):
    assert grid.main(["--algo", "maml_trpo", "promp", "rl2", "--envs", "navigation_2d",
                      "--seeds", "0", "1", "--set", "num_batches=1", "--dry-run",
                      "--output-dir", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[:-1] == [f"new: {algo}__navigation_2d__seed{seed}"
                          for algo in ("maml_trpo", "promp", "rl2") for seed in (0, 1)]
    specs = grid.plan(grid.parse_args(["--algo", "promp", "rl2", "--envs", "navigation_2d",
                                       "--output-dir", str(tmp_path)]))
    # RL² is evaluated on its trials' episodes: no test batches of the paper's protocol
    assert "env_steps_per_task" in specs[0]["evaluation"]
    assert "env_steps_per_task" not in specs[1]["evaluation"]
    assert [s["group"] for s in specs] == ["promp, navigation_2d", "rl2, navigation_2d"]


def test_a_second_grid_in_the_same_folder_keeps_the_first_grids_records(grid, tmp_path):
    def spec(name: str) -> dict:
        return {"name": name, "family": "sine", "seed": 0, "options": {}, "group": "g"}

    def failed(name: str) -> dict:
        return {"name": name, "status": "failed", "error": "x"}

    for name in ("a", "b", "gone"):
        (tmp_path / name).mkdir()
    grid.write_outputs(tmp_path, [spec("a"), spec("b"), spec("gone")],
                       [failed("a"), failed("b"), failed("gone")])
    (tmp_path / "gone").rmdir()
    grid.write_outputs(tmp_path, [spec("b"), spec("c")],
                       [{"name": "b", "status": "done"}, failed("c")])
    records = json.loads((tmp_path / "grid_results.json").read_text())
    assert [(r["name"], r["status"]) for r in records] == [
        ("a", "failed"), ("b", "done"), ("c", "failed")]
    (tmp_path / "grid_results.json").write_text("not json")  # unreadable: this grid's only
    grid.write_outputs(tmp_path, [spec("c")], [failed("c")])
    assert [r["name"] for r in json.loads((tmp_path / "grid_results.json").read_text())] == ["c"]


def test_a_table_that_cannot_be_written_is_one_line_and_keeps_the_earlier_one(
        grid, tmp_path, capsys, monkeypatch):
    from metarl.files import WriteError

    class Runtime:  # a one-node cluster, no Ray needed: the runs are stubbed out below
        ray = type("Ray", (), {"nodes": staticmethod(
            lambda: [{"Alive": True, "Resources": {"CPU": 2.0}}])})

        def __init__(self, *args, **kwargs):
            pass

        def close(self):
            pass

    def no_space(path, mode="wb"):
        raise WriteError(f"could not write {path}: No space left on device")

    monkeypatch.setattr(grid, "RayRuntime", Runtime)
    monkeypatch.setattr(grid, "run_all", lambda ray, specs, cpus, gpus: [
        {"name": s["name"], "status": "failed", "error": "x"} for s in specs])
    monkeypatch.setattr(grid, "atomic_open", no_space)
    (tmp_path / "grid_table.md").write_text("earlier")
    assert grid.main([*TINY, "--output-dir", str(tmp_path)]) == 1
    assert one_error_line(capsys).startswith("grid.py: error: could not write ")
    assert (tmp_path / "grid_table.md").read_text() == "earlier"
