"""Numeric precision of training and inference: fp32, or fp16/bf16 autocast."""

from __future__ import annotations

import contextlib
from typing import Literal, get_args

import torch

from passt.utils.errors import check_choice

Dtype = Literal["fp32", "fp16", "bf16"]  # fp32, or autocast to fp16 (with loss scaling) or bf16
DTYPES: tuple[str, ...] = get_args(Dtype)
AUTOCAST_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}


def autocast(dtype: str, device_type: str) -> contextlib.AbstractContextManager:
    """Autocast to ``dtype`` ("fp16" or "bf16") on ``device_type``; a no-op for "fp32"."""
    check_choice("dtype", dtype, DTYPES)
    if dtype == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type, dtype=AUTOCAST_DTYPES[dtype])


def backward_and_step(loss: torch.Tensor, optimizer: torch.optim.Optimizer,
                      scaler: torch.amp.GradScaler | None) -> None:
    """Backpropagate ``loss`` and update; through ``scaler`` (fp16) when one is given."""
    if scaler is None:
        loss.backward()
        optimizer.step()
    else:
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
