"""Throughput: warm-up steps, then device-synchronised timing of each step, in rounds that go
on until the median is known precisely enough, alternating between steps compared (or between
replicas of one step)."""

from __future__ import annotations

import contextlib
import itertools
import math
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass

from passt.measure.machine_speed import SpeedProbe
from passt.measure.stability import Stability, replica_stability, stability
from passt.measure.step import Step
from passt.utils.device import synchronize
from passt.utils.errors import UsageError


@dataclass(frozen=True)
class RoundPlan:
    """How long to time: at least ``min_rounds``; then until every median's 95% interval is
    within ``ci_target`` of it (0.03: +-3%), or ``max_rounds``, or ``max_seconds`` of timing."""

    min_rounds: int
    max_rounds: int
    max_seconds: float = math.inf
    ci_target: float = 0.03

    def __post_init__(self) -> None:
        if self.min_rounds < 1 or self.max_rounds < self.min_rounds:
            raise UsageError(f"need 1 <= min_rounds <= max_rounds, got {self.min_rounds} and "
                             f"{self.max_rounds}")
        if not self.max_seconds > 0 or not self.ci_target > 0:
            raise UsageError(f"max_seconds and ci_target must be positive, got "
                             f"{self.max_seconds} and {self.ci_target}")


@dataclass(frozen=True)
class Timing:
    """Step times in seconds, their median's precision and the spectrograms per second."""

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
    stability: Stability
    unstable: bool  # the plan's precision target was not met
    replica_medians_s: list[float]  # each separately built replica's median (one: no replicas)

    @classmethod
    def of(cls, times: Sequence[float], batch_size: int, warmup: int,
           target: float | None = None) -> Timing:
        """The timing of ``times``; ``target``: the precision asked for (None: none)."""
        return cls.of_replicas([times], batch_size, warmup, target)

    @classmethod
    def of_replicas(cls, groups: Sequence[Sequence[float]], batch_size: int, warmup: int,
                    target: float | None = None) -> Timing:
        """The timing of separately built replicas of one step, timed in alternating rounds
        (``groups``: each replica's times); the interval covers the spread between them."""
        times = [t for round_ in itertools.zip_longest(*groups) for t in round_ if t is not None]
        s = replica_stability(groups)
        return cls(times_s=times, median_s=s.median, mean_s=statistics.fmean(times),
                   min_s=min(times), max_s=max(times),
                   stdev_s=statistics.stdev(times) if len(times) > 1 else 0.0,
                   samples_per_s=batch_size / s.median, batch_size=batch_size, warmup=warmup,
                   iters=len(times), stability=s,
                   unstable=target is not None and not s.meets(target),
                   replica_medians_s=[statistics.median(g) for g in groups])


def time_rounds(steps: Sequence[Step], warmup: int, plan: RoundPlan,
                during: contextlib.AbstractContextManager | None = None,
                replicas: bool = False, probe: SpeedProbe | None = None) -> list[list[float]]:
    """Warm each step up, then time them in alternating rounds (A B A B ...), so that drift
    in the machine's speed hits all alike; returns each step's times, then the ``probe``'s
    (a `passt.measure.machine_speed.SpeedProbe`, timed after the steps of each round: the
    fastest of its tries) if given.

    The rounds end when each step's median is precise enough, or with ``replicas`` (the steps
    are separately built copies of one) when their pooled `replica_stability` is.

    ``during`` is entered around the timed rounds only (a `GpuMonitor`, say), so warm-up
    and compilation stay out of what it measures.
    """
    if warmup < 0:
        raise UsageError(f"warmup must be >= 0, got {warmup}")
    for step in steps:
        for _ in range(warmup):
            step()
    times: list[list[float]] = [[] for _ in steps]
    probe_times: list[float] = []
    for step in steps:
        synchronize(step.device)
    started = time.perf_counter()
    with during or contextlib.nullcontext():
        while True:
            for step, own in zip(steps, times, strict=True):
                own.append(_timed(step))
            if probe is not None:  # the machine's speed: its fastest try of the round
                probe_times.append(min(_timed(probe) for _ in range(probe.tries)))
            rounds = len(times[0])
            if rounds < plan.min_rounds:
                continue
            if (rounds >= plan.max_rounds
                    or time.perf_counter() - started >= plan.max_seconds
                    or (replica_stability(times).meets(plan.ci_target) if replicas
                        else all(stability(own).meets(plan.ci_target) for own in times))):
                return [*times, probe_times] if probe is not None else times


def _timed(step: Step | SpeedProbe) -> float:
    """Seconds one call of ``step`` takes, to the end of its work on the device."""
    start = time.perf_counter()
    step()
    synchronize(step.device)
    return time.perf_counter() - start


def time_step(step: Step, warmup: int = 5, iters: int = 20,
              during: contextlib.AbstractContextManager | None = None) -> Timing:
    """Run ``warmup`` untimed steps, then time exactly ``iters`` steps one by one."""
    if iters < 1:
        raise UsageError(f"iters must be >= 1, got {iters}")
    times = time_rounds([step], warmup, RoundPlan(iters, iters), during)[0]
    return Timing.of(times, step.settings.batch_size, warmup)
