"""Throughput: warm-up steps, then device-synchronised timing of each step."""

from __future__ import annotations

import contextlib
import statistics
import time
from dataclasses import dataclass

from passt.device import synchronize
from passt.errors import UsageError
from passt.measure.step import Step


@dataclass(frozen=True)
class Timing:
    """Step times in seconds and the spectrograms per second implied by the median."""

    times_s: list[float]
    median_s: float
    mean_s: float
    min_s: float
    max_s: float
    stdev_s: float
    samples_per_s: float
    batch_size: int
    warmup: int
    iters: int


def time_step(step: Step, warmup: int = 5, iters: int = 20,
              during: contextlib.AbstractContextManager | None = None) -> Timing:
    """Run ``warmup`` untimed steps, then time ``iters`` steps one by one.

    ``during`` is entered around the timed steps only (an `EnergyMeter`, say), so warm-up and
    compilation stay out of what it measures.
    """
    if warmup < 0:
        raise UsageError(f"warmup must be >= 0, got {warmup}")
    if iters < 1:
        raise UsageError(f"iters must be >= 1, got {iters}")
    for _ in range(warmup):
        step()
    times = []
    synchronize(step.device)
    with during or contextlib.nullcontext():
        for _ in range(iters):
            start = time.perf_counter()
            step()
            synchronize(step.device)
            times.append(time.perf_counter() - start)
    median = statistics.median(times)
    batch = step.settings.batch_size
    return Timing(
        times_s=times,
        median_s=median,
        mean_s=statistics.fmean(times),
        min_s=min(times),
        max_s=max(times),
        stdev_s=statistics.stdev(times) if iters > 1 else 0.0,
        samples_per_s=batch / median,
        batch_size=batch,
        warmup=warmup,
        iters=iters,
    )
