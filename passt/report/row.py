"""A row of Table 1: a variant or peer of the run (its training benchmark, with the same
variant's inference benchmark beside it) or a row of the paper's only; and the CSV it is
written as, its columns in field order."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from typing import Any, Literal

from passt.measure.bench_record import reported
from passt.utils.tables import csv_text

Status = Literal["measured", "OOM", "not run", "paper"]
# a --vs ratio's column follows this one: speed_vs_X after speed_vs_b_paper, ...
VS_AFTER = {"speed": "speed_vs_b_paper", "memory": "memory_vs_b_paper",
            "map_proxy": "map_proxy_text"}


@dataclass(frozen=True, kw_only=True)
class Table1Row:
    """One row (None: nothing to show); ``metrics``: the columns `BenchRecord`'s fields
    declare (`passt.measure.metric`); ``vs``: the ``--vs`` ratios by column."""

    model: str
    variant: str = ""
    peer: str = ""
    implementation: str = ""
    paper_row: str = ""
    paper_model: str = ""
    status: Status
    map_paper: float | None = None
    map_proxy: float | None = None
    map_proxy_std: float | None = None
    map_proxy_ci_low: float | None = None
    map_proxy_ci_high: float | None = None
    map_proxy_seeds: int | None = None
    map_proxy_text: str = ""
    speed_spec_per_s: float | None = None
    speed_spec_per_s_paper: float | None = None
    speed_vs_b: float | None = None
    speed_vs_b_paper: float | None = None
    memory_gb_per_sample: float | None = None
    memory_gb_per_sample_paper: float | None = None
    memory_vs_b: float | None = None
    memory_vs_b_paper: float | None = None
    memory_measure: str = ""
    acts: str = ""
    seq_len: int | None = None
    seq_len_paper: float | None = None
    eval_seq_len: int | None = None
    seq_len_per_block: str = ""
    eval_seq_len_per_block: str = ""
    gflops_per_sample: float | None = None
    inference_spec_per_s: float | None = None
    inference_vs_b: float | None = None
    inference_ci_half_width: float | None = None
    inference_unstable: bool | None = None
    inference_gflops_per_sample: float | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    probe_factor: float | None = None
    inference_probe_factor: float | None = None
    benchmark: str = ""
    vs: dict[str, float | None] = field(default_factory=dict)

    @property
    def run(self) -> bool:
        """Whether the row is of the run (measured or out of memory)."""
        return self.status in ("measured", "OOM")


def missing(value: Any) -> bool:
    """None or NaN (the paper's table leaves a value out as NaN)."""
    return value is None or (isinstance(value, float) and math.isnan(value))


def columns(rows: Sequence[Table1Row]) -> list[str]:
    """The CSV's columns: the fields in order, the declared metrics' in their place and the
    ``--vs`` ratios after the columns they compare."""
    out = []
    for f in fields(Table1Row):
        if f.name == "metrics":
            out += [cell.name for _, cell in reported("table1")]
        elif f.name != "vs":
            out.append(f.name)
    for name in rows[0].vs if rows else ():
        out.insert(out.index(VS_AFTER[name.split("_vs_")[0]]) + 1, name)
    return out


def cells(row: Table1Row) -> dict[str, Any]:
    """The row's values by CSV column."""
    values = {f.name: getattr(row, f.name) for f in fields(row)}
    return {**values.pop("metrics"), **values.pop("vs"), **values}


def csv_text_of(rows: Sequence[Table1Row]) -> str:
    """Table 1's CSV: counts written as numbers like the rest (``12.0``), the sweep's seed
    count as an integer, missing and NaN values as empty cells."""
    def value(name: str, v: Any) -> Any:
        if missing(v):
            return None
        return float(v) if type(v) is int and name != "map_proxy_seeds" else v

    names = columns(rows)
    return csv_text(names, [[value(n, cells(r).get(n)) for n in names] for r in rows])
