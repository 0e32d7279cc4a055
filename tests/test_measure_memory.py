"""Tests for passt.measure.memory: saved activation bytes, and the CUDA peak fit's bookkeeping."""

import dataclasses

import pytest
import torch

from passt.measure import (
    StepSettings,
    activation_bytes_per_sample,
    build_step,
    memory,
    memory_slope,
    peak_step_bytes,
    saved_activation_bytes,
)
from passt.measure.memory import fit_line
from tests.helpers import FEW_PATCHES, SMALL

TINY = {**SMALL, "depth": 2, **FEW_PATCHES}


def tiny(**kwargs) -> StepSettings:
    return StepSettings(**{"model_overrides": TINY, "clip_seconds": 1.0, **kwargs})


@pytest.mark.slow
def test_activation_bytes_order_variants_as_the_paper():
    """Full-size models, one 10 s clip: the paper's memory column orders B > U > S > S-L and
    S-N < S. In fp32 only a few kB of indices do not grow with the batch, so one clip's count
    is the per-sample cost."""
    per_sample = {
        v: saved_activation_bytes(build_step(StepSettings(v)))
        for v in ("passt-b", "passt-u", "passt-s", "passt-s-l", "passt-s-n")
    }
    assert per_sample["passt-b"] > per_sample["passt-u"] > per_sample["passt-s"]
    assert per_sample["passt-s"] > per_sample["passt-s-l"]
    assert per_sample["passt-s-n"] < per_sample["passt-s"]


# Saved int64 indices that do not grow with the batch: the 11 x 7 patches structured
# patchout keeps of the 12 x 9 grid of a 1 s clip, and the 9 time-embedding columns cropped.
INDEX_BYTES = 8 * (11 * 7 + 9)


@pytest.mark.slow
def test_fp32_activations_grow_linearly_with_the_batch():
    counts = [saved_activation_bytes(build_step(tiny(batch_size=b))) for b in (1, 2, 3)]
    per_sample = counts[1] - counts[0]
    assert counts[2] - counts[1] == per_sample
    assert counts[0] - per_sample == INDEX_BYTES
    assert activation_bytes_per_sample(tiny()) == per_sample


def test_half_precision_weight_copies_are_not_per_sample():
    """bf16 autocast saves bf16 copies of the matmul weights once per batch: the slope leaves
    them out, the single-clip count does not."""
    settings = tiny(dtype="bf16", model_overrides={**TINY, "embed_dim": 32})
    one = saved_activation_bytes(build_step(dataclasses.replace(settings, batch_size=1)))
    per_sample = activation_bytes_per_sample(settings, batch_sizes=(1, 2, 3))
    model = build_step(settings).model
    matmuls = (torch.nn.Linear, torch.nn.Conv2d)
    weights = [m.weight for m in model.modules() if isinstance(m, matmuls)]
    copies = 2 * sum(w.numel() for w in weights if w is not model.head_dist.weight)
    assert one - per_sample == pytest.approx(copies + INDEX_BYTES)


def test_saved_bytes_need_an_eager_training_step():
    with pytest.raises(ValueError, match="needs a training step"):
        saved_activation_bytes(build_step(tiny(), kind="inference"))
    with pytest.raises(ValueError, match="build it with compile=False"):
        saved_activation_bytes(build_step(tiny(compile=True)))


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU refusal")
def test_cuda_peaks_refuse_the_cpu():
    with pytest.raises(ValueError, match="On the CPU use activation_bytes_per_sample"):
        peak_step_bytes(build_step(tiny()))
    with pytest.raises(ValueError, match="On the CPU use activation_bytes_per_sample"):
        memory_slope(build_step(tiny()))


def fake_peaks(monkeypatch, limit: int, error=torch.OutOfMemoryError):
    """Pretend to be CUDA: a step costs 1 MB plus 100 kB a sample, OOM above ``limit``."""

    def peak(step):
        assert step.inputs.shape[0] == step.settings.batch_size  # the step was resized
        if step.settings.batch_size > limit:
            raise error("CUDA out of memory")
        return 1_000_000 + 100_000 * step.settings.batch_size

    monkeypatch.setattr(memory, "_require_peak_support", lambda device, what: None)
    monkeypatch.setattr(memory, "peak_step_bytes", peak)


@pytest.mark.slow
def test_memory_slope_fits_and_records_oom(monkeypatch):
    fake_peaks(monkeypatch, limit=16)
    fit = memory_slope(build_step(tiny()), batch_sizes=(4, 8, 16, 32))
    assert [p.peak_bytes for p in fit.points] == [1_400_000, 1_800_000, 2_600_000, None]
    assert [p.oom for p in fit.points] == [False, False, False, True]
    assert fit.slope_bytes_per_sample == pytest.approx(100_000)
    assert fit.intercept_bytes == pytest.approx(1_000_000)


@pytest.mark.slow
def test_memory_slope_without_two_fits_has_no_line(monkeypatch):
    fake_peaks(monkeypatch, limit=2)
    fit = memory_slope(build_step(tiny()), batch_sizes=(1, 4, 8))
    assert [p.oom for p in fit.points] == [False, True, True]
    assert fit.slope_bytes_per_sample is None and fit.intercept_bytes is None


@pytest.mark.slow
def test_memory_slope_raises_other_errors(monkeypatch):
    fake_peaks(monkeypatch, limit=2, error=RuntimeError)
    with pytest.raises(RuntimeError, match="out of memory"):
        memory_slope(build_step(tiny()), batch_sizes=(1, 2, 4))


def test_memory_slope_needs_three_batch_sizes(monkeypatch):
    fake_peaks(monkeypatch, limit=64)
    with pytest.raises(ValueError, match="at least three distinct batch sizes"):
        memory_slope(build_step(tiny()), batch_sizes=(8, 8, 16))


def test_fit_line():
    assert fit_line([1, 2, 3], [5, 7, 9]) == pytest.approx((2.0, 3.0))
    with pytest.raises(ValueError, match="two distinct x values"):
        fit_line([2, 2], [1, 1])
