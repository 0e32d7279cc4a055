"""K-fold cross-validation (``passt finetune --folds``): a training run per fold, on every other
fold of the data's fold column and evaluated on its own, in ``OUT/fold-K``.

Files in ``OUT``: ``config.json`` (the settings, checked on resume), ``folds.csv`` (a row per
finished fold: its metrics, steps and training seconds) and ``summary.json`` (mean and standard
deviation of each metric over the finished folds; the summed confusion matrix of a
single-label task), both rebuilt atomically after each fold from the folds' ``result.json``
(`collect`); each fold's folder also holds ``clips.csv``, the clips on each side. A fold is a
`passt.train.launch.Job`: in this process, one after another (the data opened once), or in processes
or SLURM jobs of its own (`LaunchConfig`). With ``resume`` the folds in ``folds.csv`` are
skipped and a fold cut short continues from its last checkpoint.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import logging
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from torch.utils.data import Dataset

from passt.data import choose_folds, fold_sides
from passt.eval.tasks import check_targets
from passt.train.config import TrainConfig
from passt.train.distributed import Cluster
from passt.train.launch import RESULT_JSON, Job, LaunchConfig, collect_job, launch, write_result
from passt.train.plan import check_model, model_variant, open_all_clips
from passt.train.run_files import MetricsLog
from passt.train.trainer import StepHook, TrainResult, train
from passt.utils.atomic import write_text_atomic
from passt.utils.errors import UsageError
from passt.utils.tables import csv_text, record_rows

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
    columns = [*dict.fromkeys(k for row in rows for k in row if k not in RUN_FIELDS), *RUN_FIELDS]
    return csv_text(columns, record_rows(sorted(rows, key=lambda r: r["fold"]), columns))


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
    rows = [(side, name) for side, dataset in (("train", train_set), ("eval", eval_set))
            for name in dataset.names]
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, csv_text(["side", "clip"], rows))


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
                   hooks: Sequence[StepHook] = (), progress: bool | None = None,
                   launcher: LaunchConfig | None = None, plugins: Sequence[str] = ()
                   ) -> dict[str, Any] | None:
    """Train ``cfg`` once per fold of ``folds`` (None: every fold of ``cfg.data``) and return
    the summary (`summarize_folds`; None on the other ranks of a ``torchrun``, and with
    ``launcher.detach``); see the module for the files. ``hooks`` run in this process only;
    ``plugins``: what folds in processes of their own load first."""
    launcher = launcher or LaunchConfig()
    if cfg.eval_fold is not None or cfg.eval_data is not None:
        raise UsageError("cross-validation evaluates each fold on itself: drop eval_fold and "
                         "eval_data")
    if hooks and not launcher.in_process:
        raise UsageError("step hooks run in this process: launch the folds one after another "
                         "(--launcher local --jobs 1)")
    out = Path(cfg.out_dir)
    with Cluster.join(cfg.device) as cluster:
        rows = _check_settings(out, cfg, resume)
        dataset = open_all_clips(cfg)  # opened (and checked) once for every fold
        chosen = choose_folds(dataset, list(folds) if folds is not None else None, cfg.data)
        check_targets(cfg.task, dataset, cfg.data)
        check_model(cfg, dataset)
        cluster.barrier()  # every rank has looked at OUT before rank 0 writes there
        if cluster.main:
            out.mkdir(parents=True, exist_ok=True)
            write_text_atomic(out / CONFIG_JSON, json.dumps(cfg.to_dict(), indent=2))
        finished = {r["fold"] for r in rows}
        for fold in chosen:
            if fold in finished:
                log.info("fold %d is in %s: skipped", fold, out / FOLDS_CSV)
        jobs = [fold_job(cfg, fold, resume, progress if launcher.in_process else False,
                         plugins) for fold in chosen if fold not in finished]
        if launcher.in_process:
            for job in jobs:
                if _train_fold(job.payload, dataset, hooks):
                    collect_job(job)
        else:
            outcome = launch(jobs, launcher, out)
            outcome.raise_for_failures()
            if outcome.detached:
                return None
        if not cluster.main:
            return None
    rows = read_folds(out / FOLDS_CSV) if (out / FOLDS_CSV).exists() else []
    return summarize_folds(rows, cfg, _confusion(out, sorted(r["fold"] for r in rows)))


def fold_job(cfg: TrainConfig, fold: int, resume: bool, progress: bool | None,
             plugins: Sequence[str] = ()) -> Job:
    """The run of ``fold``: trained on the other folds of ``cfg.data``, evaluated on it."""
    run = dataclasses.replace(cfg, eval_fold=fold, out_dir=str(fold_dir(cfg.out_dir, fold)))
    return Job(name=f"fold {fold}", run_dir=run.out_dir, out_dir=cfg.out_dir,
               runner="passt.train.crossval:run_fold",
               collector="passt.train.crossval:collect",
               payload={"config": run.to_dict(), "fold": fold, "resume": resume,
                        "progress": progress}, plugins=tuple(plugins))


def run_fold(payload: dict[str, Any]) -> bool:
    """Train one fold and leave its ``folds.csv`` row in its folder's result (a `Job`'s
    runner); True in the process that wrote it."""
    return _train_fold(payload)


def _train_fold(payload: dict[str, Any], dataset: Dataset | None = None,
                hooks: Sequence[StepHook] = ()) -> bool:
    run = TrainConfig.from_dict(payload["config"])
    fold = payload["fold"]
    with Cluster.join(run.device) as cluster:
        train_set, eval_set = fold_sides(dataset if dataset is not None else open_all_clips(run),
                                         fold, run.data)
        if cluster.main:
            _write_clips(Path(run.out_dir) / CLIPS_CSV, train_set, eval_set)
        log.info("fold %d: %d training clips, %d eval clips", fold, len(train_set),
                 len(eval_set))
        result = train(run, resume=payload["resume"], train_set=train_set, eval_set=eval_set,
                       hooks=hooks, progress=payload["progress"])
        if not cluster.main:  # rank 0 has the metrics and writes the files
            return False
    write_result(run.out_dir, {"row": fold_row(fold, result)})
    return True


def collect(out: Path) -> None:
    """Rebuild ``folds.csv`` and ``summary.json`` in ``out`` from the finished folds' results
    and what ``folds.csv`` held (a `Job`'s collector)."""
    cfg = TrainConfig.from_dict(json.loads((out / CONFIG_JSON).read_text()))
    rows = {r["fold"]: r for r in read_folds(out / FOLDS_CSV)} if (out / FOLDS_CSV).exists() \
        else {}
    for result in out.glob(f"fold-*/{RESULT_JSON}"):
        row = json.loads(result.read_text())["row"]
        rows[row["fold"]] = row
    done = sorted(rows)
    write_text_atomic(out / FOLDS_CSV, _folds_text(list(rows.values())))
    write_text_atomic(out / SUMMARY_JSON, json.dumps(
        summarize_folds(list(rows.values()), cfg, _confusion(out, done)), indent=2))


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
