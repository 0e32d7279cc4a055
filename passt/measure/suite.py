"""One benchmark of the suite, start to finish: build the step, measure what is not time
(FLOPs, memory), time it with the energy meter on the timed steps only, derive the rest."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import torch

from passt.measure.bench_record import BenchRecord
from passt.measure.compiled import check_compiled, compile_stats, reset_compiler
from passt.measure.memory import free_device_memory, is_oom, peak_memory_available
from passt.measure.presets import Preset
from passt.measure.record import (
    profile_step,
    settings_record,
    with_compile_stats,
    with_peak_memory,
    with_timing,
)
from passt.measure.step import Step, StepSettings, build_step
from passt.measure.telemetry import EnergyMeter
from passt.measure.timing import time_step

log = logging.getLogger(__name__)

# The matmul ceiling (TFLOPS) of the run's device for a dtype; None where none is measured.
Ceilings = Callable[[str], "float | None"]


@dataclass(frozen=True)
class Measurement:
    """One benchmark: its row and its timed steps (none when it ran OOM)."""

    record: BenchRecord
    times_s: list[float] = field(default_factory=list)


def measure(settings: StepSettings, kind: str, preset: Preset,
            ceilings: Ceilings = lambda dtype: None,
            build: Callable[[StepSettings, str], Step] = build_step,
            profile: Callable[[Step], BenchRecord] = profile_step) -> Measurement:
    """Every number of one benchmark; an out-of-memory anywhere (build, memory fit, warm-up,
    timed steps) gives a row of the settings with ``oom=True`` and leaves the device clean
    for the next."""
    try:
        return _measure(settings, kind, preset, ceilings, build, profile)
    except Exception as e:
        if not is_oom(e):
            raise
    # Here, outside the except block, the traceback and with it the step are gone.
    log.warning("%s %s: out of memory at batch size %d", settings.variant, kind,
                settings.batch_size)
    if settings.compile:
        reset_compiler()  # compiled graphs and CUDA graph pools hold memory too
    free_device_memory()
    return Measurement(replace(settings_record(settings, kind), oom=True))


def _measure(settings: StepSettings, kind: str, preset: Preset, ceilings: Ceilings,
             build: Callable[[StepSettings, str], Step],
             profile: Callable[[Step], BenchRecord]) -> Measurement:
    step = build(settings, kind)
    record = profile(step)
    if kind == "train":
        # CPUs have no allocator peak; their memory figure is activation_bytes_per_sample.
        if peak_memory_available(step.device):
            record = with_peak_memory(record, step, preset.memory_batch_sizes)
        # the timed batch, made after the fit so that it is not in the fit's intercept
        step.resize(settings.batch_size)
    free_device_memory()
    meter = EnergyMeter(index=_gpu_index(step.device)) if step.device.type == "cuda" else None
    timing = time_step(step, warmup=preset.warmup, iters=preset.rounds, during=meter)
    record = with_timing(record, timing, meter, ceilings(settings.dtype))
    if settings.compile:
        stats = compile_stats()
        check_compiled(stats, settings.compile_mode, f"{settings.variant} {kind} step")
        record = with_compile_stats(record, stats)
    return Measurement(record, timing.times_s)


def _gpu_index(device: torch.device) -> int:
    return device.index if device.index is not None else torch.cuda.current_device()
