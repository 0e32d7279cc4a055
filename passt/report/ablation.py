"""The ablation table of a benchmark run (``pytest bench/ --bench-ablation``): what each
fast-path optimization buys, as the speed, memory and MFU lost when it alone is switched off."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from passt.measure.ablation import ABLATIONS
from passt.measure.bench_record import BenchRecord
from passt.utils.atomic import write_text_atomic
from passt.utils.tables import columns_of, csv_text, markdown_table, record_rows

REFERENCE = "all-on"


@dataclass(frozen=True)
class AblationRow:
    """One row of the table; its fields are the columns."""

    ablation: str
    variant: str
    status: str  # "ok" or "OOM"
    dtype: str
    attention: str
    compile: bool
    compile_mode: str | None
    samples_per_s: float | None
    speed_vs_all_on: float | None
    median_step_s: float | None
    mfu: float | None
    mfu_of_ceiling: float | None
    peak_memory_gb_per_sample: float | None
    compile_graphs: int | None
    compile_recompiles: int | None
    compile_seconds: float | None


COLUMNS = columns_of(AblationRow)


def ablation_rows(records: Iterable[BenchRecord]) -> list[AblationRow]:
    """The ablation rows of a run, in `ABLATIONS` order, with the speed ratio to the
    ``all-on`` row; empty when the run has none."""
    order = list(ABLATIONS)
    rows = sorted((r for r in records if r.ablation),
                  key=lambda r: order.index(r.ablation) if r.ablation in order else len(order))
    reference = next((r for r in rows if r.ablation == REFERENCE and not r.oom), None)
    return [_row(r, reference) for r in rows]


def _row(r: BenchRecord, reference: BenchRecord | None) -> AblationRow:
    speed, peak = r.samples_per_s, r.peak_memory_bytes_per_sample
    return AblationRow(
        ablation=r.ablation or "", variant=r.variant, status="OOM" if r.oom else "ok",
        dtype=r.dtype, attention=r.attention, compile=r.compile, compile_mode=r.compile_mode,
        samples_per_s=speed,
        speed_vs_all_on=(speed / reference.samples_per_s
                         if speed and reference is not None and reference.samples_per_s
                         else None),
        median_step_s=r.median_step_s, mfu=r.mfu, mfu_of_ceiling=r.mfu_of_ceiling,
        peak_memory_gb_per_sample=peak / 1e9 if peak is not None else None,
        compile_graphs=r.compile_graphs, compile_recompiles=r.compile_recompiles,
        compile_seconds=r.compile_seconds,
    )


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def format_markdown(rows: list[AblationRow]) -> str:
    """The table as markdown, with a line saying what the ratio means."""
    cells = [[_cell(v) for v in row] for row in record_rows(rows, COLUMNS)]
    return (markdown_table(COLUMNS, cells) + "\n- speed_vs_all_on: training throughput over the "
            "row with every optimization on; below 1 means the switched-off optimization was "
            "helping.\n")


def format_csv(rows: list[AblationRow]) -> str:
    return csv_text(COLUMNS, record_rows(rows, COLUMNS))


def write_ablation_table(rows: list[AblationRow], out_dir: str | Path) -> list[Path]:
    """Write ``ablation.md`` and ``ablation.csv`` into ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "ablation.md", out / "ablation.csv"]
    write_text_atomic(paths[0], format_markdown(rows))
    write_text_atomic(paths[1], format_csv(rows))
    return paths
