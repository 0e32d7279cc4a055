"""Energy per sample of a step, metered on its own after it was timed: the step back to back
with no probe, no other step and no synchronisation between steps, so that the window holds
nothing but the step's own work (and the GPU runs as it does in training)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from passt.measure.step import Step
from passt.measure.telemetry import GpuMonitor
from passt.utils.device import synchronize

# NVML's energy counter and power readings update every 20-100 ms: a window of at least 2 s
# and 20 steps resolves a step's energy to about a percent.
MIN_SECONDS = 2.0
MIN_STEPS = 20


@dataclass(frozen=True)
class EnergyReading:
    """The metered window: how many steps (and samples) it held and what NVML measured."""

    steps: int
    samples: int
    seconds: float | None
    joules: float | None
    mean_power_w: float | None
    mean_util_pct: float | None
    throttle_reasons: tuple[str, ...] | None

    @property
    def joules_per_sample(self) -> float | None:
        return None if self.joules is None else self.joules / self.samples


def meter_energy(step: Step, monitor: Callable[[], GpuMonitor],
                 min_seconds: float = MIN_SECONDS, min_steps: int = MIN_STEPS) -> EnergyReading:
    """Run ``step`` back to back inside ``monitor()`` until at least ``min_steps`` steps and
    ``min_seconds`` have passed, then wait for the device; the monitor's window opens after
    the queue is drained, so no earlier work (warm-up, timing, a probe) is in it."""
    synchronize(step.device)
    with monitor() as meter:
        steps, start = 0, time.perf_counter()
        while steps < min_steps or time.perf_counter() - start < min_seconds:
            step()
            steps += 1
        synchronize(step.device)
    return EnergyReading(steps=steps, samples=steps * step.settings.batch_size,
                         seconds=meter.seconds, joules=meter.joules,
                         mean_power_w=meter.mean_power_w, mean_util_pct=meter.mean_util_pct,
                         throttle_reasons=meter.throttle_reasons)
