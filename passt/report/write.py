"""`write_report`: Table 1's markdown, CSV and LaTeX, Figure 1 and, where the run has them,
the ablation table and a profile's breakdown, written from a benchmark run into a folder."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from passt.measure.bench_file import load_bench_file
from passt.report.ablation import ablation_rows, write_ablation_table
from passt.report.ablation import format_markdown as ablation_markdown
from passt.report.figure import plot
from passt.report.row import csv_text_of
from passt.report.table import build_table
from passt.report.text import format_latex, format_markdown
from passt.utils.atomic import write_text_atomic
from passt.utils.errors import UsageError
from passt.utils.figures import save_figure

PROFILE_TEXTS = {"profile.md": "Where the time goes", "scaling.md": "Cost against clip length"}


@dataclass(frozen=True)
class Report:
    """What `write_report` wrote: the markdown table and the files' paths."""

    markdown: str
    paths: list[Path]


def write_report(bench_path: str | Path, out_dir: str | Path = "reports",
                 maps_path: str | Path | None = None,
                 profile_dir: str | Path | None = None, *, vs: str | None = None,
                 only_measured: bool = False) -> Report:
    """Write ``table1.md``, ``table1.csv``, ``table1.tex``, ``speed_vs_map.png`` and ``.svg``
    of a benchmark run into ``out_dir`` (``vs`` and ``only_measured``: see `build_table`); with
    ablation benchmarks in the run, also ``ablation.md`` and ``.csv`` (a run of the ablation
    alone writes only those); with a ``passt profile`` folder, its breakdown and scaling
    tables and figures too."""
    if profile_dir is not None:
        profile_texts(Path(profile_dir))  # a wrong folder fails before anything is written
    records = load_bench_file(bench_path).records
    ablation = ablation_rows(records)
    if ablation and len(ablation) == len(records):
        paths = write_ablation_table(ablation, out_dir)
        return Report(markdown=ablation_markdown(ablation), paths=paths)
    rows, settings = build_table(bench_path, maps_path, vs=vs, only_measured=only_measured)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    markdown = format_markdown(rows, settings)
    texts = {"table1.md": markdown, "table1.csv": csv_text_of(rows),
             "table1.tex": format_latex(rows, settings)}
    for name, text in texts.items():
        write_text_atomic(out / name, text)
    fig = plot(rows, settings)
    for fmt in ("png", "svg"):
        save_figure(fig, out / f"speed_vs_map.{fmt}")
    names = [*texts, "speed_vs_map.png", "speed_vs_map.svg"]
    paths = [out / n for n in names]
    if ablation:
        paths += write_ablation_table(ablation, out)
        markdown += "\n" + ablation_markdown(ablation)
    if profile_dir is not None:
        text, copied = include_profile(Path(profile_dir), out)
        markdown += "\n" + text
        paths += copied
    return Report(markdown=markdown, paths=paths)


def profile_texts(profile_dir: Path) -> list[str]:
    """The `PROFILE_TEXTS` a ``passt profile`` folder holds (none: an error)."""
    found = [name for name in PROFILE_TEXTS if (profile_dir / name).is_file()]
    if not found:
        raise UsageError(f"{profile_dir} holds no {' or '.join(PROFILE_TEXTS)}; write one "
                         "with passt profile --out DIR (and --scaling)")
    return found


def include_profile(profile_dir: Path, out: Path) -> tuple[str, list[Path]]:
    """The markdown of a ``passt profile`` folder (breakdown, scaling or both) and its
    figures, copied into ``out``."""
    found = profile_texts(profile_dir)
    text = "\n".join(f"## {PROFILE_TEXTS[name]}\n\n{(profile_dir / name).read_text()}"
                     for name in found)
    copied = []
    for figure in sorted(profile_dir.glob("*.png")) + sorted(profile_dir.glob("*.svg")):
        if profile_dir.resolve() != out.resolve():
            shutil.copyfile(figure, out / figure.name)
        copied.append(out / figure.name)
    return text, copied
