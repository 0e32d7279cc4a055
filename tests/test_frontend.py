"""Tests for passt.frontend: parity with the official PaSST preprocessing and the augmentations."""

import warnings
from unittest import mock

import pytest
import torch
from torchaudio.compliance.kaldi import get_mel_banks

from passt import frontend
from passt.frontend import FrontendConfig, MelFrontend, create_frontend, kaldi_mel_banks
from passt.utils.errors import UsageError
from tests.helpers import NoHostSync

SR = 32000
MASKED = (0.0 + 4.5) / 5.0


def waveform(batch: int = 2, seconds: float = 3.0, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return 0.1 * torch.randn(batch, int(seconds * SR), generator=gen)


def official_frontend() -> torch.nn.Module:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from hear21passt.models.preprocess import AugmentMelSTFT

        return AugmentMelSTFT(
            n_mels=128, sr=32000, win_length=800, hopsize=320, n_fft=1024, freqm=48, timem=192,
            htk=False, fmin=0.0, fmax=None, norm=1, fmin_aug_range=10, fmax_aug_range=2000,
        )


def test_eval_matches_official():
    x = waveform()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = official_frontend().eval()(x)
    got = create_frontend().eval()(x)
    assert got.dtype == torch.float32
    assert got.shape == expected.shape == (2, 128, 300)
    assert (got - expected).abs().max().item() < 1e-4


def test_accepts_channel_dim():
    x = waveform(seconds=0.5)
    fe = create_frontend().eval()
    assert torch.equal(fe(x), fe(x.unsqueeze(1)))


@pytest.mark.parametrize(
    "fmin,fmax", [(0.0, 15000.0), (9.0, 16000.0), (5.0, 14001.0), (50.0, 8000.0), (100.0, 4000.0)]
)
def test_filterbank_matches_kaldi(fmin, fmax):
    expected, _ = get_mel_banks(128, 1024, SR, fmin, fmax, 100.0, -500.0, 1.0)
    expected = torch.nn.functional.pad(expected, (0, 1))
    got = kaldi_mel_banks(128, 1024, SR, torch.tensor(fmin), torch.tensor(fmax))
    assert got.shape == expected.shape == (128, 513)
    assert (got - expected).abs().max().item() < 1e-5


def test_eval_filterbank_built_once():
    fe = create_frontend().eval()
    basis = fe.mel_basis
    with mock.patch.object(frontend, "kaldi_mel_banks", wraps=frontend.kaldi_mel_banks) as spy:
        for seed in range(3):
            fe(waveform(seconds=0.5, seed=seed))
        assert spy.call_count == 0
        fe.train()(waveform(seconds=0.5))
        assert spy.call_count == 1
    assert fe.mel_basis is basis


def test_training_differs_from_eval():
    x = waveform()
    fe = create_frontend(seed=0)
    assert not torch.allclose(fe.train()(x), fe.eval()(x))


def test_training_reproducible_by_seed():
    x = waveform()
    a = create_frontend(seed=1).train()(x)
    b = create_frontend(seed=1).train()(x)
    c = create_frontend(seed=2).train()(x)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_training_default_rng_follows_manual_seed():
    x = waveform(seconds=1.0)
    fe = create_frontend().train()
    torch.manual_seed(3)
    a = fe(x)
    torch.manual_seed(3)
    assert torch.equal(a, fe(x))


def masked_blocks(mel: torch.Tensor, dim: int) -> list[list[int]]:
    """Per sample, the indices along `dim` (1 rows, 2 columns) that are entirely masked."""
    full = (mel == MASKED).all(dim=3 - dim)
    touched = (mel == MASKED).any(dim=3 - dim)
    # Masks cover whole bands/frames: no row or column may be only partly masked.
    assert torch.equal(full, touched)
    return [torch.nonzero(row).flatten().tolist() for row in full]


@pytest.mark.parametrize("dim,override", [(1, {"time_mask": 0}), (2, {"freq_mask": 0})])
def test_masks_are_contiguous_iid_blocks(dim, override):
    max_width = {1: 48, 2: 192}[dim]
    fe = create_frontend(seed=0, **override).train()
    blocks = masked_blocks(fe(waveform(batch=8, seconds=3.0)), dim)
    for idx in blocks:
        assert len(idx) < max_width
        assert idx == list(range(idx[0], idx[0] + len(idx)) if idx else [])
    assert sum(len(idx) > 0 for idx in blocks) >= 6
    assert len({tuple(idx) for idx in blocks}) > 1


def test_training_has_no_host_sync():
    x = waveform(seconds=1.0)
    fe = create_frontend(seed=0).train()
    with NoHostSync():
        fe(x)
    # The guard does catch the official module, which calls .item() on its fmin/fmax draws.
    official = official_frontend().train()
    with pytest.raises(RuntimeError, match="host synchronisation"), NoHostSync():
        official(x)


def test_frames():
    fe = create_frontend().eval()
    assert fe.frames(320000) == 1000
    assert fe(torch.zeros(1, 320000)).shape[-1] == 1000
    assert fe(torch.zeros(1, 1, 12345)).shape[-1] == fe.frames(12345)


@pytest.mark.parametrize("shape", [(32000,), (2, 2, 32000), (1, 1, 1, 32000)])
def test_bad_input_rank(shape):
    with pytest.raises(ValueError, match=r"\[B, S\] or \[B, 1, S\], got"):
        create_frontend()(torch.zeros(shape))


def test_too_short_input():
    with pytest.raises(ValueError, match="at least 514 samples"):
        create_frontend()(torch.zeros(1, 100))


@pytest.mark.parametrize(
    "override,message",
    [
        ({"n_mels": 0}, "n_mels must be positive"),
        ({"hop_length": -1}, "hop_length must be positive"),
        ({"win_length": 2048}, "win_length .* must not exceed n_fft"),
        ({"fmax": 17000.0}, "fmax <= sample_rate/2"),
        ({"fmin": 9000.0, "fmax": 8000.0}, "fmin < fmax"),
        ({"fmin_aug_range": 0}, "fmin_aug_range must be >= 1"),
        ({"fmax_aug_range": 0}, "fmax_aug_range must be >= 1"),
        ({"freq_mask": -1}, "freq_mask must be >= 0"),
        ({"time_mask": -5}, "time_mask must be >= 0"),
        ({"fmax": 16000.0}, "augmented band"),
        ({"preemphasis": 1.5}, "preemphasis must be in"),
    ],
)
def test_bad_config(override, message):
    with pytest.raises(ValueError, match=message):
        FrontendConfig(**override)


def test_unknown_override():
    with pytest.raises(UsageError, match="unknown frontend option 'n_mel'; accepted: .*n_mels"):
        create_frontend(n_mel=64)


def test_default_config():
    fe = MelFrontend()
    assert fe.config == FrontendConfig()
    assert fe.mel_basis.shape == (128, 513)
