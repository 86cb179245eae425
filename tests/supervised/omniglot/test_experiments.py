"""experiments/reproduce_omniglot.sh and experiments/omniglot_table.py, without training: the
script runs against a stand-in ``python`` that logs its arguments and writes the files the real
commands would."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

EXPERIMENTS = Path(__file__).resolve().parents[3] / "experiments"

FAKE_PYTHON = """#!/usr/bin/env bash
echo "$*" >> "$FAKE_LOG"
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
    if [ "${args[$i]}" = "--output-dir" ]; then
        run="${args[$((i + 1))]}/maml__omniglot__0__20990101-000000"
        mkdir -p "$run" && touch "$run/config.yaml" "$run/checkpoint.pt"
    fi
done
if [ "$3" = "evaluate" ]; then mkdir -p "$5/evaluation" && touch "$5/evaluation/curve.json"; fi
"""


def write_run(out: Path, setting: str, config: dict, curve: dict,
              name: str = "maml__omniglot__0__20261123-160000") -> None:
    run = out / setting / name
    (run / "evaluation").mkdir(parents=True)
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    (run / "evaluation" / "curve.json").write_text(json.dumps(curve))


def test_table_labels_rows_with_the_evaluated_ways_and_shots(tmp_path, experiment_script):
    methods = {"maml": {"mean": [0.2, 0.9], "ci95": [0.01, 0.02]}}
    config = {"ways": 5, "shots": 1, "meta_batch_size": 8}
    # evaluate --shots 5 on a 1-shot run: the curve is 5-shot.
    write_run(tmp_path, "5way1shot", config,
              {"iteration": 10, "ways": 5, "shots": 5, "methods": methods})
    # A curve.json from before the ways were recorded: the run's config fills in.
    write_run(tmp_path, "20way1shot", {**config, "ways": 20},
              {"iteration": 20, "shots": 1, "methods": methods})
    lines = experiment_script("omniglot_table").rows(tmp_path)
    assert lines[2] == "| 5-way 5-shot | MAML (ours) | 10 × 8 | 20.0 ± 1.0 | 90.0 ± 2.0 |"
    assert lines[3].startswith("| 20-way 1-shot | MAML (ours) | 20 × 8 |")


def test_table_takes_the_latest_evaluated_run_and_names_a_newer_one_without(
        tmp_path, experiment_script, capsys):
    methods = {"maml": {"mean": [0.2, 0.9], "ci95": [0.01, 0.02]}}
    write_run(tmp_path, "5way1shot", {"ways": 5, "shots": 1, "meta_batch_size": 8},
              {"iteration": 10, "methods": methods})
    newer = tmp_path / "5way1shot" / "maml__omniglot__0__20261124-090000"
    newer.mkdir()  # still training: no evaluation yet
    assert experiment_script("omniglot_table").main([str(tmp_path)]) == 0
    captured = capsys.readouterr()
    assert "| 5-way 1-shot | MAML (ours) | 10 × 8 | 20.0 ± 1.0 | 90.0 ± 2.0 |" in captured.out
    assert f"note: {newer} has no evaluation/curve.json" in captured.err


@pytest.mark.parametrize("curve, config, said", [
    ('{"iteration": 5, "methods": {"maml": {"mean": [NaN, 0.5], "ci95": [0.1, 0.1]}}}',
     {"ways": 5, "shots": 1, "meta_batch_size": 8}, "the 'mean' of 'maml' holds nan"),
    ('{"iter', {"ways": 5, "shots": 1, "meta_batch_size": 8}, "is not readable JSON"),
    ('{"iteration": 5, "methods": {"maml": {"mean": [0.5], "ci95": [0.1]}}}', {"ways": 5},
     "config.yaml has no meta_batch_size, shots"),
])
def test_table_names_a_broken_file_in_one_line(tmp_path, experiment_script, curve, config,
                                               said):
    write_run(tmp_path, "5way1shot", config, {})
    (tmp_path / "5way1shot" / "maml__omniglot__0__20261123-160000" / "evaluation"
     / "curve.json").write_text(curve)
    with pytest.raises(SystemExit, match=said):
        experiment_script("omniglot_table").main([str(tmp_path)])


def test_table_takes_one_existing_folder(tmp_path, experiment_script, capsys):
    script = experiment_script("omniglot_table")
    with pytest.raises(SystemExit, match="nowhere: no such folder"):
        script.main([str(tmp_path / "nowhere")])
    assert script.main([str(tmp_path)]) == 1
    assert "error: no evaluated runs under" in capsys.readouterr().err
    with pytest.raises(SystemExit) as stop:
        script.main(["--help"])
    assert stop.value.code == 0 and "usage: " in capsys.readouterr().out


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_reproduce_script_checkpoints_often_and_restarts_runs_without_a_checkpoint(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python").write_text(FAKE_PYTHON)
    (bin_dir / "python").chmod(0o755)
    out = tmp_path / "out"
    stopped = out / "5way1shot" / "maml__omniglot__0__20261123-150000"  # config, no checkpoint
    stopped.mkdir(parents=True)
    (stopped / "config.yaml").write_text("task: omniglot\n")
    unfinished = out / "5way5shot" / "maml__omniglot__0__20261123-150000"
    unfinished.mkdir(parents=True)
    (unfinished / "checkpoint.pt").write_text("")
    log = tmp_path / "log"
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
           "FAKE_LOG": str(log)}
    result = subprocess.run(["bash", str(EXPERIMENTS / "reproduce_omniglot.sh"), "DATA", str(out)],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    calls = log.read_text().splitlines()
    trains = [c for c in calls if c.startswith("-m metarl.run maml")]
    assert len(trains) == 3 and all("--checkpoint-every 100" in c for c in trains)
    assert not stopped.exists() and f"{stopped}: stopped before its first checkpoint" in result.stderr
    assert trains[0].startswith(f"-m metarl.run maml --task omniglot --data-dir DATA "
                                f"--output-dir {out / '5way1shot'}")
    assert trains[1].startswith(f"-m metarl.run maml --resume {unfinished} --num-batches 2000")
    assert "--meta-batch-size 4" in trains[2]
    assert sum(c.startswith("-m metarl.run evaluate") for c in calls) == 3
