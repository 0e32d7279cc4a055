"""The files of a run's folder: the checkpoint ``last.pt`` (a `passt.run_checkpoint.RunCheckpoint`)
rebuilt as trained, and the metrics log ``metrics.jsonl`` with ``metrics.csv`` (their only
reader and writer)."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

from passt.frontend import MelFrontend
from passt.model import PaSST
from passt.run_checkpoint import RunCheckpoint
from passt.train.config import TrainConfig
from passt.train.plan import build_model, clip_frames, train_frontend
from passt.utils.atomic import write_text_atomic
from passt.utils.jsonl import append_jsonl, read_jsonl, write_jsonl
from passt.utils.tables import csv_text, record_rows

LAST_CHECKPOINT = "last.pt"
METRICS_JSONL = "metrics.jsonl"
METRICS_CSV = "metrics.csv"
CSV_COLUMNS = ("kind", "step", "epoch", "loss", "lr", "map", "roc_auc", "d_prime", "chance_map",
               "seconds", "train_samples", "train_tflops", "accuracy", "macro_f1",
               "chance_accuracy")


def load_trained_model(checkpoint: str | Path | RunCheckpoint, variant: str | None = None,
                       **overrides: Any) -> tuple[PaSST, MelFrontend, TrainConfig]:
    """Model (eval mode, CPU), frontend and settings of a `passt train` checkpoint (a file or
    its record), built as trained; ``variant`` and model ``overrides`` win. A checkpoint of
    format 1 (without its model's arguments) is rebuilt from its settings."""
    ckpt = checkpoint if isinstance(checkpoint, RunCheckpoint) else RunCheckpoint.load(checkpoint)
    cfg = TrainConfig.from_dict(ckpt.config)
    if variant is not None or overrides:
        cfg = dataclasses.replace(cfg, variant=variant or cfg.variant,
                                  model_overrides={**cfg.model_overrides, **overrides})
    if ckpt.model_args is not None:
        return (*ckpt.build(variant, **overrides), cfg)
    frontend = train_frontend(cfg)
    model = build_model(cfg, ckpt.num_classes, clip_frames(cfg.clip_seconds, frontend),
                        init=False, frame_seconds=frontend.config.frame_seconds)
    model.load_state_dict(ckpt.model)
    return model.eval(), frontend.eval(), cfg


class MetricsLog:
    """Rows appended to ``metrics.jsonl`` (every field) and ``metrics.csv`` (`CSV_COLUMNS`),
    each flushed as written. `truncate` drops rows past a checkpoint's step on resume."""

    def __init__(self, out_dir: Path):
        self.jsonl = out_dir / METRICS_JSONL
        self.csv = out_dir / METRICS_CSV

    def rows(self) -> list[dict[str, Any]]:
        """The complete rows of ``metrics.jsonl`` (a line cut short by a crash is skipped)."""
        return read_jsonl(self.jsonl)

    def truncate(self, step: int) -> None:
        """Keep only the rows up to ``step`` (both files are rewritten atomically)."""
        kept = [r for r in self.rows() if r.get("step", math.inf) <= step]
        write_jsonl(self.jsonl, kept)
        write_text_atomic(self.csv, csv_text(CSV_COLUMNS, record_rows(kept, CSV_COLUMNS)))

    def append(self, row: dict[str, Any]) -> None:
        append_jsonl(self.jsonl, row)
        new = not self.csv.exists() or self.csv.stat().st_size == 0
        with self.csv.open("a", newline="") as f:
            f.write(csv_text(CSV_COLUMNS, record_rows([row], CSV_COLUMNS), header=new))

