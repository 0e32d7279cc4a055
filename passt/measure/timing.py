"""Throughput: warm-up steps, then device-synchronised timing of each step."""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

import torch

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


def synchronize(device: torch.device | str) -> None:
    """Wait for the work queued on ``device`` (a no-op on the CPU, which runs eagerly)."""
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_step(step: Step, warmup: int = 5, iters: int = 20) -> Timing:
    """Run ``warmup`` untimed steps, then time ``iters`` steps one by one."""
    if warmup < 0:
        raise ValueError(f"warmup must be >= 0, got {warmup}")
    if iters < 1:
        raise ValueError(f"iters must be >= 1, got {iters}")
    for _ in range(warmup):
        step()
    times = []
    synchronize(step.device)
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
