"""Device helpers shared by training, evaluation, inference and measurement."""

from __future__ import annotations

import torch

from passt.utils.errors import UsageError

DEVICE_FORMS = ("auto", "cpu", "cuda", "cuda:N")


def resolve_device(spec: str | torch.device, index: int = 0) -> torch.device:
    """The device ``spec`` names: ``"auto"`` is CUDA device ``index`` (a process's own under
    torchrun) when CUDA is available, else the CPU; ``"cuda"`` is CUDA device ``index``. A
    CUDA device must exist."""
    if spec == "auto":
        return torch.device("cuda", index) if torch.cuda.is_available() else torch.device("cpu")
    try:
        device = torch.device(spec)
    except RuntimeError:
        device = None
    if device is None or device.type not in ("cpu", "cuda"):
        raise UsageError(f"unknown device {str(spec)!r}; accepted: {', '.join(DEVICE_FORMS)}")
    if device.type == "cpu":
        return device
    if not torch.cuda.is_available():
        raise UsageError(f"device {str(spec)!r} requested but CUDA is not available; accepted "
                         "here: auto, cpu")
    device = torch.device("cuda", index if device.index is None else device.index)
    if device.index >= torch.cuda.device_count():
        raise UsageError(f"device {str(spec)!r} requested but there are "
                         f"{torch.cuda.device_count()} CUDA device(s)")
    return device


def synchronize(device: torch.device | str) -> None:
    """Wait for the work queued on ``device`` (a no-op on the CPU, which runs eagerly)."""
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
