"""Learning curves of an mAP sweep: eval mAP against training compute or time, a line per
variant (the mean over seeds) in a band from the lowest to the highest seed."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from passt.sweep.maps import CurvePoint, MapRow
from passt.utils.figures import save_figure
from passt.utils.optional import require

if TYPE_CHECKING:
    from matplotlib.figure import Figure

CurveAxis = Literal["train_tflops", "seconds"]
AXIS_LABELS = {"train_tflops": "training compute (TFLOPs, counted on the model)",
               "seconds": "training time (s)"}


def curve_bands(points: Sequence[CurvePoint], x: CurveAxis
                ) -> dict[str, tuple[list[float], list[float], list[float], list[float]]]:
    """Per variant: x, mean mAP, lowest and highest mAP over seeds at each evaluation (the
    seeds' i-th evaluations are averaged; a seed with fewer evaluations ends its share)."""
    by_run: dict[str, dict[int, list[CurvePoint]]] = {}
    for p in points:
        by_run.setdefault(p.variant, {}).setdefault(p.seed, []).append(p)
    out = {}
    for variant, seeds in by_run.items():
        runs = [sorted(ps, key=lambda p: p.step) for ps in seeds.values()]
        xs, mean, low, high = [], [], [], []
        for i in range(max(len(r) for r in runs)):
            at = [r[i] for r in runs if i < len(r)]
            maps = [p.map for p in at]
            xs.append(statistics.fmean(getattr(p, x) for p in at))
            mean.append(statistics.fmean(maps))
            low.append(min(maps))
            high.append(max(maps))
        out[variant] = (xs, mean, low, high)
    return out


def curve_figure(points: Sequence[CurvePoint], rows: Sequence[MapRow], x: CurveAxis) -> Figure:
    """mAP against ``x``; chance and the mean-spectrum baseline as horizontal lines."""
    plt = require("matplotlib.pyplot", "the learning-curve figures")
    fig, ax = plt.subplots(figsize=(9.0, 5.0), dpi=100, layout="constrained")
    for variant, (xs, mean, low, high) in curve_bands(points, x).items():
        (line,) = ax.plot(xs, mean, marker="o", markersize=3, label=variant)
        ax.fill_between(xs, low, high, color=line.get_color(), alpha=0.2, linewidth=0)
    for name, values in (("chance", [r.chance_map for r in rows]),
                         ("mean-spectrum baseline", [r.baseline_map for r in rows])):
        known = [v for v in values if v is not None]
        if known:
            ax.axhline(statistics.fmean(known), color="0.4", linestyle=":" if name == "chance"
                       else "--", linewidth=1, label=name)
    seeds = len({p.seed for p in points})
    what = rows[0].describe() if rows else ""
    ax.set_xlabel(AXIS_LABELS[x])
    ax.set_ylabel("eval mAP (proxy task)")
    ax.set_title(f"Learning curves: mean over {seeds} seed(s), band from lowest to highest\n"
                 f"{what}", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))  # off the curves
    return fig


def plot_curves(points: Sequence[CurvePoint], rows: Sequence[MapRow], x: CurveAxis,
                stem: Path) -> list[Path]:
    """Write ``stem.png`` and ``stem.svg`` of `curve_figure`; returns their paths."""
    plt = require("matplotlib.pyplot", "the learning-curve figures")
    fig = curve_figure(points, rows, x)
    paths = []
    for fmt in ("png", "svg"):
        path = stem.with_suffix(f".{fmt}")
        paths.append(save_figure(fig, path))
    plt.close(fig)
    return paths
