"""The ablation table of a benchmark run (``pytest bench/ --bench-ablation``): what each
fast-path optimization buys, as the speed, memory and MFU lost when it alone is switched off."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from passt.atomic import write_text_atomic
from passt.measure.ablation import ABLATIONS
from passt.regress import load_benchmarks

REFERENCE = "all-on"
COLUMNS = ("ablation", "variant", "status", "dtype", "attention", "compile", "compile_mode",
           "samples_per_s", "speed_vs_all_on", "median_step_s", "mfu", "mfu_of_ceiling",
           "peak_memory_gb_per_sample", "compile_graphs", "compile_recompiles",
           "compile_seconds")


def ablation_rows(path: str | Path) -> list[dict[str, Any]]:
    """The ablation benchmarks of a passt-bench JSON, in `ABLATIONS` order, with the speed
    ratio to the ``all-on`` row; empty when the run has none."""
    rows = [b["extra_info"] for b in load_benchmarks(path).values()
            if isinstance(b.get("extra_info"), dict) and b["extra_info"].get("ablation")]
    order = list(ABLATIONS)
    rows.sort(key=lambda e: order.index(e["ablation"]) if e["ablation"] in order else len(order))
    reference = next((r for r in rows if r["ablation"] == REFERENCE and not r.get("oom")), None)
    out = []
    for r in rows:
        speed = r.get("samples_per_s")
        peak = r.get("peak_memory_bytes_per_sample")
        out.append({
            **{c: r.get(c) for c in COLUMNS},
            "status": "OOM" if r.get("oom") else "ok",
            "speed_vs_all_on": (speed / reference["samples_per_s"]
                                if speed and reference is not None else None),
            "peak_memory_gb_per_sample": peak / 1e9 if peak is not None else None,
        })
    return out


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def format_markdown(rows: list[dict[str, Any]]) -> str:
    """The table as markdown, with a line saying what the ratio means."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(_cell(r[c]) for c in COLUMNS) + " |" for r in rows]
    return ("\n".join(lines) + "\n\n- speed_vs_all_on: training throughput over the row with "
            "every optimization on; below 1 means the switched-off optimization was helping.\n")


def format_csv(rows: list[dict[str, Any]]) -> str:
    lines = [",".join(COLUMNS)]
    lines += [",".join("" if r[c] is None else str(r[c]) for c in COLUMNS) for r in rows]
    return "\n".join(lines) + "\n"


def write_ablation_table(rows: list[dict[str, Any]], out_dir: str | Path) -> list[Path]:
    """Write ``ablation.md`` and ``ablation.csv`` into ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "ablation.md", out / "ablation.csv"]
    write_text_atomic(paths[0], format_markdown(rows))
    write_text_atomic(paths[1], format_csv(rows))
    return paths
