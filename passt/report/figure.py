"""Figure 1 of a benchmark run: the paper's training throughput against its AudioSet mAP
(left), this run's measured training throughput against the proxy mAP of ``--maps`` or,
without it, the paper's mAP (middle), and, where the run has inference rows, its inference
throughput against the same mAP (right: reductions that act at inference are judged there);
circle areas proportional to memory per sample; rows whose speed is unstable drawn faint."""

from __future__ import annotations

import math
import textwrap
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from passt.report.inputs import PAPER_DEVICE, load_paper_table
from passt.report.row import Table1Row, missing
from passt.report.settings import Table1Settings
from passt.report.table import clean_name, typical_speed
from passt.utils.optional import require

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure
    from matplotlib.text import Annotation

pd = require("pandas", "the benchmark report")

FIGURE_SIZE_IN = (13.0, 6.5)
PANEL_WIDTH_IN = 5.5  # each panel beyond the first two widens the figure by this much
FIGURE_DPI = 100
MAX_MARKER_AREA = 1400.0  # pt^2 of the largest memory per sample in a panel
LABEL_GAP_PX = 2.0  # the least vertical gap between two labels' boxes
PEER_COLORS = {"": "tab:blue", "official": "tab:orange", "official-sdpa": "tab:green",
               "hf-ast": "tab:purple"}
LEVELS = (("chance_map", "chance", ":"), ("baseline_map", "mean-spectrum baseline", "--"))


def _paper_points() -> pd.DataFrame:
    """The paper's Table 1 rows with a speed and an mAP; rows at the same point share it:
    columns ``speed``, ``map``, ``memory`` and ``label``."""
    paper = load_paper_table().dropna(subset=["speed_spec_per_s", "map"])
    points = paper.assign(label=paper["model"].map(clean_name)).rename(
        columns={"speed_spec_per_s": "speed", "mem_gb_per_sample": "memory"})
    return (points.groupby(["speed", "map", "memory"], as_index=False, sort=False)
            .agg(label=("label", lambda s: ", ".join(dict.fromkeys(s)))))


SPEEDS = {"train": ("speed_spec_per_s", "unstable", "training"),
          "inference": ("inference_spec_per_s", "inference_unstable", "inference")}


def _run_points(rows: list[Table1Row], proxy: bool, kind: str = "train") -> pd.DataFrame:
    """The run's measured rows with a ``kind`` speed and an mAP (the proxy mAP with
    ``proxy``, else the paper's): columns ``speed``, ``map``, ``low``, ``high``, ``memory``,
    ``peer``, ``unstable`` and ``label``."""
    column = "map_proxy" if proxy else "map_paper"
    speed, unstable, _ = SPEEDS[kind]
    shown = [r for r in rows if r.status == "measured" and not missing(getattr(r, speed))
             and not missing(getattr(r, column))]

    def number(value: float | None) -> float:
        return math.nan if value is None else value

    return pd.DataFrame({
        "speed": [typical_speed(r, kind) for r in shown],
        "map": [getattr(r, column) for r in shown],
        "unstable": [(r.metrics.get(unstable) if kind == "train" else getattr(r, unstable))
                     is True for r in shown],
        "low": [number(r.map_proxy_ci_low) if proxy else math.nan for r in shown],
        "high": [number(r.map_proxy_ci_high) if proxy else math.nan for r in shown],
        "memory": [number(r.memory_gb_per_sample) for r in shown],
        "peer": [r.peer for r in shown],
        "label": [r.variant + (f" ({r.peer})" if r.peer else "") for r in shown]},
        columns=["speed", "map", "unstable", "low", "high", "memory", "peer", "label"])


def _area_scale(memory: pd.Series) -> Callable[[float], float]:
    """Marker area (pt^2) of a memory per sample, proportional within a panel."""
    known = memory.dropna()
    top = known.max() if len(known) else 1.0
    return lambda v: 40.0 if pd.isna(v) else max(12.0, MAX_MARKER_AREA * v / top)


def _set_x(ax: Axes, speeds: pd.Series) -> bool:
    """x limits with room for labels, logarithmic when the speeds span over 10x; whether
    it is logarithmic."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    log_x = len(speeds) > 1 and speeds.max() / speeds.min() > 10
    if log_x:
        ax.set_xscale("log")
        ax.set_xlim(speeds.min() / 1.6, speeds.max() * 1.6)
        # labels at 1, 2 and 5 times a power of ten only: the minor ticks stay unlabelled
        ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_formatter(NullFormatter())
    else:
        ax.set_xlim(0, speeds.max() * 1.2 if len(speeds) else 1)
    ax.margins(y=0.12)
    ax.grid(True, which="major", alpha=0.3)
    return log_x


def _side(ax: Axes, x: float) -> int:
    """Where a point's label goes: right of it (1) in the left 60% of the panel, else left
    (-1), so that labels stay inside the panel."""
    fraction = ax.transAxes.inverted().transform(ax.transData.transform((x, 0.0)))[0]
    return 1 if fraction < 0.6 else -1


def _label(ax: Axes, text: str, x: float, y: float, area: float, color: str) -> Annotation:
    """A point's label beside its circle, on a white ground, with a leader line (shown by
    `_declutter` if it moves the label)."""
    radius, side = math.sqrt(area) / 2, _side(ax, x)
    label = ax.annotate(text, (x, y), xytext=(side * (radius + 3), 0),
                        textcoords="offset points", ha="left" if side > 0 else "right",
                        va="center", fontsize=8, color=color, zorder=5,
                        bbox={"boxstyle": "round,pad=0.1", "fc": "white", "ec": "none",
                              "alpha": 0.7},
                        arrowprops={"arrowstyle": "-", "lw": 0.4, "color": "0.6",
                                    "shrinkA": 0, "shrinkB": radius})
    label.set_in_layout(False)  # labels move after the layout: they must not change it
    return label


def _plot_paper(ax: Axes) -> list[Annotation]:
    """The left panel: the paper's points, hollow; their labels."""
    points = _paper_points()
    area = _area_scale(points["memory"])
    log_x = _set_x(ax, points["speed"])
    labels = []
    for _, p in points.iterrows():
        s = area(p["memory"])
        ax.scatter(p["speed"], p["map"], s=s, facecolors="none", edgecolors="0.45",
                   linewidths=1.3, zorder=2)
        labels.append(_label(ax, p["label"], p["speed"], p["map"], s, "0.3"))
    ax.set_title(f"The paper ({PAPER_DEVICE}, AudioSet mAP)", fontsize=10)
    ax.set_xlabel(f"training throughput on the {PAPER_DEVICE} (spectrograms/s)"
                  + (", log scale" if log_x else ""))
    ax.set_ylabel("AudioSet mAP (the paper's)")
    _size_legend(ax, points["memory"], area, "memory/sample\n(paper: GPU)", "upper left")
    return labels


def _plot_run(ax: Axes, rows: list[Table1Row], settings: Table1Settings,
              kind: str = "train") -> list[Annotation]:
    """A panel of the run: its measured points (``kind`` speed), filled (faint where the speed
    is unstable), at the proxy mAP (with its 95% interval) when ``--maps`` gave one, else at
    the paper's mAP; the proxy task's chance and baseline levels as lines; a warning when
    speed and mAP come from different models; the points' labels."""
    proxy = settings.maps_file is not None
    points = _run_points(rows, proxy, kind)
    area = _area_scale(points["memory"])
    log_x = _set_x(ax, points["speed"])
    labels = []
    for _, r in points.iterrows():
        s, color = area(r["memory"]), PEER_COLORS.get(r["peer"], "tab:red")
        if pd.notna(r["low"]):
            ax.errorbar(r["speed"], r["map"], yerr=[[r["map"] - r["low"]], [r["high"] - r["map"]]],
                        fmt="none", ecolor=color, elinewidth=1.0, capsize=3, zorder=2.5)
        ax.scatter(r["speed"], r["map"], s=s, color=color, alpha=0.3 if r["unstable"] else 0.8,
                   edgecolors="white", linewidths=0.6, zorder=3)
        text = r["label"] + (" (unstable)" if r["unstable"] else "")
        labels.append(_label(ax, text, r["speed"], r["map"], s, color))
    for key, name, style in LEVELS if proxy else ():
        if getattr(settings, key) is not None:
            ax.axhline(getattr(settings, key), color="0.4", lw=1.0, ls=style, zorder=1,
                       label=f"{name} {getattr(settings, key):.3f}")
    what = SPEEDS[kind][2]
    ax.set_title(f"This run, {what} ({settings.device_name}, {settings.dtype}, batch "
                 f"{settings.batch_size}, preset {settings.preset})", fontsize=9)
    ax.set_xlabel(f"measured {what} throughput (spectrograms/s, at the run's typical machine "
                  "speed)" + (", log scale" if log_x else ""))
    if settings.model_mismatch:
        from matplotlib.offsetbox import AnchoredText

        note = AnchoredText(textwrap.fill(settings.model_mismatch, 60), loc="lower right",
                            prop={"fontsize": 7, "color": "tab:red"}, frameon=True)
        note.patch.set_edgecolor("tab:red")
        note.zorder = 6
        ax.add_artist(note)
    ax.set_ylabel("proxy mAP (passt sweep, mean and 95% CI)" if proxy
                  else "AudioSet mAP (the paper's, not measured)")
    _kind_legend(ax, points)
    _size_legend(ax, points["memory"], area,
                 f"memory/sample\n(ours: {settings.memory_measure})", "lower left")
    return labels


def _kind_legend(ax: Axes, points: pd.DataFrame) -> None:
    """What the right panel's markers and lines are, right of it."""
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], marker="o", ls="", color=PEER_COLORS.get(p, "tab:red"),
                      markersize=8, label="passt-bench" if not p else f"peer {p}")
               for p in dict.fromkeys(points["peer"])]
    handles += ax.get_legend_handles_labels()[0]  # the levels' lines
    legend = ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.02, 1.0),
                       fontsize=8, borderaxespad=0)
    legend.set_clip_on(False)  # an added artist clipped to the axes is left out of the layout
    ax.add_artist(legend)


def _size_legend(ax: Axes, memory: pd.Series, area: Callable[[float], float], title: str,
                 loc: str) -> None:
    """What a panel's circle sizes mean, right of it (the panel's last legend)."""
    from matplotlib.lines import Line2D

    known = memory.dropna()
    handles = [Line2D([], [], marker="o", ls="", markerfacecolor="none", markeredgecolor="0.3",
                      markersize=math.sqrt(area(v)), label=f"{v:g} GB")
               for v in _size_legend_values(known if len(known) else pd.Series([1.0]))]
    ax.legend(handles=handles, loc=loc,
              bbox_to_anchor=(1.02, 1.0 if loc.startswith("upper") else 0.0), fontsize=8,
              borderaxespad=0, labelspacing=2.0, borderpad=1.2, handlelength=3.5,
              handletextpad=1.2, title=title, title_fontsize=8)


def _size_legend_values(gb: pd.Series) -> list[float]:
    """Up to three round sizes spanning ``gb``."""
    nice = [0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50]
    inside = [v for v in nice if gb.min() / 1.5 <= v <= gb.max() * 1.5] or [nice[0]]
    return list(dict.fromkeys([inside[0], inside[len(inside) // 2], inside[-1]]))


def _declutter(fig: Figure, labels: list[Annotation], iterations: int = 100) -> None:
    """Move labels apart vertically until no two boxes (in either panel or across them)
    overlap: boxes measured once after a draw, spread in display space by pushing
    overlapping pairs apart, then stacked where pushing did not settle, then set as the
    labels' offsets."""
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
                overlap = _overlap(boxes[i].translated(0, shift[i]),
                                   boxes[j].translated(0, shift[j]))
                if overlap <= 0:
                    continue
                lower, upper = (i, j) if (boxes[i].y0 + shift[i], i) < (boxes[j].y0 + shift[j],
                                                                         j) else (j, i)
                shift[lower] -= overlap / 2
                shift[upper] += overlap / 2
                moved = True
        if not moved:
            break
    _stack(boxes, shift)
    for label, dy in zip(labels, shift, strict=True):
        dx, y = label.xyann
        label.xyann = (dx, y + dy * 72 / fig.dpi)
        label.arrow_patch.set_visible(abs(dy) > 2)  # a leader line for moved labels only


def _overlap(a: Any, b: Any) -> float:
    """How far (px) box ``b`` must move up or down to clear ``a`` by `LABEL_GAP_PX`; 0 or
    less when they are apart (side by side, or far enough above each other)."""
    if min(a.x1, b.x1) <= max(a.x0, b.x0):
        return 0.0
    return min(a.y1, b.y1) - max(a.y0, b.y0) + LABEL_GAP_PX


def _stack(boxes: list[Any], shift: list[float]) -> None:
    """From the lowest up, move each label that still overlaps a label below it to just
    above that one: afterwards no two overlap."""
    order = sorted(range(len(boxes)), key=lambda i: (boxes[i].y0 + shift[i], i))
    for n, i in enumerate(order):
        placed = order[:n]
        while True:
            box = boxes[i].translated(0, shift[i])
            tops = [boxes[j].y1 + shift[j] for j in placed
                    if _overlap(box, boxes[j].translated(0, shift[j])) > 0]
            if not tops:
                break
            shift[i] += max(tops) + LABEL_GAP_PX - box.y0


def plot(rows: list[Table1Row], settings: Table1Settings) -> Figure:
    """The paper's Figure 1 beside this run's: training throughput (x) against mAP (y), circle
    area proportional to memory per sample."""
    require("matplotlib", "plotting Figure 1")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.layout_engine import ConstrainedLayoutEngine

    caption = _caption(rows, settings)
    bottom = 0.02 + 0.022 * (caption.count("\n") + 1)  # room for the caption's lines
    kinds = ["train", "inference"] if settings.has_inference else ["train"]
    width = FIGURE_SIZE_IN[0] + PANEL_WIDTH_IN * (len(kinds) - 1)
    fig = Figure(figsize=(width, FIGURE_SIZE_IN[1]), dpi=FIGURE_DPI,
                 layout=ConstrainedLayoutEngine(rect=(0, bottom, 1, 1 - bottom), w_pad=0.1))
    FigureCanvasAgg(fig)
    fig.text(0.01, 0.01, caption, fontsize=7.5, va="bottom", color="0.2")
    fig.suptitle("Throughput vs mAP: the paper and this run", fontsize=12)
    left, *right = fig.subplots(1, 1 + len(kinds))
    labels = _plot_paper(left)
    for ax, kind in zip(right, kinds, strict=True):
        labels += _plot_run(ax, rows, settings, kind)
    _declutter(fig, labels)
    return fig


def _caption(rows: list[Table1Row], settings: Table1Settings) -> str:
    """What the panels show, where the proxy mAP comes from, and what is not plotted."""
    proxy = settings.maps_file is not None
    run = ("Middle: this run's measured training throughput; right: its inference "
           "throughput (frontend and model forward)" if settings.has_inference
           else "Right: this run's measured training throughput")
    parts = [f"Left: the paper's Table 1 ({PAPER_DEVICE}, AudioSet mAP). {run}; filled by "
             "implementation, faint where the speed is unstable (its interval did not reach "
             "the target). Circle area is proportional to memory per sample within each panel "
             f"(left: the paper's GPU memory; right: {settings.memory_label})."]
    if settings.model_mismatch:
        parts.append(f"Note: {settings.model_mismatch}.")
    if proxy:
        by_source: dict[str, list[str]] = {}
        for variant, source in settings.proxy_sources.items():
            by_source.setdefault(source, []).append(variant)
        where = (next(iter(by_source)) if len(by_source) == 1 else
                 "; ".join(f"{', '.join(v)}: {s}" for s, v in by_source.items()))
        parts.append(f"Right y: proxy mAP from {settings.maps_file} ({where}), mean over seeds "
                     "with its 95% t interval; it is not AudioSet mAP.")
    else:
        parts.append("Right y: the paper's mAP of each variant (no --maps given): only x is "
                     "measured.")
    left = [r for r in rows if r.status in ("OOM", "not run")]
    if left:
        parts.append("Not measured: " + ", ".join(f"{r.model} ({r.status})" for r in left)
                     + ".")
    column = "map_proxy" if proxy else "map_paper"
    no_map = [r.model for r in rows if r.status == "measured" and missing(getattr(r, column))]
    if no_map:
        parts.append(f"Right, not plotted (no {'proxy ' if proxy else ''}mAP): "
                     f"{', '.join(no_map)}.")
    return "\n".join(textwrap.fill(p, 240) for p in parts)
