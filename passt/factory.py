"""`create_model`: a PaSST by variant name or composition, from scratch or from weights."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch

from passt.checkpoints import load_checkpoint, load_imagenet
from passt.model import PaSST
from passt.utils.errors import UsageError
from passt.variants import Variant, compose, variant_config


def create_model(
    name: str | Variant | None = None,
    *,
    reductions: str | Iterable[str] | None = None,
    checkpoint: str | Path | Mapping[str, torch.Tensor] | None = None,
    imagenet: str | Path | Mapping[str, torch.Tensor] | None = None,
    **overrides: Any,
) -> PaSST:
    """Build a PaSST by variant name (or `Variant`) or by composition, optionally from a
    checkpoint.

    ``create_model("passt-s")``, ``create_model(reductions="structured+no-overlap", time=10)``,
    ``create_model("passt-s", embed_dim=192, depth=2, num_heads=3)``,
    ``create_model("passt-s", num_classes=50, checkpoint="passt-s.pt")`` (the classifier is
    re-initialised when the class count differs), ``create_model("passt-s", imagenet=deit_sd)``.
    """
    if (name is None) == (reductions is None):
        raise UsageError("create_model takes a variant name or reductions=..., exactly one")
    if checkpoint is not None and imagenet is not None:
        raise UsageError("create_model takes checkpoint= or imagenet=, not both")
    if name is not None:
        cfg = variant_config(name, **overrides)
    else:
        frames = overrides.pop("frames", 998)
        cfg = compose(reductions, frames=frames, **overrides)
    model = PaSST(cfg)
    if checkpoint is not None:
        load_checkpoint(model, checkpoint)
    if imagenet is not None:
        load_imagenet(model, imagenet)
    return model
