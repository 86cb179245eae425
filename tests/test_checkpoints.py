"""Checkpoints: unreadable, altered or malformed files are one-line errors; loading a run never
imports code the command line did not name."""

import dataclasses
import random
import re
import shutil
import sys
from pathlib import Path

import pytest
import torch
import yaml
from run_helpers import one_error_line

from metarl.checkpoint_format import check_run_state, run_schemas, state_digest
from metarl.rl.config import MAMLTRPOConfig
from metarl.rl.policy import GaussianMLPPolicy
from metarl.run import main
from metarl.runs import (
    CheckpointError,
    load_checkpoint,
    load_optimizer_strict,
    load_run_checkpoint,
    save_checkpoint,
)

REPO = Path(__file__).resolve().parents[1]
SINE = ["--task", "sine", "--num-batches", "2", "--meta-batch-size", "2", "--eval-every", "0",
        "--checkpoint-every", "1", "--no-progress"]


@pytest.fixture(scope="module")
def sine_run(tmp_path_factory) -> Path:
    """A finished two-iteration sine run (copy it before changing it)."""
    root = tmp_path_factory.mktemp("sine")
    assert main(["maml", *SINE, "--output-dir", str(root)]) == 0
    (run_dir,) = root.iterdir()
    return run_dir


@pytest.fixture
def sine_copy(sine_run, tmp_path) -> Path:
    return Path(shutil.copytree(sine_run, tmp_path / sine_run.name))


def rl_state(env: str = "navigation_2d") -> dict:
    """What ``MetaRLTrainer.state()`` holds for a tiny policy on ``env`` (built without the
    env: 2 observations, 2 actions)."""
    config = MAMLTRPOConfig(env=env, hidden_sizes=(8, 8))
    policy = GaussianMLPPolicy(2, 2, hidden_sizes=(8, 8))
    return {"algo": "maml_trpo", "policy": policy.state_dict(), "iteration": 1,
            "config": dataclasses.asdict(config)}


# --- unreadable files --------------------------------------------------------------------------

@pytest.mark.parametrize("junk", [b"junk\n", b"", b"PK\x03\x04" + bytes(40), b"\x80\x02}q\x00.",
                                  bytes(range(256)) * 3], ids=["text", "empty", "zip-header",
                                                               "pickled-dict", "binary"])
def test_junk_is_a_checkpoint_error(tmp_path, junk):
    path = tmp_path / "checkpoint.pt"
    path.write_bytes(junk)
    with pytest.raises(CheckpointError, match="corrupt or unreadable|does not hold a dict") as raised:
        load_checkpoint(path)
    assert len(str(raised.value).splitlines()) == 1


@pytest.mark.parametrize("command", ["evaluate", "resume"])
def test_a_junk_checkpoint_is_one_line_for_evaluate_and_resume(command, sine_copy, capsys):
    (sine_copy / "checkpoint.pt").write_text("junk\n")
    argv = (["evaluate", "--run", str(sine_copy)] if command == "evaluate"
            else ["maml", "--resume", str(sine_copy), "--no-progress"])
    assert main(argv) == 2
    assert "checkpoint.pt is corrupt or unreadable" in one_error_line(capsys)
    assert (sine_copy / "checkpoint.pt").read_text() == "junk\n"


def test_every_truncation_and_changed_byte_is_refused_or_changes_nothing(tmp_path):
    """Whatever torch.load trips over (zip, pickle, struct, unicode, key and index errors),
    and whatever it loads with a changed value, ends as a CheckpointError."""
    path = tmp_path / "checkpoint.pt"
    state = {**rl_state(), "iteration": 7}
    save_checkpoint(path, state)
    data = path.read_bytes()
    rng = random.Random(0)
    mutants = [data[:n] for n in range(0, len(data), 97)]
    for _ in range(200):
        changed = bytearray(data)
        changed[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
        mutants.append(bytes(changed))
    refused = 0
    for mutant in mutants:
        path.write_bytes(mutant)
        try:
            loaded = load_checkpoint(path)
        except CheckpointError:
            refused += 1
            continue
        assert state_digest(loaded) == state_digest(state)  # a byte no value depends on
    assert refused > len(mutants) / 2  # the others changed zip metadata that no value uses


def test_a_changed_byte_in_tensor_data_fails_the_checksum(tmp_path):
    path = tmp_path / "checkpoint.pt"
    state = rl_state()
    save_checkpoint(path, state)
    weights = state["policy"]["layers.0.weight"].numpy().tobytes()
    data = bytearray(path.read_bytes())
    at = bytes(data).index(weights[:16]) + 5
    data[at] ^= 0x10  # a tensor's value: torch.load alone would return changed weights
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="no longer match the checksum"):
        load_checkpoint(path)


def test_a_checkpoint_without_checksum_loads_with_a_warning(tmp_path, caplog):
    path = tmp_path / "checkpoint.pt"
    torch.save(rl_state(), path)  # as written before checksums were stored
    loaded = load_run_checkpoint(path, algo="maml_trpo")
    assert loaded["iteration"] == 1
    assert "carries no checksum" in caplog.text and str(path) in caplog.text


def test_the_digest_covers_every_value_and_type_but_not_key_order():
    state = rl_state()
    assert state_digest(state) == state_digest(dict(reversed(state.items())))
    for changed in ({"iteration": 2}, {"iteration": True}, {"iteration": 1.0},
                    {"config": {**state["config"], "seed": 1}},
                    {"policy": {**state["policy"], "log_std": state["policy"]["log_std"].double()}}):
        assert state_digest({**state, **changed}) != state_digest(state), changed
    with pytest.raises(TypeError, match="cannot hold a object"):
        state_digest({**state, "extra": object()})


# --- malformed state ---------------------------------------------------------------------------

def sine_state(sine_run) -> dict:
    return torch.load(sine_run / "checkpoint.pt", weights_only=True)


MALFORMED = {  # name -> (change to a sine checkpoint, what the message must say)
    "missing-model": (lambda s: s.pop("model"), "'model' missing"),
    "missing-optimizer-state": (lambda s: s["optimizer"].pop("state"), "'optimizer'\\['state'\\] missing"),
    "iteration-text": (lambda s: s.update(iteration="7"), "'iteration' is str"),
    "negative-iteration": (lambda s: s.update(iteration=-1), "'iteration' is int"),
    "config-list": (lambda s: s.update(config=[1]), "'config' is list"),
    "weight-text": (lambda s: s["model"].update({"layers.0.weight": "w"}), "'model'\\['layers.0.weight'\\] is str"),
    "weight-nan": (lambda s: s["model"]["layers.0.weight"].fill_(float("nan")), "NaN or infinite"),
    "generator-float": (lambda s: s.update(generator=torch.zeros(3)), "'generator' is Tensor"),
    "generator-short": (lambda s: s.update(generator=s["generator"][:10]), "generator state does not fit"),
    "param-groups-empty": (lambda s: s["optimizer"].update(param_groups=[]), "'param_groups'\\] is list"),
    "lr-text": (lambda s: s["optimizer"]["param_groups"][0].update(lr="fast"), "optimizer's lr='fast'"),
    "adam-shape": (lambda s: s["optimizer"]["state"][0].update(exp_avg=torch.zeros(3)), "'exp_avg' of parameter 0 has shape"),
    "unexpected": (lambda s: s.update(extra=1), "unexpected 'extra'"),
    "algo": (lambda s: s.update(algo="ppo"), "algo='ppo'"),
    "task": (lambda s: s["config"].update(task="mnist"), "task 'mnist'"),
}


@pytest.mark.parametrize("command", ["evaluate", "resume"])
@pytest.mark.parametrize("name", list(MALFORMED))
def test_a_malformed_checkpoint_is_one_line_naming_what_is_wrong(name, command, sine_copy, capsys):
    change, message = MALFORMED[name]
    state = sine_state(sine_copy)
    del state["checksum"]
    change(state)
    save_checkpoint(sine_copy / "checkpoint.pt", state)  # sealed: only the structure is wrong
    before = (sine_copy / "checkpoint.pt").read_bytes()
    argv = (["evaluate", "--run", str(sine_copy), "--num-tasks", "2", "--no-baselines"]
            if command == "evaluate" else ["maml", "--resume", str(sine_copy), "--num-batches",
                                           "3", "--no-progress"])
    assert main(argv) == 2
    line = one_error_line(capsys)
    assert line.startswith("error: ")
    assert re.search(message, line), line
    assert (sine_copy / "checkpoint.pt").read_bytes() == before
    assert not (sine_copy / "evaluation" / "curve.json").exists()


def test_each_schema_names_every_missing_key(sine_run):
    for state in (rl_state(), sine_state(sine_run)):
        kind = check_run_state(state, source="ckpt")
        for key in run_schemas()[kind]:
            with pytest.raises(CheckpointError, match=f"is malformed: '{key}' missing"):
                check_run_state({k: v for k, v in state.items() if k != key}, source="ckpt")


def test_an_omniglot_checkpoint_may_lack_its_problem_state_but_not_hold_a_bad_one(sine_run):
    state = sine_state(sine_run)
    state["config"]["task"] = "omniglot"
    assert check_run_state(state, source="ckpt") == "omniglot"  # written before it was saved
    with pytest.raises(CheckpointError, match="'problem' is list"):
        check_run_state({**state, "problem": []}, source="ckpt")


def test_the_expected_algo_is_checked(tmp_path):
    path = tmp_path / "checkpoint.pt"
    save_checkpoint(path, rl_state())
    with pytest.raises(CheckpointError, match="is a 'maml_trpo' run, not 'maml'"):
        load_run_checkpoint(path, algo="maml")


def test_optimizer_state_of_other_parameter_groups_is_refused():
    params = [torch.nn.Parameter(torch.zeros(2)), torch.nn.Parameter(torch.zeros(3))]
    saved = torch.optim.Adam(params[:1]).state_dict()
    with pytest.raises(CheckpointError, match=r"groups of sizes \[1\]; this model's: \[2\]"):
        load_optimizer_strict(torch.optim.Adam(params), saved, source="ckpt")


# --- untrusted content -------------------------------------------------------------------------

CANARY = '''
from pathlib import Path
Path(__file__).with_name("imported").write_text("the checkpoint's module was imported")

class Env:
    pass
'''


@pytest.fixture
def canary(tmp_path, monkeypatch):
    """A module ``metarl_canary`` on sys.path that leaves a file ``imported`` when imported."""
    folder = tmp_path / "plugins"
    folder.mkdir()
    (folder / "metarl_canary.py").write_text(CANARY)
    monkeypatch.syspath_prepend(str(folder))
    yield folder / "imported"
    sys.modules.pop("metarl_canary", None)


def test_evaluate_does_not_import_a_plugin_the_checkpoint_names(tmp_path, canary, capsys):
    path = tmp_path / "checkpoint.pt"
    save_checkpoint(path, rl_state(env="metarl_canary:Env"))
    assert main(["evaluate", "--checkpoint", str(path), "--no-progress"]) == 2
    line = one_error_line(capsys)
    assert "plug-in env 'metarl_canary:Env'" in line and "--env metarl_canary:Env" in line
    assert main(["evaluate", "--checkpoint", str(path), "--env", "other:Env"]) == 2
    assert "does not match" in one_error_line(capsys)
    assert not canary.exists() and "metarl_canary" not in sys.modules


def test_resume_does_not_import_a_plugin_the_run_names(tmp_path, canary, capsys):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    state = rl_state(env="metarl_canary:Env")
    save_checkpoint(run_dir / "checkpoint.pt", state)
    (run_dir / "config.yaml").write_text(yaml.safe_dump({"algo": "maml_trpo", **{
        k: list(v) if isinstance(v, tuple) else v for k, v in state["config"].items()}}))
    assert main(["maml_trpo", "--resume", str(run_dir), "--no-progress"]) == 2
    assert "--env metarl_canary:Env" in one_error_line(capsys)
    assert not canary.exists() and "metarl_canary" not in sys.modules


def test_a_plugin_named_with_env_is_evaluated_and_resumed(tmp_path, monkeypatch, capsys):
    monkeypatch.syspath_prepend(str(REPO))
    env = "examples.point_mass:PointMassEnv"
    tiny = ["--num-batches", "1", "--meta-batch-size", "2", "--fast-batch-size", "2",
            "--hidden-sizes", "8", "8", "--cg-iters", "2", "--num-workers", "1", "--no-progress"]
    assert main(["maml_trpo", "--env", env, *tiny, "--output-dir", str(tmp_path)]) == 0
    (run_dir,) = tmp_path.iterdir()
    assert main(["evaluate", "--run", str(run_dir), "--env", env, "--num-tasks", "2",
                 "--steps", "0", "--no-progress"]) == 0
    assert (run_dir / "evaluation" / "curve.json").is_file()
    assert main(["maml_trpo", "--resume", str(run_dir), "--env", env, "--num-batches", "2",
                 "--no-progress"]) == 0
    assert load_run_checkpoint(run_dir / "checkpoint.pt")["iteration"] == 2


def test_env_is_only_for_rl_runs(sine_run, capsys):
    assert main(["evaluate", "--run", str(sine_run), "--env", "navigation_2d"]) == 2
    assert "--env: only for meta-RL runs" in one_error_line(capsys)
