"""One benchmark of the suite, start to finish: build the step, measure what is not time,
time it with the caller's timer under the energy meter, and derive the rest."""

from __future__ import annotations

import gc
import logging
from collections.abc import Callable
from typing import Any

import torch

from passt.measure.memory import is_oom, peak_memory_available
from passt.measure.presets import Preset
from passt.measure.record import peak_memory, profile_step, timing_fields
from passt.measure.step import Step, StepSettings, build_step
from passt.measure.telemetry import EnergyMeter
from passt.measure.timing import synchronize

log = logging.getLogger(__name__)

# CPUs have no allocator peak; their memory figure is activation_bytes_per_sample.
NO_PEAK_MEMORY = {"peak_memory_bytes_per_sample": None, "peak_memory_intercept_bytes": None,
                  "peak_memory_points": {}, "oom_batch_sizes": []}

# Runs a zero-argument step callable (warm-up, then timed rounds); returns the median seconds.
Timer = Callable[[Callable[[], None]], float]


def settings_record(settings: StepSettings, kind: str) -> dict[str, Any]:
    """The identifying fields of a benchmark, known before anything runs."""
    return {"variant": settings.variant, "kind": kind, "batch_size": settings.batch_size,
            "clip_seconds": settings.clip_seconds, "dtype": settings.dtype,
            "attention": settings.attention, "compile": settings.compile,
            "device": settings.device}


def measure(settings: StepSettings, kind: str, preset: Preset, timer: Timer,
            ceiling_tflops: float | None = None,
            build: Callable[[StepSettings, str], Step] = build_step,
            profile: Callable[[Step], dict[str, Any]] = profile_step) -> dict[str, Any]:
    """Every number of one benchmark; an out-of-memory anywhere gives ``{"oom": True, ...}``."""
    try:
        step = build(settings, kind)
        record = {**profile(step), "oom": False}
        if kind == "train":
            record.update(peak_memory(step, preset.memory_batch_sizes, build)
                          if peak_memory_available(step.device) else NO_PEAK_MEMORY)

        def run() -> None:
            step()
            synchronize(step.device)

        with EnergyMeter(index=_gpu_index(step.device)) as energy:
            median_s = timer(run)
        samples = (preset.warmup + preset.rounds) * settings.batch_size
        record.update(timing_fields(record, median_s, energy, samples, ceiling_tflops))
        return record
    except Exception as e:
        if not is_oom(e):
            raise
        log.warning("%s %s: out of memory at batch size %d", settings.variant, kind,
                    settings.batch_size)
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        return {**settings_record(settings, kind), "oom": True}


def _gpu_index(device: torch.device) -> int:
    if device.type != "cuda":
        return 0
    return device.index if device.index is not None else torch.cuda.current_device()
