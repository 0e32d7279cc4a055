"""Tagging and embedding audio files of any length: sliding windows, batched over files.

Each file is decoded to mono at the frontend's rate (32 kHz), cut into windows of
``window_seconds`` every ``hop_seconds`` (the last one aligned to the end of the file, a file
shorter than a window zero-padded to one), and the windows of consecutive files are batched
together through the frontend and the model (`passt.inference.windows`). Files that cannot be
used are reported, not fatal.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Generic, Literal, TypeVar, get_args

import numpy as np
import torch
from torch import Tensor

from passt.checkpoints import CheckpointMismatchError, load_torch_file, read_state_dict
from passt.eval.tasks import Task, task_scores
from passt.factory import create_model
from passt.frontend import MelFrontend, create_frontend
from passt.inference.windows import (
    Failure,
    FileWindows,
    PathLike,
    Windowing,
    collect_files,
    stream_windows,
)
from passt.model import PaSST
from passt.run_checkpoint import RunCheckpoint, is_run_checkpoint
from passt.utils.device import resolve_device
from passt.utils.errors import UsageError, check_choice
from passt.utils.modes import module_mode
from passt.utils.optional import require

log = logging.getLogger(__name__)

Aggregate = Literal["mean", "max"]  # a clip's score from its windows' scores
AGGREGATES: tuple[str, ...] = get_args(Aggregate)
# what an embedding holds (hear21passt's modes): pooled features, logits, or both concatenated
EmbedMode = Literal["embed_only", "logits", "all"]
EMBED_MODES: tuple[str, ...] = get_args(EmbedMode)
DEFAULT_WINDOW_SECONDS = 10.0
R = TypeVar("R")


@dataclass(frozen=True)
class Label:
    """One class of a ranking: its index, name and score."""

    index: int
    name: str
    score: float


@dataclass
class TagResult:
    """Scores of one file: per class for the clip, and per window with ``frame_scores``."""

    path: str
    duration: float  # seconds of decoded audio
    scores: np.ndarray  # [num_classes] scores (sigmoid; softmax: single-label), over windows
    top: list[Label]
    window_starts: np.ndarray  # [W] seconds
    window_ends: np.ndarray  # [W] seconds
    window_scores: np.ndarray | None = None  # [W, num_classes]
    window_top: list[list[Label]] | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: the file, its duration, top labels and, with frame scores, its windows."""
        out: dict[str, Any] = {"file": self.path, "duration": round(self.duration, 4),
                               "labels": _labels_json(self.top)}
        if self.window_top is not None:
            out["windows"] = [
                {"start": round(float(s), 4), "end": round(float(e), 4),
                 "labels": _labels_json(top)}
                for s, e, top in zip(self.window_starts, self.window_ends, self.window_top,
                                     strict=True)
            ]
        return out


def _labels_json(top: list[Label]) -> list[dict[str, Any]]:
    return [{**asdict(label), "score": round(label.score, 6)} for label in top]


@dataclass
class EmbedResult:
    """Embeddings of one file: per window and their mean."""

    path: str
    duration: float
    embedding: np.ndarray  # [E] mean of the window embeddings
    window_embeddings: np.ndarray  # [W, E]
    window_starts: np.ndarray
    window_ends: np.ndarray


@dataclass
class Report(Generic[R]):
    """Results in input order, the inputs that failed, and the windowing used."""

    results: list[R]
    failures: list[Failure]
    windowing: Windowing

    @property
    def ok(self) -> bool:
        return not self.failures


@dataclass(frozen=True)
class LoadedModel:
    """A model and what a ``passt train`` checkpoint records beside it."""

    model: PaSST
    label_names: list[str] | None = None
    clip_seconds: float | None = None  # the training clips' length
    frontend: MelFrontend | None = None  # the training's, in eval mode
    task: Task = "multi-label"  # single-label: softmax scores


def load_model(checkpoint: PathLike | Mapping[str, Any], variant: str | None = None,
               **overrides: Any) -> LoadedModel:
    """A PaSST (eval mode) from an official state_dict (architecture ``variant``, default
    passt-s) or a ``passt train`` checkpoint, which names its own architecture, clip length
    and label names. The class count comes from the classifier; ``variant`` and
    ``overrides`` win over the checkpoint's."""
    raw = load_torch_file(checkpoint) if isinstance(checkpoint, (str, os.PathLike)) \
        else checkpoint
    if is_run_checkpoint(raw):
        ckpt = RunCheckpoint.read(raw)
        _check_classes(overrides.pop("num_classes", None), ckpt.num_classes)
        if ckpt.model_args is None:  # format 1: rebuilt from its training settings
            from passt.train.run_files import load_trained_model

            model, frontend, _ = load_trained_model(ckpt, variant, **overrides)
        else:
            model, frontend = ckpt.build(variant, **overrides)
        return LoadedModel(model, list(ckpt.label_names) or None, ckpt.clip_seconds, frontend,
                           ckpt.task)
    sd = read_state_dict(raw)
    if "head.1.weight" not in sd:
        raise UsageError("checkpoint has no classifier (head.1.weight): not a tagging model")
    overrides["num_classes"] = _check_classes(overrides.get("num_classes"),
                                              sd["head.1.weight"].shape[0])
    variant = variant or "passt-s"
    try:
        model = create_model(variant, checkpoint=sd, **overrides)
    except CheckpointMismatchError as e:
        source = f"{_source(checkpoint)} (as {variant} with {overrides})"
        raise CheckpointMismatchError(source, e.missing, e.unexpected, e.wrong_shape) from None
    return LoadedModel(model.eval())


def embeddings(model: PaSST, mel: Tensor, mode: EmbedMode = "embed_only") -> Tensor:
    """``[B, embedding_size]`` of a log-mel batch: the pooled features
    (`PaSST.forward_features`), the logits, or ``all``: logits then features."""
    check_choice("embedding mode", mode, EMBED_MODES)
    features = model.forward_features(mel)
    if mode == "embed_only":
        return features
    logits = model.head(features)
    return logits if mode == "logits" else torch.cat((logits, features), dim=1)


def embedding_size(model: PaSST, mode: EmbedMode = "embed_only") -> int:
    """The length of ``model``'s embeddings in ``mode``."""
    check_choice("embedding mode", mode, EMBED_MODES)
    sizes = {"embed_only": model.cfg.embed_dim, "logits": model.cfg.num_classes}
    return sizes.get(mode, model.cfg.embed_dim + model.cfg.num_classes)


def _check_classes(asked: int | None, classes: int) -> int:
    if asked is not None and asked != classes:
        raise UsageError(f"num_classes={asked} contradicts the checkpoint's classifier of "
                         f"{classes} classes")
    return classes


def _source(checkpoint: PathLike | Mapping[str, Any]) -> str:
    return "<state_dict>" if isinstance(checkpoint, Mapping) else str(checkpoint)


def _as_loaded(model: PaSST | LoadedModel | PathLike) -> LoadedModel:
    if isinstance(model, LoadedModel):
        return model
    return LoadedModel(model) if isinstance(model, PaSST) else load_model(model)


def check_fits(model: PaSST, frontend: MelFrontend, windowing: Windowing) -> None:
    """Raise if the frontend's windows are not inputs the model accepts."""
    if frontend.config.n_mels != model.cfg.n_mels:
        raise UsageError(f"the frontend makes {frontend.config.n_mels} mel bands, the model "
                         f"takes {model.cfg.n_mels}")
    model.check_frames(frontend.frames(windowing.window),
                       source=f"a window of {windowing.window_seconds} s",
                       frame_seconds=frontend.config.frame_seconds)


def _run(paths: PathLike | Iterable[PathLike], loaded: LoadedModel,
         frontend: MelFrontend | None, window_seconds: float | None, hop_seconds: float | None,
         batch_size: int, device: str | torch.device | None, progress: bool | None,
         mode: EmbedMode | None) -> tuple[list[FileWindows], list[Failure], Windowing]:
    """Window outputs of every usable file: scores (sigmoid, or softmax for a single-label
    model), or with a ``mode`` its `embeddings`."""
    if batch_size < 1:
        raise UsageError(f"batch_size must be positive, got {batch_size}")
    model = loaded.model
    if frontend is None:
        frontend = loaded.frontend if loaded.frontend is not None else create_frontend()
    if window_seconds is None:
        window_seconds = loaded.clip_seconds or DEFAULT_WINDOW_SECONDS
    hop_seconds = window_seconds / 2 if hop_seconds is None else hop_seconds
    windowing = Windowing(window_seconds, hop_seconds, frontend.config.sample_rate)
    check_fits(model, frontend, windowing)
    target = next(model.parameters()).device if device is None else resolve_device(device)
    model.to(target)
    frontend.to(target)

    def compute(waves: Tensor) -> Tensor:
        mel = frontend(waves)
        return task_scores(loaded.task, model(mel)) if mode is None else embeddings(model, mel,
                                                                                     mode)

    tqdm = require("tqdm", "showing progress").tqdm
    single = isinstance(paths, (str, os.PathLike))
    files, failures = collect_files([paths] if single else paths)
    done: list[FileWindows] = []
    started = time.perf_counter()
    with module_mode(model, frontend, training=False), tqdm(
            total=len(files), unit="file",
            disable=None if progress is None else not progress) as bar:
        for item in stream_windows(files, compute, windowing, batch_size, target):
            (failures if isinstance(item, Failure) else done).append(item)
            bar.update()
    log.info("%d files (%d windows) in %.1f s on %s, %d failed", len(done),
             sum(len(d.starts) for d in done), time.perf_counter() - started, target,
             len(failures))
    return done, failures, windowing


def _ranking(scores: np.ndarray, k: int, names: Sequence[str]) -> list[Label]:
    order = np.argsort(-scores, kind="stable")[:k]
    return [Label(int(i), names[i], float(scores[i])) for i in order]


def tag(paths: PathLike | Iterable[PathLike], model: PaSST | LoadedModel | PathLike, *,
        frontend: MelFrontend | None = None, top_k: int = 5,
        window_seconds: float | None = None, hop_seconds: float | None = None,
        aggregate: Aggregate = "mean", batch_size: int = 8,
        device: str | torch.device | None = None, label_names: Sequence[str] | None = None,
        frame_scores: bool = False, progress: bool | None = None) -> Report[TagResult]:
    """Tag files (and directories of them) with ``model`` (a PaSST or a checkpoint).

    Windows last ``window_seconds`` (default: a ``passt train`` checkpoint's clip length, else
    10 s) every ``hop_seconds`` (default: half a window). Clip scores are the ``aggregate``
    (mean or max) of the windows' scores (sigmoid; softmax for a single-label checkpoint);
    ``frame_scores`` keeps the windows' scores.
    Label names default to the checkpoint's, else class indices. ``device=None`` uses the
    model's device (``"auto"``: CUDA when available); model and frontend are moved there.
    ``progress=None`` shows a bar on a terminal only.
    """
    check_choice("aggregate", aggregate, AGGREGATES)
    if top_k < 1:
        raise UsageError(f"top_k must be positive, got {top_k}")
    loaded = _as_loaded(model)
    classes = loaded.model.cfg.num_classes
    if label_names is None:
        label_names = loaded.label_names or [str(i) for i in range(classes)]
    names = list(label_names)
    if len(names) != classes:
        raise UsageError(f"{len(names)} label names for a model of {classes} classes")
    done, failures, windowing = _run(paths, loaded, frontend, window_seconds, hop_seconds,
                                     batch_size, device, progress, mode=None)
    results = []
    for item in done:
        scores = np.stack(item.outputs)
        clip = scores.mean(0) if aggregate == "mean" else scores.max(0)
        starts, ends = item.times(windowing)
        results.append(TagResult(
            item.path, item.num_samples / windowing.sample_rate, clip,
            _ranking(clip, top_k, names), starts, ends,
            scores if frame_scores else None,
            [_ranking(s, top_k, names) for s in scores] if frame_scores else None,
        ))
    return Report(results, failures, windowing)


def embed(paths: PathLike | Iterable[PathLike], model: PaSST | LoadedModel | PathLike, *,
          frontend: MelFrontend | None = None, window_seconds: float | None = None,
          hop_seconds: float | None = None, batch_size: int = 8,
          device: str | torch.device | None = None, progress: bool | None = None,
          mode: EmbedMode = "embed_only") -> Report[EmbedResult]:
    """Embeddings per window of each file, and their mean: pooled features
    (`PaSST.forward_features`), or with ``mode`` logits or both (as `passt.inference.hear`'s).

    Other arguments as for `tag`.
    """
    check_choice("embedding mode", mode, EMBED_MODES)
    done, failures, windowing = _run(paths, _as_loaded(model), frontend, window_seconds,
                                     hop_seconds, batch_size, device, progress, mode=mode)
    results = []
    for item in done:
        windows = np.stack(item.outputs)
        starts, ends = item.times(windowing)
        results.append(EmbedResult(item.path, item.num_samples / windowing.sample_rate,
                                   windows.mean(0), windows, starts, ends))
    return Report(results, failures, windowing)
