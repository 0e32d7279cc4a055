"""Batched augmentations: mixup at two levels, gain, roll; shapes, ranges, determinism."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from passt.data import Augment, AugmentConfig, augment
from passt.data.augment import sample_gamma, sample_mixing
from tests.helpers import NoHostSync


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("alpha", [0.3, 2.0])
def test_beta_draws_match_numpy(alpha):
    draws = sample_mixing(alpha, 20000, torch.device("cpu"), gen())
    reference = np.random.default_rng(0).beta(alpha, alpha, 20000)
    reference = np.maximum(reference, 1 - reference)
    assert draws.min() >= 0.5 and draws.max() <= 1.0
    assert draws.mean().item() == pytest.approx(reference.mean(), abs=0.01)
    assert draws.std().item() == pytest.approx(reference.std(), abs=0.01)
    gamma = sample_gamma(alpha, (20000,), torch.device("cpu"), gen(1))
    assert gamma.mean().item() == pytest.approx(alpha, rel=0.05)  # Gamma(a, 1): mean a, var a
    assert gamma.var().item() == pytest.approx(alpha, rel=0.1)


def test_waveform_mixup_is_a_convex_combination_of_mean_free_pairs():
    batch, samples = 64, 100
    x = torch.randn(batch, samples, generator=gen(1)) + 3.0
    y = torch.eye(batch)  # one class per sample: the target names the mix
    mixed_x, mixed_y = augment.waveform_mixup(x, y, rate=0.5, alpha=2.0, generator=gen())
    assert mixed_x.shape == x.shape and mixed_y.shape == y.shape
    touched = (mixed_y != y).any(1)
    assert 15 < touched.sum() < 50  # about half
    centred = x - x.mean(1, keepdim=True)
    torch.testing.assert_close(mixed_x[touched], mixed_y[touched] @ centred)
    for i in torch.nonzero(~touched).flatten().tolist():  # not chosen, or its own partner
        assert torch.allclose(mixed_x[i], x[i]) or torch.allclose(mixed_x[i], centred[i])
    assert torch.allclose(mixed_y.sum(1), torch.ones(batch))
    assert (mixed_y.max(1).values >= 0.5).all()
    unchanged, _ = augment.waveform_mixup(x, y, rate=0.0, generator=gen())
    torch.testing.assert_close(unchanged, x)


def test_spectrogram_mixup_mixes_every_sample_and_its_target():
    batch = 32
    mel = torch.randn(batch, 8, 20, generator=gen(2))
    y = torch.eye(batch)
    mixed, mixed_y = augment.spectrogram_mixup(mel, y, alpha=0.3, generator=gen())
    assert mixed.shape == mel.shape
    torch.testing.assert_close(mixed, torch.einsum("bc,cft->bft", mixed_y, mel))
    assert (mixed_y.max(1).values >= 0.5).all() and torch.allclose(mixed_y.sum(1), torch.ones(32))


def test_gain_stays_within_7_db():
    x = torch.randn(500, 64, generator=gen(3))
    out = augment.random_gain(x, 7.0, generator=gen())
    db = 20 * torch.log10(out.norm(dim=1) / x.norm(dim=1))
    assert db.abs().max() <= 7.0 + 1e-4 and db.min() < -6 and db.max() > 6


def shifts_of(out: torch.Tensor, x: torch.Tensor) -> list[int]:
    """Each row's circular shift along time, checked to be exactly that (rows of ``x`` hold
    consecutive values, so the first element tells the shift)."""
    length, shifts = x.shape[-1], []
    for rolled, row in zip(out, x, strict=True):
        shift = -int((rolled.flatten()[0] - row.flatten()[0]).item()) % length
        torch.testing.assert_close(rolled, torch.roll(row, shift, dims=-1))
        shifts.append(shift)
    return shifts


@pytest.mark.parametrize("shape", [(16, 1000), (4, 8, 50)])
def test_roll_is_a_per_sample_circular_shift(shape):
    x = torch.arange(np.prod(shape), dtype=torch.float32).reshape(shape)
    assert len(set(shifts_of(augment.random_roll(x, generator=gen()), x))) > 1
    small = shifts_of(augment.random_roll(x, max_shift=3, generator=gen()), x)
    assert all(s <= 3 or s >= shape[-1] - 3 for s in small)


def test_augment_is_deterministic_with_a_seed_and_can_be_switched_off():
    x, y = torch.randn(8, 4000, generator=gen(4)), torch.eye(8)
    mel = torch.randn(8, 16, 30, generator=gen(5))
    a, b = Augment(seed=3), Augment(seed=3)
    for got, expected in zip(a.waveform(x, y) + a.spectrogram(mel, y),
                             b.waveform(x, y) + b.spectrogram(mel, y), strict=True):
        torch.testing.assert_close(got, expected)
    assert not torch.equal(Augment(seed=4).waveform(x, y)[0], a.waveform(x, y)[0])
    off = Augment(AugmentConfig.off(), seed=3)
    assert torch.equal(off.waveform(x, y)[0], x) and torch.equal(off.spectrogram(mel, y)[0], mel)
    with pytest.raises(ValueError, match="gain_db"):
        AugmentConfig(gain_db=-1)


def test_augment_never_synchronises_with_the_host():
    x, y = torch.randn(4, 2000), torch.eye(4)
    augment = Augment(seed=0)
    with NoHostSync():
        augment.spectrogram(*augment.waveform(x, y))
