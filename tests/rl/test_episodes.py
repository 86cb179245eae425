import pytest
import torch

from metarl.rl.episodes import Episodes, concat_episodes, keep_episodes


def make(t=4, k=2, e=3, lengths=None):
    lengths = torch.tensor([[4, 2, 1], [3, 4, 4]]) if lengths is None else lengths
    mask = (torch.arange(t).view(t, 1, 1) < lengths).float()
    return dict(
        observations=torch.zeros(t, k, e, 5),
        actions=torch.zeros(t, k, e, 2),
        rewards=torch.arange(t * k * e, dtype=torch.float32).view(t, k, e),
        log_probs=torch.zeros(t, k, e),
        mask=mask,
        lengths=lengths,
        terminated=lengths < t,
    )


def test_derived_quantities():
    fields = make()
    ep = Episodes(**fields)
    assert (ep.horizon, ep.num_tasks, ep.episodes_per_task) == (4, 2, 3)
    assert ep.num_steps == 18
    r = fields["rewards"]
    per_episode = (r * fields["mask"]).sum(0)
    torch.testing.assert_close(ep.returns_per_task(), per_episode.mean(-1))
    loop = [
        sum(float(r[s, k, i]) for i in range(3) for s in range(int(fields["lengths"][k, i]))) / 3
        for k in range(2)
    ]
    torch.testing.assert_close(ep.returns_per_task(), torch.tensor(loop))


def test_padding_rewards_do_not_count_even_nan():
    fields = make()
    fields["rewards"][3, 0, 1] = float("nan")
    assert torch.isfinite(Episodes(**fields).returns_per_task()).all()


def test_concatenated_batches_sit_side_by_side():
    a, b = Episodes(**make()), Episodes(**make(lengths=torch.tensor([[1, 1, 1], [2, 2, 2]])))
    both = concat_episodes([a, b])
    assert both.episodes_per_task == 6 and both.num_steps == a.num_steps + b.num_steps
    assert torch.equal(both.lengths[:, 3:], b.lengths) and torch.equal(both.rewards[..., :3], a.rewards)


def test_emptied_episodes_count_nowhere():
    fields = make()
    ep = Episodes(**fields)
    keep = torch.tensor([[True, False, True], [False, False, True]])
    kept = keep_episodes(ep, keep)
    assert kept.lengths.tolist() == [[4, 0, 1], [0, 0, 4]] and kept.num_steps == 9
    assert not kept.terminated[~keep].any()
    r = fields["rewards"]
    expected = [(r[:4, 0, 0].sum() + r[:1, 0, 2].sum()) / 2, r[:4, 1, 2].sum()]
    torch.testing.assert_close(kept.returns_per_task(), torch.stack(expected))
    nothing = keep_episodes(ep, torch.tensor([[False] * 3, [True] * 3]))
    assert nothing.returns_per_task()[0].isnan()  # no episodes: no mean, not a return of 0
    with pytest.raises(ValueError, match="keep must be a bool tensor of shape"):
        keep_episodes(ep, keep.float())


@pytest.mark.parametrize(
    "name,value,match",
    [
        (
            "observations",
            torch.zeros(4, 2, 5),
            r"observations has shape \(4, 2, 5\).*\[4, 2, 3, \*\]",
        ),
        ("log_probs", torch.zeros(4, 2, 2), r"log_probs has shape"),
        ("lengths", torch.zeros(3, 2, dtype=torch.long), r"lengths has shape"),
        ("mask", torch.ones(4, 2, 3), r"mask must be 1.0 for the first lengths"),
    ],
)
def test_validation_messages(name, value, match):
    fields = make()
    fields[name] = value
    with pytest.raises(ValueError, match=match):
        Episodes(**fields)


def test_dtype_validation():
    fields = make()
    fields["terminated"] = fields["terminated"].float()
    with pytest.raises(TypeError, match="terminated must be bool"):
        Episodes(**fields)
    fields = make()
    fields["lengths"] = fields["lengths"].float()
    with pytest.raises(TypeError, match="lengths must be an integer"):
        Episodes(**fields)
