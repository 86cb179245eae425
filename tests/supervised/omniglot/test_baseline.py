"""The non-meta Omniglot baseline: a classifier of the train classes, head fine-tuned."""

import numpy as np
import pytest
import torch

from metarl.supervised.omniglot.baseline import (
    episode_features,
    head_finetune_curve,
    train_classifier,
)
from metarl.supervised.omniglot.data import EpisodeSampler, split_characters
from metarl.supervised.omniglot.data import images as omniglot_images
from metarl.supervised.omniglot.model import ConvNet


def test_zero_head_starts_at_chance_and_learns_separable_features():
    gen = torch.Generator().manual_seed(0)
    tasks, ways, dim = 6, 5, 16
    centres = 3 * torch.randn(tasks, ways, dim, generator=gen)

    def points(per_class):
        y = torch.arange(ways).repeat_interleave(per_class).expand(tasks, -1)
        x = centres.gather(1, y.unsqueeze(-1).expand(-1, -1, dim))
        return x + 0.3 * torch.randn(x.shape, generator=gen), y.contiguous()

    (xs, ys), (xq, yq) = points(1), points(10)
    curve = head_finetune_curve(xs, ys, xq, yq, ways=ways, steps=3, step_size=0.1)
    assert curve.shape == (tasks, 4)
    assert torch.all(curve[:, 0] == 1 / ways)  # all logits 0: argmax is class 0
    assert curve[:, 1].mean() > 0.9 and torch.all(curve[:, -1] > 0.9)


def test_sample_images_are_rotated_as_their_class_says(omniglot):
    split = split_characters(omniglot.characters, seed=0, val=0, test=0.25)
    sampler = EpisodeSampler(omniglot, split.train, ways=5, shots=1, queries=1)
    x, y = sampler.sample_images(200, np.random.default_rng(0))
    assert x.shape == (200, 1, 28, 28) and y.shape == (200,)
    assert int(y.min()) >= 0 and int(y.max()) < sampler.num_classes
    for image, label in zip(x[:40], y[:40].tolist()):
        char = sampler.char_index[label // 4]
        rotation = sampler.rotations[label % 4]
        drawings = omniglot.images[omniglot.offsets[char]:omniglot.offsets[char + 1]]
        rotated = np.rot90(drawings, rotation // 90, axes=(-2, -1)) / 255.0
        assert np.any(np.all(np.isclose(rotated, image[0].numpy()), axis=(-2, -1)))


def test_classifier_training_lowers_the_loss_on_train_classes(omniglot):
    split = split_characters(omniglot.characters, seed=0, val=0, test=0.25)
    train = EpisodeSampler(omniglot, split.train, ways=5, shots=1, queries=5, seed=1)
    x, y = train.sample_images(256, np.random.default_rng(5))

    def loss(model):
        with torch.no_grad():
            return torch.nn.functional.cross_entropy(model(x), y).item()

    before = loss(train_classifier(train, iterations=0, batch_size=64, lr=1e-3, seed=0))
    after = loss(train_classifier(train, iterations=15, batch_size=64, lr=1e-3, seed=0))
    assert after < before - 0.1


@pytest.mark.slow
def test_trained_classifier_features_beat_untrained_ones_on_held_out_characters(omniglot):
    """~1 min: 300 iterations gave 0.86 after one head step (untrained features: 0.32)."""
    split = split_characters(omniglot.characters, seed=0, val=0, test=0.25)
    train = EpisodeSampler(omniglot, split.train, ways=5, shots=1, queries=5, seed=1)
    accuracy = {}
    for iterations in (0, 300):
        test = EpisodeSampler(omniglot, split.test, ways=5, shots=1, queries=5, seed=2)
        model = train_classifier(train, iterations=iterations, batch_size=64, lr=1e-3, seed=0)
        episode = test.sample_batch(100)
        curve = head_finetune_curve(
            episode_features(model, episode.support_x), episode.support_y,
            episode_features(model, episode.query_x), episode.query_y, ways=5, steps=1,
            step_size=0.4)
        assert curve[:, 0].mean().item() == pytest.approx(0.2)
        accuracy[iterations] = curve[:, 1].mean().item()
    assert accuracy[300] > 0.7 and accuracy[300] > accuracy[0] + 0.3


def test_cached_classifier_is_reused_only_for_the_same_classes_and_settings(omniglot, tmp_path,
                                                                          monkeypatch):
    from metarl.supervised.omniglot import baseline as classifier_baseline

    split = split_characters(omniglot.characters, seed=0, val=0, test=0.25)
    train = EpisodeSampler(omniglot, split.train, ways=5, shots=1, queries=1)
    trained = []
    real_train = classifier_baseline.train_classifier
    monkeypatch.setattr(classifier_baseline, "train_classifier",
                        lambda *a, **k: trained.append(k) or real_train(*a, **k))
    cache = tmp_path / "cache"
    settings = dict(iterations=2, batch_size=8, lr=1e-3, seed=0)

    def kept(sampler, **changed):
        key = classifier_baseline.training_key(sampler, **{**settings, **changed})
        return classifier_baseline.classifier_cache_file(cache, key)

    first = classifier_baseline.cached_classifier(train, cache_dir=cache, **settings)
    again = classifier_baseline.cached_classifier(train, cache_dir=cache, **settings)
    assert len(trained) == 1 and kept(train).is_file()
    x = train.sample_images(16, np.random.default_rng(0))[0]
    with torch.no_grad():
        assert torch.equal(first(x), again(x))

    classifier_baseline.cached_classifier(train, cache_dir=cache, **{**settings, "iterations": 3})
    assert len(trained) == 2 and kept(train, iterations=3).is_file()  # other settings: trained
    classifier_baseline.cached_classifier(train, cache_dir=cache, **settings)
    assert len(trained) == 2  # ... beside the first, which is still reused
    fewer = EpisodeSampler(omniglot, split.train[:-1], ways=5, shots=1, queries=1)
    classifier_baseline.cached_classifier(fewer, cache_dir=cache, **settings)
    assert len(trained) == 3  # other classes: trained
    kept(fewer).write_bytes(b"not a checkpoint")
    classifier_baseline.cached_classifier(fewer, cache_dir=cache, **settings)
    assert len(trained) == 4  # unreadable: retrained over
    classifier_baseline.cached_classifier(fewer, cache_dir=cache, **settings)
    assert len(trained) == 4
    # A file that holds another key under this name: retrained over.
    kept(fewer).write_bytes(kept(train).read_bytes())
    classifier_baseline.cached_classifier(fewer, cache_dir=cache, **settings)
    assert len(trained) == 5
    # Weights that do not fit the model under a matching key: retrained, not a traceback.
    saved = torch.load(kept(fewer), weights_only=True)
    saved["model"].pop("head.bias")
    torch.save(saved, kept(fewer))
    model = classifier_baseline.cached_classifier(fewer, cache_dir=cache, **settings)
    assert len(trained) == 6 and "head.bias" in model.state_dict()
    classifier_baseline.cached_classifier(fewer, cache_dir=cache, **settings)
    assert len(trained) == 6
    # Images preprocessed another way (omniglot.images.PREPROCESSING bumped): retrained.
    changed = omniglot_images.PREPROCESSING + "-changed"
    monkeypatch.setattr(omniglot_images, "PREPROCESSING", changed)
    classifier_baseline.cached_classifier(fewer, cache_dir=cache, **settings)
    assert len(trained) == 7
    classifier_baseline.cached_classifier(train, cache_dir=None, **settings)
    assert len(trained) == 8  # no cache folder: always trained


def test_episode_features_equal_the_model_on_each_task(omniglot):
    """The grouped convolutions of the shared weights give each task's own features, its
    batch normalised on its own, as the per-task loop does."""
    torch.manual_seed(0)
    model = ConvNet(12).to(memory_format=torch.channels_last)
    x = torch.rand(5, 7, 1, 28, 28)  # an odd number of tasks: the last group is shorter
    with torch.no_grad():
        loop = torch.stack([model.features(images) for images in x])
        assert torch.allclose(episode_features(model, x), loop, atol=1e-4)
        other = x.clone()
        other[1] = 2 * other[1] + 1  # another batch for task 1 only
        changed = episode_features(model, other)
        assert torch.allclose(changed[0], loop[0], atol=1e-4)  # task 0: its own batch only
        assert not torch.allclose(changed[1], loop[1], atol=1e-3)
