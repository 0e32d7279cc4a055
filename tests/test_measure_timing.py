"""Tests for passt.measure.timing: warm-up, per-step synchronised timing and throughput."""

import statistics

import pytest
import torch

from passt.measure import StepSettings, build_step, synchronize, time_step
from tests.helpers import SMALL

TINY = SMALL


@pytest.fixture(scope="module")
def step():
    return build_step(StepSettings("passt-b", batch_size=3, clip_seconds=1.0,
                                   model_overrides=TINY))


@pytest.mark.slow
def test_timing_fields_are_consistent(step):
    timing = time_step(step, warmup=1, iters=5)
    assert len(timing.times_s) == 5 and timing.warmup == 1 and timing.iters == 5
    assert 0 < timing.min_s <= timing.median_s <= timing.max_s
    assert timing.min_s <= timing.mean_s <= timing.max_s
    assert timing.median_s == statistics.median(timing.times_s)
    assert timing.stdev_s == pytest.approx(statistics.stdev(timing.times_s))
    assert timing.batch_size == 3
    assert timing.samples_per_s == pytest.approx(3 / timing.median_s)


def test_single_iteration_has_zero_spread(step):
    timing = time_step(step, warmup=0, iters=1)
    assert timing.stdev_s == 0.0 and timing.median_s == timing.times_s[0]


@pytest.mark.parametrize("warmup, iters, match", [(-1, 5, "warmup"), (0, 0, "iters")])
def test_bad_iteration_counts(step, warmup, iters, match):
    with pytest.raises(ValueError, match=match):
        time_step(step, warmup=warmup, iters=iters)


def test_synchronize_waits_for_cuda_only(monkeypatch):
    waited = []
    monkeypatch.setattr(torch.cuda, "synchronize", waited.append)
    synchronize("cpu")
    assert waited == []  # the CPU runs eagerly: nothing to wait for
    synchronize("cuda:1")
    assert waited == [torch.device("cuda:1")]
