"""The mAP sweep: train every variant and seed with one budget and settings, and write
``maps.csv``, ``curves.csv`` and ``maps_summary.csv`` (see `passt.sweep.maps`) with the learning
curves' figures.

A compute budget (``budget_tflops``, counted on the model) gives every variant the same
training FLOPs, so a variant whose steps are cheaper takes more of them: the comparison that
tests patchout's efficiency. Each pair is a `passt.train.launch.Job`: in this process one after
another, as processes of this machine, or as SLURM jobs (`LaunchConfig`). A finished run leaves
its row in its folder's ``result.json``; the sweep's files are rebuilt from those (and what
``maps.csv`` held) after every run, atomically and under a lock, so a crash keeps the finished
rows; a sweep rerun with ``resume`` skips the (variant, seed) pairs in ``maps.csv`` and runs the
others again, from their last checkpoint.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from passt.sweep.maps import (
    CURVES_FILE,
    MAPS_FILE,
    SUMMARY_FILE,
    SUMMARY_MARKDOWN,
    CurvePoint,
    MapRow,
    read_curves,
    read_maps,
    summarize,
    summary_markdown,
    write_curves,
    write_maps,
    write_summary,
)
from passt.train import Cluster, TrainConfig, TrainResult, open_eval_set, open_train_set, train
from passt.train.launch import RESULT_JSON, Job, LaunchConfig, launch, write_result
from passt.train.plan import check_model
from passt.train.run_files import MetricsLog
from passt.utils.atomic import write_text_atomic
from passt.utils.errors import UsageError
from passt.utils.values import check_number, parse_list
from passt.variants import get_variant

log = logging.getLogger(__name__)

# the settings `run_config` replaces for each run: `passt sweep` offers no flag for them
SWEPT = ("variant", "seed", "out_dir", "epochs", "max_steps", "max_minutes", "max_tflops")
SWEEP_JSON = "sweep.json"  # the variants and seeds in order: the order of maps.csv's rows
CURVE_FIGURES = {"map_vs_compute": "train_tflops", "map_vs_time": "seconds"}


@dataclass(frozen=True)
class Budget:
    """What every run of a sweep may spend: steps, minutes, TFLOPs (the first reached ends
    it). A step or compute budget keeps the paper's schedule over the steps; a time budget
    alone (the step count is then unknown) warms up and holds the learning rate constant."""

    steps: int | None = None
    minutes: float | None = None
    tflops: float | None = None

    def __post_init__(self) -> None:
        if self.steps is None and self.minutes is None and self.tflops is None:
            raise UsageError("the sweep needs a budget: --steps, --minutes or --budget-tflops")
        for name, value in (("steps", self.steps), ("minutes", self.minutes),
                            ("budget_tflops", self.tflops)):
            if value is not None:
                check_number(name, value, above=0)


def parse_seeds(text: str) -> tuple[int, ...]:
    """``"0,1,2"`` as ``(0, 1, 2)``: distinct integers >= 0."""
    return parse_list(text, "--seeds", int, minimum=0, unique=True, noun="seed")


def run_config(base: TrainConfig, variant: str, seed: int, out_dir: Path,
               budget: Budget) -> TrainConfig:
    """``base`` for ``variant`` and ``seed`` under ``budget``, in
    ``out_dir/runs/VARIANT/seed-SEED``."""
    changes: dict[str, Any] = {
        "variant": variant, "seed": seed,
        "out_dir": str(out_dir / "runs" / variant / f"seed-{seed}"),
        "epochs": None, "max_steps": budget.steps, "max_minutes": budget.minutes,
        "max_tflops": budget.tflops}
    if budget.steps is None and budget.tflops is None:
        changes["schedule"] = "constant"
    return dataclasses.replace(base, **changes)


def map_row(variant: str, seed: int, result: TrainResult, cfg: TrainConfig,
            baseline_map: float | None) -> MapRow:
    """The ``maps.csv`` row of a finished run."""
    m = result.metrics or {}
    return MapRow(
        variant=variant, map=m["map"], seed=seed, roc_auc=m.get("roc_auc"),
        d_prime=m.get("d_prime"), chance_map=m.get("chance_map"), baseline_map=baseline_map,
        steps=result.step, train_samples=result.train_samples,
        train_tflops=result.train_tflops, budget_tflops=cfg.max_tflops,
        train_seconds=round(result.train_seconds, 1), task=cfg.data, train_clips=result.train_clips,
        embed_dim=result.embed_dim, depth=result.depth, num_heads=result.num_heads,
        clip_seconds=cfg.clip_seconds)


def curve_points(variant: str, seed: int, run_dir: Path) -> list[CurvePoint]:
    """The evaluations of a run's metrics log, as learning-curve points."""
    return [CurvePoint(variant=variant, seed=seed, step=r["step"], train_samples=r["train_samples"],
                       train_tflops=r["train_tflops"], seconds=r["seconds"], map=r["map"])
            for r in MetricsLog(run_dir).rows() if r.get("kind") == "eval"]


def _same_sweep(row: MapRow, cfg: TrainConfig) -> bool:
    return row.task == cfg.data and row.budget_tflops == cfg.max_tflops \
        and row.clip_seconds == cfg.clip_seconds


def run_sweep(
    variants: Sequence[str],
    base: TrainConfig,
    out_dir: str | Path,
    budget: Budget,
    *,
    seeds: Sequence[int] = (0,),
    baseline_map: float | None = None,
    resume: bool = False,
    progress: bool | None = None,
    launcher: LaunchConfig | None = None,
    plugins: Sequence[str] = (),
) -> list[MapRow]:
    """Train each of ``variants`` with each of ``seeds`` from ``base`` under ``budget``,
    evaluate, and write the sweep's files into ``out_dir``; returns the ``maps.csv`` rows
    (those finished so far, with ``launcher.detach``). ``baseline_map``: the mean-spectrum
    baseline's mAP on the task, stored in every row; ``plugins``: what runs in processes of
    their own load first."""
    launcher = launcher or LaunchConfig()
    if not variants:
        raise UsageError("the sweep needs at least one variant")
    if not seeds:
        raise UsageError("the sweep needs at least one seed")
    if base.task != "multi-label":
        raise UsageError(f"the sweep compares mAP on a multi-label task; {base.data} is "
                         f"{base.task}: use --task multi-label, or compare single-label "
                         "variants with passt train --folds")
    for name in variants:
        get_variant(name)
    dupes = sorted({v for v in variants if list(variants).count(v) > 1})
    if dupes:
        raise UsageError(f"variant(s) named more than once: {', '.join(dupes)}")
    out_dir = Path(out_dir)
    maps_path = out_dir / MAPS_FILE
    rows: list[MapRow] = []
    if maps_path.exists():
        if not resume:
            raise UsageError(f"{out_dir} holds a sweep ({MAPS_FILE}); pass --resume to continue "
                             "it, or choose another --out")
        rows = read_maps(maps_path)
    # bad data or clips are one error here, before OUT is written, not one in every run
    train_set = open_train_set(base)
    open_eval_set(base, train_set)
    jobs = []
    for name, seed in itertools.product(variants, seeds):
        cfg = run_config(base, name, seed, out_dir, budget)
        done = [r for r in rows if (r.variant, r.seed) == (name, seed)]
        if done and all(_same_sweep(r, cfg) for r in done):
            log.info("sweep: %s seed %d is in %s: skipped", name, seed, maps_path)
            continue
        if done:
            raise UsageError(f"{maps_path} holds {name} seed {seed} from other settings "
                             "(task, budget or clip length); choose another --out")
        check_model(cfg, train_set)
        jobs.append(Job(
            name=f"{name} seed {seed}", run_dir=cfg.out_dir, out_dir=str(out_dir),
            runner="passt.sweep.run:run_one", collector="passt.sweep.run:collect",
            payload={"config": cfg.to_dict(), "variant": name, "seed": seed,
                     "baseline_map": baseline_map, "resume": resume,
                     "progress": progress if launcher.in_process else False},
            plugins=tuple(plugins)))
    with Cluster.join(base.device) as cluster:  # one process group for every run here
        if cluster.main:
            out_dir.mkdir(parents=True, exist_ok=True)
            write_text_atomic(out_dir / SWEEP_JSON, json.dumps(
                {"variants": list(variants), "seeds": list(seeds)}))
        launch(jobs, launcher, out_dir).raise_for_failures()
    return read_maps(maps_path) if maps_path.exists() else []


def run_one(payload: dict[str, Any]) -> bool:
    """Train one (variant, seed) of a sweep and leave its ``maps.csv`` row in its folder's
    result (a `Job`'s runner); True in the process that wrote it."""
    cfg = TrainConfig.from_dict(payload["config"])
    variant, seed = payload["variant"], payload["seed"]
    log.info("sweep: training %s, seed %d", variant, seed)
    with Cluster.join(cfg.device) as cluster:
        result = train(cfg, resume=payload["resume"], progress=payload["progress"])
        if not cluster.main:  # rank 0 has the metrics and writes the files
            return False
    row = map_row(variant, seed, result, cfg, payload["baseline_map"])
    write_result(cfg.out_dir, {"row": dataclasses.asdict(row)})
    log.info("sweep: %s seed %d: mAP %.4f after %d steps, %.4g TFLOPs", variant, seed, row.map,
             result.step, result.train_tflops)
    return True


def collect(out_dir: Path) -> None:
    """Rebuild the sweep's files in ``out_dir`` from its finished runs and what ``maps.csv``
    and ``curves.csv`` held (a `Job`'s collector)."""
    maps_path, curves_path = out_dir / MAPS_FILE, out_dir / CURVES_FILE
    rows = {(r.variant, r.seed): r for r in read_maps(maps_path)} if maps_path.exists() else {}
    points = read_curves(curves_path) if curves_path.exists() else []
    for result in sorted(out_dir.glob(f"runs/*/seed-*/{RESULT_JSON}")):
        row = MapRow(**json.loads(result.read_text())["row"])
        key = (row.variant, row.seed)
        rows[key] = row
        points = [p for p in points if (p.variant, p.seed) != key]
        points += curve_points(row.variant, row.seed, result.parent)
    order = json.loads((out_dir / SWEEP_JSON).read_text()) if (out_dir / SWEEP_JSON).exists() \
        else {"variants": [], "seeds": []}
    rank = {key: i for i, key in enumerate(itertools.product(order["variants"], order["seeds"]))}
    ordered = sorted(rows.values(), key=lambda r: rank.get((r.variant, r.seed), len(rank)))
    write_sweep_files(out_dir, ordered, points)


def write_sweep_files(out_dir: Path, rows: Sequence[MapRow],
                      points: Sequence[CurvePoint]) -> list[Path]:
    """``maps.csv``, ``curves.csv``, ``maps_summary.csv``, ``summary.md`` and the learning
    curves' figures."""
    from passt.sweep.curves import plot_curves  # matplotlib: only once a run has finished

    write_maps(out_dir / MAPS_FILE, rows)
    write_curves(out_dir / CURVES_FILE, points)
    write_summary(out_dir / SUMMARY_FILE, summarize(rows))
    write_text_atomic(out_dir / SUMMARY_MARKDOWN, summary_markdown(rows))
    paths = [out_dir / n for n in (MAPS_FILE, CURVES_FILE, SUMMARY_FILE, SUMMARY_MARKDOWN)]
    for name, x in CURVE_FIGURES.items():
        paths += plot_curves(points, rows, x, out_dir / name)
    return paths

