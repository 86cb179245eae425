import pytest
import torch

from metarl.nonfinite import NonFiniteError
from metarl.rl.baseline import (
    BaselineFitError,
    baseline_features,
    baseline_values,
    fit_linear_baseline,
)


def random_batch(t=12, k=3, e=4, o=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    obs = torch.randn(t, k, e, o, generator=g, dtype=torch.float64)
    lengths = torch.randint(3, t + 1, (k, e), generator=g)
    mask = (torch.arange(t).view(t, 1, 1) < lengths).double()
    return obs, mask


def loop_fit(features, returns, mask, reg=1e-5):
    """Reference: one plain ridge solve per task over its valid rows."""
    out = []
    for k in range(features.shape[1]):
        rows = mask[:, k].reshape(-1) != 0
        x = features[:, k].reshape(-1, features.shape[-1])[rows]
        y = returns[:, k].reshape(-1)[rows]
        a = x.T @ x + reg * torch.eye(x.shape[1], dtype=x.dtype)
        out.append(torch.linalg.solve(a, x.T @ y))
    return torch.stack(out)


def predict(features, weights):
    """Reference: ``v_t = x_tᵀ w_k`` at every step, in the weights' precision."""
    return torch.einsum("tkef,kf->tke", features.to(weights.dtype), weights).to(features.dtype)


def test_features_hand_computed_and_masked():
    obs = torch.tensor([[[2.0]], [[3.0]], [[4.0]]])  # [T=3, B=1, O=1]
    mask = torch.tensor([[1.0], [1.0], [0.0]])
    x = baseline_features(obs, mask)
    assert x.shape == (3, 1, 6)
    torch.testing.assert_close(x[0, 0], torch.tensor([2.0, 4.0, 0.0, 0.0, 0.0, 1.0]))
    torch.testing.assert_close(x[1, 0], torch.tensor([3.0, 9.0, 0.01, 1e-4, 1e-6, 1.0]))
    assert torch.all(x[2] == 0)


def test_recovers_known_linear_target():
    obs, mask = random_batch(t=100)
    x = baseline_features(obs, mask)
    w_true = torch.randn(3, x.shape[-1], dtype=torch.float64)
    returns = torch.einsum("tkef,kf->tke", x, w_true) + 100.0 * (1 - mask)  # padding ignored
    w = fit_linear_baseline(x, returns, mask, reg=1e-10)
    torch.testing.assert_close(w, w_true, atol=1e-5, rtol=1e-5)
    v = predict(x, w)
    torch.testing.assert_close(v * mask, (returns * mask), atol=1e-6, rtol=1e-6)
    assert torch.all(v[mask == 0] == 0)


def test_batched_equals_loop():
    obs, mask = random_batch(seed=3)
    x = baseline_features(obs, mask)
    returns = torch.randn(mask.shape, dtype=torch.float64)
    torch.testing.assert_close(fit_linear_baseline(x, returns, mask), loop_fit(x, returns, mask))


def test_rank_deficient_constant_observation_float32():
    # A constant observation column duplicates the bias feature: X^T X is singular.
    obs, mask = random_batch(t=50, e=8, seed=4)
    obs[..., 1] = 1.0
    obs = obs.float()
    mask = mask.float()
    x = baseline_features(obs, mask)
    target = 2.0 * obs[..., 0] - 0.5 * obs[..., 0] ** 2 + 3.0
    w = fit_linear_baseline(x, target, mask)
    assert torch.isfinite(w).all()
    torch.testing.assert_close(predict(x, w) * mask, target * mask, atol=1e-3, rtol=1e-3)


def test_rank_deficient_zero_columns():
    obs, mask = random_batch(t=20, k=2, o=3, seed=8)
    obs[..., 2] = 0.0  # e.g. contact forces that are always zero
    x = baseline_features(obs, mask)
    returns = torch.randn(mask.shape, dtype=torch.float64)
    w = fit_linear_baseline(x, returns, mask)
    assert torch.isfinite(w).all()
    assert torch.all(w[:, [2, 5]] == 0)  # no signal in those features, ridge keeps them at 0
    torch.testing.assert_close(w, loop_fit(x, returns, mask))


def test_retries_with_larger_regulariser_only_for_failing_tasks(monkeypatch):
    # Task 1's first factorisation is reported failed (as float32 rounding can make a nearly
    # singular Gram matrix indefinite, on some CPUs and not others): only it is solved again.
    obs, mask = random_batch(k=2, seed=5)
    x = baseline_features(obs, mask).float()
    returns = torch.randn(mask.shape).float()
    calls = []
    cholesky_ex = torch.linalg.cholesky_ex

    def spy(a, **kwargs):
        chol, info = cholesky_ex(a, **kwargs)
        if not calls:
            info = info.clone()
            info[1] = 1
        calls.append((a.clone(), info.tolist()))
        return chol, info

    monkeypatch.setattr(torch.linalg, "cholesky_ex", spy)
    w = fit_linear_baseline(x, returns, mask.float())
    assert torch.isfinite(w).all()
    (first, first_info), (second, second_info) = calls
    assert first_info == [0, 1] and second_info == [0]  # only task 1 was retried ...
    added = torch.full((first.shape[-1],), 9e-5, dtype=torch.float64)  # ... with c raised x10
    torch.testing.assert_close(torch.diagonal(second[0] - first[1]), added, rtol=0, atol=1e-9)
    # Task 0 was solved with the first regulariser: identical to a fit of task 0 alone.
    monkeypatch.setattr(torch.linalg, "cholesky_ex", cholesky_ex)
    w0 = fit_linear_baseline(x[:, :1], returns[:, :1], mask[:, :1].float())
    torch.testing.assert_close(w[0], w0[0])


def test_impossible_case_raises_clear_error():
    obs, mask = random_batch(k=3, seed=6)
    obs[2, 1, 0, 0] = float("inf")  # a valid step of task 1 (all lengths >= 3)
    x = baseline_features(obs, mask)
    returns = torch.randn(mask.shape, dtype=torch.float64)
    with pytest.raises(
        BaselineFitError, match=r"task\(s\) \[1\].*1e-05.*0\.1 \(5 tries\).*NaN/inf"
    ) as error:
        fit_linear_baseline(x, returns, mask, max_tries=5)
    # Non-finite data: also a NonFiniteError, so a training run stops as diverged.
    assert isinstance(error.value, NonFiniteError)


def test_observations_too_large_to_square_are_a_non_finite_error():
    obs, mask = random_batch(k=2, seed=6)
    obs = obs.float()
    obs[1, 0, 0, 0] = 1e20  # finite, but 1e40 overflows float32 in the features
    returns = torch.randn(mask.shape)
    with pytest.raises(NonFiniteError, match=r"task\(s\) \[0\].*hold NaN/inf"):
        baseline_values(obs, returns, mask)


def test_unrelated_errors_raise_as_themselves():
    obs, mask = random_batch()
    x = baseline_features(obs, mask)
    returns = torch.randn(mask.shape, dtype=torch.float64)
    with pytest.raises(ValueError, match="returns has shape"):
        fit_linear_baseline(x, returns[:-1], mask)
    with pytest.raises(ValueError, match=r"features must be \[T, K, E, F\]"):
        fit_linear_baseline(x[:, 0], returns, mask)
    with pytest.raises(ValueError, match="mask_t has shape"):
        baseline_features(obs, mask[:, :, :1])
    with pytest.raises(ValueError, match="reg must be > 0"):
        fit_linear_baseline(x, returns, mask, reg=0.0)


def test_baseline_values_end_to_end():
    obs, mask = random_batch(seed=7)
    returns = torch.randn(mask.shape, dtype=torch.float64) * mask
    v = baseline_values(obs, returns, mask)
    assert v.shape == mask.shape and torch.all(v[mask == 0] == 0)
    x = baseline_features(obs, mask)
    torch.testing.assert_close(v, predict(x, fit_linear_baseline(x, returns, mask)))
