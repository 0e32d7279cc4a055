"""Shared fixtures: small models for speed, the official hear21passt code as an oracle."""

from __future__ import annotations

import contextlib
import io
import warnings

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

import passt

SMALL = {"embed_dim": 64, "depth": 1, "num_heads": 4}


@pytest.fixture
def small_model():
    """Factory for a narrow, shallow model with the full-size patch grid."""

    def make(name: str = "passt-s", **overrides) -> passt.PaSST:
        return passt.create_model(name, **{**SMALL, **overrides})

    return make


@pytest.fixture(scope="session")
def official_passt_s():
    """The official PaSST-S (hear21passt, random weights, eval mode)."""
    pytest.importorskip("hear21passt")
    from hear21passt.models.passt import get_model

    torch.manual_seed(0)
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = get_model(arch="passt_s_swa_p16_128_ap476", pretrained=False,
                          s_patchout_t=40, s_patchout_f=4)
    return model.eval()


def quiet(fn, *args, **kwargs):
    """Call the official code with its prints and warnings silenced."""
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


def token_count(model: passt.PaSST, x: torch.Tensor) -> int:
    """Sequence length entering the first transformer block for input ``x``."""
    seen = []
    handle = model.blocks[0].register_forward_pre_hook(lambda m, a: seen.append(a[0].shape[1]))
    try:
        model(x)
    finally:
        handle.remove()
    return seen[0]


class NoHostSync(TorchDispatchMode):
    """Raises on any op that reads a tensor value back to Python (.item(), bool(t), ...)."""

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func is torch.ops.aten._local_scalar_dense.default:
            raise RuntimeError("host synchronisation in the training path")
        return func(*args, **(kwargs or {}))
