"""The files of ``passt tradeoff``: ``tradeoff.csv``, ``tradeoff.md`` and ``tradeoff.png``."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

from passt.tradeoff.run import Row
from passt.utils.atomic import write_text_atomic
from passt.utils.figures import save_figure
from passt.utils.optional import require
from passt.utils.tables import columns_of, csv_text, markdown_table, record_rows

CSV_FILE, MARKDOWN_FILE, FIGURE_FILE = "tradeoff.csv", "tradeoff.md", "tradeoff.png"
CSV_COLUMNS = columns_of(Row)


def format_csv(rows: Sequence[Row]) -> str:
    """One row per grid point, `Row`'s fields as columns (tokens per block space-separated)."""
    records = [{**dataclasses.asdict(r),
                "tokens_per_block": " ".join(map(str, r.tokens_per_block))} for r in rows]
    return csv_text(CSV_COLUMNS, [[f"{v:.6g}" if isinstance(v, float) else v for v in cells]
                                  for cells in record_rows(records, CSV_COLUMNS)])


def _interval_text(low: float | None, high: float | None, spec: str) -> str:
    return "" if low is None or high is None else f" [{low:{spec}}, {high:{spec}}]"


def format_markdown(rows: Sequence[Row], source: str) -> str:
    """The table, with what it was measured on."""
    metric = "mAP" if rows[0].metric == "map" else "accuracy"
    columns = ["strategy", "setting", "tokens/block (first->last)", "GFLOPs/sample", "spec/s",
               "speed-up", metric, "change"]
    cells = []
    for r in rows:
        first, last = r.tokens_per_block[0], r.tokens_per_block[-1]
        tokens = f"{r.tokens}" + (f" ({first}->{last})" if first != last else "")
        speed = _interval_text(r.samples_per_s_ci_low, r.samples_per_s_ci_high, ".3g")
        speedup = _interval_text(r.speedup_ci_low, r.speedup_ci_high, ".2f")
        cells.append([
            r.strategy, r.setting, tokens, f"{r.gflops_per_sample:.2f}",
            f"{r.samples_per_s:.3g}{speed}",
            f"{r.speedup:.2f}{speedup}{' (unstable)' if r.unstable else ''}",
            f"{r.value:.3f} [{r.ci_low:.3f}, {r.ci_high:.3f}]",
            f"{r.change:+.3f} [{r.change_ci_low:+.3f}, {r.change_ci_high:+.3f}]"])
    lines = markdown_table(columns, cells, right=columns[2:]).splitlines()
    r = rows[0]
    lines += ["", f"{source}: {r.clips} eval clips, inference of batch {r.batch_size} on "
              f"{r.device}, {r.dtype}. tokens: per block averaged over the blocks (class and "
              "distillation included); speed-up: over the unreduced model, timed in "
              "alternating rounds (median of the per-round ratios, 95% interval), "
              "(unstable) where that interval is wider than +-3% or other processes took "
              "over 5% of the CPUs while it was timed; "
              f"{metric}: 95% basic bootstrap interval over clips; change: from the "
              "unreduced model on the same resampled clips (paired)."]
    return "\n".join(lines) + "\n"


def plot(rows: Sequence[Row], title: str):
    """Inference throughput (x) against accuracy (y): a curve per strategy through its
    settings, the unreduced model as a star with its level as a line."""
    plt = require("matplotlib.pyplot", "the trade-off figure")
    fig, ax = plt.subplots(figsize=(9.0, 5.5), dpi=100, layout="constrained")
    reference = rows[0]
    ax.axhline(reference.value, color="0.5", ls="--", lw=1, zorder=1)
    for strategy in dict.fromkeys(r.strategy for r in rows[1:]):
        chosen = sorted((r for r in rows if r.strategy == strategy),
                        key=lambda r: r.samples_per_s)
        xs, ys = [r.samples_per_s for r in chosen], [r.value for r in chosen]
        yerr = _errors(chosen)
        line = ax.errorbar(xs, ys, yerr=yerr, marker="o", capsize=3, label=strategy, zorder=3)
        for r in chosen:
            ax.annotate(r.setting + (" (unstable)" if r.unstable else ""),
                        (r.samples_per_s, r.value), xytext=(4, 4),
                        textcoords="offset points", fontsize=7, color=line[0].get_color())
    ax.errorbar([reference.samples_per_s], [reference.value],
                yerr=_errors([reference]),
                marker="*", markersize=14, color="black", capsize=3, ls="none",
                label="unreduced", zorder=4)
    metric = "mAP" if reference.metric == "map" else "accuracy"
    ax.set_xlabel(f"inference throughput (spectrograms/s, batch {reference.batch_size}, "
                  f"{reference.device}, {reference.dtype})")
    ax.set_ylabel(f"{metric} (95% bootstrap interval over {reference.clips} clips)")
    ax.set_title(title, fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def _errors(rows: Sequence[Row]) -> list[list[float]]:
    """Error bars from each value to its interval's ends; a percentile bootstrap interval
    of a biased statistic (mAP on few clips) may lie beside the value: its bar is then 0."""
    return [[max(0.0, r.value - r.ci_low) for r in rows],
            [max(0.0, r.ci_high - r.value) for r in rows]]


def write_tradeoff(rows: Sequence[Row], out: str | Path, source: str) -> list[Path]:
    """``tradeoff.csv``, ``tradeoff.md`` and ``tradeoff.png`` into ``out`` (atomically)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out / CSV_FILE, format_csv(rows))
    write_text_atomic(out / MARKDOWN_FILE, format_markdown(rows, source))
    fig = plot(rows, f"Inference trade-off of {source}")
    save_figure(fig, out / FIGURE_FILE)
    return [out / CSV_FILE, out / MARKDOWN_FILE, out / FIGURE_FILE]
