"""One benchmark of the suite, start to finish: build the step, measure what is not time
(FLOPs, memory), time it (with the GPU's clocks sampled), meter its energy in a window of its
own, derive the rest."""

from __future__ import annotations

import contextlib
import functools
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
from passt.measure.energy import meter_energy
from passt.measure.foreign_cpu import ForeignCpu
from passt.measure.machine_speed import SpeedProbe, speed_probe, with_probe
from passt.measure.memory import (
    free_device_memory,
    is_oom,
    largest_fitting_batch,
    memory_slope,
    peak_memory_available,
    replays_cuda_graphs,
)
from passt.measure.presets import Preset
from passt.measure.record import (
    profile_step,
    settings_record,
    with_comparison,
    with_compile_stats,
    with_energy,
    with_gpu_clocks,
    with_peak_memory,
    with_timing,
)
from passt.measure.step import Step, StepSettings, build_step
from passt.measure.telemetry import GpuMonitor
from passt.measure.timing import Timing, time_rounds

log = logging.getLogger(__name__)

# The matmul ceiling (TFLOPS) of the run's device for a dtype; None where none is measured.
Ceilings = Callable[[str], "float | None"]


@dataclass(frozen=True)
class Measurement:
    """One benchmark: its row and its timed steps (none when it ran OOM)."""

    record: BenchRecord
    times_s: list[float] = field(default_factory=list)


@dataclass
class _Progress:
    """How far a measurement got: where an out-of-memory happened, and the memory fit's row."""

    stage: str = "build"
    fit: BenchRecord | None = None


def measure(settings: StepSettings, kind: str, preset: Preset,
            ceilings: Ceilings = lambda dtype: None,
            build: Callable[[StepSettings, str], Step] = build_step,
            profile: Callable[[Step], BenchRecord] = profile_step,
            reference: StepSettings | None = None,
            shrink_to_fit: bool = False) -> Measurement:
    """Every number of one benchmark; an out-of-memory anywhere gives a row of the settings
    with ``oom=True``, ``oom_stage`` and the memory fit's points where it ran, and leaves the
    device clean for the next.

    With ``reference`` (the settings of our own step, which a peer or an ablation setting is
    compared with), the two are timed in alternating rounds and the row gets the speed-up.
    ``shrink_to_fit``: where the fit shows that the timed batch does not fit, time the
    largest batch that does instead of giving an OOM row (the official code as released).
    """
    progress = _Progress()
    try:
        result = _measure(settings, kind, preset, ceilings, build, profile, reference,
                          shrink_to_fit, progress)
    except Exception as e:
        if not is_oom(e):
            raise
        result = None
    if result is not None and not result.record.oom:
        return result
    # Here, outside the except block, the traceback and with it the step are gone.
    log.warning("%s %s: out of memory at batch size %d (%s)", settings.variant, kind,
                settings.batch_size, progress.stage)
    if settings.compile:
        reset_compiler()  # compiled graphs and CUDA graph pools hold memory too
    free_device_memory()
    fit = progress.fit
    record = settings_record(settings, kind) if fit is None else replace(
        settings_record(settings, kind), peak_memory_points=fit.peak_memory_points,
        oom_batch_sizes=fit.oom_batch_sizes)
    return Measurement(replace(record, oom=True, oom_stage=progress.stage))


def _measure(settings: StepSettings, kind: str, preset: Preset, ceilings: Ceilings,
             build: Callable[[StepSettings, str], Step],
             profile: Callable[[Step], BenchRecord],
             reference: StepSettings | None, shrink_to_fit: bool,
             progress: _Progress) -> Measurement | None:
    step = build(settings, kind)
    record = profile(step)
    cuda = _on_gpu(step.device)
    if kind == "train":
        # CPUs have no allocator peak; their memory figure is activation_bytes_per_sample.
        if peak_memory_available(step.device):
            progress.stage = "memory-fit"
            fit = memory_slope(step, preset.memory_batch_sizes)
            record = progress.fit = with_peak_memory(record, fit,
                                                     replays_cuda_graphs(settings))
            if settings.batch_size in record.oom_batch_sizes:
                batch = (largest_fitting_batch(fit, settings.batch_size, _capacity(step.device))
                         if shrink_to_fit else None)
                if batch is None:  # the row is out of memory: no second compile to show it
                    return None
                record = replace(record, batch_size=batch,
                                 requested_batch_size=settings.batch_size, notes=(
                                     *record.notes, f"timed at batch {batch}, the largest that "
                                     f"fits: batch {settings.batch_size} ran out of memory"))
                settings = replace(settings, batch_size=batch)
        # the timed batch, made after the fit so that it is not in the fit's intercept
        step.resize(settings.batch_size)
    free_device_memory()
    progress.stage = "timing"
    foreign = ForeignCpu()
    probe = speed_probe(step.device)
    monitor = GpuMonitor(index=_gpu_index(step.device)) if cuda else None
    ours_times = None
    if reference is None:
        # Copies are built after the memory fit, which must see one step only. Building a
        # compiled copy would reset the compiler under the first one.
        copies = 1 if settings.compile else preset.replicas
        steps = [step, *(build(settings, kind) for _ in range(copies - 1))]
        *groups, probe_times = time_rounds(steps, preset.warmup, preset.plan,
                                           during=_all(monitor, foreign), replicas=True,
                                           probe=probe)
        del steps[1:]
        own_stats = compile_stats() if settings.compile else None
    else:
        progress.stage = "alternating"
        alone = False
        try:
            times, ours_times, probe_times, own_stats = _alternate(
                step, reference, preset, _all(monitor, foreign), probe)
        except Exception as e:
            if not is_oom(e):
                raise
            alone = True
        if alone:  # out of the except block: our step and its memory are gone
            log.warning("%s: out of memory beside our step; timed alone", settings.variant)
            free_device_memory()
            progress.stage = "timing"
            monitor = GpuMonitor(index=_gpu_index(step.device)) if cuda else None
            foreign = ForeignCpu()
            times, probe_times = time_rounds([step], preset.warmup, preset.plan,
                                             during=_all(monitor, foreign), probe=probe)
            own_stats = compile_stats() if settings.compile else None
            record = replace(record, oom_stage="alternating", notes=(
                *record.notes, "out of memory with our step resident: timed alone, so no "
                               "speed-up over ours"))
        groups = [times]
    timing = Timing.of_replicas(groups, settings.batch_size, preset.warmup,
                                preset.plan.ci_target)
    record = replace(with_timing(record, timing, ceilings(settings.dtype)),
                     step_settings=asdict(settings), round_plan=preset.plan_record(),
                     reference_settings=None if reference is None else asdict(reference),
                     foreign_cpu_fraction=foreign.fraction)
    record = with_probe(record, probe_times)
    if monitor is not None:
        record = with_gpu_clocks(record, monitor, preset.plan.ci_target)
    if foreign.too_busy:
        record = replace(record, unstable=True, notes=(
            *record.notes, f"other processes used {foreign.fraction:.0%} of the CPUs while "
                           "it was timed: unstable"))
    if ours_times is not None:
        record = with_comparison(record, ours_times, times, reference.batch_size,
                                 settings.batch_size)
    if own_stats is not None:
        check_compiled(own_stats, settings.compile_mode, f"{settings.variant} {kind} step")
        record = with_compile_stats(record, own_stats)
    if cuda:
        progress.stage = "energy"
        record = with_energy(record, meter_energy(
            step, functools.partial(GpuMonitor, index=_gpu_index(step.device))))
    return Measurement(record, timing.times_s)


@contextlib.contextmanager
def _all(*managers: contextlib.AbstractContextManager | None) -> Iterator[None]:
    """Enter each of ``managers`` (None: skipped)."""
    with contextlib.ExitStack() as stack:
        for m in managers:
            if m is not None:
                stack.enter_context(m)
        yield


def _alternate(step: Step, reference: StepSettings, preset: Preset,
               during: contextlib.AbstractContextManager, probe: SpeedProbe,
               ) -> tuple[list[float], list[float], list[float], CompileStats | None]:
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
                                                 during=during, probe=probe)
    own = compile_stats().minus(ours_stats) if compiled else None
    return times, ours_times, probe_times, own


def _on_gpu(device: torch.device) -> bool:
    """Whether the step runs on a GPU, whose clocks are sampled and energy metered."""
    return device.type == "cuda"


def _gpu_index(device: torch.device) -> int:
    return device.index if device.index is not None else torch.cuda.current_device()


def _capacity(device: torch.device) -> int:
    """Bytes of memory of CUDA ``device``."""
    return torch.cuda.get_device_properties(device).total_memory
