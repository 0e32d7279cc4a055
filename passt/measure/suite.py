"""One benchmark of the suite, start to finish: build the step, measure what is not time
(FLOPs, memory), time it with the energy meter on the timed steps only, derive the rest."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace

import torch

from passt.measure.bench_record import BenchRecord
from passt.measure.compiled import (
    CompileStats,
    check_compiled,
    compile_stats,
    reset_compiler,
)
from passt.measure.foreign_cpu import ForeignCpu
from passt.measure.machine_speed import SpeedProbe, speed_probe, with_probe
from passt.measure.memory import free_device_memory, is_oom, peak_memory_available
from passt.measure.presets import Preset
from passt.measure.record import (
    profile_step,
    settings_record,
    with_comparison,
    with_compile_stats,
    with_peak_memory,
    with_timing,
)
from passt.measure.step import Step, StepSettings, build_step
from passt.measure.telemetry import EnergyMeter
from passt.measure.timing import Timing, time_rounds

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
            profile: Callable[[Step], BenchRecord] = profile_step,
            reference: StepSettings | None = None) -> Measurement:
    """Every number of one benchmark; an out-of-memory anywhere (build, memory fit, warm-up,
    timed steps) gives a row of the settings with ``oom=True`` and leaves the device clean
    for the next.

    With ``reference`` (the settings of our own step, which a peer or an ablation setting is
    compared with), the two are timed in alternating rounds and the row gets the speed-up.
    """
    try:
        return _measure(settings, kind, preset, ceilings, build, profile, reference)
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
             profile: Callable[[Step], BenchRecord],
             reference: StepSettings | None) -> Measurement:
    step = build(settings, kind)
    record = profile(step)
    if kind == "train":
        # CPUs have no allocator peak; their memory figure is activation_bytes_per_sample.
        if peak_memory_available(step.device):
            record = with_peak_memory(record, step, preset.memory_batch_sizes)
        # the timed batch, made after the fit so that it is not in the fit's intercept
        step.resize(settings.batch_size)
    free_device_memory()
    foreign = ForeignCpu()
    probe = speed_probe(step.device)
    if reference is None:
        meter = EnergyMeter(index=_gpu_index(step.device)) if step.device.type == "cuda" else None
        # Copies are built after the memory fit, which must see one step only. Building a
        # compiled copy would reset the compiler under the first one.
        copies = 1 if settings.compile else preset.replicas
        steps = [step, *(build(settings, kind) for _ in range(copies - 1))]
        *groups, probe_times = time_rounds(steps, preset.warmup, preset.plan,
                                           during=_all(meter, foreign), replicas=True,
                                           probe=probe)
        own_stats = compile_stats() if settings.compile else None
    else:
        meter = None  # the meter cannot tell two alternating steps apart
        times, ours_times, probe_times, own_stats = _alternate(step, reference, preset,
                                                               foreign, probe)
        groups = [times]
    timing = Timing.of_replicas(groups, settings.batch_size, preset.warmup,
                                preset.plan.ci_target)
    record = replace(with_timing(record, timing, meter, ceilings(settings.dtype)),
                     step_settings=asdict(settings), round_plan=preset.plan_record(),
                     reference_settings=None if reference is None else asdict(reference),
                     foreign_cpu_fraction=foreign.fraction)
    record = with_probe(record, probe_times)
    if foreign.too_busy:
        record = replace(record, unstable=True, notes=(
            *record.notes, f"other processes used {foreign.fraction:.0%} of the CPUs while "
                           "it was timed: unstable"))
    if reference is not None:
        record = replace(with_comparison(record, ours_times, times), notes=(
            *record.notes, "energy not metered: timed in alternating rounds with our step"))
    if own_stats is not None:
        check_compiled(own_stats, settings.compile_mode, f"{settings.variant} {kind} step")
        record = with_compile_stats(record, own_stats)
    return Measurement(record, timing.times_s)


@contextlib.contextmanager
def _all(*managers: contextlib.AbstractContextManager | None) -> Iterator[None]:
    """Enter each of ``managers`` (None: skipped)."""
    with contextlib.ExitStack() as stack:
        for m in managers:
            if m is not None:
                stack.enter_context(m)
        yield


def _alternate(step: Step, reference: StepSettings, preset: Preset, foreign: ForeignCpu,
               probe: SpeedProbe) -> tuple[list[float], list[float], list[float],
                                           CompileStats | None]:
    """Time ``step``, our step (of ``reference``) and the ``probe`` in alternating rounds;
    the compiler's counters of ``step`` alone (its compilations, then its recompiles while
    timed)."""
    compiled = step.settings.compile
    for _ in range(preset.warmup):  # compiles this step before ours is built
        step()
    before = compile_stats() if compiled else None
    # a compiled step's graphs must survive ours being built
    ours = build_step(reference, step.kind, fresh_compiler=not compiled)
    for _ in range(preset.warmup):
        ours()
    ours_stats = compile_stats().minus(before) if compiled else None
    times, ours_times, probe_times = time_rounds([step, ours], 0, preset.plan,
                                                 during=foreign, probe=probe)
    own = compile_stats().minus(ours_stats) if compiled else None
    return times, ours_times, probe_times, own


def _gpu_index(device: torch.device) -> int:
    return device.index if device.index is not None else torch.cuda.current_device()
