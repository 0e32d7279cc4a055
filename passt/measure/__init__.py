"""Measurement library: build a step, then time it, count its FLOPs and memory, meter the GPU."""

from passt.measure.flops import (
    PEAK_TFLOPS,
    FlopsReport,
    analytic_flops,
    count_flops,
    fvcore_forward_flops,
    matmul_ceiling_tflops,
    mfu,
    peak_tflops,
    torch_flops,
)
from passt.measure.memory import (
    MemoryFit,
    MemoryPoint,
    activation_bytes_per_sample,
    memory_slope,
    peak_step_bytes,
    saved_activation_bytes,
)
from passt.measure.step import KINDS, Step, StepSettings, build_step
from passt.measure.telemetry import GpuInfo, GpuMonitor, gpu_info
from passt.measure.timing import Timing, time_step
from passt.utils.device import synchronize
from passt.utils.precision import DTYPES

__all__ = [
    "DTYPES",
    "KINDS",
    "PEAK_TFLOPS",
    "GpuMonitor",
    "FlopsReport",
    "GpuInfo",
    "MemoryFit",
    "MemoryPoint",
    "Step",
    "StepSettings",
    "Timing",
    "activation_bytes_per_sample",
    "analytic_flops",
    "build_step",
    "count_flops",
    "fvcore_forward_flops",
    "gpu_info",
    "matmul_ceiling_tflops",
    "memory_slope",
    "mfu",
    "peak_step_bytes",
    "peak_tflops",
    "saved_activation_bytes",
    "synchronize",
    "time_step",
    "torch_flops",
]
