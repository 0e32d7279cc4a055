"""The synthetic AudioSet-like task: determinism, shapes, long tail, and that its classes need
time-frequency patterns (the mean spectrum misses them)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score
from sklearn.multiclass import OneVsRestClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import passt
from passt.data import CATALOG, SyntheticConfig, SyntheticDataset, open_dataset

FAMILIES = {c.family for c in CATALOG}


def test_catalog_has_enough_classes_and_families():
    assert len(CATALOG) >= 24 and len(FAMILIES) >= 8
    assert len({c.name for c in CATALOG}) == len(CATALOG)
    assert all(0.2 <= c.duration[0] <= c.duration[1] <= 3.0 for c in CATALOG)


def test_clips_are_deterministic_per_seed_split_and_index():
    config = SyntheticConfig(clip_seconds=1.0)
    a = SyntheticDataset(4, seed=3, config=config)
    b = SyntheticDataset(4, seed=3, config=config)
    x, y = a[2]
    np.testing.assert_array_equal(x, b[2][0])
    np.testing.assert_array_equal(y, b[2][1])
    np.testing.assert_array_equal(y, a.targets[2])
    assert not np.array_equal(x, a[1][0])
    assert not np.array_equal(x, SyntheticDataset(4, seed=4, config=config)[2][0])
    assert not np.array_equal(x, SyntheticDataset(4, seed=3, split="eval", config=config)[2][0])


@pytest.mark.parametrize("seconds, rate", [(10.0, 32000), (2.5, 16000), (0.15, 32000)])
def test_any_clip_length_and_sample_rate(seconds, rate):
    config = SyntheticConfig(clip_seconds=seconds, sample_rate=rate)
    ds = SyntheticDataset(3, config=config)
    for i in range(len(ds)):
        x, y = ds[i]
        assert x.dtype == np.float32 and x.shape == (round(seconds * rate),)
        assert y.dtype == np.float32 and y.shape == (32,)
        assert np.isfinite(x).all() and 0 < np.abs(x).max() <= 1.0
        assert 1 <= y.sum() <= 4


@pytest.mark.parametrize("rate", [8000, 32000])
def test_every_class_renders_finite_unit_rms_audio(rate):
    rng = np.random.default_rng(0)
    for event_class in CATALOG:
        x = event_class.render(rng, rate // 2, rate)
        assert x.dtype == np.float32 and x.shape == (rate // 2,), event_class.name
        assert np.isfinite(x).all(), event_class.name
        assert np.sqrt(np.mean(x**2)) == pytest.approx(1.0, rel=1e-3), event_class.name


def test_class_frequencies_are_long_tailed():
    targets = SyntheticDataset(3000, seed=0, config=SyntheticConfig(clip_seconds=1.0)).targets
    counts = np.sort(targets.sum(0))[::-1]
    assert counts[-1] > 0
    assert 8 < counts[0] / counts[-1] < 50  # the prior's ratio is 20
    assert counts[:8].sum() > 2.5 * counts[-8:].sum()


def test_open_dataset_synthetic_splits_sizes_and_classes():
    train = open_dataset("synthetic", clip_seconds=1.0, num_classes=24, seed=1)
    evaluation = open_dataset("synthetic", clip_seconds=1.0, split="eval", num_classes=24, seed=1)
    assert (len(train), len(evaluation)) == (2000, 500)
    assert train.num_classes == 24 and train.label_names == [c.name for c in CATALOG[:24]]
    assert train.targets.shape == (2000, 24) and train.clip_samples == 32000
    assert not np.array_equal(train[0][0], evaluation[0][0])
    with pytest.raises(ValueError, match="num_classes"):
        open_dataset("synthetic", num_classes=99)
    with pytest.raises(ValueError, match="unknown split"):
        open_dataset("synthetic", split="dev")


def log_mels(dataset: SyntheticDataset) -> np.ndarray:
    frontend = passt.create_frontend().eval()
    audio = torch.from_numpy(np.stack([dataset[i][0] for i in range(len(dataset))]))
    with torch.no_grad():
        return torch.cat([frontend(chunk) for chunk in audio.split(100)]).numpy()


def mean_spectrum(mel: np.ndarray) -> np.ndarray:
    return mel.mean(-1)


def time_frequency(mel: np.ndarray) -> np.ndarray:
    """Per band (32 pooled): mean, std, squared rises and falls, the covariance of time and
    frequency slopes (sweep direction) and the modulation spectrum in five rate bands."""
    b, f, t = mel.shape
    bands = mel.reshape(b, 32, f // 32, t).mean(2)
    dt, df = np.diff(bands, axis=-1), np.diff(bands, axis=1)
    modulation = np.abs(np.fft.rfft(bands - bands.mean(-1, keepdims=True), axis=-1))
    rates = np.fft.rfftfreq(t, 0.01)
    return np.concatenate([
        bands.mean(-1), bands.std(-1),
        (np.maximum(dt, 0) ** 2).mean(-1), (np.maximum(-dt, 0) ** 2).mean(-1),
        (dt[:, :-1] * df[:, :, :-1]).mean(-1),
        *[modulation[..., (rates >= lo) & (rates < hi)].mean(-1)
          for lo, hi in ((0.5, 3), (3, 6), (6, 12), (12, 24), (24, 50))],
    ], axis=1)


def macro_map(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray,
              test_y: np.ndarray) -> float:
    """Macro mAP over the classes present in the test set of a one-vs-rest logistic regression."""
    model = make_pipeline(StandardScaler(), OneVsRestClassifier(
        LogisticRegression(C=0.1, max_iter=2000)))
    scores = model.fit(train_x, train_y).predict_proba(test_x)
    return float(np.mean([average_precision_score(test_y[:, c], scores[:, c])
                          for c in np.flatnonzero(test_y.any(0))]))


@pytest.mark.slow
def test_mean_spectrum_misses_what_time_frequency_patterns_carry():
    config = SyntheticConfig(clip_seconds=3.0)
    train = SyntheticDataset(400, seed=0, config=config)
    test = SyntheticDataset(200, seed=0, split="eval", config=config)
    train_mel, test_mel = log_mels(train), log_mels(test)
    maps = {name: macro_map(features(train_mel), train.targets, features(test_mel), test.targets)
            for name, features in (("mean", mean_spectrum), ("time-frequency", time_frequency))}
    print(f"macro mAP of logistic regression: {maps}")
    assert maps["mean"] < 0.5
    assert maps["time-frequency"] > maps["mean"] + 0.15
