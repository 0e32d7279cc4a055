"""The mAP sweep: train every variant with one budget, seed and settings; write ``maps.csv``.

``maps.csv`` (columns `MAPS_COLUMNS`; ``task`` is the data spec, e.g. ``synthetic``) is what
``passt report --maps`` puts in Table 1, labelled as measured on that task. It is
rewritten atomically after every variant, so a crash keeps the finished rows, and a sweep
rerun with ``resume`` continues each variant's run from its last checkpoint.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from passt.atomic import write_text_atomic
from passt.errors import UsageError
from passt.train import Cluster, TrainConfig, TrainResult, train
from passt.variants import get_variant

log = logging.getLogger(__name__)

MAPS_FILE = "maps.csv"
MAPS_COLUMNS = ("variant", "map", "roc_auc", "d_prime", "steps", "train_seconds", "task",
                "embed_dim", "depth", "num_heads", "clip_seconds")
# the settings `variant_config` replaces for each variant: `passt sweep` offers no flag for them
SWEPT = ("variant", "out_dir", "epochs", "max_steps", "max_minutes")


def variant_config(base: TrainConfig, variant: str, out_dir: Path, steps: int | None,
                   minutes: float | None) -> TrainConfig:
    """``base`` for ``variant`` under the sweep's budget, in ``out_dir/runs/VARIANT``.

    The budget replaces ``base``'s epochs. A step budget keeps the paper schedule over those
    steps; a time budget alone (the step count is then unknown) warms up and holds the
    learning rate constant.
    """
    changes: dict[str, Any] = {"variant": variant, "out_dir": str(out_dir / "runs" / variant),
                               "epochs": None, "max_steps": steps, "max_minutes": minutes}
    if steps is None:
        changes["schedule"] = "constant"
    return dataclasses.replace(base, **changes)


def maps_row(variant: str, result: TrainResult, cfg: TrainConfig) -> dict[str, Any]:
    """One row of ``maps.csv`` from a finished run."""
    m = result.metrics or {}
    return {"variant": variant, "map": m.get("map"), "roc_auc": m.get("roc_auc"),
            "d_prime": m.get("d_prime"), "steps": result.step,
            "train_seconds": round(result.train_seconds, 1), "task": cfg.data,
            "embed_dim": result.embed_dim, "depth": result.depth, "num_heads": result.num_heads,
            "clip_seconds": cfg.clip_seconds}


def write_maps(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    """Write ``rows`` to ``path`` as CSV with `MAPS_COLUMNS`, atomically."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, MAPS_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_text_atomic(path, buf.getvalue())


def run_sweep(
    variants: Sequence[str],
    base: TrainConfig,
    out_dir: str | Path,
    *,
    steps: int | None = None,
    minutes: float | None = None,
    resume: bool = False,
    progress: bool | None = None,
) -> list[dict[str, Any]]:
    """Train each of ``variants`` from ``base`` with the same budget (``steps`` and/or
    ``minutes``), evaluate it, and write ``out_dir/maps.csv``; returns its rows."""
    if not variants:
        raise UsageError("the sweep needs at least one variant")
    if steps is None and minutes is None:
        raise UsageError("the sweep needs a budget: steps, minutes, or both")
    for name in variants:
        get_variant(name)
    dupes = sorted({v for v in variants if list(variants).count(v) > 1})
    if dupes:
        raise UsageError(f"variant(s) named more than once: {', '.join(dupes)}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    with Cluster.join(base.device) as cluster:  # one process group for every variant's run
        for name in variants:
            cfg = variant_config(base, name, out_dir, steps, minutes)
            log.info("sweep: training %s", name)
            result = train(cfg, resume=resume, progress=progress)
            rows.append(maps_row(name, result, cfg))
            if cluster.main:  # it has the metrics
                write_maps(out_dir / MAPS_FILE, rows)
            log.info("sweep: %s mAP %s after %d steps", name, rows[-1]["map"], result.step)
    return rows
