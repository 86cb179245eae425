"""RL²'s value scale (metarl.rl.value_scale, PopArt with a batch's moments): the moments over the
valid steps, the head rescaled so its returns do not change, the PPO batch's standardised
targets, and a checkpoint written without a scale (evaluated, not resumed)."""

from __future__ import annotations

import pytest
import torch
from run_helpers import only_run_dir

from metarl.checkpoint_format import CheckpointError
from metarl.rl.ppo import trial_gae
from metarl.rl.rl2 import ppo_batch
from metarl.rl.value_scale import IDENTITY, MIN_STD, ValueScale, batch_scale, rescale_head
from metarl.run import main
from metarl.runs import load_checkpoint, save_checkpoint

TINY = ["--env", "navigation_2d", "--num-batches", "1", "--meta-batch-size", "2",
        "--trials-per-task", "1", "--hidden-size", "4", "--ppo-epochs", "1",
        "--num-minibatches", "1", "--torch-threads", "1", "--no-progress"]


def test_batch_scale_takes_the_moments_of_the_valid_steps_only():
    returns = torch.tensor([[1.0, 2.0], [3.0, 100.0], [5.0, -7.0]])
    mask = torch.tensor([[1.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    scale = batch_scale(returns, mask)
    # valid: 1, 2, 3, 5, -7 -> mean 4/5 = 0.8, population variance (0.04 + 1.44 + 4.84 + 17.64
    # + 60.84) / 5 = 16.96
    assert scale.mean == pytest.approx(0.8)
    assert scale.std == pytest.approx(16.96 ** 0.5)
    assert batch_scale(torch.full((3, 2), -4.0), mask) == ValueScale(-4.0, MIN_STD)
    with pytest.raises(ValueError, match="no valid step"):
        batch_scale(returns, torch.zeros(3, 2))


def test_the_scale_maps_returns_to_standard_units_and_back():
    scale = ValueScale(-20.0, 4.0)
    returns = torch.tensor([-28.0, -20.0, -12.0])
    torch.testing.assert_close(scale.standardise(returns), torch.tensor([-2.0, 0.0, 2.0]))
    torch.testing.assert_close(scale.returns(scale.standardise(returns)), returns)
    assert ValueScale.from_state_dict(scale.state_dict()) == scale
    for bad in ({"std": 0.0}, {"std": MIN_STD / 2}, {"mean": float("nan")}):
        with pytest.raises(ValueError, match="ValueScale needs a finite mean"):
            ValueScale(**bad)


def test_rescale_head_keeps_every_return_and_matches_the_hand_computed_weights():
    head = torch.nn.Linear(2, 1)
    with torch.no_grad():
        head.weight.copy_(torch.tensor([[2.0, -1.0]]))
        head.bias.fill_(0.5)
    old, new = ValueScale(1.0, 2.0), ValueScale(3.0, 4.0)
    h = torch.randn(5, 2, generator=torch.Generator().manual_seed(0))
    before = old.returns(head(h))
    rescale_head(head, old, new)
    # w' = w σ/σ' = [1, -0.5];  b' = (σ b + μ - μ')/σ' = (1 + 1 - 3)/4 = -0.25
    torch.testing.assert_close(head.weight, torch.tensor([[1.0, -0.5]]))
    torch.testing.assert_close(head.bias, torch.tensor([-0.25]))
    torch.testing.assert_close(new.returns(head(h)), before)


def test_ppo_batch_bootstraps_from_returns_and_standardises_the_targets():
    r = torch.tensor([[-1.0, -2.0], [-3.0, -1.0], [-2.0, 0.0]]).reshape(3, 2, 1)
    v_hat = torch.tensor([[0.5, -0.5], [1.0, 0.0], [0.0, 2.0]]).reshape(3, 2, 1)
    mask = torch.tensor([[1.0, 1.0], [1.0, 1.0], [1.0, 0.0]]).reshape(3, 2, 1)
    old = ValueScale(-3.0, 2.0)
    trials = _trials(r, v_hat, mask)
    batch, new = ppo_batch(trials, 0.9, 0.8, old, normalize_values=True)
    values = -3.0 + 2.0 * v_hat  # GAE runs on returns, not on the head's raw outputs
    targets = trial_gae(r, values, mask, 0.9, 0.8) + values
    assert new == batch_scale(targets, mask)
    valid = mask.reshape(3, 2) != 0
    torch.testing.assert_close(batch.value_targets[valid],
                               ((targets - new.mean) / new.std).reshape(3, 2)[valid])
    standard = batch.value_targets[valid].double()
    assert abs(float(standard.mean())) < 1e-6
    assert float(standard.std(correction=0)) == pytest.approx(1.0, abs=1e-6)
    kept, same = ppo_batch(trials, 0.9, 0.8, old, normalize_values=False)
    assert same == old
    torch.testing.assert_close(kept.value_targets[valid],
                               old.standardise(targets).reshape(3, 2)[valid])


def _trials(r, v_hat, mask):
    from metarl.rl.trial_sampler import Trials
    t, k, m = r.shape
    lengths = mask.reshape(1, t, k, m).sum(1).long()
    return Trials(inputs=torch.zeros(t, k, m, 6), actions=torch.zeros(t, k, m, 2), rewards=r,
                  log_probs=torch.zeros(t, k, m), values=v_hat, mask=mask, lengths=lengths,
                  terminated=torch.zeros(1, k, m, dtype=torch.bool),
                  non_finite=torch.zeros(1, k, m, dtype=torch.bool))


def test_a_checkpoint_without_a_value_scale_is_evaluated_but_not_resumed(tmp_path, capsys):
    assert main(["rl2", *TINY, "--output-dir", str(tmp_path)]) == 0
    run_dir = only_run_dir(tmp_path)
    state = load_checkpoint(run_dir / "checkpoint.pt")
    del state["value_scale"], state["checksum"]  # as written before the scale was kept
    save_checkpoint(run_dir / "checkpoint.pt", state)
    assert main(["evaluate", "--run", str(run_dir), "--num-tasks", "2"]) == 0
    capsys.readouterr()
    assert main(["rl2", "--resume", str(run_dir), "--num-batches", "2", "--no-progress"]) != 0
    assert "before RL2 kept a value scale" in capsys.readouterr().err
    with small_trainer(normalize_values=True) as trainer:
        good = trainer.state()
        good["value_scale"] = {"mean": torch.tensor(0.0, dtype=torch.float64)}
        with pytest.raises(CheckpointError, match="value_scale must hold one number each"):
            trainer.load(good, source="x")


def small_trainer(**options):
    from metarl.experiment import make_config
    from metarl.rl.rl2 import RL2Trainer
    return RL2Trainer(make_config("rl2", env="navigation_2d", meta_batch_size=1,
                                  trials_per_task=2, hidden_size=4, ppo_epochs=1,
                                  num_minibatches=1, torch_threads=1, **options))


@pytest.mark.parametrize("normalize", [False, True])
def test_a_step_sets_the_scale_only_with_normalize_values(normalize):
    with small_trainer(normalize_values=normalize) as trainer:
        values = trainer.step()
        assert (trainer.value_scale != IDENTITY) == normalize
        assert values["values/return_std"] == trainer.value_scale.std
        if normalize:  # navigation's returns are negative: -distance at every step
            assert trainer.value_scale.mean < 0


def test_rescale_head_turns_adams_moments_into_those_of_gradients_in_the_new_units():
    # Twin heads: `head` is trained by Adam on targets in old units; at every step `twin` holds
    # the same function in new units, and its Adam sees the gradient taken in those units. The
    # moments of `head`'s Adam, rescaled, must equal those the twin's Adam built.
    old, new = ValueScale(1.0, 2.0), ValueScale(-3.0, 5.0)
    generator = torch.Generator().manual_seed(0)
    h, returns = torch.randn(8, 3, generator=generator), 4 * torch.randn(8, 1, generator=generator)
    head, twin = torch.nn.Linear(3, 1), torch.nn.Linear(3, 1)
    adam = torch.optim.Adam(head.parameters(), lr=0.05)
    twin_adam = torch.optim.Adam(twin.parameters(), lr=0.05)
    for _ in range(4):
        twin.load_state_dict(head.state_dict())
        rescale_head(twin, old, new)
        for net, optimizer, scale in ((head, adam, old), (twin, twin_adam, new)):
            optimizer.zero_grad()
            (0.5 * (net(h) - scale.standardise(returns)).square().mean()).backward()
            optimizer.step()
    rescale_head(head, old, new, adam)
    for param, twin_param in zip(head.parameters(), twin.parameters(), strict=True):
        for name in ("exp_avg", "exp_avg_sq"):
            torch.testing.assert_close(adam.state[param][name], twin_adam.state[twin_param][name])
        assert adam.state[param]["exp_avg"].abs().sum() > 0  # the moments were not all zero
        torch.testing.assert_close(adam.state[param]["step"], twin_adam.state[twin_param]["step"])


def test_rescale_head_leaves_a_fresh_optimizer_and_the_identity_alone():
    head = torch.nn.Linear(2, 1)
    adam = torch.optim.Adam(head.parameters())
    rescale_head(head, ValueScale(0.0, 1.0), ValueScale(1.0, 2.0), adam)  # no state yet
    assert not adam.state
    head(torch.ones(1, 2)).sum().backward()
    adam.step()
    before = {name: value.clone() for name, value in adam.state[head.weight].items()}
    rescale_head(head, ValueScale(1.0, 2.0), ValueScale(1.0, 2.0), adam)
    for name, value in before.items():
        torch.testing.assert_close(adam.state[head.weight][name], value)
