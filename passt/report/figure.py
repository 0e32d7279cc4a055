"""Figure 1 of a benchmark run: training throughput against mAP, circle areas proportional to
memory per sample; this run's points filled, the paper's hollow."""

from __future__ import annotations

import math
import textwrap
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from passt.optional import require
from passt.report.table import PAPER_DEVICE, clean_name

if TYPE_CHECKING:
    from matplotlib.figure import Figure

pd = require("pandas", "the benchmark report")

FIGURE_SIZE_IN = (9.0, 6.0)
FIGURE_DPI = 100
MAX_MARKER_AREA = 1400.0  # pt^2 of the largest memory per sample in the figure


def _paper_points(table: pd.DataFrame) -> pd.DataFrame:
    """The paper's rows with a speed and an mAP; rows at the same point share it."""
    rows = table[table["paper_row"] != ""].drop_duplicates("paper_row")
    rows = rows.dropna(subset=["speed_spec_per_s_paper", "map_paper"])
    points = rows.assign(label=rows["paper_model"].map(clean_name))
    return (points.groupby(["speed_spec_per_s_paper", "map_paper", "memory_gb_per_sample_paper"],
                           as_index=False, sort=False)
            .agg(label=("label", lambda s: ", ".join(dict.fromkeys(s)))))


def _size_legend_values(gb: pd.Series) -> list[float]:
    nice = [0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50]
    inside = [v for v in nice if gb.min() / 1.5 <= v <= gb.max() * 1.5] or [nice[0]]
    return list(dict.fromkeys([inside[0], inside[len(inside) // 2], inside[-1]]))


def _declutter(fig: Figure, labels: list[Any], iterations: int = 100) -> None:
    """Nudge overlapping point labels apart vertically: boxes measured once after a draw,
    moved in display space, then set as the labels' offsets."""
    from matplotlib.text import Text

    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    # the text's box only: an annotation's includes its arrow
    boxes = [Text.get_window_extent(t, renderer) for t in labels]
    shift = [0.0] * len(labels)
    for _ in range(iterations):
        moved = False
        for i in range(len(labels)):
            for j in range(i + 1, len(labels)):
                a, b = boxes[i].translated(0, shift[i]), boxes[j].translated(0, shift[j])
                overlap = min(a.y1, b.y1) - max(a.y0, b.y0) + 2  # 2 px apart at least
                if overlap <= 0 or min(a.x1, b.x1) <= max(a.x0, b.x0):
                    continue
                lower, upper = (i, j) if (a.y0, i) < (b.y0, j) else (j, i)
                shift[lower] -= overlap / 2
                shift[upper] += overlap / 2
                moved = True
        if not moved:
            break
    for label, dy in zip(labels, shift, strict=True):
        dx, y = label.xyann
        label.xyann = (dx, y + dy * 72 / fig.dpi)
        label.arrow_patch.set_visible(abs(dy) > 2)  # a leader line for moved labels only


def plot(table: pd.DataFrame, meta: dict[str, Any]) -> Figure:
    """The paper's Figure 1 for this run: training throughput (x) against mAP (y), circle
    area proportional to memory per sample; measured points filled, the paper's hollow."""
    require("matplotlib", "plotting Figure 1")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.ticker import FuncFormatter

    ours = table[(table["status"] == "measured")].dropna(subset=["map", "speed_spec_per_s"])
    paper = _paper_points(table)
    speeds = pd.concat([ours["speed_spec_per_s"], paper["speed_spec_per_s_paper"]])
    log_x = len(speeds) > 1 and speeds.max() / speeds.min() > 10
    caption = _caption(table, meta, log_x, ours, paper)
    fig = Figure(figsize=FIGURE_SIZE_IN, dpi=FIGURE_DPI)
    FigureCanvasAgg(fig)
    fig.text(0.01, 0.01, caption, fontsize=7.5, va="bottom", color="0.2")
    bottom = 0.09 + 0.022 * (caption.count("\n") + 1)  # room for the caption's lines
    ax = fig.add_axes((0.085, bottom, 0.7, 0.92 - bottom))
    gb = pd.concat([ours["memory_gb_per_sample"], paper["memory_gb_per_sample_paper"]]).dropna()
    top = gb.max() if len(gb) else 1.0

    def area(value: float) -> float:
        return 40.0 if pd.isna(value) else max(12.0, MAX_MARKER_AREA * value / top)

    colors = {"": "tab:blue", "official": "tab:orange", "official-sdpa": "tab:green",
              "hf-ast": "tab:purple"}
    labels = []
    for _, p in paper.iterrows():
        s = area(p["memory_gb_per_sample_paper"])
        ax.scatter(p["speed_spec_per_s_paper"], p["map_paper"], s=s, facecolors="none",
                   edgecolors="0.45", linewidths=1.3, zorder=2)
        labels.append(_label(ax, p["label"], p["speed_spec_per_s_paper"], p["map_paper"], s,
                             "0.3", side=-1))
    for _, r in ours.iterrows():
        s, color = area(r["memory_gb_per_sample"]), colors.get(r["peer"], "tab:red")
        ax.scatter(r["speed_spec_per_s"], r["map"], s=s, color=color, alpha=0.8,
                   edgecolors="white", linewidths=0.6, zorder=3)
        text = r["variant"] + (f" ({r['peer']})" if r["peer"] else "") + (
            " (measured mAP)" if r["map_source"].startswith("measured") else "")
        labels.append(_label(ax, text, r["speed_spec_per_s"], r["map"], s, color))
    if log_x:
        ax.set_xscale("log")
        ax.set_xlim(speeds.min() / 1.6, speeds.max() * 2.2)
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    else:
        ax.set_xlim(0, speeds.max() * 1.25 if len(speeds) else 1)
    ax.margins(y=0.12)
    ax.grid(True, which="major", alpha=0.3)
    ax.set_xlabel("training throughput (spectrograms/s)" + (", log scale" if log_x else ""))
    ax.set_ylabel("mAP")
    ax.set_title(f"Training throughput vs mAP — {meta['device_name']}, {meta['dtype']}, "
                 f"batch {meta['batch_size']}, preset {meta['preset']}", fontsize=11)
    _legends(ax, Line2D, colors, ours, gb, area, meta)
    _declutter(fig, labels)
    return fig


def _label(ax: Any, text: str, x: float, y: float, area: float, color: str,
           side: int = 1) -> Any:
    """A point's label beside its circle (``side`` 1: right, -1: left), on a white ground,
    with a leader line (shown by `_declutter` if it moves the label)."""
    radius = math.sqrt(area) / 2
    return ax.annotate(text, (x, y), xytext=(side * (radius + 3), 0), textcoords="offset points",
                       ha="left" if side > 0 else "right", va="center", fontsize=8, color=color,
                       zorder=5, bbox={"boxstyle": "round,pad=0.1", "fc": "white", "ec": "none",
                                       "alpha": 0.7},
                       arrowprops={"arrowstyle": "-", "lw": 0.4, "color": "0.6",
                                   "shrinkA": 0, "shrinkB": radius})


def _legends(ax: Any, line2d: Any, colors: dict[str, str], ours: pd.DataFrame, gb: pd.Series,
             area: Callable[[float], float], meta: dict[str, Any]) -> None:
    """Two legends: what the markers are, and what the circle sizes mean."""
    kinds = [line2d([], [], marker="o", ls="", color=colors.get(p, "tab:red"), markersize=8,
                    label="measured: passt-bench" if not p else f"measured: peer {p}")
             for p in dict.fromkeys(ours["peer"])]
    kinds.append(line2d([], [], marker="o", ls="", markerfacecolor="none",
                        markeredgecolor="0.45", markersize=8, label=f"paper ({PAPER_DEVICE})"))
    first = ax.legend(handles=kinds, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8,
                      borderaxespad=0)
    ax.add_artist(first)
    sizes = [line2d([], [], marker="o", ls="", markerfacecolor="none", markeredgecolor="0.3",
                    markersize=math.sqrt(area(v)), label=f"{v:g} GB") for v in
             _size_legend_values(gb if len(gb) else pd.Series([1.0]))]
    ax.legend(handles=sizes, loc="lower left", bbox_to_anchor=(1.01, 0.0), fontsize=8,
              borderaxespad=0, labelspacing=2.0, borderpad=1.2, handlelength=3.5,
              handletextpad=1.2,
              title=f"memory/sample\nours: {meta['memory_measure']}\npaper: GPU",
              title_fontsize=8)


def _caption(table: pd.DataFrame, meta: dict[str, Any], log_x: bool, ours: pd.DataFrame,
             paper: pd.DataFrame) -> str:
    parts = ["Filled: measured in this run; hollow grey: the paper's values "
             f"({PAPER_DEVICE}). Circle area is proportional to memory per sample (ours: "
             f"{meta['memory_label']}). Measured points sit at the paper's mAP of their variant "
             "unless a measured mAP was given (--maps)."]
    if log_x and len(ours) and len(paper):
        factor = paper["speed_spec_per_s_paper"].median() / ours["speed_spec_per_s"].median()
        parts.append(f"x is logarithmic: this run's speeds and the paper's differ by about "
                     f"{factor:.3g}x (median), so both fit and equal ratios look equally long.")
    left = table[table["status"].isin(["OOM", "not run"])]
    if len(left):
        parts.append("Not plotted: " + ", ".join(f"{m} ({s})" for m, s in
                                                 zip(left["model"], left["status"], strict=True))
                     + ".")
    no_map = table[(table["status"] == "measured") & table["map"].isna()]
    if len(no_map):
        parts.append(f"Not plotted (no mAP): {', '.join(no_map['model'])}.")
    return "\n".join(textwrap.fill(p, 170) for p in parts)
