"""Adding an algorithm is one trainer class, its config class, one YAML and one table entry:
a toy algorithm registered here trains, resumes and has its checkpoints checked through the
command line, with no change to metarl.run or metarl.checkpoint_format."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
import yaml
from run_helpers import one_error_line

from metarl import checkpoint_format
from metarl import config as config_module
from metarl.algorithms import ALGORITHMS, Algorithm
from metarl.checkpoint_format import CheckpointError, RunSchema, check_run_state, tensors
from metarl.config import THREADS_MAX, ConfigError, option, seed_option
from metarl.run import main
from metarl.runs import load_checkpoint, save_checkpoint


@dataclass
class ToyConfig:
    """The options of the toy: gradient descent on a squared distance to a target."""

    task: str = option("line", "the toy's task family", choices=("line",))
    target: float = option(3.0, "the value w is fitted to")
    step_size: float = option(0.1, "gradient step size", minimum=0.0)
    num_batches: int = option(3, "iterations to train to", minimum=0, exclusive_minimum=False)
    checkpoint_every: int = option(1, "iterations between checkpoints", minimum=0)
    seed: int = seed_option(0, "the seed of the starting w")
    torch_threads: int = option(1, "PyTorch threads", minimum=0, exclusive_minimum=False,
                                maximum=THREADS_MAX)
    output_dir: str = option("runs", "where run directories go", metavar="DIR")


class ToyTrainer:
    """A Trainer of one weight w: each step takes w toward ``config.target``."""

    layout = {"toy": ["toy/loss"]}

    def __init__(self, config: ToyConfig):
        self.config = config
        self.iteration = 0
        self.w = torch.randn((), generator=torch.Generator().manual_seed(config.seed))

    @property
    def name(self) -> str:
        return f"toy {self.config.task}"

    def step(self) -> dict[str, float]:
        self.w = self.w - self.config.step_size * 2 * (self.w - self.config.target)
        self.iteration += 1
        return {"toy/loss": float((self.w - self.config.target) ** 2)}

    def summary(self, values):
        return f"loss {values['toy/loss']:.3f}"

    def state(self):
        return {"algo": "toy", "weights": {"w": self.w.clone()}, "iteration": self.iteration,
                "config": dataclasses.asdict(self.config)}

    def load(self, state, *, source):
        self.w, self.iteration = state["weights"]["w"].clone(), state["iteration"]

    def close(self):
        pass


def toy_config(family: str) -> type:
    if family != "line":
        raise ConfigError(f"task={family!r} is not valid; choose from: line")
    return ToyConfig


TOY = Algorithm(
    selector="task", default="line",
    resume_may_change=("num_batches", "checkpoint_every", "torch_threads", "output_dir"),
    config_class=toy_config, config_base=lambda: ToyConfig, build_trainer=ToyTrainer,
    checkpoint=lambda: RunSchema({"weights": tensors}),
    summary="fit one weight to a target (a test's toy)",
    description="Fit one weight w to a target by gradient descent.\n",
    examples=("python -m metarl.run toy --num-batches 5",), reported=("toy/",))


@pytest.fixture
def toy(monkeypatch, tmp_path) -> Path:
    """The toy registered, with its shipped defaults in experiments/toy/line.yaml; returns the
    folder its runs go to."""
    monkeypatch.setitem(ALGORITHMS, "toy", TOY)
    shipped = tmp_path / "experiments"
    (shipped / "toy").mkdir(parents=True)
    (shipped / "toy" / "line.yaml").write_text("step_size: 0.25\n")
    monkeypatch.setattr(config_module, "EXPERIMENTS_DIR", shipped)
    return tmp_path / "runs"


def train(out: Path, *flags: str) -> Path:
    assert main(["toy", "--num-batches", "2", "--output-dir", str(out), "--no-progress",
                 *flags]) == 0
    (run_dir,) = out.iterdir()
    return run_dir


def test_a_registered_algorithm_trains_and_resumes_like_an_uninterrupted_run(toy, capsys):
    run_dir = train(toy)
    assert re.fullmatch(r"toy__line__0__\d{8}-\d{6}", run_dir.name)
    assert re.search(r"^done: 2 iterations; toy/loss=\S+$", capsys.readouterr().out, re.M)
    saved = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert (saved["algo"], saved["step_size"]) == ("toy", 0.25)  # from the shipped YAML
    assert main(["toy", "--resume", str(run_dir), "--num-batches", "4", "--no-progress"]) == 0
    resumed = load_checkpoint(run_dir / "checkpoint.pt")
    whole = load_checkpoint(train(toy.parent / "whole", "--num-batches", "4") / "checkpoint.pt")
    assert resumed["iteration"] == whole["iteration"] == 4
    assert torch.equal(resumed["weights"]["w"], whole["weights"]["w"])


def test_a_resume_may_change_only_what_the_entry_allows(toy, capsys):
    run_dir = train(toy)
    capsys.readouterr()
    before = (run_dir / "checkpoint.pt").read_bytes()
    assert main(["toy", "--resume", str(run_dir), "--num-batches", "4", "--step-size", "0.5",
                 "--no-progress"]) == 2
    line = one_error_line(capsys)
    assert "step_size" in line and "num_batches, checkpoint_every" in line, line
    assert (run_dir / "checkpoint.pt").read_bytes() == before
    assert main(["toy", "--task", "circle", "--output-dir", str(toy)]) == 2
    assert one_error_line(capsys) == "error: task='circle' is not valid; choose from: line"


@pytest.mark.parametrize("change, message", [
    (lambda state: state.pop("weights"), "'weights' missing"),
    (lambda state: state["weights"].update(w="w"), r"'weights'\['w'\] is str"),
    (lambda state: state.update(extra=1),
     "unexpected 'extra'; a toy checkpoint holds: algo, iteration, config, weights"),
    (lambda state: state.update(algo="ppo"),
     "algo='ppo', expected one of: .*maml, maml_trpo, .*promp, .*toy$"),
])
def test_its_checkpoints_are_checked_against_the_schema_it_declares(toy, capsys, change,
                                                                     message):
    run_dir = train(toy)
    capsys.readouterr()
    state = load_checkpoint(run_dir / "checkpoint.pt")
    del state["checksum"]
    change(state)
    save_checkpoint(run_dir / "checkpoint.pt", state)  # sealed: only the structure is wrong
    assert main(["toy", "--resume", str(run_dir), "--num-batches", "3", "--no-progress"]) == 2
    line = one_error_line(capsys)
    assert re.search(message, line), line


def test_its_command_is_on_the_help_pages(toy, capsys):
    assert main(["--help"]) == 0
    page = capsys.readouterr().out
    assert re.search(r"^  toy\s+fit one weight to a target", page, re.M)
    assert "  python -m metarl.run toy --num-batches 5" in page
    with pytest.raises(SystemExit) as exit_:
        main(["toy", "--help"])
    assert exit_.value.code == 0
    page = capsys.readouterr().out
    assert page.startswith("usage: python -m metarl.run toy")
    assert "Fit one weight w to a target" in page
    assert re.search(r"--step-size X\s+gradient step size \(default: 0\.25\)", page), page
    assert main(["sarsa"]) == 2
    assert one_error_line(capsys).endswith(f"choose from: {', '.join(ALGORITHMS)}, evaluate")


def test_a_trainer_checks_its_own_schema_without_the_table(monkeypatch):
    state = ToyTrainer(ToyConfig()).state()
    monkeypatch.setattr(checkpoint_format, "_algorithms", {})  # metarl.algorithms not imported
    schema = TOY.checkpoint()
    assert check_run_state(state, source="ckpt", algo="toy", schema=schema) == "toy"
    with pytest.raises(CheckpointError, match="is a 'toy' run, not 'maml'"):
        check_run_state(state, source="ckpt", algo="maml", schema=schema)
    with pytest.raises(RuntimeError, match="import metarl.algorithms first"):
        check_run_state(state, source="ckpt")
