"""One benchmark's record: everything measured about a step besides its timing, then the
numbers derived from the timing (throughput, MFU, energy per sample)."""

from __future__ import annotations

import dataclasses
from typing import Any

import torch

from passt.measure.flops import count_flops, mfu, peak_tflops
from passt.measure.memory import activation_bytes_per_sample, memory_slope
from passt.measure.step import Step
from passt.measure.telemetry import EnergyMeter
from passt.measure.timing import Timing
from passt.variants import get_variant


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


def profile_step(step: Step) -> dict[str, Any]:
    """The untimed measurements of ``step``: settings, sequence length, FLOPs and memory."""
    s = step.settings
    variant = get_variant(s.variant)
    flops = count_flops(dataclasses.replace(s, batch_size=1), step.kind)
    record: dict[str, Any] = {
        "variant": s.variant,
        "kind": step.kind,
        "strategy": variant.strategy,
        "reductions": "+".join(variant.reductions),
        "patchout_args": dict(step.model.cfg.patchout_args),
        "seq_len": step.seq_len,
        "frames": step.frames,
        "batch_size": s.batch_size,
        "clip_seconds": s.clip_seconds,
        "dtype": s.dtype,
        "attention": s.attention,
        "compile": s.compile,
        "device": str(step.device),
        "device_name": device_name(step.device),
        "params": step.num_params,
        "forward_gflops_per_sample": flops.forward_torch,
        "forward_gflops_per_sample_fvcore": flops.forward_fvcore,
        "forward_gflops_per_sample_analytic": flops.forward_analytic,
        "step_gflops_per_sample": flops.step_torch,
        "notes": list(flops.notes),
    }
    if step.kind == "train":
        record["train_gflops_per_sample"] = flops.step_torch
        record["activation_bytes_per_sample"] = activation_bytes_per_sample(
            dataclasses.replace(s, compile=False))
    return record


def peak_memory(step: Step, batch_sizes: tuple[int, ...]) -> dict[str, Any]:
    """Peak CUDA memory per sample of training ``step`` (slope over ``batch_sizes``),
    intercept, OOMs."""
    fit = memory_slope(step, batch_sizes)
    return {
        "peak_memory_bytes_per_sample": fit.slope_bytes_per_sample,
        "peak_memory_intercept_bytes": fit.intercept_bytes,
        "peak_memory_points": {p.batch_size: p.peak_bytes for p in fit.points},
        "oom_batch_sizes": [p.batch_size for p in fit.points if p.oom],
    }


def timing_fields(record: dict[str, Any], timing: Timing, energy: EnergyMeter | None,
                  ceiling_tflops: float | None) -> dict[str, Any]:
    """Throughput, MFU (over the datasheet peak and over the measured matmul ceiling of the
    row's dtype) and energy per sample, from the timed steps and the energy meter of exactly
    those steps."""
    samples_per_s = timing.samples_per_s
    flops = record.get("train_gflops_per_sample", record["step_gflops_per_sample"]) * 1e9
    peak = peak_tflops(record["device_name"], record["dtype"])
    energy_ok = energy is not None and energy.available
    samples_metered = timing.iters * timing.batch_size
    return {
        "median_step_s": timing.median_s,
        "timed_rounds": timing.iters,
        "warmup_rounds": timing.warmup,
        "samples_per_s": samples_per_s,
        "achieved_tflops": flops * samples_per_s / 1e12,
        "peak_tflops": peak,
        "mfu": mfu(flops, samples_per_s, peak) if peak else None,
        "matmul_ceiling_tflops": ceiling_tflops,
        "mfu_of_ceiling": mfu(flops, samples_per_s, ceiling_tflops) if ceiling_tflops else None,
        "joules_per_sample": energy.joules_per_sample(samples_metered) if energy_ok else None,
        "mean_power_w": energy.mean_power_w if energy_ok else None,
        "mean_gpu_util_pct": energy.mean_util_pct if energy_ok else None,
        "energy_window_s": energy.seconds if energy_ok else None,
    }
