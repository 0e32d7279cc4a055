"""The report's inputs: the paper's Table 1, the run's training rows, measured mAPs."""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any

from passt.measure.bench_file import load_bench_file
from passt.measure.bench_record import BenchRecord
from passt.sweep.maps import MapRow, MapSummary, read_maps, summarize
from passt.utils.errors import UsageError
from passt.utils.optional import require

pd = require("pandas", "the benchmark report")

PAPER_DEVICE = "Nvidia Titan RTX"  # the GPU of the paper's Table 1

# What Table 1 needs of a training row that did not run out of memory.
TABLE1_NEEDS = ("samples_per_s", "seq_len", "train_gflops_per_sample",
                "activation_bytes_per_sample")


@dataclass(frozen=True)
class Maps:
    """The proxy mAPs of a ``maps.csv``: per variant over its seeds, and the task's reference
    levels (the mean over the rows that carry them; None where none does)."""

    file: str
    summaries: dict[str, MapSummary]
    chance_map: float | None
    baseline_map: float | None


def load_paper_table() -> pd.DataFrame:
    """The paper's Table 1 (shipped as package data), indexed by row id."""
    with files("passt").joinpath("paper_table1.csv").open() as f:
        return pd.read_csv(f).set_index("row")


def _table1_needs(record: BenchRecord) -> tuple[str, ...]:
    return TABLE1_NEEDS if record.kind == "train" and not record.oom else ()


@dataclass(frozen=True)
class RunRows:
    """The rows of a benchmark run that Table 1 reads: training rows by benchmark name,
    inference rows by (variant, peer or ""), ablation rows left out; the run's
    ``machine_info``."""

    train: dict[str, BenchRecord]
    inference: dict[tuple[str, str], BenchRecord]
    machine_info: dict[str, Any]


def load_run_benchmarks(path: str | Path) -> RunRows:
    """The training and inference rows of a passt-bench JSON; clear errors for other
    files."""
    bench = load_bench_file(path, needs=_table1_needs)
    kept = {name: b.record for name, b in bench.benchmarks.items() if not b.record.ablation}
    train = {name: r for name, r in kept.items() if r.kind == "train"}
    if not train:
        raise UsageError(f"{Path(path).name} has no training benchmarks (extra_info kind "
                         "'train'); Table 1 needs them: run pytest bench/ without deselecting "
                         "the train steps")
    inference = {(r.variant, r.peer or ""): r for r in kept.values() if r.kind == "inference"}
    return RunRows(train, inference, bench.machine_info)


def _level(rows: list[MapRow], name: str) -> float | None:
    """The mean of a reference level (``chance_map``, ``baseline_map``) over the rows that
    carry it, or None."""
    values = [getattr(r, name) for r in rows if getattr(r, name) is not None]
    return statistics.fmean(values) if values else None


def load_maps(path: str | Path, variants: list[str]) -> Maps:
    """The measured (proxy) mAPs of a ``maps.csv`` (`passt.sweep.maps.read_maps`), summarized over
    seeds per variant. Only ``variants`` (the run's) may be named."""
    rows = read_maps(path)
    unknown = sorted({r.variant for r in rows} - set(variants))
    if unknown:
        raise UsageError(f"{Path(path).name} names variant(s) not in the benchmark run: "
                         f"{', '.join(unknown)}; the run's: {', '.join(variants)}")
    return Maps(file=Path(path).name, summaries={s.variant: s for s in summarize(rows)},
                chance_map=_level(rows, "chance_map"),
                baseline_map=_level(rows, "baseline_map"))
