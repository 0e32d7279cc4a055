"""The files of ``passt history``: history.csv, history.html (self-contained: an inline SVG
chart per benchmark, a sortable table of the latest run) and history.png (the charts for a
README)."""

from __future__ import annotations

import html
import math
from pathlib import Path

from passt.measure.history import ChangePoint, History, Series, format_csv, short_name
from passt.utils.atomic import write_text_atomic
from passt.utils.figures import save_figure
from passt.utils.optional import require

# The chart's geometry in SVG pixels.
WIDTH, HEIGHT = 420, 210
LEFT, RIGHT, TOP, BOTTOM = 62, 12, 24, 58
MAX_LABELS = 16  # commits labelled on an axis at most; the others every n-th

# The latest run's table: Table 1's measured columns.
TABLE_COLUMNS = ("benchmark", "variant", "kind", "median step (s)", "samples/s",
                 "instructions/step", "peak memory (MB/sample)", "GFLOPs/sample (step)",
                 "change points")

SCRIPT = """
function sortKey(cell) {
  var v = cell.getAttribute("data-value");
  if (v === null) return cell.textContent;
  return v === "" ? NaN : parseFloat(v);
}
function compareKeys(a, b) {
  if (typeof a === "number" && typeof b === "number") {
    if (isNaN(a)) return isNaN(b) ? 0 : 1;
    if (isNaN(b)) return -1;
    return a - b;
  }
  return String(a).localeCompare(String(b));
}
document.querySelectorAll("table.sortable").forEach(function (table) {
  var heads = Array.prototype.slice.call(table.tHead.rows[0].cells);
  heads.forEach(function (th, col) {
    th.setAttribute("aria-sort", "none");
    th.addEventListener("click", function () {
      var up = th.getAttribute("aria-sort") !== "ascending";
      heads.forEach(function (h) { h.setAttribute("aria-sort", "none"); });
      th.setAttribute("aria-sort", up ? "ascending" : "descending");
      var body = table.tBodies[0];
      var rows = Array.prototype.slice.call(body.rows);
      rows.sort(function (a, b) {
        var order = compareKeys(sortKey(a.cells[col]), sortKey(b.cells[col]));
        return up ? order : -order;
      });
      rows.forEach(function (row) { body.appendChild(row); });
    });
  });
});
"""

STYLE = """
body { font: 14px system-ui, sans-serif; margin: 1.5em; color: #222; }
.charts { display: flex; flex-wrap: wrap; gap: 12px; }
figure.chart { margin: 0; border: 1px solid #ddd; padding: 4px; }
figure.chart figcaption { font-size: 12px; }
svg text { font: 10px sans-serif; fill: #333; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { border-bottom: 1px solid #ddd; padding: 3px 8px; text-align: right; }
th:first-child, td:first-child { text-align: left; }
th { cursor: pointer; background: #f4f4f4; }
th[aria-sort=ascending]::after { content: " \\25B2"; }
th[aria-sort=descending]::after { content: " \\25BC"; }
.change { color: #c00; }
"""


def write_history(history: History, out: str | Path) -> list[Path]:
    """Write history.csv, history.html and history.png into ``out``; returns their paths."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "history.csv", out / "history.html", out / "history.png"]
    write_text_atomic(paths[0], format_csv(history.rows()))
    write_text_atomic(paths[1], format_html(history))
    save_figure(plot(history), paths[2], dpi=110)
    return paths


def _number(value: float | None, digits: int = 4) -> str:
    return "" if value is None else f"{value:.{digits}g}"


def _changes(history: History, series: Series) -> list[ChangePoint]:
    return [c for c in history.change_points if c.benchmark == series.benchmark]


def svg_chart(history: History, series: Series) -> str:
    """One benchmark's series: a point and interval per run, the commits below, a dashed
    line before each change point."""
    n = len(history.runs)
    values = [v for _, v in series.points]
    low = min(v.low for v in values)
    high = max(v.high for v in values)
    pad = (high - low) * 0.1 or abs(high) * 0.01 or 1.0
    low, high = low - pad, high + pad
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(i: float) -> float:
        return LEFT + plot_w * ((i + 0.5) / n)

    def y(v: float) -> float:
        return TOP + plot_h * (1 - (v - low) / (high - low))

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
             f'viewBox="0 0 {WIDTH} {HEIGHT}" role="img">',
             f'<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="#fafafa" '
             'stroke="#ccc"/>']
    for t in (low + pad, (low + high) / 2, high - pad):
        parts.append(f'<text x="{LEFT - 4}" y="{y(t) + 3:.1f}" text-anchor="end">'
                     f'{_number(t, 4)}</text>')
        parts.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y(t):.1f}" y2="{y(t):.1f}" '
                     'stroke="#eee"/>')
    step = math.ceil(n / MAX_LABELS)
    for i, run in enumerate(history.runs):
        if i % step == 0 or i == n - 1:
            parts.append(f'<text transform="translate({x(i):.1f},{TOP + plot_h + 8}) '
                         f'rotate(-45)" text-anchor="end">{html.escape(run.label)}</text>')
    changes = {c.run: c for c in _changes(history, series)}
    for c in changes.values():
        cx = (x(c.run) + x(c.run - 1)) / 2 if c.run else x(0)
        parts.append(f'<line class="change-line" x1="{cx:.1f}" x2="{cx:.1f}" y1="{TOP}" '
                     f'y2="{TOP + plot_h}" stroke="#c00" stroke-dasharray="4 3"/>')
        parts.append(f'<text x="{cx + 3:.1f}" y="{TOP + 10}" style="fill:#c00">'
                     f'{html.escape(c.label)}</text>')
    for i, v in series.points:
        color = "#c00" if i in changes else "#1f5fa8"
        tip = (f"{history.runs[i].commit or history.runs[i].path.name}: "
               f"{_number(v.value, 6)} [{_number(v.low, 6)}, {_number(v.high, 6)}]")
        if v.high > v.low:
            parts.append(f'<line x1="{x(i):.1f}" x2="{x(i):.1f}" y1="{y(v.low):.1f}" '
                         f'y2="{y(v.high):.1f}" stroke="{color}"/>')
        parts.append(f'<circle cx="{x(i):.1f}" cy="{y(v.value):.1f}" r="3" fill="{color}">'
                     f'<title>{html.escape(tip)}</title></circle>')
    parts.append("</svg>")
    caption = f"{html.escape(short_name(series.benchmark))}: {html.escape(series.metric)}"
    return (f'<figure class="chart" data-benchmark="{html.escape(series.benchmark)}">'
            f'<figcaption>{caption}</figcaption>{"".join(parts)}</figure>')


def _cell(value: float | str | None, text: str | None = None) -> str:
    if isinstance(value, str):
        return f"<td>{html.escape(value)}</td>"
    shown = text if text is not None else _number(value)
    data = "" if value is None else repr(float(value))
    return f'<td data-value="{data}">{html.escape(shown)}</td>'


def latest_table(history: History) -> str:
    """A row per benchmark from the latest run that has it: Table 1's measured columns."""
    heads = "".join(f"<th>{html.escape(h)}</th>" for h in TABLE_COLUMNS)
    rows = []
    for s in history.series:
        run = history.runs[max(i for i, _ in s.points)] if s.points else None
        bench = run.bench.benchmarks[s.benchmark] if run else None
        if bench is None:
            continue
        r = bench.record
        memory, changes = r.peak_memory_bytes_per_sample, len(_changes(history, s))
        rows.append("<tr>" + "".join([
            _cell(short_name(s.benchmark)), _cell(r.variant), _cell(r.kind),
            _cell(bench.median_s), _cell(r.samples_per_s),
            _cell(r.instructions, _number(r.instructions, 5)),
            _cell(None if memory is None else memory / 1e6),
            _cell(r.step_gflops_per_sample),
            _cell(float(changes), str(changes))]) + "</tr>")
    return (f'<table class="sortable" id="latest"><thead><tr>{heads}</tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table>')


def _commit(sha: str, fallback: str) -> str:
    """A short commit, the full one on hover."""
    return f'<td title="{html.escape(sha)}">{html.escape(sha[:7] or fallback)}</td>'


def change_table(history: History) -> str:
    if not history.change_points:
        return "<p>No change point.</p>"
    heads = "".join(f"<th>{h}</th>" for h in ("benchmark", "metric", "first bad commit",
                                              "last good commit", "change", "95% interval",
                                              "p (Bonferroni)"))
    rows = []
    for c in history.change_points:
        rows.append("<tr class=\"change\">" + "".join([
            _cell(short_name(c.benchmark)), _cell(c.metric),
            _commit(c.commit, history.runs[c.run].label), _commit(c.previous_commit, "?"),
            _cell(c.ratio - 1, f"{c.ratio - 1:+.1%}"),
            _cell(c.low - 1, f"[{c.low - 1:+.1%}, {c.high - 1:+.1%}]"),
            _cell(c.p_value, f"{c.p_value:.2g}")]) + "</tr>")
    return (f'<table class="sortable" id="changes"><thead><tr>{heads}</tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table>')


def format_html(history: History) -> str:
    """The page: what was read, the change points, a chart per benchmark, the latest run."""
    runs, cfg = history.runs, history.config
    rule = (f"Binary segmentation with Welch's t-test on log values: a change begins at a "
            f"commit with at least {cfg.window} runs on each side where p times the number of "
            f"candidate splits is below {cfg.alpha:g} and the change is at least "
            f"{cfg.min_change_instructions:.0%} (instructions) or {cfg.min_change_time:.0%} "
            "(times).")
    warnings = "".join(f"<li>{html.escape(w)}</li>" for w in history.warnings)
    charts = "".join(svg_chart(history, s) for s in history.series if s.points)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>passt history</title>
<style>{STYLE}</style></head>
<body>
<h1>Benchmark history</h1>
<p>{len(runs)} runs, {html.escape(runs[0].label)} .. {html.escape(runs[-1].label)};
{len(history.series)} benchmarks. {html.escape(rule)}</p>
{f"<ul>{warnings}</ul>" if warnings else ""}
<h2>Change points</h2>
{change_table(history)}
<h2>Series</h2>
<div class="charts">{charts}</div>
<h2>Latest run</h2>
{latest_table(history)}
<script>{SCRIPT}</script>
</body></html>
"""


def plot(history: History):
    """A grid of small charts, one per benchmark, change points dashed (a matplotlib figure)."""
    figure = require("matplotlib.figure", "the history figure")
    shown = [s for s in history.series if s.points]
    cols = min(3, len(shown)) or 1
    rows = max(1, math.ceil(len(shown) / cols))
    fig = figure.Figure(figsize=(4.2 * cols, 2.8 * rows), layout="constrained")
    labels = [r.label for r in history.runs]
    for k, s in enumerate(shown):
        ax = fig.add_subplot(rows, cols, k + 1)
        xs = [i for i, _ in s.points]
        vs = [v.value for _, v in s.points]
        err = [[v.value - v.low for _, v in s.points], [v.high - v.value for _, v in s.points]]
        ax.errorbar(xs, vs, yerr=err, fmt="o", ms=3, capsize=2, color="#1f5fa8")
        for c in _changes(history, s):
            ax.axvline(c.run - 0.5, color="#c00", ls="--", lw=1)
            ax.annotate(c.label, (c.run - 0.4, 0.95), xycoords=("data", "axes fraction"),
                        color="#c00", fontsize=7, va="top",
                        bbox={"fc": "white", "ec": "none", "alpha": 0.8, "pad": 1})
        step = math.ceil(len(labels) / MAX_LABELS)
        ticks = list(range(0, len(labels), step))
        ax.set_xticks(ticks, [labels[i] for i in ticks], rotation=45, ha="right", fontsize=7)
        ax.set_xlim(-0.5, len(labels) - 0.5)
        ax.set_title(short_name(s.benchmark), fontsize=8)
        ax.set_ylabel(s.metric, fontsize=7)
        ax.tick_params(axis="y", labelsize=7)
    return fig
