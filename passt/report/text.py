"""Table 1 as text: the displayed cells, markdown with its settings and notes, and LaTeX."""

from __future__ import annotations

import re
from typing import Any

from passt.report.settings import Table1Settings
from passt.utils.optional import require

pd = require("pandas", "the benchmark report")


def _fmt(value: Any, spec: str) -> str:
    return "-" if value is None or pd.isna(value) else format(value, spec)


def _speed(value: Any) -> str:
    """Three significant digits, but every integer digit: 0.67, 23.1, 184.2, 1523.4."""
    return _fmt(value, ".1f" if pd.notna(value) and value >= 100 else ".3g")


def _speed_cell(speed: Any, width: Any, unstable: Any, missing: str) -> str:
    if pd.isna(speed):
        return missing
    interval = "" if pd.isna(width) else f" ±{width:.0%}"
    return _speed(speed) + interval + (" (unstable)" if unstable is True else "")


def _cells(row: pd.Series) -> dict[str, str]:
    """The displayed cells of one row (markdown and LaTeX)."""
    missing = {"OOM": "OOM", "not run": "not run"}.get(row["status"], "-")
    speedup = ("-" if pd.isna(row["speedup_vs_ours"]) else
               f"{row['speedup_vs_ours']:.2f}" + ("" if pd.isna(row["speedup_ci_low"]) else
                                                  f" [{row['speedup_ci_low']:.2f}, "
                                                  f"{row['speedup_ci_high']:.2f}]"))
    return {
        "speed": _speed_cell(row["speed_spec_per_s"], row["speed_ci_half_width"],
                             row["unstable"], missing),
        "inference": _speed_cell(row["inference_spec_per_s"], row["inference_ci_half_width"],
                                 row["inference_unstable"], "-"),
        "vs ours": speedup,
        "memory": missing if pd.isna(row["memory_gb_per_sample"]) else
        _fmt(row["memory_gb_per_sample"], ".3g"),
        "proxy": row["map_proxy_text"] or "-",
    }


def _vs_cells(row: pd.Series, vs: str | None) -> dict[str, dict[str, str]]:
    """The ``--vs`` ratio cells of one row, by the column they follow."""
    if vs is None:
        return {}
    cells = {"paper vs B": {f"vs {vs}": _fmt(row[f"speed_vs_{vs}"], ".2f")},
             "paper mem vs B": {f"mem vs {vs}": _fmt(row[f"memory_vs_{vs}"], ".2f")}}
    if f"map_proxy_vs_{vs}" in row:
        cells["proxy mAP"] = {f"proxy mAP vs {vs}": _fmt(row[f"map_proxy_vs_{vs}"], ".2f")}
    return cells


def _with_vs(cells: dict[str, str], vs_cells: dict[str, dict[str, str]]) -> dict[str, str]:
    """``cells`` with the ``--vs`` ratios inserted after the columns they follow."""
    out = {}
    for name, value in cells.items():
        out[name] = value
        out.update(vs_cells.get(name, {}))
    return out


def display_table(table: pd.DataFrame, settings: Table1Settings) -> pd.DataFrame:
    """The table as displayed: formatted strings under readable headers; the proxy mAP only
    with measured mAPs, ``vs ours`` only with peers."""
    memory = settings.memory_label
    rows = []
    for _, r in table.iterrows():
        c = _cells(r)
        rows.append(_with_vs({
            "model": r["model"], "variant": r["variant"] or "-",
            "paper mAP": _fmt(r["map_paper"], ".3f"), "proxy mAP": c["proxy"],
            "speed (spec/s)": c["speed"], "vs ours": c["vs ours"],
            "paper speed": _speed(r["speed_spec_per_s_paper"]),
            "vs B": _fmt(r["speed_vs_b"], ".2f"),
            "paper vs B": _fmt(r["speed_vs_b_paper"], ".2f"),
            memory: c["memory"],
            "paper GPU GB/sample": _fmt(r["memory_gb_per_sample_paper"], ".3g"),
            "mem vs B": _fmt(r["memory_vs_b"], ".2f"),
            "paper mem vs B": _fmt(r["memory_vs_b_paper"], ".2f"),
            "inference (spec/s)": c["inference"], "inf vs B": _fmt(r["inference_vs_b"], ".2f"),
            "acts": r["acts"] or "-",
            "seq": _fmt(r["seq_len"], ".0f"), "paper seq": _fmt(r["seq_len_paper"], ".0f"),
            "eval seq": _fmt(r["eval_seq_len"], ".0f"),
            "train GFLOPs/sample": _fmt(r["gflops_per_sample"], ".1f"),
            "MFU": _fmt(r["mfu"], ".1%"), "J/sample": _fmt(r["joules_per_sample"], ".3g"),
        }, _vs_cells(r, settings.vs)))
    shown = pd.DataFrame(rows)
    if settings.maps_file is None:
        shown = shown.drop(columns="proxy mAP")
    if (shown["vs ours"] == "-").all():  # no peer in the run
        shown = shown.drop(columns="vs ours")
    if not settings.has_inference:
        shown = shown.drop(columns=["inference (spec/s)", "inf vs B", "eval seq"])
    return shown


def settings_line(settings: Table1Settings) -> str:
    """The run's settings, stated above the table."""
    compile_ = {True: "on", False: "off"}.get(settings.compile, settings.compile)
    s = settings
    return (f"device {s.device_name}, dtype {s.dtype}, batch {s.batch_size}, preset {s.preset}, "
            f"clip {s.clip_seconds} s, attention {s.attention}, compile {compile_}, torch "
            f"{s.torch}")


def format_markdown(table: pd.DataFrame, settings: Table1Settings) -> str:
    """Table 1 in markdown: a title, the run's settings, the table and its notes."""
    shown = display_table(table, settings)
    esc = [[str(v).replace("|", "\\|") for v in row] for row in shown.itertuples(index=False)]
    lines = [
        "# Table 1: training and inference throughput, memory and mAP",
        "",
        f"Measured on **{settings.device_name}**, dtype **{settings.dtype}**, batch size "
        f"**{settings.batch_size}**, preset **{settings.preset}** (from {settings.bench}).",
        "",
        f"Settings: {settings_line(settings)}.",
        "",
        "| " + " | ".join(shown.columns) + " |",
        "|" + "|".join("---" if i < 2 else "--:" for i in range(len(shown.columns))) + "|",
        *("| " + " | ".join(row) + " |" for row in esc),
        "",
        *(f"- {note}" for note in settings.notes),
    ]
    return "\n".join(lines) + "\n"


def _latex_escape(text: str) -> str:
    return re.sub(r"([\\&%$#_{}~^])", lambda m: {"\\": r"\textbackslash{}", "~": r"\~{}",
                                                "^": r"\^{}"}.get(m[1], "\\" + m[1]), text)


def format_latex(table: pd.DataFrame, settings: Table1Settings) -> str:
    """Table 1 as a LaTeX ``table`` with a ``tabular``; the settings and notes in the caption."""
    shown = display_table(table, settings)
    caption = _latex_escape(f"Table 1 measured: {settings_line(settings)}. "
                            + " ".join(settings.notes))
    body = shown.to_latex(index=False, escape=True, caption=caption, label="tab:table1",
                          column_format="ll" + "r" * (len(shown.columns) - 2))
    return f"% passt report {settings.bench}; needs \\usepackage{{booktabs}}\n{body}"
