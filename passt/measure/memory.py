"""Memory of a training step: activation bytes saved for backward, and CUDA peak memory.

`saved_activation_bytes` works on any device and does not depend on the allocator: it sums
the distinct storages autograd saves in one training forward, parameters excluded. On CUDA,
`memory_slope` fits the peak allocated bytes of whole steps over batch sizes: the slope is the
per-sample cost, the intercept the weights, gradients and optimizer state.
"""

from __future__ import annotations

import dataclasses
import gc
import logging
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from passt.measure.compiled import CUDA_GRAPH_MODES, reset_compiler
from passt.measure.step import Step, StepSettings, build_step
from passt.utils.device import synchronize
from passt.utils.errors import UsageError

log = logging.getLogger(__name__)

@dataclass(frozen=True)
class MemoryPoint:
    """Peak allocated bytes of one training step at one batch size; ``None`` if it ran OOM."""

    batch_size: int
    peak_bytes: int | None
    oom: bool


@dataclass(frozen=True)
class MemoryFit:
    """Least-squares line through the peaks that fit: bytes = intercept + slope * batch."""

    points: list[MemoryPoint]
    slope_bytes_per_sample: float | None  # None when fewer than two batch sizes fit
    intercept_bytes: float | None


def fit_line(xs: Sequence[float], ys: Sequence[float]) -> tuple[float, float]:
    """``(slope, intercept)`` of the least-squares line through at least two distinct xs."""
    if len(set(xs)) < 2:
        raise UsageError(f"a line needs at least two distinct x values, got {list(xs)}")
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sum(
        (x - mx) ** 2 for x in xs
    )
    return slope, my - slope * mx


def saved_activation_bytes(step: Step) -> int:
    """Bytes of the distinct storages saved for backward by one training forward of ``step``.

    Parameters (and views of them) are not activations and are left out; the forward runs
    without a backward, so nothing is updated.
    """
    if step.kind != "train":
        raise UsageError(f"saved_activation_bytes needs a training step, got {step.kind!r}")
    if step.settings.compile:
        raise UsageError("saved_activation_bytes counts an eager step; build it with compile=False")
    params = {(p.device, p.untyped_storage().data_ptr()) for p in step.model.parameters()}
    saved: dict[tuple[torch.device, int], int] = {}

    def pack(t: Tensor) -> Tensor:
        storage = t.untyped_storage()
        key = (t.device, storage.data_ptr())
        if key not in params:
            saved[key] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        step.forward()
    return sum(saved.values())


def activation_bytes_per_sample(
    settings: StepSettings, batch_sizes: Sequence[int] = (1, 2)
) -> float:
    """Saved activation bytes per sample: the slope of `saved_activation_bytes` over batch sizes.

    The slope leaves out what does not grow with the batch (e.g. half-precision weight copies).
    """
    settings = dataclasses.replace(settings, compile=False)
    sizes = list(batch_sizes)
    counts = [
        saved_activation_bytes(build_step(dataclasses.replace(settings, batch_size=b)))
        for b in sizes
    ]
    return fit_line(sizes, counts)[0]


def peak_memory_available(device: torch.device) -> bool:
    """Whether `peak_step_bytes` can measure ``device``: only CUDA has an allocator peak.

    (A CPU process's resident-set high-water mark is not one: Linux updates it lazily and
    glibc reuses freed heap pages, so it misses most of a step's peak.)
    """
    return device.type == "cuda"


def _require_peak_support(device: torch.device, what: str) -> None:
    if not peak_memory_available(device):
        raise UsageError(
            f"{what} measures CUDA allocator peaks; device is {device}. "
            "On the CPU use activation_bytes_per_sample."
        )


# Steps run before each peak reading: optimizer state, compilation and CUDA graph capture
# (cudagraph trees warm up, record, then replay) all happen in the first steps.
FIT_WARMUP = 3


def replays_cuda_graphs(settings: StepSettings) -> bool:
    """Whether a step of ``settings`` replays CUDA graphs (a compile mode that records them)."""
    return settings.compile and settings.compile_mode in CUDA_GRAPH_MODES


def peak_step_bytes(step: Step, warmup: int = FIT_WARMUP) -> int:
    """Peak allocated CUDA bytes of one step of ``step``, after ``warmup`` steps.

    A step that replays CUDA graphs allocates its memory while it warms up and records (the
    graph's pool), never in a replay, which the allocator does not see: its peak is read over
    the warm-up and recording calls and the step after them.
    """
    _require_peak_support(step.device, "peak_step_bytes")
    graphs = replays_cuda_graphs(step.settings)
    if graphs:
        synchronize(step.device)
        torch.cuda.reset_peak_memory_stats(step.device)
    for _ in range(warmup):
        step()
    synchronize(step.device)
    if not graphs:
        torch.cuda.reset_peak_memory_stats(step.device)
    step()
    synchronize(step.device)
    return torch.cuda.max_memory_allocated(step.device)


# The share of a GPU's memory a batch chosen by `largest_fitting_batch` may fill by the fit's
# line: the rest covers the allocator's fragmentation and the step timed beside it.
FIT_MARGIN = 0.8


def largest_fitting_batch(fit: MemoryFit, below: int, capacity_bytes: int) -> int | None:
    """The largest batch under ``below`` whose peak, by the fit's line, fills at most
    `FIT_MARGIN` of ``capacity_bytes``, and at least the largest batch of the fit that ran;
    None when none ran."""
    ran = [p.batch_size for p in fit.points if p.peak_bytes is not None and p.batch_size < below]
    if not ran:
        return None
    if not fit.slope_bytes_per_sample or fit.slope_bytes_per_sample <= 0:
        return max(ran)
    predicted = int((FIT_MARGIN * capacity_bytes - fit.intercept_bytes)
                    // fit.slope_bytes_per_sample)
    return max(max(ran), min(below - 1, predicted))


def is_oom(error: BaseException | None) -> bool:
    while error is not None:
        if isinstance(error, torch.OutOfMemoryError):
            return True
        error = error.__cause__ or error.__context__
    return False


def free_device_memory() -> None:
    """Collect garbage and hand the CUDA allocator's cached blocks back, so the next reading
    starts from what is alive."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _peak_or_oom(step: Step, batch_size: int) -> int | None:
    try:
        step.resize(batch_size)
        return peak_step_bytes(step)
    except Exception as e:
        if not is_oom(e):
            raise
    # outside the except block, so the traceback no longer holds the failed step's tensors
    log.warning("out of memory at batch size %d", batch_size)
    if step.optimizer is not None:
        step.optimizer.zero_grad(set_to_none=True)
    if step.settings.compile:
        reset_compiler()  # CUDA graphs captured mid-OOM are not to be replayed
    return None


def memory_slope(step: Step, batch_sizes: Sequence[int] = (8, 16, 32)) -> MemoryFit:
    """Peak bytes of training ``step`` resized to each batch size (OOM recorded, not raised)
    and their line.

    The model, optimizer state and compiled graphs of ``step`` serve every batch size, so the
    intercept is what does not grow with the batch: weights, gradients, optimizer state. Each
    point starts from freed memory and reset peak statistics.
    """
    _require_peak_support(step.device, "memory_slope")
    if step.kind != "train":
        raise UsageError(f"memory_slope needs a training step, got {step.kind!r}")
    sizes = list(batch_sizes)
    if len(set(sizes)) < 3:
        raise UsageError(f"memory_slope needs at least three distinct batch sizes, got {sizes}")
    points = []
    for b in sizes:
        free_device_memory()
        peak = _peak_or_oom(step, b)
        points.append(MemoryPoint(b, peak, oom=peak is None))
    free_device_memory()
    fitted = [p for p in points if p.peak_bytes is not None]
    if len({p.batch_size for p in fitted}) < 2:
        return MemoryFit(points, None, None)
    slope, intercept = fit_line([p.batch_size for p in fitted], [p.peak_bytes for p in fitted])
    return MemoryFit(points, slope, intercept)
