"""K-fold cross-validation (``passt finetune --folds``): a training run per fold, on every other
fold of the data's fold column and evaluated on its own, in ``OUT/fold-K``.

Files in ``OUT``: ``config.json`` (the settings, checked on resume), ``folds.csv`` (a row per
finished fold: its metrics, steps and training seconds) and ``summary.json`` (mean and standard
deviation of each metric over the finished folds; the summed confusion matrix of a
single-label task), both rewritten atomically after each fold; each fold's folder also holds
``clips.csv``, the clips on each side. With ``resume`` the folds in ``folds.csv`` are skipped
and a fold cut short continues from its last checkpoint.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import logging
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from torch.utils.data import Dataset

from passt.atomic import write_text_atomic
from passt.data import choose_folds, fold_sides
from passt.errors import UsageError
from passt.tasks import check_targets
from passt.train.config import TrainConfig
from passt.train.distributed import Cluster
from passt.train.plan import model_variant, open_all_clips
from passt.train.run_files import MetricsLog
from passt.train.trainer import StepHook, TrainResult, train

log = logging.getLogger(__name__)

CONFIG_JSON = "config.json"
FOLDS_CSV = "folds.csv"
SUMMARY_JSON = "summary.json"
CLIPS_CSV = "clips.csv"
RUN_FIELDS = ("samples", "steps", "seconds")  # folds.csv's columns after the metrics


def fold_dir(out_dir: str | Path, fold: int) -> Path:
    """The run folder of ``fold``."""
    return Path(out_dir) / f"fold-{fold}"


def fold_row(fold: int, result: TrainResult) -> dict[str, Any]:
    """The ``folds.csv`` row of a finished fold: its scalar metrics, steps and seconds."""
    metrics = result.metrics or {}
    scalars = {k: v for k, v in metrics.items()
               if isinstance(v, (int, float)) and k not in RUN_FIELDS}
    return {"fold": fold, **scalars, "samples": metrics.get("samples"), "steps": result.step,
            "seconds": round(result.train_seconds, 1)}


def read_folds(path: Path) -> list[dict[str, Any]]:
    """The rows of a ``folds.csv``, numbers as numbers."""
    with path.open(newline="") as f:
        return [{k: _number(v) for k, v in row.items()} for row in csv.DictReader(f)]


def _number(text: str) -> int | float | str:
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _folds_text(rows: Sequence[dict[str, Any]]) -> str:
    columns = list(dict.fromkeys(k for row in rows for k in row if k not in RUN_FIELDS))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, [*columns, *RUN_FIELDS], lineterminator="\n")
    writer.writeheader()
    writer.writerows(sorted(rows, key=lambda r: r["fold"]))
    return buf.getvalue()


def summarize_folds(rows: Sequence[dict[str, Any]], cfg: TrainConfig,
                    confusion: list[list[int]] | None = None) -> dict[str, Any]:
    """``summary.json``: per metric the folds' values, their mean and sample standard
    deviation (None for one fold), with what was run."""
    rows = sorted(rows, key=lambda r: r["fold"])
    names = [k for k in rows[0] if k not in ("fold", *RUN_FIELDS)] if rows else []
    metrics = {}
    for name in names:
        values = [float(r[name]) for r in rows]
        metrics[name] = {"mean": statistics.fmean(values),
                         "std": statistics.stdev(values) if len(values) > 1 else None,
                         "values": values}
    return {"data": cfg.data, "task": cfg.task, "variant": cfg.variant,
            "patchout": model_variant(cfg).strategy, "init": cfg.init,
            "clip_seconds": cfg.clip_seconds, "folds": [r["fold"] for r in rows],
            "metrics": metrics, "steps": sum(r["steps"] for r in rows),
            "seconds": round(sum(r["seconds"] for r in rows), 1), "confusion": confusion}


def _confusion(out_dir: Path, folds: Sequence[int]) -> list[list[int]] | None:
    """The confusion matrices of the folds' last evaluations, summed (None: none has one)."""
    total: list[list[int]] | None = None
    for fold in folds:
        evals = [r for r in MetricsLog(fold_dir(out_dir, fold)).rows() if r["kind"] == "eval"]
        matrix = evals[-1].get("confusion") if evals else None
        if matrix is None:
            return None
        total = matrix if total is None else [[a + b for a, b in zip(x, y, strict=True)]
                                              for x, y in zip(total, matrix, strict=True)]
    return total


def _write_clips(path: Path, train_set: Dataset, eval_set: Dataset) -> None:
    """``clips.csv``: ``side,clip`` for every clip a fold trains or evaluates on."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["side", "clip"])
    for side, dataset in (("train", train_set), ("eval", eval_set)):
        writer.writerows((side, name) for name in dataset.names)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, buf.getvalue())


def _check_settings(out: Path, cfg: TrainConfig, resume: bool) -> list[dict[str, Any]]:
    """The finished folds' rows of a run in ``out`` (none for a new one); a `UsageError` for
    a run there without ``resume``, or with other settings."""
    config = out / CONFIG_JSON
    if not config.exists():
        return []
    if not resume:
        raise UsageError(f"{out} holds a cross-validation ({CONFIG_JSON}); pass --resume to "
                         "continue it, or choose another --out")
    stored = TrainConfig.from_dict(json.loads(config.read_text()))
    cfg.check_resumable(stored)
    return read_folds(out / FOLDS_CSV) if (out / FOLDS_CSV).exists() else []


def cross_validate(cfg: TrainConfig, folds: Sequence[int] | None = None, *, resume: bool = False,
                   hooks: Sequence[StepHook] = (), progress: bool | None = None
                   ) -> dict[str, Any] | None:
    """Train ``cfg`` once per fold of ``folds`` (None: every fold of ``cfg.data``) and return
    the summary (`summarize_folds`; None on the other ranks of a ``torchrun``); see the module
    for the files."""
    if cfg.eval_fold is not None or cfg.eval_data is not None:
        raise UsageError("cross-validation evaluates each fold on itself: drop eval_fold and "
                         "eval_data")
    out = Path(cfg.out_dir)
    with Cluster.join(cfg.device) as cluster:
        rows = _check_settings(out, cfg, resume)
        dataset = open_all_clips(cfg)  # opened (and checked) once for every fold
        chosen = choose_folds(dataset, list(folds) if folds is not None else None, cfg.data)
        check_targets(cfg.task, dataset, cfg.data)
        cluster.barrier()  # every rank has looked at OUT before rank 0 writes there
        if cluster.main:
            out.mkdir(parents=True, exist_ok=True)
            write_text_atomic(out / CONFIG_JSON, json.dumps(cfg.to_dict(), indent=2))
        finished = {r["fold"] for r in rows}
        for fold in chosen:
            if fold in finished:
                log.info("fold %d is in %s: skipped", fold, out / FOLDS_CSV)
                continue
            train_set, eval_set = fold_sides(dataset, fold, cfg.data)
            run = dataclasses.replace(cfg, eval_fold=fold, out_dir=str(fold_dir(out, fold)))
            if cluster.main:
                _write_clips(fold_dir(out, fold) / CLIPS_CSV, train_set, eval_set)
            log.info("fold %d: %d training clips, %d eval clips", fold, len(train_set),
                     len(eval_set))
            result = train(run, resume=resume, train_set=train_set, eval_set=eval_set,
                           hooks=hooks, progress=progress)
            if not cluster.main:  # rank 0 has the metrics and writes the files
                continue
            rows = [r for r in rows if r["fold"] != fold] + [fold_row(fold, result)]
            done = sorted(r["fold"] for r in rows)
            write_text_atomic(out / FOLDS_CSV, _folds_text(rows))
            write_text_atomic(out / SUMMARY_JSON, json.dumps(
                summarize_folds(rows, cfg, _confusion(out, done)), indent=2))
        if not cluster.main:
            return None
    done = sorted(r["fold"] for r in rows)
    return summarize_folds(rows, cfg, _confusion(out, done))


def format_summary(summary: dict[str, Any]) -> str:
    """The summary as lines: each metric's mean +- std over the folds, and its values."""
    folds = summary["folds"]
    lines = [f"{summary['data']}: {len(folds)} fold(s) ({', '.join(map(str, folds))}), "
             f"{summary['task']}, {summary['variant']} with {summary['patchout']} patchout, "
             f"{summary['steps']} steps, {summary['seconds']} s of training"]
    for name, m in summary["metrics"].items():
        spread = f" +- {m['std']:.4f}" if m["std"] is not None else ""
        values = ", ".join(f"{v:.4f}" for v in m["values"])
        lines.append(f"  {name}: {m['mean']:.4f}{spread} ({values})")
    return "\n".join(lines)
