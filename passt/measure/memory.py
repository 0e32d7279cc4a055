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
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from passt.measure.step import Step, StepSettings, build_step
from passt.measure.timing import synchronize

log = logging.getLogger(__name__)

StepBuilder = Callable[[StepSettings, str], Step]


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
        raise ValueError(f"a line needs at least two distinct x values, got {list(xs)}")
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
        raise ValueError(f"saved_activation_bytes needs a training step, got {step.kind!r}")
    if step.settings.compile:
        raise ValueError("saved_activation_bytes counts an eager step; build it with compile=False")
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
        raise ValueError(
            f"{what} measures CUDA allocator peaks; device is {device}. "
            "On the CPU use activation_bytes_per_sample."
        )


def peak_step_bytes(step: Step) -> int:
    """Peak allocated CUDA bytes of one step, after a first step has set up optimizer state."""
    _require_peak_support(step.device, "peak_step_bytes")
    step()
    synchronize(step.device)
    torch.cuda.reset_peak_memory_stats(step.device)
    step()
    synchronize(step.device)
    return torch.cuda.max_memory_allocated(step.device)


def is_oom(error: BaseException | None) -> bool:
    while error is not None:
        if isinstance(error, torch.OutOfMemoryError):
            return True
        error = error.__cause__ or error.__context__
    return False


def _peak_or_oom(settings: StepSettings, build: StepBuilder) -> int | None:
    try:
        return peak_step_bytes(build(settings, "train"))
    except Exception as e:
        if not is_oom(e):
            raise
        log.warning("out of memory at batch size %d", settings.batch_size)
        return None


def memory_slope(settings: StepSettings, batch_sizes: Sequence[int] = (8, 16, 32),
                 build: StepBuilder = build_step) -> MemoryFit:
    """Peak bytes of a training step at each batch size (OOM recorded, not raised) and its fit.

    ``build`` makes the step (a peer's builder measures the peer)."""
    _require_peak_support(settings.torch_device, "memory_slope")
    sizes = list(batch_sizes)
    if len(set(sizes)) < 3:
        raise ValueError(f"memory_slope needs at least three distinct batch sizes, got {sizes}")
    points = []
    for b in sizes:
        peak = _peak_or_oom(dataclasses.replace(settings, batch_size=b), build)
        points.append(MemoryPoint(b, peak, oom=peak is None))
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    fitted = [p for p in points if p.peak_bytes is not None]
    if len({p.batch_size for p in fitted}) < 2:
        return MemoryFit(points, None, None)
    slope, intercept = fit_line([p.batch_size for p in fitted], [p.peak_bytes for p in fitted])
    return MemoryFit(points, slope, intercept)
