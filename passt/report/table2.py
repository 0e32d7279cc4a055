"""The paper's Table 2 (fine-tuning on downstream tasks) beside measured runs:
``passt report --table2 RUN...`` writes ``table2.md`` and ``table2.csv``.

A run is a ``passt finetune`` output folder: a cross-validation's ``summary.json`` (mean and
standard deviation over its folds), or a single run's ``last.pt`` (its last evaluation). Its
row is named after the fine-tuning patchout (none, unstructured, structured: the paper's
PaSST-B, -U, -S, all fine-tuned from PaSST-S; a run without ``--init`` is marked from scratch)
and its value goes in the column of its data:
ESC50 for ``esc50:DIR`` (accuracy in %); other data has a column of its own, as no paper value
measures it.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any

from passt.run_checkpoint import RunCheckpoint
from passt.train import LAST_CHECKPOINT, TrainConfig
from passt.train.crossval import SUMMARY_JSON
from passt.train.plan import model_variant
from passt.utils.atomic import write_text_atomic
from passt.utils.errors import UsageError
from passt.utils.tables import csv_text, markdown_table, record_rows

PAPER_COLUMNS = {"openmic_map": "OpenMIC mAP", "esc50_acc": "ESC50 accuracy (%)",
                 "dcase20_acc": "DCASE20 accuracy (%)"}
PAPER_ROWS = {"none": "PaSST-B *", "unstructured": "PaSST-U *", "structured": "PaSST-S *"}
ROW_NAMES = {"none": "PaSST-B", "unstructured": "PaSST-U", "structured": "PaSST-S"}
CSV_COLUMNS = ("row", "source", *PAPER_COLUMNS, "run", "data", "task", "variant", "patchout",
               "init", "folds", "metric", "mean", "std", "steps", "seconds", "paper_row")


@dataclass(frozen=True)
class Table2:
    """What `write_table2` wrote: the markdown and the files' paths."""

    markdown: str
    paths: list[Path]


def load_paper_table2() -> list[dict[str, Any]]:
    """The paper's Table 2 (shipped as package data): a row per model, its three columns."""
    with files("passt").joinpath("paper_table2.csv").open() as f:
        return [{"row": r["row"], **{k: float(r[k]) for k in PAPER_COLUMNS}}
                for r in csv.DictReader(f)]


def read_run(path: str | Path) -> dict[str, Any]:
    """A run's summary (`passt.train.crossval.summarize_folds`' form): its ``summary.json``,
    else the last evaluation of its ``last.pt`` as one value per metric."""
    path = Path(path)
    if (path / SUMMARY_JSON).is_file():
        return json.loads((path / SUMMARY_JSON).read_text())
    if not (path / LAST_CHECKPOINT).is_file():
        raise UsageError(f"{path} holds neither {SUMMARY_JSON} (passt finetune --folds) nor "
                         f"{LAST_CHECKPOINT} (a passt finetune run)")
    ckpt = RunCheckpoint.load(path / LAST_CHECKPOINT)
    cfg = TrainConfig.from_dict(ckpt.config)
    metrics = {k: {"mean": float(v), "std": None, "values": [float(v)]}
               for k, v in (ckpt.metrics or {}).items()
               if isinstance(v, (int, float)) and k != "samples"}
    return {"data": cfg.data, "task": cfg.task, "variant": cfg.variant,
            "patchout": model_variant(cfg).strategy, "init": cfg.init,
            "folds": [], "metrics": metrics, "steps": ckpt.progress["step"],
            "seconds": round(ckpt.progress["train_seconds"], 1)}


def measured_row(run: str | Path, summary: dict[str, Any]) -> dict[str, Any]:
    """The Table 2 row of a run: its main metric (accuracy in %, or mAP), in the ESC50 column
    for ``esc50:DIR`` data; a fine-tuned run is compared with the paper's row of its patchout,
    one from scratch with none."""
    metric = "accuracy" if summary["task"] == "single-label" else "map"
    if metric not in summary["metrics"]:
        raise UsageError(f"{run}: no {metric} among its metrics "
                         f"({', '.join(summary['metrics']) or 'none'})")
    m = summary["metrics"][metric]
    scale = 100.0 if metric == "accuracy" else 1.0
    start = "" if summary["init"] else ", from scratch"
    row = {"row": f"{ROW_NAMES.get(summary['patchout'], summary['variant'])} (this run{start})",
           "source": "measured", **dict.fromkeys(PAPER_COLUMNS), "run": str(run),
           "data": summary["data"], "task": summary["task"], "variant": summary["variant"],
           "patchout": summary["patchout"], "init": summary["init"],
           "folds": ",".join(map(str, summary["folds"])), "metric": metric,
           "mean": m["mean"] * scale, "std": None if m["std"] is None else m["std"] * scale,
           "steps": summary["steps"], "seconds": summary["seconds"],
           "paper_row": PAPER_ROWS.get(summary["patchout"], "") if summary["init"] else ""}
    if str(summary["data"]).startswith("esc50:"):
        row["esc50_acc"] = row["mean"] if metric == "accuracy" else None
    return row


def _measured(row: dict[str, Any]) -> str:
    spec = ".1f" if row["metric"] == "accuracy" else ".3f"
    spread = "" if row["std"] is None else f" ± {row['std']:{spec}}"
    folds = f", {len(row['folds'].split(','))} folds" if row["folds"] else ""
    return f"{row['mean']:{spec}}{spread} ({row['metric']}{folds})"


def format_table2(paper: list[dict[str, Any]], measured: list[dict[str, Any]]) -> str:
    """Markdown: the paper's rows, then each run's, an ESC-50 run's beside the paper's value
    of its patchout."""
    head = ["model", *PAPER_COLUMNS.values(), "other data", "run (data)"]
    rows = [[r["row"], f"{r['openmic_map']:.3f}", f"{r['esc50_acc']:.1f}",
             f"{r['dcase20_acc']:.1f}", "-", "-"] for r in paper]
    by_row = {r["row"]: r for r in paper}
    for r in measured:
        text = _measured(r)
        if r["esc50_acc"] is not None:
            ref = by_row.get(r["paper_row"])
            esc, other = text + (f" (paper {ref['esc50_acc']:.1f})" if ref else ""), "-"
        else:
            esc, other = "-", text
        rows.append([r["row"], "-", esc, "-", other, f"{Path(r['run']).name} ({r['data']})"])
    lines = markdown_table(head, rows, right=head[1:5]).splitlines()
    notes = ["", "- Paper rows: the paper's Table 2; PaSST-B, -U and -S * are the "
             "AudioSet-pretrained PaSST-S fine-tuned with no, unstructured and structured "
             "patchout.",
             "- This run: mean ± sample standard deviation over the folds (accuracy in %), "
             "named after its fine-tuning patchout. A run on esc50:DIR data stands in the ESC50 "
             "column; if that folder was generated (passt data esc50-like), its level is not "
             "comparable with the paper's ESC-50."]
    return "\n".join(["## Table 2: fine-tuning on downstream tasks", "", *lines, *notes]) + "\n"


def write_table2(runs: list[str | Path], out_dir: str | Path = "reports") -> Table2:
    """Write ``table2.md`` and ``table2.csv`` of ``runs`` beside the paper's Table 2."""
    if not runs:
        raise UsageError("--table2 needs at least one run folder")
    paper = load_paper_table2()
    measured = [measured_row(run, read_run(run)) for run in runs]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    records = [*({**r, "source": "paper"} for r in paper), *measured]
    markdown = format_table2(paper, measured)
    write_text_atomic(out / "table2.md", markdown)
    write_text_atomic(out / "table2.csv", csv_text(CSV_COLUMNS, record_rows(records, CSV_COLUMNS)))
    return Table2(markdown, [out / "table2.md", out / "table2.csv"])
