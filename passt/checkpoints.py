"""Loading weights: official PaSST checkpoints, and ImageNet DeiT/ViT starts adapted to PaSST."""

from __future__ import annotations

import logging
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from passt.model import PaSST
from passt.utils.errors import UsageError
from passt.variants import reduced_depth_blocks

log = logging.getLogger(__name__)

StateDict = Mapping[str, Tensor]
CLASSIFIER_KEYS = ("head.1.weight", "head.1.bias", "head_dist.weight", "head_dist.bias")
_WRAPPER_KEYS = ("state_dict", "model", "model_state_dict", "net")
_PREFIXES = ("module.", "net.", "model.")


class CheckpointMismatchError(UsageError):
    """A checkpoint whose parameters do not fit the model; lists what is wrong."""

    def __init__(self, source: str, missing: list[str], unexpected: list[str],
                 wrong_shape: list[str]):
        self.missing, self.unexpected, self.wrong_shape = missing, unexpected, wrong_shape
        parts = [f"checkpoint {source} does not fit the model:"]
        for title, keys in (("missing", missing), ("unexpected", unexpected),
                            ("wrongly shaped", wrong_shape)):
            if keys:
                shown = ", ".join(keys[:12]) + (f", ... ({len(keys)} in all)" if len(keys) > 12
                                                else "")
                parts.append(f"{title} keys: {shown}")
        super().__init__("\n  ".join(parts))


def load_torch_file(path: str | Path, mmap: bool = False) -> Any:
    """What a file written by ``torch.save`` holds, loaded with ``weights_only`` (tensors and
    plain values, nothing executable); a clear error for a file that is not one. ``mmap``:
    tensors are read from the file only when used (for a look at a checkpoint's settings)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint file not found: {path} (the official weights are "
                                "downloaded by hand from the PaSST repository's releases: "
                                "docs/model.md)")
    try:  # mmap needs torch's zip format; older files are read whole
        return torch.load(path, map_location="cpu", weights_only=True,
                          mmap=mmap and zipfile.is_zipfile(path))
    except Exception as e:  # torch raises several types for files it cannot read
        if zipfile.is_zipfile(path):  # torch's format, with objects weights_only refuses
            reason = next(iter(str(e).strip().splitlines()), type(e).__name__)
            raise UsageError(f"{path} is a PyTorch file, but holds more than tensors and plain "
                             f"values, which are not loaded for safety: {reason}") from None
        raise UsageError(f"{path} is not a PyTorch checkpoint (a file written by "
                         "torch.save)") from None


def read_state_dict(source: str | Path | StateDict) -> dict[str, Tensor]:
    """A plain ``state_dict`` from a file or mapping, unwrapped from common containers.

    Accepts a bare state_dict, ``{"state_dict"|"model"|...: state_dict}``, and keys prefixed by
    DDP (``module.``) or training wrappers (``net.``, ``model.``).
    """
    sd = load_torch_file(source) if isinstance(source, (str, Path)) else source
    for key in _WRAPPER_KEYS:
        if isinstance(sd, Mapping) and isinstance(sd.get(key), Mapping):
            sd = sd[key]
    if not isinstance(sd, Mapping) or not all(isinstance(v, Tensor) for v in sd.values()):
        raise UsageError(f"checkpoint {_name(source)} holds no state_dict of tensors")
    sd = dict(sd)
    for prefix in _PREFIXES:
        if sd and all(k.startswith(prefix) for k in sd):
            sd = {k[len(prefix):]: v for k, v in sd.items()}
    return sd


def _name(source: object) -> str:
    return str(source) if isinstance(source, (str, Path)) else "<state_dict>"


def _check_fit(model: PaSST, sd: StateDict, source: str, ignore: tuple[str, ...] = ()) -> None:
    own = model.state_dict()
    missing = [k for k in own if k not in sd and k not in ignore]
    unexpected = [k for k in sd if k not in own]
    wrong = [f"{k} {list(sd[k].shape)} (model: {list(own[k].shape)})"
             for k in sd if k in own and sd[k].shape != own[k].shape]
    if missing or unexpected or wrong:
        raise CheckpointMismatchError(source, missing, unexpected, wrong)


def crop_time_embedding(sd: dict[str, Tensor], model: PaSST, source: str) -> dict[str, Tensor]:
    """``sd`` with a time positional embedding longer than ``model``'s cut to its first columns
    (the paper's recipe for shorter clips); the frequency embedding is left as it is."""
    key = "time_new_pos_embed"
    theirs, ours = sd.get(key), model.time_new_pos_embed
    if theirs is None or theirs.dim() != 4 or theirs.shape[:3] != ours.shape[:3] \
            or theirs.shape[3] <= ours.shape[3]:
        return sd
    log.info("%s: time embedding cropped from %d to its first %d columns", source,
             theirs.shape[3], ours.shape[3])
    return {**sd, key: theirs[..., :ours.shape[3]]}


def _label_names(raw: Any) -> list[str] | None:
    """The class names a checkpoint carries (a `passt train` one), or None."""
    names = raw.get("label_names") if isinstance(raw, Mapping) else None
    return list(names) if names else None


def load_checkpoint(model: PaSST, source: str | Path | StateDict,
                    label_names: list[str] | None = None) -> PaSST:
    """Load an official PaSST checkpoint or a `passt train` one (strictly) into ``model``.

    A time embedding longer than the model's is cropped to its first columns
    (`crop_time_embedding`). The classifier (``head.1``, ``head_dist``) is loaded when it is
    for the model's classes: the same count and, where both the checkpoint and
    ``label_names`` name them, the same names; otherwise it keeps its fresh initialisation
    (logged), for fine-tuning. Every other key must fit exactly.
    """
    raw = load_torch_file(source) if isinstance(source, (str, Path)) else source
    sd = crop_time_embedding(read_state_dict(raw), model, _name(source))
    own = model.state_dict()
    head = sd.get("head.1.weight")
    names = _label_names(raw)
    classes = own["head.1.weight"].shape[0]
    other = head is not None and (head.shape[0] != classes or (
        names is not None and label_names is not None and names != list(label_names)))
    if other:
        sd = {k: v for k, v in sd.items() if k not in CLASSIFIER_KEYS}
        _check_fit(model, sd, _name(source), ignore=CLASSIFIER_KEYS)  # before saying more
        log.warning("%s: its classifier (%d classes%s) is dropped; a new one for the model's %d "
                    "classes is trained", _name(source), head.shape[0],
                    f": {', '.join(names[:3])}, ..." if names else "", classes)
        model.load_state_dict(sd, strict=False)
    else:
        _check_fit(model, sd, _name(source))
        model.load_state_dict(sd, strict=True)
    return model


def adapt_imagenet(sd: StateDict, model: PaSST) -> dict[str, Tensor]:
    """Convert a timm DeiT/ViT ``state_dict`` (patch 16, 3 channels) to ``model``'s layout.

    The square ``pos_embed`` grid is bicubic-resized to the patch grid and split into the
    frequency (mean over time) and time (mean over frequency) embeddings; the RGB patch kernel
    is summed to one channel; a reduced-depth model takes blocks 0, 1, 3, 5, ... of the stack.
    The ImageNet classifier is dropped.
    """
    if "pos_embed" not in sd or "patch_embed.proj.weight" not in sd:
        raise UsageError(
            "not an ImageNet ViT/DeiT state_dict: expected keys 'pos_embed' and "
            f"'patch_embed.proj.weight', got {', '.join(list(sd)[:8])}, ..."
        )
    cfg = model.cfg
    has_dist = "dist_token" in sd
    tokens = 2 if has_dist else 1
    pos = sd["pos_embed"].float()
    grid_pos = pos[0, tokens:]
    side = int(round(grid_pos.shape[0] ** 0.5))
    if side * side != grid_pos.shape[0]:
        raise UsageError(f"pos_embed grid of {grid_pos.shape[0]} positions is not square")
    grid_pos = grid_pos.reshape(1, side, side, -1).permute(0, 3, 1, 2)
    grid_pos = F.interpolate(grid_pos, size=cfg.grid, mode="bicubic", align_corners=False)

    cls = sd["cls_token"]
    out: dict[str, Tensor] = {
        "cls_token": cls,
        "dist_token": sd["dist_token"] if has_dist else cls.clone(),
        "new_pos_embed": pos[:, :2] if has_dist else pos[:, :1].repeat(1, 2, 1),
        "freq_new_pos_embed": grid_pos.mean(dim=3, keepdim=True),
        "time_new_pos_embed": grid_pos.mean(dim=2, keepdim=True),
        "patch_embed.proj.weight": sd["patch_embed.proj.weight"].float().sum(1, keepdim=True),
        "patch_embed.proj.bias": sd["patch_embed.proj.bias"],
        "norm.weight": sd["norm.weight"],
        "norm.bias": sd["norm.bias"],
    }
    source_depth = len({k.split(".")[1] for k in sd if k.startswith("blocks.")})
    if cfg.depth == source_depth:
        kept = list(range(source_depth))
    elif cfg.depth == len(reduced_depth_blocks(source_depth)):
        kept = reduced_depth_blocks(source_depth)
    else:
        raise UsageError(
            f"cannot map an ImageNet model of depth {source_depth} onto depth {cfg.depth}; "
            f"accepted: {source_depth} or {len(reduced_depth_blocks(source_depth))} (reduced)"
        )
    for new, old in enumerate(kept):
        prefix = f"blocks.{old}."
        for k, v in sd.items():
            if k.startswith(prefix):
                out[f"blocks.{new}.{k[len(prefix):]}"] = v
    return out


def load_imagenet(model: PaSST, source: str | Path | StateDict) -> PaSST:
    """Start ``model`` from ImageNet DeiT/ViT weights; the classifier stays freshly initialised."""
    sd = adapt_imagenet(read_state_dict(source), model)
    heads = ("head.0.weight", "head.0.bias", *CLASSIFIER_KEYS)
    _check_fit(model, sd, _name(source), ignore=heads)
    model.load_state_dict(sd, strict=False)
    return model
