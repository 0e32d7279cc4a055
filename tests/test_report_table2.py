"""Table 2: the paper's rows shipped with the package, and fine-tuning runs beside them."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from passt.cli import main
from passt.report import load_paper_table2, write_table2
from passt.train import TrainConfig, train
from tests.helpers import TINY

SHARED = Path(__file__).resolve().parents[2] / "shared" / "paper" / "table2.csv"


def write_summary(run: Path, patchout: str, accuracy: list[float], data: str) -> Path:
    """A cross-validation's summary.json, as `passt.train.crossval` writes it."""
    run.mkdir(parents=True)
    mean = sum(accuracy) / len(accuracy)
    std = (sum((a - mean) ** 2 for a in accuracy) / (len(accuracy) - 1)) ** 0.5
    (run / "summary.json").write_text(json.dumps({
        "data": data, "task": "single-label", "variant": "passt-s", "patchout": patchout,
        "init": "checkpoint:pre.pt", "clip_seconds": 5.0, "folds": [1, 2, 3],
        "metrics": {"accuracy": {"mean": mean, "std": std, "values": accuracy},
                    "macro_f1": {"mean": 0.5, "std": 0.1, "values": [0.4, 0.5, 0.6]}},
        "steps": 30, "seconds": 12.5, "confusion": None}))
    return run


def test_the_packaged_paper_table_is_the_papers():
    rows = load_paper_table2()
    assert [r["row"] for r in rows][:3] == ["Baseline", "State-of-the-Art", "PaSST-B *"]
    assert rows[4] == {"row": "PaSST-S *", "openmic_map": 0.843, "esc50_acc": 96.8,
                       "dcase20_acc": 75.6}
    if SHARED.is_file():
        packaged = Path(__file__).resolve().parents[1] / "passt" / "paper_table2.csv"
        assert packaged.read_text() == SHARED.read_text()


def test_runs_stand_beside_the_paper_rows_of_their_patchout(tmp_path):
    s = write_summary(tmp_path / "s", "structured", [0.8, 0.9, 0.7], "esc50:data/esc")
    b = write_summary(tmp_path / "b", "none", [0.6, 0.5, 0.7], "folder:clips")
    table = write_table2([s, b], tmp_path / "out")
    md = table.markdown
    assert "| PaSST-S (this run) | - | 80.0 ± 10.0 (accuracy, 3 folds) (paper 96.8) | - | - " \
           "| s (esc50:data/esc) |" in md
    assert "| PaSST-B (this run) | - | - | - | 60.0 ± 10.0 (accuracy, 3 folds) | " \
           "b (folder:clips) |" in md
    assert "| PaSST-U * | 0.843 | 96.5 | 75.6 | - | - |" in md
    with open(tmp_path / "out" / "table2.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["source"] for r in rows] == ["paper"] * 7 + ["measured"] * 2
    assert float(rows[7]["esc50_acc"]) == pytest.approx(80.0) and rows[8]["esc50_acc"] == ""
    assert rows[7]["paper_row"] == "PaSST-S *" and rows[8]["paper_row"] == "PaSST-B *"
    assert float(rows[8]["std"]) == pytest.approx(10.0)


def test_a_single_run_and_the_command_line(tmp_path, capsys):
    run = tmp_path / "one"
    train(TrainConfig(clip_seconds=1.0, model_overrides=TINY,
                      data_options={"size": 8, "num_classes": 4}, batch_size=4, max_steps=1,
                      patchout="unstructured", out_dir=str(run)), progress=False)
    assert main(["report", "--table2", str(run), "--out", str(tmp_path / "out")]) == 0
    printed = capsys.readouterr().out
    assert "| PaSST-U (this run, from scratch) | - | - | - | " in printed
    scratch = write_summary(tmp_path / "scratch", "structured", [0.2, 0.1, 0.3], "esc50:e")
    summary = json.loads((scratch / "summary.json").read_text())
    (scratch / "summary.json").write_text(json.dumps({**summary, "init": None}))
    assert "| PaSST-S (this run, from scratch) | - | 20.0 ± 10.0 (accuracy, 3 folds) | - | - " \
           "| scratch (esc50:e) |" in write_table2([scratch], tmp_path / "out").markdown
    assert "(map) | one (synthetic) |" in printed
    assert main(["report", "--out", str(tmp_path / "out")]) == 2
    assert "takes a benchmark JSON, --table2 RUN..., or both" in capsys.readouterr().err
    assert main(["report", "--table2", str(tmp_path), "--out", str(tmp_path / "out")]) == 2
    assert "holds neither summary.json" in capsys.readouterr().err
