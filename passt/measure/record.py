"""One benchmark's `BenchRecord`, built in stages: the settings, then the untimed profile of
its step (FLOPs, memory), then the numbers derived from its timing (throughput, MFU, energy
per sample) and the compiler's counters."""

from __future__ import annotations

import dataclasses
import statistics
from typing import Any

import torch

from passt.measure.bench_record import BenchRecord
from passt.measure.compiled import CompileStats
from passt.measure.energy import EnergyReading
from passt.measure.flops import count_flops, mfu, peak_tflops
from passt.measure.memory import MemoryFit, activation_bytes_per_sample
from passt.measure.stability import ratio_stability
from passt.measure.step import Step, StepSettings
from passt.measure.telemetry import UNSTABLE_THROTTLES, GpuMonitor
from passt.measure.timing import Timing
from passt.variants import get_variant, mean_seq_len, reduction_acts


def device_name(device: torch.device) -> str:
    """A human name of ``device``: the GPU's model, or the CPU's."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        with open("/proc/cpuinfo") as f:
            model = next((line.split(":", 1)[1].strip() for line in f
                          if line.startswith("model name")), "")
    except OSError:
        model = ""
    return f"CPU {model}".strip() + f" ({torch.get_num_threads()} threads)"


def settings_record(settings: StepSettings, kind: str) -> BenchRecord:
    """The row of a benchmark as known before anything runs (an out-of-memory row's all)."""
    return BenchRecord(
        variant=settings.variant, kind=kind, batch_size=settings.batch_size,
        clip_seconds=settings.clip_seconds, dtype=settings.dtype, attention=settings.attention,
        compile=settings.compile, compile_mode=settings.compile_mode, device=settings.device)


def step_record(step: Step, *, strategy: str, attention: str, patchout_args: dict[str, Any],
                forward_gflops: float, step_gflops: float,
                activation_bytes: float | None) -> BenchRecord:
    """The untimed fields of ``step`` that our steps and the peers' share: settings, shape,
    FLOPs per sample and (training) activation bytes per sample; the rest are arguments
    because a peer finds them its own way."""
    training = step.kind == "train"
    variant = get_variant(step.settings.variant)
    cfg = step.settings.model_config
    return dataclasses.replace(
        settings_record(step.settings, step.kind),
        attention=attention, device=str(step.device), strategy=strategy,
        reductions="+".join(variant.reductions), patchout_args=patchout_args,
        reduction=cfg.reduction, reduction_args=dict(cfg.reduction_args),
        acts=reduction_acts(cfg, variant.reductions),
        seq_len=mean_seq_len(step.seq_len_per_block),
        seq_len_per_block=tuple(step.seq_len_per_block), frames=step.frames,
        device_name=device_name(step.device), params=step.num_params,
        forward_gflops_per_sample=forward_gflops, step_gflops_per_sample=step_gflops,
        train_gflops_per_sample=step_gflops if training else None,
        activation_bytes_per_sample=activation_bytes if training else None,
    )


def profile_step(step: Step) -> BenchRecord:
    """The untimed measurements of ``step``: settings, sequence length, FLOPs and memory."""
    s = step.settings
    flops = count_flops(dataclasses.replace(s, batch_size=1), step.kind)
    activation = (activation_bytes_per_sample(dataclasses.replace(s, compile=False))
                  if step.kind == "train" else None)
    record = step_record(step, strategy=get_variant(s.variant).strategy, attention=s.attention,
                         patchout_args=dict(step.model.cfg.patchout_args),
                         forward_gflops=flops.forward_torch, step_gflops=flops.step_torch,
                         activation_bytes=activation)
    return dataclasses.replace(record, forward_gflops_per_sample_fvcore=flops.forward_fvcore,
                               forward_gflops_per_sample_analytic=flops.forward_analytic,
                               notes=tuple(flops.notes))


def with_peak_memory(record: BenchRecord, fit: MemoryFit, graphs: bool) -> BenchRecord:
    """``record`` with the peak CUDA memory per sample of a training step's memory ``fit``
    (slope over its batch sizes), its intercept and the batch sizes that ran out of memory;
    ``graphs``: the step replays CUDA graphs, whose peaks are their recordings'."""
    note = ("peak memory: over the warm-up and CUDA-graph recording calls (a replay allocates "
            "nothing the allocator sees)",) if graphs else ()
    return dataclasses.replace(
        record,
        peak_memory_bytes_per_sample=fit.slope_bytes_per_sample,
        peak_memory_intercept_bytes=fit.intercept_bytes,
        peak_memory_points={p.batch_size: p.peak_bytes for p in fit.points},
        oom_batch_sizes=tuple(p.batch_size for p in fit.points if p.oom),
        notes=(*record.notes, *note),
    )


def with_timing(record: BenchRecord, timing: Timing,
                ceiling_tflops: float | None) -> BenchRecord:
    """``record`` with throughput and MFU (over the datasheet peak and over the measured matmul
    ceiling of the row's dtype), from the timed steps."""
    samples_per_s = timing.samples_per_s
    flops = record.step_gflops_per_sample * 1e9
    peak = peak_tflops(record.device_name, record.dtype)
    s = timing.stability
    of_ceiling = mfu(flops, samples_per_s, ceiling_tflops) if ceiling_tflops else None
    above = None if of_ceiling is None else of_ceiling > 1.0
    notes = record.notes
    if above:  # no efficiency above 1 is reported as a number
        notes = (*notes, f"the step claims {of_ceiling:.2f}x the matmul ceiling measured in the "
                         "run (a ceiling timed while the machine was busy, or a FLOP count "
                         "that is too high): mfu_of_ceiling left null")
    return dataclasses.replace(
        record,
        median_step_s=timing.median_s,
        timed_rounds=timing.iters,
        warmup_rounds=timing.warmup,
        median_ci_low_s=s.ci_low,
        median_ci_high_s=s.ci_high,
        ci_half_width=s.half_width,
        iqr_over_median=s.iqr_over_median,
        unstable=timing.unstable,
        replica_medians_s=(tuple(timing.replica_medians_s) if len(timing.replica_medians_s) > 1
                           else None),
        samples_per_s=samples_per_s,
        achieved_tflops=flops * samples_per_s / 1e12,
        peak_tflops=peak,
        mfu=mfu(flops, samples_per_s, peak) if peak else None,
        matmul_ceiling_tflops=ceiling_tflops,
        mfu_of_ceiling=None if above else of_ceiling,
        above_ceiling=above,
        notes=notes,
    )


def with_gpu_clocks(record: BenchRecord, monitor: GpuMonitor, target: float) -> BenchRecord:
    """``record`` with the SM clock and power sampled while it was timed; unstable when the
    clock moved by more than ``target`` (the plan's precision) or the hardware throttled."""
    if not monitor.available:
        return record
    clocks = monitor.sm_clock_mhz
    record = dataclasses.replace(
        record, timed_power_w=monitor.sampled_power_w,
        sm_clock_min_mhz=None if clocks is None else clocks[0],
        sm_clock_max_mhz=None if clocks is None else clocks[1],
        sm_clock_median_mhz=None if clocks is None else clocks[2],
        gpu_throttle_reasons=_merged(record.gpu_throttle_reasons, monitor.throttle_reasons))
    change = monitor.clock_change()
    hardware = [r for r in monitor.throttle_reasons or () if r in UNSTABLE_THROTTLES]
    why = []
    if change is not None and change > target:
        why.append(f"the SM clock moved by {change:.0%} ({clocks[0]}-{clocks[1]} MHz)")
    if hardware:
        why.append(f"the GPU throttled ({', '.join(hardware)})")
    if not why:
        return record
    return dataclasses.replace(record, unstable=True, notes=(
        *record.notes, f"{' and '.join(why)} while it was timed: unstable"))


def with_energy(record: BenchRecord, energy: EnergyReading) -> BenchRecord:
    """``record`` with the energy of its own metered window (`passt.measure.energy`)."""
    note = () if energy.joules is not None or energy.seconds is None else (
        "energy not reported: this GPU's NVML has no energy counter",)
    return dataclasses.replace(
        record, joules_per_sample=energy.joules_per_sample, mean_power_w=energy.mean_power_w,
        mean_gpu_util_pct=energy.mean_util_pct, energy_window_s=energy.seconds,
        energy_steps=energy.steps,
        gpu_throttle_reasons=_merged(record.gpu_throttle_reasons, energy.throttle_reasons),
        notes=(*record.notes, *note))


def _merged(a: tuple[str, ...] | None, b: tuple[str, ...] | None) -> tuple[str, ...] | None:
    """Both sets of throttle reasons (None where neither window could read them)."""
    if a is None and b is None:
        return None
    return tuple(dict.fromkeys((*(a or ()), *(b or ()))))


def with_comparison(record: BenchRecord, ours_s: list[float], theirs_s: list[float],
                    ours_batch: int, theirs_batch: int) -> BenchRecord:
    """``record`` with its speed-up over our step, both timed in alternating rounds: the ratio
    of per-sample times, so a row that ran at another batch size compares fairly."""
    scale = theirs_batch / ours_batch
    ratio = ratio_stability(ours_s, theirs_s)
    return dataclasses.replace(
        record, speedup_vs_ours=ratio.median * scale,
        speedup_ci_low=None if ratio.ci_low is None else ratio.ci_low * scale,
        speedup_ci_high=None if ratio.ci_high is None else ratio.ci_high * scale,
        ours_median_s=statistics.median(ours_s))


def with_compile_stats(record: BenchRecord, stats: CompileStats) -> BenchRecord:
    """``record`` with the compiler's counters since the step's compiler was reset."""
    return dataclasses.replace(
        record,
        compile_graphs=stats.graphs,
        compile_graph_breaks=stats.graph_breaks,
        compile_recompiles=stats.recompiles,
        compile_seconds=stats.seconds,
        compile_cudagraph_skips=stats.cudagraph_skips,
        compile_cudagraph_skip_reasons=stats.cudagraph_skip_reasons,
    )
