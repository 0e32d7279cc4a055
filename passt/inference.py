"""Tagging and embedding audio files of any length: sliding windows, batched over files.

Each file is decoded to mono at the frontend's rate (32 kHz), cut into windows of
``window_seconds`` every ``hop_seconds`` (the last one aligned to the end of the file, a file
shorter than a window zero-padded to one), and the windows of consecutive files are batched
together through the frontend and the model. Files that cannot be used are reported, not fatal.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

import numpy as np
import torch
from torch import Tensor, nn

from passt.atomic import atomic_path
from passt.audio import AudioError, decode, fit_length
from passt.checkpoints import CheckpointMismatchError, read_state_dict
from passt.errors import UsageError
from passt.factory import create_model
from passt.frontend import MelFrontend, create_frontend
from passt.model import PaSST, grid_size
from passt.optional import require

log = logging.getLogger(__name__)

PathLike = str | os.PathLike[str]
AUDIO_EXTENSIONS = frozenset({
    ".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aiff", ".aif", ".aifc", ".au", ".snd",
    ".caf", ".w64", ".rf64",
})
AGGREGATES = ("mean", "max")
FORMATS = ("table", "json", "csv")
EMBED_SUFFIXES = (".npy", ".h5")
DEFAULT_WINDOW_SECONDS = 10.0
R = TypeVar("R")


@dataclass(frozen=True)
class Failure:
    """An input that could not be processed, and why."""

    path: str
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


@dataclass(frozen=True)
class Windowing:
    """Windows of ``window_seconds`` every ``hop_seconds`` over audio at ``sample_rate``."""

    window_seconds: float = 10.0
    hop_seconds: float = 5.0
    sample_rate: int = 32000

    def __post_init__(self) -> None:
        if not self.window_seconds > 0:
            raise UsageError(f"window_seconds must be positive, got {self.window_seconds}")
        if not 0 < self.hop_seconds <= self.window_seconds:
            raise UsageError(f"hop_seconds must be in (0, window_seconds={self.window_seconds}] "
                             f"so that windows cover the audio, got {self.hop_seconds}")

    @property
    def window(self) -> int:
        return round(self.window_seconds * self.sample_rate)

    @property
    def hop(self) -> int:
        return max(1, round(self.hop_seconds * self.sample_rate))

    def starts(self, num_samples: int) -> list[int]:
        """Start samples: 0, hop, 2 hop, ... and a last window ending with the audio."""
        if num_samples <= self.window:
            return [0]
        starts = list(range(0, num_samples - self.window + 1, self.hop))
        if starts[-1] + self.window < num_samples:
            starts.append(num_samples - self.window)
        return starts


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
    scores: np.ndarray  # [num_classes] sigmoid scores, aggregated over windows
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


@dataclass
class _FileWindows:
    """A decoded file's windows and the model outputs gathered for them so far."""

    path: str
    num_samples: int
    starts: list[int]
    outputs: list[np.ndarray] = field(default_factory=list)

    @property
    def done(self) -> bool:
        return len(self.outputs) == len(self.starts)

    def times(self, w: Windowing) -> tuple[np.ndarray, np.ndarray]:
        starts = np.asarray(self.starts, dtype=np.int64)
        ends = np.minimum(starts + w.window, self.num_samples)
        return starts / w.sample_rate, ends / w.sample_rate


def collect_files(paths: Iterable[PathLike]) -> tuple[list[Path], list[Failure]]:
    """Files to process, in order: files as given, directories searched recursively for
    audio extensions (sorted). Missing paths and directories without audio are failures."""
    files: list[Path] = []
    failures: list[Failure] = []
    for path in map(Path, paths):
        if path.is_dir():
            found = sorted(p for p in path.rglob("*")
                           if p.suffix.lower() in AUDIO_EXTENSIONS and p.is_file())
            if not found:
                failures.append(Failure(str(path), "directory holds no audio files ("
                                        + " ".join(sorted(AUDIO_EXTENSIONS)) + ")"))
            files.extend(found)
        elif path.exists():
            files.append(path)
        else:
            failures.append(Failure(str(path), "no such file or directory"))
    return list(dict.fromkeys(files)), failures


def load_labels(path: PathLike) -> list[str]:
    """Class names from an AudioSet-style ``class_labels_indices.csv`` (index,mid,display_name)."""
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        if not {"index", "display_name"} <= set(reader.fieldnames or ()):
            raise UsageError(f"{path}: expected columns index,mid,display_name; "
                             f"got {','.join(reader.fieldnames or ())}")
        try:
            names = {int(row["index"]): row["display_name"] for row in reader}
        except (TypeError, ValueError):
            raise UsageError(f"{path}: line {reader.line_num}: index is not an integer") from None
    if sorted(names) != list(range(len(names))):
        raise UsageError(f"{path}: indices must be 0..{len(names) - 1}, each once")
    return [names[i] for i in range(len(names))]


def parse_overrides(text: str) -> dict[str, Any]:
    """``"embed_dim=64,depth=1,attention=math"`` to a dict of ints, floats, bools and strings."""
    out: dict[str, Any] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"model override {item!r} is not KEY=VALUE")
        out[key.strip()] = _parse_value(value.strip())
    return out


def _parse_value(value: str) -> Any:
    for kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(value.lower(), value)


@dataclass(frozen=True)
class LoadedModel:
    """A model and what a ``passt train`` checkpoint records beside it."""

    model: PaSST
    label_names: list[str] | None = None
    clip_seconds: float | None = None  # the training clips' length


def load_model(checkpoint: PathLike | Mapping[str, Any], variant: str | None = None,
               **overrides: Any) -> LoadedModel:
    """A PaSST (eval mode) from an official state_dict (architecture ``variant``, default
    passt-s) or a ``passt train`` checkpoint ``{"model": state_dict, "config": {"variant",
    "model_overrides", ...}, "label_names": ...}``. The class count comes from the
    classifier; ``variant`` and ``overrides`` win over the checkpoint's config."""
    raw = _read_checkpoint(checkpoint) if isinstance(checkpoint, (str, os.PathLike)) \
        else checkpoint
    extras: dict[str, Any] = {}
    if isinstance(raw, Mapping) and "model" in raw and isinstance(raw.get("config"), Mapping):
        config = raw["config"]
        if variant is None and "variant" not in config:
            raise UsageError("the checkpoint's config names no 'variant'; pass one")
        variant = variant or config["variant"]
        overrides = {**(config.get("model_overrides") or {}), **overrides}
        extras = {"label_names": list(raw.get("label_names") or ()) or None,
                  "clip_seconds": config.get("clip_seconds")}
        raw = raw["model"]
    sd = read_state_dict(raw)
    if "head.1.weight" not in sd:
        raise UsageError("checkpoint has no classifier (head.1.weight): not a tagging model")
    classes = sd["head.1.weight"].shape[0]
    if overrides.setdefault("num_classes", classes) != classes:
        raise UsageError(f"num_classes={overrides['num_classes']} contradicts the checkpoint's "
                         f"classifier of {classes} classes")
    variant = variant or "passt-s"
    try:
        model = create_model(variant, checkpoint=sd, **overrides)
    except CheckpointMismatchError as e:
        source = f"{_source(checkpoint)} (as {variant} with {overrides})"
        raise CheckpointMismatchError(source, e.missing, e.unexpected, e.wrong_shape) from None
    return LoadedModel(model.eval(), **extras)


def _source(checkpoint: PathLike | Mapping[str, Any]) -> str:
    return "<state_dict>" if isinstance(checkpoint, Mapping) else str(checkpoint)


def _as_loaded(model: PaSST | LoadedModel | PathLike) -> LoadedModel:
    if isinstance(model, LoadedModel):
        return model
    return LoadedModel(model) if isinstance(model, PaSST) else load_model(model)


def _read_checkpoint(path: PathLike) -> Any:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint file not found: {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises several types for non-checkpoint files
        raise UsageError(f"{path} is not a PyTorch checkpoint: {e}") from None


def resolve_device(device: str | torch.device | None, model: nn.Module) -> torch.device:
    """``None``: the model's device; ``"auto"``: CUDA when available, else CPU."""
    if device is None:
        return next(model.parameters()).device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _check_fits(model: PaSST, frontend: MelFrontend, windowing: Windowing) -> None:
    """Raise if the frontend's windows are not inputs the model accepts."""
    cfg = model.cfg
    if frontend.config.n_mels != cfg.n_mels:
        raise UsageError(f"the frontend makes {frontend.config.n_mels} mel bands, the model "
                         f"takes {cfg.n_mels}")
    frames = frontend.frames(windowing.window)
    if grid_size(frames, cfg.patch_size, cfg.stride) > cfg.grid[1]:
        raise UsageError(f"a {windowing.window_seconds} s window is {frames} frames, more than "
                         f"the model's time embedding covers ({cfg.frames}): shorten the window")


@contextmanager
def _eval_mode(*modules: nn.Module) -> Iterator[None]:
    modes = [m.training for m in modules]
    for m in modules:
        m.eval()
    try:
        yield
    finally:
        for m, mode in zip(modules, modes, strict=True):
            m.train(mode)


def _forward(batch: list[tuple[_FileWindows, np.ndarray]],
             compute: Callable[[Tensor], Tensor], device: torch.device) -> None:
    waves = torch.from_numpy(np.stack([wave for _, wave in batch])).to(device)
    with torch.inference_mode():
        values = compute(waves).float().cpu().numpy()
    for (item, _), value in zip(batch, values, strict=True):
        item.outputs.append(value)


def _stream(files: list[Path], compute: Callable[[Tensor], Tensor], windowing: Windowing,
            batch_size: int, device: torch.device) -> Iterator[_FileWindows | Failure]:
    """Per file in order, its windows' outputs (or its failure); ``batch_size`` windows per
    forward, across file boundaries, holding one decoded file at a time."""
    waiting: deque[_FileWindows] = deque()
    batch: list[tuple[_FileWindows, np.ndarray]] = []
    for path in files:
        try:
            audio = decode(path, sample_rate=windowing.sample_rate)
        except AudioError as e:
            yield Failure(str(path), str(e).removeprefix(f"{path}: "))
            continue
        item = _FileWindows(str(path), len(audio), windowing.starts(len(audio)))
        waiting.append(item)
        for start in item.starts:
            batch.append((item, fit_length(audio, windowing.window, start)))
            if len(batch) == batch_size:
                _forward(batch, compute, device)
                batch.clear()
                while waiting and waiting[0].done:
                    yield waiting.popleft()
    if batch:
        _forward(batch, compute, device)
    yield from waiting


def _run(paths: PathLike | Iterable[PathLike], loaded: LoadedModel,
         frontend: MelFrontend | None, window_seconds: float | None, hop_seconds: float | None,
         batch_size: int, device: str | torch.device | None, progress: bool | None,
         features: bool) -> tuple[list[_FileWindows], list[Failure], Windowing]:
    """Window outputs of every usable file: sigmoid scores, or embeddings with ``features``."""
    if batch_size < 1:
        raise UsageError(f"batch_size must be positive, got {batch_size}")
    model = loaded.model
    frontend = frontend if frontend is not None else create_frontend()
    if window_seconds is None:
        window_seconds = loaded.clip_seconds or DEFAULT_WINDOW_SECONDS
    hop_seconds = window_seconds / 2 if hop_seconds is None else hop_seconds
    windowing = Windowing(window_seconds, hop_seconds, frontend.config.sample_rate)
    _check_fits(model, frontend, windowing)
    target = resolve_device(device, model)
    model.to(target)
    frontend.to(target)

    def compute(waves: Tensor) -> Tensor:
        mel = frontend(waves)
        return model.forward_features(mel) if features else torch.sigmoid(model(mel))

    tqdm = require("tqdm", "showing progress").tqdm
    single = isinstance(paths, (str, os.PathLike))
    files, failures = collect_files([paths] if single else paths)
    done: list[_FileWindows] = []
    started = time.perf_counter()
    with _eval_mode(model, frontend), tqdm(total=len(files), unit="file", disable=(
            None if progress is None else not progress)) as bar:
        for item in _stream(files, compute, windowing, batch_size, target):
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
        aggregate: str = "mean", batch_size: int = 8, device: str | torch.device | None = None,
        label_names: Sequence[str] | None = None, frame_scores: bool = False,
        progress: bool | None = None) -> Report[TagResult]:
    """Tag files (and directories of them) with ``model`` (a PaSST or a checkpoint).

    Windows last ``window_seconds`` (default: a ``passt train`` checkpoint's clip length, else
    10 s) every ``hop_seconds`` (default: half a window). Clip scores are the ``aggregate``
    (mean or max) of the windows' sigmoid scores; ``frame_scores`` keeps the windows' scores.
    Label names default to the checkpoint's, else class indices. ``device=None`` uses the
    model's device (``"auto"``: CUDA when available); model and frontend are moved there.
    ``progress=None`` shows a bar on a terminal only.
    """
    if aggregate not in AGGREGATES:
        raise UsageError(f"unknown aggregate {aggregate!r}; accepted: {', '.join(AGGREGATES)}")
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
                                     batch_size, device, progress, features=False)
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
          device: str | torch.device | None = None,
          progress: bool | None = None) -> Report[EmbedResult]:
    """Pooled embeddings (`PaSST.forward_features`) per window of each file, and their mean.

    Arguments as for `tag`.
    """
    done, failures, windowing = _run(paths, _as_loaded(model), frontend, window_seconds,
                                     hop_seconds, batch_size, device, progress, features=True)
    results = []
    for item in done:
        windows = np.stack(item.outputs)
        starts, ends = item.times(windowing)
        results.append(EmbedResult(item.path, item.num_samples / windowing.sample_rate,
                                   windows.mean(0), windows, starts, ends))
    return Report(results, failures, windowing)


def format_tags(results: Sequence[TagResult], fmt: str = "table") -> str:
    """``table`` (aligned text), ``json`` (a list of `TagResult.to_dict`) or ``csv`` (one row
    per ranked label, ``window`` = ``clip`` or the window number)."""
    if fmt == "json":
        return json.dumps([r.to_dict() for r in results], indent=2)
    if fmt == "csv":
        return _tags_csv(results)
    if fmt == "table":
        return _tags_table(results)
    raise UsageError(f"unknown format {fmt!r}; accepted: {', '.join(FORMATS)}")


def _ranked(top: list[Label]) -> str:
    return ", ".join(f"{label.name} {label.score:.3f}" for label in top)


def _tags_table(results: Sequence[TagResult]) -> str:
    rows = [("file", "seconds", "top labels")]
    for r in results:
        rows.append((r.path, f"{r.duration:.2f}", _ranked(r.top)))
        rows += [("", f"{s:.2f}-{e:.2f}", _ranked(top)) for s, e, top in zip(
            r.window_starts, r.window_ends, r.window_top or (), strict=False)]
    file_width, time_width = (max(len(row[i]) for row in rows) for i in (0, 1))
    return "\n".join(f"{f:<{file_width}}  {t:>{time_width}}  {labels}" for f, t, labels in rows)


def _tags_csv(results: Sequence[TagResult]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["file", "window", "start", "end", "rank", "index", "label", "score"])
    for r in results:
        spans = [("clip", 0.0, r.duration, r.top)]
        spans += [(str(i), s, e, top) for i, (s, e, top) in enumerate(
            zip(r.window_starts, r.window_ends, r.window_top or (), strict=False))]
        for window, s, e, top in spans:
            for rank, label in enumerate(top, 1):
                writer.writerow([r.path, window, round(float(s), 4), round(float(e), 4), rank,
                                 label.index, label.name, round(label.score, 6)])
    return buf.getvalue().rstrip("\n")


def save_embeddings(report: Report[EmbedResult], path: PathLike) -> list[Path]:
    """Write embeddings (rows in input order) atomically; returns the files written.

    ``.h5``: datasets ``paths`` [N], ``durations`` [N], ``embeddings`` [N, E],
    ``window_embeddings`` [M, E], ``window_file`` [M] (row in ``paths``), ``window_starts``,
    ``window_ends`` [M] (seconds); attributes ``window_seconds``, ``hop_seconds``.
    ``.npy``: ``X.npy`` = embeddings, ``X.windows.npy`` = window embeddings, and ``X.json``
    with everything else under the same names.
    """
    path = Path(path)
    results = report.results
    if not results:
        raise UsageError(f"no embeddings to write to {path}: every input failed")
    arrays = {
        "embeddings": np.stack([r.embedding for r in results]),
        "window_embeddings": np.concatenate([r.window_embeddings for r in results]),
    }
    meta = {
        "paths": [r.path for r in results],
        "durations": [r.duration for r in results],
        "window_file": [i for i, r in enumerate(results) for _ in r.window_starts],
        "window_starts": [float(s) for r in results for s in r.window_starts],
        "window_ends": [float(e) for r in results for e in r.window_ends],
    }
    settings = {"window_seconds": report.windowing.window_seconds,
                "hop_seconds": report.windowing.hop_seconds}
    if path.suffix == ".h5":
        h5py = require("h5py", "writing .h5 embeddings")
        with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
            f.attrs.update(settings)
            for name, array in arrays.items():
                f.create_dataset(name, data=array)
            f.create_dataset("paths", data=np.array(meta.pop("paths"), dtype=object),
                             dtype=h5py.string_dtype())
            for name, values in meta.items():
                f.create_dataset(name, data=np.asarray(values))
        return [path]
    if path.suffix == ".npy":
        targets = {"embeddings": path, "window_embeddings": path.with_suffix(".windows.npy")}
        for name, target in targets.items():
            with atomic_path(target) as tmp, open(tmp, "wb") as f:
                np.save(f, arrays[name])
        index = path.with_suffix(".json")
        with atomic_path(index) as tmp:
            tmp.write_text(json.dumps({**settings, **meta}, indent=1))
        return [*targets.values(), index]
    raise UsageError(f"unknown embedding output {path.name!r}; accepted: "
                     f"{', '.join(EMBED_SUFFIXES)}")
