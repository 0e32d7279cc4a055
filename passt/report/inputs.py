"""The report's inputs: the paper's Table 1, the run's training rows, measured mAPs."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path
from typing import Any

from passt.errors import UsageError
from passt.measure.bench_file import load_bench_file
from passt.measure.bench_record import BenchRecord
from passt.optional import require

pd = require("pandas", "the benchmark report")

# What Table 1 needs of a training row that did not run out of memory.
TABLE1_NEEDS = ("samples_per_s", "seq_len", "train_gflops_per_sample",
                "activation_bytes_per_sample")


def load_paper_table() -> pd.DataFrame:
    """The paper's Table 1 (shipped as package data), indexed by row id."""
    with files("passt").joinpath("paper_table1.csv").open() as f:
        return pd.read_csv(f).set_index("row")


def _table1_needs(record: BenchRecord) -> tuple[str, ...]:
    return TABLE1_NEEDS if record.kind == "train" and not record.oom else ()


def load_train_benchmarks(path: str | Path) -> tuple[dict[str, BenchRecord], dict[str, Any]]:
    """The training rows of a passt-bench JSON (``fullname -> row``, ablation rows left out)
    and its ``machine_info``; clear errors for other files."""
    bench = load_bench_file(path, needs=_table1_needs)
    train = {name: b.record for name, b in bench.benchmarks.items()
             if b.record.kind == "train" and not b.record.ablation}
    if not train:
        raise UsageError(f"{Path(path).name} has no training benchmarks (extra_info kind "
                         "'train'); Table 1 needs them: run pytest bench/ without deselecting "
                         "the train steps")
    return train, bench.machine_info


def load_maps(path: str | Path, variants: list[str]) -> dict[str, tuple[float, str]]:
    """Measured mAPs of a CSV with columns ``variant,map`` (optional ``task``, ``steps``):
    ``variant -> (map, source)``. Only ``variants`` (the run's) may be named."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"mAP file not found: {path}")
    try:
        maps = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise UsageError(f"{path.name} is not a CSV file: {e}") from None
    absent = [c for c in ("variant", "map") if c not in maps.columns]
    if absent:
        raise UsageError(f"{path.name} lacks column(s) {', '.join(absent)}; expected a CSV with "
                         f"columns variant,map (optional: task, steps), got {list(maps.columns)}")
    maps["variant"] = maps["variant"].astype(str).str.strip()
    unknown = sorted(set(maps["variant"]) - set(variants))
    if unknown:
        raise UsageError(f"{path.name} names variant(s) not in the benchmark run: "
                         f"{', '.join(unknown)}; the run's: {', '.join(variants)}")
    dupes = sorted(set(maps["variant"][maps["variant"].duplicated()]))
    if dupes:
        raise UsageError(f"{path.name} gives several mAPs for {', '.join(dupes)}")
    values = pd.to_numeric(maps["map"], errors="coerce")
    if values.isna().any() or not values.between(0, 1).all():
        raise UsageError(f"{path.name}: every map must be a number in [0, 1]")
    out = {}
    for row, value in zip(maps.to_dict("records"), values, strict=True):
        details = ["measured"]
        if pd.notna(row.get("task")):
            details.append(str(row["task"]))
        if pd.notna(row.get("steps")):  # 200, or 200.0 when another row has no steps
            details.append(f"{str(row['steps']).removesuffix('.0')} steps")
        out[row["variant"]] = (float(value), ", ".join(details))
    return out
