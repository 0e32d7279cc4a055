"""Balanced sampling: PaSST's weights, epochs without replacement, determinism, DDP shares."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from passt.data import BalancedSampler, balanced_weights


def long_tailed_targets(samples: int = 1000, seed: int = 0) -> np.ndarray:
    """Class 0 in 90 % of the samples, class 1 in 8 %, class 2 in 2 %; some hold two."""
    rng = np.random.default_rng(seed)
    targets = np.zeros((samples, 3), dtype=np.float32)
    targets[np.arange(samples), rng.choice(3, samples, p=[0.9, 0.08, 0.02])] = 1
    targets[rng.choice(samples, samples // 10, replace=False), 0] = 1
    return targets


def test_weights_follow_the_paper_formula():
    targets = np.array([[1, 0], [1, 0], [1, 1], [0, 1], [0, 0]], dtype=np.float32)
    # counts: class 0 has 3, class 1 has 2
    expected = [1000 / 103, 1000 / 103, 1000 / 103 + 1000 / 102, 1000 / 102, 0.0]
    np.testing.assert_allclose(balanced_weights(targets), expected)
    np.testing.assert_allclose(balanced_weights(targets, offset=0)[3], 500.0)


def test_an_epoch_has_no_repeats_and_default_length_skips_unlabelled():
    targets = long_tailed_targets()
    targets[:5] = 0
    sampler = BalancedSampler(targets)
    epoch = list(sampler)
    assert len(epoch) == len(sampler) == 995
    assert sorted(epoch) == list(range(5, 1000))  # all of them: a weighted permutation
    short = list(BalancedSampler(targets, num_samples=200))
    assert len(short) == len(set(short)) == 200
    with pytest.raises(ValueError, match=r"num_samples must be in \[1, 995\]"):
        BalancedSampler(targets, num_samples=1000)


def test_rare_classes_are_drawn_more_often_than_uniformly():
    targets = long_tailed_targets()
    sampler = BalancedSampler(targets, num_samples=100, seed=1)
    drawn = []
    for epoch in range(30):
        sampler.set_epoch(epoch)
        drawn.extend(sampler)
    share = targets[drawn].mean(0)
    prevalence = targets.mean(0)
    assert share[2] > 3 * prevalence[2] and share[1] > 2 * prevalence[1]
    assert share[0] < prevalence[0]


def test_draws_are_deterministic_per_seed_and_epoch():
    targets = long_tailed_targets()
    a = BalancedSampler(targets, num_samples=50, seed=7)
    b = BalancedSampler(targets, num_samples=50, seed=7)
    a.set_epoch(3)
    b.set_epoch(3)
    assert list(a) == list(b) == list(a)
    b.set_epoch(4)
    assert list(a) != list(b)
    assert list(a) != list(BalancedSampler(targets, num_samples=50, seed=8))


def test_ddp_ranks_split_each_epoch_into_disjoint_equal_shares():
    targets = long_tailed_targets()
    shares = []
    for rank in range(3):
        sampler = BalancedSampler(targets, num_samples=100, seed=2, num_replicas=3, rank=rank)
        sampler.set_epoch(5)
        shares.append(list(sampler))
    assert [len(s) for s in shares] == [33, 33, 33]
    merged = [i for s in shares for i in s]
    assert len(set(merged)) == 99
    whole = BalancedSampler(targets, num_samples=100, seed=2)
    whole.set_epoch(5)
    assert set(merged) <= set(whole)
    with pytest.raises(ValueError, match="rank"):
        BalancedSampler(targets, num_replicas=2, rank=2)


def test_works_in_a_dataloader():
    targets = long_tailed_targets(64)
    dataset = torch.utils.data.TensorDataset(torch.from_numpy(targets))
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=8, sampler=BalancedSampler(targets, num_samples=32))
    assert sum(batch[0].shape[0] for batch in loader) == 32
