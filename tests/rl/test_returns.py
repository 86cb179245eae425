import pytest
import torch

from metarl.rl.returns import discounted_returns, gae, normalize_advantages


@pytest.fixture(autouse=True)
def _float64():
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


def loop_gae(r, v, m, gamma, lam, boot=None):
    """Plain-loop reference over every (batch index, step), episode by episode."""
    r2, v2, m2 = r.reshape(r.shape[0], -1), v.reshape(v.shape[0], -1), m.reshape(m.shape[0], -1)
    b2 = torch.zeros(r2.shape[1]) if boot is None else boot.reshape(-1)
    out = torch.zeros_like(r2)
    for j in range(r2.shape[1]):
        length = int(m2[:, j].sum())
        for t in range(length):
            a, disc = 0.0, 1.0
            for s in range(t, length):
                next_v = v2[s + 1, j] if s + 1 < length else b2[j]
                a += disc * (r2[s, j] + gamma * next_v - v2[s, j])
                disc *= gamma * lam
            out[t, j] = a
    return out.reshape(r.shape)


def test_discounted_returns_hand_computed_with_termination():
    r = torch.tensor([[1.0, 1.0], [2.0, 5.0], [3.0, 9.0]])  # [T=3, B=2]
    m = torch.tensor([[1.0, 1.0], [1.0, 1.0], [1.0, 0.0]])  # episode 1 ends after step 1
    g = discounted_returns(r, m, 0.5)
    expected = torch.tensor([[1 + 0.5 * 2 + 0.25 * 3, 1 + 0.5 * 5], [2 + 0.5 * 3, 5.0], [3.0, 0.0]])
    torch.testing.assert_close(g, expected)


def test_padding_values_are_ignored_even_nan():
    r = torch.tensor([[1.0], [float("nan")]])
    v = torch.tensor([[0.5], [float("nan")]])
    m = torch.tensor([[1.0], [0.0]])
    assert torch.equal(discounted_returns(r, m, 0.9), torch.tensor([[1.0], [0.0]]))
    assert torch.equal(gae(r, v, m, 0.9, 0.95), torch.tensor([[0.5], [0.0]]))


@pytest.mark.parametrize("gamma,lam", [(0.99, 1.0), (0.9, 0.0), (0.5, 0.5), (1.0, 0.95)])
def test_gae_hand_computed(gamma, lam):
    # One episode of 3 steps then padding; one full-horizon episode (truncated, no bootstrap).
    r = torch.tensor([[1.0, 0.0], [2.0, 1.0], [3.0, -1.0], [7.0, 2.0]])
    v = torch.tensor([[0.5, 1.0], [0.25, 2.0], [1.0, 0.0], [9.0, 1.5]])
    m = torch.tensor([[1.0, 1.0], [1.0, 1.0], [1.0, 1.0], [0.0, 1.0]])
    d0 = [1 + gamma * 0.25 - 0.5, 2 + gamma * 1.0 - 0.25, 3 + 0.0 - 1.0]
    d1 = [0 + gamma * 2 - 1, 1 + gamma * 0 - 2, -1 + gamma * 1.5 - 0, 2 - 1.5]
    c = gamma * lam
    a0 = [d0[0] + c * d0[1] + c**2 * d0[2], d0[1] + c * d0[2], d0[2], 0.0]
    a1 = [sum(c**i * d1[t + i] for i in range(4 - t)) for t in range(4)]
    expected = torch.tensor([a0, a1]).T
    torch.testing.assert_close(gae(r, v, m, gamma, lam), expected)


def test_gae_lambda_one_is_return_minus_value():
    torch.manual_seed(0)
    r, v = torch.randn(6, 3, 4), torch.randn(6, 3, 4)
    m = (torch.arange(6).view(6, 1, 1) < torch.randint(1, 7, (3, 4))).double()
    a = gae(r, v, m, 0.9, 1.0)
    torch.testing.assert_close(a, (discounted_returns(r, m, 0.9) - v) * m)


def test_gae_bootstrap_used_only_after_last_step():
    r = torch.tensor([[1.0, 1.0], [1.0, 0.0]])
    v = torch.tensor([[0.0, 0.0], [0.0, 0.0]])
    m = torch.tensor([[1.0, 1.0], [1.0, 0.0]])
    boot = torch.tensor([10.0, 20.0])
    a = gae(r, v, m, 0.5, 1.0, bootstrap_v=boot)
    torch.testing.assert_close(
        a, torch.tensor([[1 + 0.5 + 0.25 * 10, 1 + 0.5 * 20], [1 + 0.5 * 10, 0.0]])
    )


def test_gae_batched_equals_loop():
    torch.manual_seed(1)
    r, v = torch.randn(7, 2, 3), torch.randn(7, 2, 3)
    m = (torch.arange(7).view(7, 1, 1) < torch.randint(1, 8, (2, 3))).double()
    boot = torch.randn(2, 3)
    for gamma, lam in [(0.99, 0.95), (0.8, 0.3)]:
        torch.testing.assert_close(gae(r, v, m, gamma, lam), loop_gae(r, v, m, gamma, lam))
        torch.testing.assert_close(
            gae(r, v, m, gamma, lam, boot), loop_gae(r, v, m, gamma, lam, boot)
        )


def test_shape_mismatch_and_bad_discount_raise():
    r = torch.zeros(4, 2)
    with pytest.raises(ValueError, match="mask has shape"):
        discounted_returns(r, torch.ones(4, 3), 0.9)
    with pytest.raises(ValueError, match="v_t has shape"):
        gae(r, torch.zeros(3, 2), torch.ones(4, 2), 0.9, 1.0)
    with pytest.raises(ValueError, match="bootstrap_v"):
        gae(r, r, torch.ones(4, 2), 0.9, 1.0, bootstrap_v=torch.zeros(3))
    with pytest.raises(ValueError, match="gamma must be in"):
        gae(r, r, torch.ones(4, 2), 1.5, 1.0)
    with pytest.raises(ValueError, match="lam must be in"):
        gae(r, r, torch.ones(4, 2), 0.9, -0.1)


def test_normalize_advantages_per_task_over_valid_steps():
    torch.manual_seed(2)
    adv = torch.randn(5, 3, 4) * torch.tensor([1.0, 10.0, 0.1]).view(1, 3, 1) + 3.0
    m = (torch.arange(5).view(5, 1, 1) < torch.randint(1, 6, (3, 4))).double()
    out = normalize_advantages(adv, m, dims=(0, 2))
    assert torch.all(out[m == 0] == 0)
    for k in range(3):
        vals = out[:, k][m[:, k] == 1]
        ref = adv[:, k][m[:, k] == 1]
        expected = (ref - ref.mean()) / (ref.std(unbiased=False) + 1e-8)
        torch.testing.assert_close(vals, expected)


def test_normalize_advantages_empty_task_gives_zeros():
    adv = torch.randn(3, 2, 2)
    m = torch.ones(3, 2, 2)
    m[:, 1] = 0
    out = normalize_advantages(adv, m)
    assert torch.all(out[:, 1] == 0) and torch.isfinite(out).all()
