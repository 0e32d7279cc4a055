"""Table 1 as text: the displayed cells, markdown with its settings and notes, and LaTeX."""

from __future__ import annotations

from typing import Any

from passt.report.row import Table1Row, missing
from passt.report.settings import Table1Settings
from passt.utils.tables import latex_table, markdown_table


def _fmt(value: Any, spec: str) -> str:
    return "-" if missing(value) else format(value, spec)


def _speed(value: Any) -> str:
    """Three significant digits, but every integer digit: 0.67, 23.1, 184.2, 1523.4."""
    return _fmt(value, ".1f" if not missing(value) and value >= 100 else ".3g")


def _speed_cell(speed: Any, width: Any, unstable: Any, absent: str) -> str:
    if missing(speed):
        return absent
    interval = "" if missing(width) else f" ±{width:.0%}"
    return _speed(speed) + interval + (" (unstable)" if unstable is True else "")


def _cells(row: Table1Row) -> dict[str, str]:
    """The displayed cells of one row (markdown and LaTeX)."""
    absent = {"OOM": "OOM", "not run": "not run"}.get(row.status, "-")
    m = row.metrics
    speedup = m.get("speedup_vs_ours")
    low, high = m.get("speedup_ci_low"), m.get("speedup_ci_high")
    return {
        "speed": _speed_cell(row.speed_spec_per_s, m.get("speed_ci_half_width"),
                             m.get("unstable"), absent),
        "inference": _speed_cell(row.inference_spec_per_s, row.inference_ci_half_width,
                                 row.inference_unstable, "-"),
        "vs ours": "-" if missing(speedup) else f"{speedup:.2f}" + (
            "" if missing(low) else f" [{low:.2f}, {high:.2f}]"),
        "memory": absent if missing(row.memory_gb_per_sample) else
        _fmt(row.memory_gb_per_sample, ".3g"),
        "proxy": row.map_proxy_text or "-",
    }


def _vs_cells(row: Table1Row, vs: str | None) -> dict[str, dict[str, str]]:
    """The ``--vs`` ratio cells of one row, by the column they follow."""
    if vs is None:
        return {}
    cells = {"paper vs B": {f"vs {vs}": _fmt(row.vs[f"speed_vs_{vs}"], ".2f")},
             "paper mem vs B": {f"mem vs {vs}": _fmt(row.vs[f"memory_vs_{vs}"], ".2f")}}
    if f"map_proxy_vs_{vs}" in row.vs:
        cells["proxy mAP"] = {f"proxy mAP vs {vs}": _fmt(row.vs[f"map_proxy_vs_{vs}"], ".2f")}
    return cells


def _with_vs(cells: dict[str, str], vs_cells: dict[str, dict[str, str]]) -> dict[str, str]:
    """``cells`` with the ``--vs`` ratios inserted after the columns they follow."""
    out = {}
    for name, value in cells.items():
        out[name] = value
        out.update(vs_cells.get(name, {}))
    return out


def display_table(rows: list[Table1Row], settings: Table1Settings
                  ) -> tuple[list[str], list[list[str]]]:
    """The table as displayed: its headers and its rows of formatted cells; the proxy mAP only
    with measured mAPs, ``vs ours`` only with peers."""
    shown = []
    for r in rows:
        c = _cells(r)
        shown.append(_with_vs({
            "model": r.model, "variant": r.variant or "-",
            "paper mAP": _fmt(r.map_paper, ".3f"), "proxy mAP": c["proxy"],
            "speed (spec/s)": c["speed"], "vs ours": c["vs ours"],
            "paper speed": _speed(r.speed_spec_per_s_paper),
            "vs B": _fmt(r.speed_vs_b, ".2f"),
            "paper vs B": _fmt(r.speed_vs_b_paper, ".2f"),
            settings.memory_label: c["memory"],
            "paper GPU GB/sample": _fmt(r.memory_gb_per_sample_paper, ".3g"),
            "mem vs B": _fmt(r.memory_vs_b, ".2f"),
            "paper mem vs B": _fmt(r.memory_vs_b_paper, ".2f"),
            "inference (spec/s)": c["inference"], "inf vs B": _fmt(r.inference_vs_b, ".2f"),
            "acts": r.acts or "-",
            "seq": _fmt(r.seq_len, ".0f"), "paper seq": _fmt(r.seq_len_paper, ".0f"),
            "eval seq": _fmt(r.eval_seq_len, ".0f"),
            "train GFLOPs/sample": _fmt(r.gflops_per_sample, ".1f"),
            "MFU": _fmt(r.metrics.get("mfu"), ".1%"),
            "J/sample": _fmt(r.metrics.get("joules_per_sample"), ".3g"),
        }, _vs_cells(r, settings.vs)))
    dropped = set()
    if settings.maps_file is None:
        dropped.add("proxy mAP")
    if all(s["vs ours"] == "-" for s in shown):  # no peer in the run
        dropped.add("vs ours")
    if not settings.has_inference:
        dropped |= {"inference (spec/s)", "inf vs B", "eval seq"}
    headers = [h for h in shown[0] if h not in dropped]
    return headers, [[s[h] for h in headers] for s in shown]


def settings_line(settings: Table1Settings) -> str:
    """The run's settings, stated above the table."""
    compile_ = {True: "on", False: "off"}.get(settings.compile, settings.compile)
    s = settings
    return (f"device {s.device_name}, dtype {s.dtype}, batch {s.batch_size}, preset {s.preset}, "
            f"clip {s.clip_seconds} s, attention {s.attention}, compile {compile_}, torch "
            f"{s.torch}")


def format_markdown(rows: list[Table1Row], settings: Table1Settings) -> str:
    """Table 1 in markdown: a title, the run's settings, the table and its notes."""
    headers, cells = display_table(rows, settings)
    lines = [
        "# Table 1: training and inference throughput, memory and mAP",
        "",
        f"Measured on **{settings.device_name}**, dtype **{settings.dtype}**, batch size "
        f"**{settings.batch_size}**, preset **{settings.preset}** (from {settings.bench}).",
        "",
        f"Settings: {settings_line(settings)}.",
        "",
        markdown_table(headers, cells, right=headers[2:]).rstrip("\n"),
        "",
        *(f"- {note}" for note in settings.notes),
    ]
    return "\n".join(lines) + "\n"


def format_latex(rows: list[Table1Row], settings: Table1Settings) -> str:
    """Table 1 as a LaTeX ``table`` with a ``tabular``; the settings and notes in the caption."""
    headers, cells = display_table(rows, settings)
    caption = f"Table 1 measured: {settings_line(settings)}. " + " ".join(settings.notes)
    body = latex_table(headers, cells, right=headers[2:], caption=caption, label="tab:table1")
    return f"% passt report {settings.bench}; needs \\usepackage{{booktabs}}\n{body}"
