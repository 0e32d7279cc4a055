"""The paper's Table 1 and Figure 1 from a benchmark run: ``passt report BENCH.json``.

The table has a row per variant and per peer of the run's training benchmarks, with the
paper's values (Titan RTX) beside ours and the ratios of speed and memory to PaSST-B, which
compare across devices; the paper's other rows carry the paper's values. The figure plots
training throughput against mAP with circle areas proportional to memory per sample.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from passt.ablation_table import ablation_rows, write_ablation_table
from passt.ablation_table import format_markdown as ablation_markdown
from passt.atomic import atomic_path, write_text_atomic
from passt.measure.bench_file import load_bench_file
from passt.report.figure import plot
from passt.report.inputs import load_maps, load_paper_table
from passt.report.table import build_table
from passt.report.text import format_latex, format_markdown

__all__ = ["Report", "build_table", "load_maps", "load_paper_table", "write_report"]


@dataclass(frozen=True)
class Report:
    """What `write_report` wrote: the markdown table and the files' paths."""

    markdown: str
    paths: list[Path]


def write_report(bench_path: str | Path, out_dir: str | Path = "reports",
                 maps_path: str | Path | None = None) -> Report:
    """Write ``table1.md``, ``table1.csv``, ``table1.tex``, ``speed_vs_map.png`` and ``.svg``
    of a benchmark run into ``out_dir``; with ablation benchmarks in the run, also
    ``ablation.md`` and ``.csv`` (a run of the ablation alone writes only those)."""
    records = load_bench_file(bench_path).records
    ablation = ablation_rows(records)
    if ablation and len(ablation) == len(records):
        paths = write_ablation_table(ablation, out_dir)
        return Report(markdown=ablation_markdown(ablation), paths=paths)
    table, meta = build_table(bench_path, maps_path)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    markdown = format_markdown(table, meta)
    texts = {"table1.md": markdown, "table1.csv": table.to_csv(index=False),
             "table1.tex": format_latex(table, meta)}
    for name, text in texts.items():
        write_text_atomic(out / name, text)
    fig = plot(table, meta)
    for fmt in ("png", "svg"):
        with atomic_path(out / f"speed_vs_map.{fmt}") as tmp:
            fig.savefig(tmp, format=fmt)
    names = [*texts, "speed_vs_map.png", "speed_vs_map.svg"]
    paths = [out / n for n in names]
    if ablation:
        paths += write_ablation_table(ablation, out)
        markdown += "\n" + ablation_markdown(ablation)
    return Report(markdown=markdown, paths=paths)
