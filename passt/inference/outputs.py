"""What tagging and embedding write: tags as a table, JSON or CSV, and embeddings as ``.h5`` or
``.npy`` files, atomically."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Literal, get_args

import numpy as np

from passt.inference.run import EmbedResult, Label, Report, TagResult
from passt.inference.windows import PathLike
from passt.utils.atomic import atomic_path
from passt.utils.errors import UsageError, check_choice
from passt.utils.optional import require
from passt.utils.tables import csv_text

Format = Literal["table", "json", "csv"]
FORMATS: tuple[str, ...] = get_args(Format)
EMBED_SUFFIXES = (".npy", ".h5")


def format_tags(results: Sequence[TagResult], fmt: Format = "table") -> str:
    """``table`` (aligned text), ``json`` (a list of `TagResult.to_dict`) or ``csv`` (one row
    per ranked label, ``window`` = ``clip`` or the window number)."""
    if fmt == "json":
        return json.dumps([r.to_dict() for r in results], indent=2)
    if fmt == "csv":
        return _tags_csv(results)
    check_choice("format", fmt, FORMATS)
    return _tags_table(results)


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


TAGS_CSV_COLUMNS = ("file", "window", "start", "end", "rank", "index", "label", "score")


def _tags_csv(results: Sequence[TagResult]) -> str:
    rows = []
    for r in results:
        spans = [("clip", 0.0, r.duration, r.top)]
        spans += [(str(i), s, e, top) for i, (s, e, top) in enumerate(
            zip(r.window_starts, r.window_ends, r.window_top or (), strict=False))]
        rows += [[r.path, window, round(float(s), 4), round(float(e), 4), rank, label.index,
                  label.name, round(label.score, 6)]
                 for window, s, e, top in spans for rank, label in enumerate(top, 1)]
    return csv_text(TAGS_CSV_COLUMNS, rows).rstrip("\n")


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
