"""What a `TrainConfig` builds: its frontend, its model for the clip length, its datasets and
its number of steps."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch.utils.data import Dataset

from passt.checkpoints import load_checkpoint, load_imagenet
from passt.data import align_classes, class_names, open_dataset
from passt.data.folds import fold_sides
from passt.data.views import DatasetView
from passt.factory import create_model
from passt.frontend import MelFrontend, create_frontend
from passt.model import PaSST
from passt.patchout import create_patchout
from passt.train.config import PAPER_CLIP_SECONDS, TrainConfig, parse_init
from passt.utils.errors import UsageError
from passt.variants import (
    Variant,
    get_variant,
    proportional_patchout,
    variant_config,
    with_patchout,
)

# the settings that `open_train_set` and `open_eval_set` read: those of `passt baseline`
DATA_SETTINGS = ("data", "data_options", "eval_data", "eval_split", "eval_fold",
                 "eval_data_options", "labels", "clip_seconds")


def clip_frames(clip_seconds: float, frontend: MelFrontend) -> int:
    """Log-mel frames of a clip of ``clip_seconds``."""
    return frontend.frames(round(clip_seconds * frontend.config.sample_rate))


def train_frontend(cfg: TrainConfig) -> MelFrontend:
    """The frontend of ``cfg`` (its overrides win): on clips shorter than the paper's 10 s,
    SpecAugment's time mask covers the same fraction of the clip (192 of 1000 frames)."""
    default = create_frontend()
    frames = clip_frames(cfg.clip_seconds, default)
    paper_frames = clip_frames(PAPER_CLIP_SECONDS, default)
    scaled = {"time_mask": round(default.config.time_mask * min(frames / paper_frames, 1.0))}
    return create_frontend(**{**scaled, **cfg.frontend_overrides})


def model_variant(cfg: TrainConfig) -> Variant:
    """The variant ``cfg`` trains: ``cfg.variant``, with ``cfg.patchout`` as its strategy."""
    if cfg.patchout is None:
        return get_variant(cfg.variant)
    return with_patchout(cfg.variant, cfg.patchout)


def model_overrides(cfg: TrainConfig, num_classes: int, frames: int) -> dict[str, Any]:
    """`create_model` keywords of ``cfg``: its overrides, the class count, and patchout
    parameters that keep the paper's fraction of patches on ``frames``-long clips (given
    parameters win)."""
    base = {k: v for k, v in cfg.model_overrides.items() if k != "frames"}
    scaled = proportional_patchout(model_variant(cfg), frames, **base)
    return {**scaled, **cfg.model_overrides, "num_classes": num_classes}


def build_model(cfg: TrainConfig, num_classes: int, frames: int, init: bool = True,
                frame_seconds: float | None = None,
                label_names: list[str] | None = None) -> PaSST:
    """The model of ``cfg`` for ``frames``-long clips (``frame_seconds`` apart), from
    ``cfg.init`` when ``init`` (a checkpoint's classifier is kept for the same classes,
    ``label_names``, only: `passt.checkpoints.load_checkpoint`); a `UsageError` if the clips
    do not fit it."""
    source = f"a clip of {cfg.clip_seconds} s"
    variant = model_variant(cfg)
    with torch.device("meta"):  # the clip must fit the time embedding before patchout scales
        unscaled = PaSST(variant_config(variant, **cfg.model_overrides),
                         patchout=create_patchout("none"))
    unscaled.check_frames(frames, source=source, frame_seconds=frame_seconds)
    model = create_model(variant, **model_overrides(cfg, num_classes, frames))
    if init and cfg.init is not None:
        kind, path = parse_init(cfg.init)
        if kind == "checkpoint":
            load_checkpoint(model, path, label_names)
        else:
            load_imagenet(model, path)
    model.check_frames(frames, training=True, source=source, frame_seconds=frame_seconds)
    return model


def check_model(cfg: TrainConfig, train_set: Dataset) -> None:
    """Raise `UsageError` where the model of ``cfg`` does not take its clips: `build_model` on
    the meta device (nothing allocated, nothing loaded), for checks before a run writes."""
    frontend = train_frontend(cfg)
    with torch.device("meta"):
        build_model(cfg, train_set.num_classes, clip_frames(cfg.clip_seconds, frontend),
                    init=False, frame_seconds=frontend.config.frame_seconds)


def budget_steps(max_tflops: float, flops_per_step: float) -> int:
    """The steps a compute budget pays for: its cumulative FLOPs end within one step of it."""
    steps = math.floor(max_tflops * 1e12 / flops_per_step * (1 + 1e-12))  # k x step is k
    if steps < 1:
        raise UsageError(f"a budget of {max_tflops:g} TFLOPs is less than one training step "
                         f"({flops_per_step / 1e12:.4g} TFLOPs at this batch size); raise "
                         "--max-tflops (--budget-tflops) or lower the batch size")
    return steps


def plan_steps(cfg: TrainConfig, train_set: Dataset, world_size: int,
               flops_per_step: float | None = None) -> tuple[int, int | None]:
    """Steps per epoch and in all (None: a time budget only) of ``cfg`` on ``train_set``;
    ``flops_per_step`` (all ranks) prices ``cfg.max_tflops``."""
    per_step = cfg.batch_size * world_size
    # an epoch draws without replacement; the balanced sampler draws labelled clips only
    drawable = int((train_set.targets.sum(1) > 0).sum()) if cfg.balanced else len(train_set)
    full_batches = drawable // per_step
    per_epoch = cfg.steps_per_epoch or full_batches
    if not 1 <= per_epoch <= full_batches:
        kind = "labelled " if cfg.balanced else ""
        raise UsageError(f"an epoch draws without replacement: {drawable} {kind}training clips "
                         f"make {full_batches} batches of {cfg.batch_size} per rank on "
                         f"{world_size} rank(s), and steps_per_epoch is {per_epoch}")
    bounds = [cfg.max_steps, cfg.epochs * per_epoch if cfg.epochs is not None else None]
    if cfg.max_tflops is not None:
        if flops_per_step is None:
            raise ValueError("max_tflops needs flops_per_step")
        bounds.append(budget_steps(cfg.max_tflops, flops_per_step))
    known = [b for b in bounds if b is not None]
    return per_epoch, min(known) if known else None


def _options(cfg: TrainConfig, options: dict[str, Any]) -> dict[str, Any]:
    """`open_dataset` keywords of ``cfg``'s data: ``options`` and its class list."""
    return {**options, **({"labels_file": cfg.labels} if cfg.labels is not None else {})}


def open_all_clips(cfg: TrainConfig) -> Dataset:
    """Every clip of ``cfg.data`` (all splits), for cross-validation over its folds."""
    return open_dataset(cfg.data, clip_seconds=cfg.clip_seconds, split=None,
                        **_options(cfg, cfg.data_options))


def open_train_set(cfg: TrainConfig) -> Dataset:
    """The ``train`` split of ``cfg.data``; with ``cfg.eval_fold``, its other folds."""
    if cfg.eval_fold is not None:
        return fold_sides(open_all_clips(cfg), cfg.eval_fold, cfg.data)[0]
    return open_dataset(cfg.data, clip_seconds=cfg.clip_seconds, split="train",
                        **_options(cfg, cfg.data_options))


def _check_splits(cfg: TrainConfig, dataset: Dataset) -> None:
    """Without ``eval_data``, data without splits of its own would be evaluated on its training
    clips: a `UsageError` saying what to pass."""
    if cfg.eval_data is None and cfg.eval_fold is None and not getattr(dataset, "has_splits",
                                                                        True):
        raise UsageError(f"{cfg.data} has no eval split (as a folder CSV without a split "
                         "column, or an HDF5 file): evaluating on it would score the training "
                         "clips; pass the eval data (--eval-data), add a split column (train, "
                         "eval) to the CSV, or cross-validate over a fold column (--folds)")


def open_eval_set(cfg: TrainConfig, train_set: Dataset | None = None) -> Dataset:
    """The eval split of ``cfg.eval_data`` (default ``cfg.data``, which must then have splits
    of its own), its options over the training data's, or the fold ``cfg.eval_fold`` of
    ``cfg.data``; with ``train_set``, its classes lined up with the training data's
    (`passt.data.align_classes`)."""
    if cfg.eval_fold is not None:
        # the training side of the fold is a view of every clip: open the data once
        opened = isinstance(train_set, DatasetView) and train_set.folds is not None
        whole = train_set.dataset if opened else open_all_clips(cfg)
        dataset: Dataset = fold_sides(whole, cfg.eval_fold, cfg.data)[1]
        return dataset if train_set is None else align_classes(
            dataset, class_names(train_set), train_set.num_classes)
    if train_set is not None:
        _check_splits(cfg, train_set)
    dataset = open_dataset(cfg.eval_data or cfg.data, clip_seconds=cfg.clip_seconds,
                           split=cfg.eval_split,
                           **_options(cfg, {**cfg.data_options, **cfg.eval_data_options}))
    _check_splits(cfg, dataset)
    if train_set is None:
        return dataset
    return align_classes(dataset, class_names(train_set), train_set.num_classes)
