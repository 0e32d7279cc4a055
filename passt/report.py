"""The paper's Table 1 and Figure 1 from a benchmark run: ``passt report BENCH.json``.

The table has a row per variant and per peer of the run's training benchmarks, with the
paper's values (Titan RTX) beside ours and the ratios of speed and memory to PaSST-B, which
compare across devices; the paper's other rows carry the paper's values. The figure plots
training throughput against mAP with circle areas proportional to memory per sample.
"""

from __future__ import annotations

import json
import math
import re
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING, Any

from passt.ablation_table import ablation_rows, write_ablation_table
from passt.ablation_table import format_markdown as ablation_markdown
from passt.atomic import atomic_path, write_text_atomic
from passt.errors import UsageError
from passt.optional import require
from passt.regress import load_benchmarks
from passt.variants import get_variant, list_variants

if TYPE_CHECKING:
    from matplotlib.figure import Figure

pd = require("pandas", "the benchmark report")

PAPER_DEVICE = "Nvidia Titan RTX"
REFERENCE = "passt-b"  # ratios are to this variant, the paper's PaSST-B
PAPER_REFERENCE = "passt_b"
REQUIRED = ("variant", "kind", "batch_size", "dtype", "device")
REQUIRED_MEASURED = ("samples_per_s", "seq_len", "train_gflops_per_sample",
                     "activation_bytes_per_sample")
PEER_ORDER = ("official", "official-sdpa", "hf-ast")
PEER_LABELS = {"official": "official {impl}", "official-sdpa": "official {impl} + SDPA",
               "hf-ast": "HF AST, {impl}"}
MEMORY_FIELDS = {"peak": "peak_memory_bytes_per_sample",
                 "activation": "activation_bytes_per_sample"}
MEMORY_LABELS = {"peak": "peak GB/sample (CUDA allocator)",
                 "activation": "activation GB/sample (CPU: saved for backward)"}
COLUMNS = (
    "model", "variant", "peer", "implementation", "paper_row", "paper_model", "status", "map",
    "map_source", "map_paper", "speed_spec_per_s", "speed_spec_per_s_paper", "speed_vs_b",
    "speed_vs_b_paper", "memory_gb_per_sample", "memory_gb_per_sample_paper", "memory_vs_b",
    "memory_vs_b_paper", "memory_measure", "seq_len", "seq_len_paper", "gflops_per_sample", "mfu",
    "mfu_of_ceiling", "joules_per_sample", "benchmark",
)
FIGURE_SIZE_IN = (9.0, 6.0)
FIGURE_DPI = 100
MAX_MARKER_AREA = 1400.0  # pt^2 of the largest memory per sample in the figure


@dataclass(frozen=True)
class Report:
    """What `write_report` wrote: the markdown table and the files' paths."""

    markdown: str
    paths: list[Path]


# --- inputs ---------------------------------------------------------------------------------


def load_paper_table() -> pd.DataFrame:
    """The paper's Table 1 (shipped as package data), indexed by row id."""
    with files("passt").joinpath("paper_table1.csv").open() as f:
        return pd.read_csv(f).set_index("row")


def load_train_benchmarks(path: str | Path) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """The training benchmarks of a passt-bench JSON (``fullname -> extra_info``) and its
    ``machine_info``; clear errors for other files."""
    benchmarks = load_benchmarks(path)
    name = Path(path).name
    missing = {}
    for key, bench in benchmarks.items():
        extra = bench.get("extra_info")
        extra = extra if isinstance(extra, dict) else {}
        required = REQUIRED
        if extra.get("kind") == "train" and not extra.get("oom"):
            required += REQUIRED_MEASURED
        lacking = [f for f in required if extra.get(f) is None]
        if lacking:
            missing[key] = lacking
    if missing:
        key, lacking = next(iter(missing.items()))
        more = f" (and {len(missing) - 1} more benchmark(s))" if len(missing) > 1 else ""
        raise UsageError(f"{name}: benchmark {key} lacks fields {', '.join(lacking)}{more} "
                         "(was it written by pytest bench/ of passt-bench?)")
    train = {k: b["extra_info"] for k, b in benchmarks.items()
             if b["extra_info"]["kind"] == "train" and not b["extra_info"].get("ablation")}
    if not train:
        raise UsageError(f"{name} has no training benchmarks (extra_info kind 'train'); Table 1 "
                         "needs them: run pytest bench/ without deselecting the train steps")
    machine_info = json.loads(Path(path).read_text()).get("machine_info") or {}
    return train, machine_info


def load_maps(path: str | Path, variants: list[str]) -> dict[str, tuple[float, str]]:
    """Measured mAPs of a CSV with columns ``variant,map`` (optional ``task``, ``steps``):
    ``variant -> (map, source)``. Only ``variants`` (the run's) may be named."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"mAP file not found: {path}")
    try:
        maps = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise UsageError(f"{path.name} is not a CSV file: {e}") from None
    absent = [c for c in ("variant", "map") if c not in maps.columns]
    if absent:
        raise UsageError(f"{path.name} lacks column(s) {', '.join(absent)}; expected a CSV with "
                         f"columns variant,map (optional: task, steps), got {list(maps.columns)}")
    maps["variant"] = maps["variant"].astype(str).str.strip()
    unknown = sorted(set(maps["variant"]) - set(variants))
    if unknown:
        raise UsageError(f"{path.name} names variant(s) not in the benchmark run: "
                         f"{', '.join(unknown)}; the run's: {', '.join(variants)}")
    dupes = sorted(set(maps["variant"][maps["variant"].duplicated()]))
    if dupes:
        raise UsageError(f"{path.name} gives several mAPs for {', '.join(dupes)}")
    values = pd.to_numeric(maps["map"], errors="coerce")
    if values.isna().any() or not values.between(0, 1).all():
        raise UsageError(f"{path.name}: every map must be a number in [0, 1]")
    out = {}
    for row, value in zip(maps.to_dict("records"), values, strict=True):
        details = ["measured"]
        if pd.notna(row.get("task")):
            details.append(str(row["task"]))
        if pd.notna(row.get("steps")):  # 200, or 200.0 when another row has no steps
            details.append(f"{str(row['steps']).removesuffix('.0')} steps")
        out[row["variant"]] = (float(value), ", ".join(details))
    return out


# --- the table ------------------------------------------------------------------------------


def _paper_row_id(variant: str) -> str | None:
    try:
        return get_variant(variant).paper_row
    except ValueError:  # a variant of a plugin not loaded here
        return None


def _clean_name(paper_model: str) -> str:
    """``"PaSST-S *"`` -> ``"PaSST-S"``; ``"AST [5]"`` -> ``"AST"``."""
    return re.sub(r"\s*(\[\d+\]|\*)", "", paper_model).strip()


def _memory_measure(train: dict[str, dict[str, Any]]) -> str:
    """``peak`` when the run has CUDA allocator peaks, else ``activation``."""
    has_peak = any(e.get("peak_memory_bytes_per_sample") is not None
                   and str(e["device"]).startswith("cuda") for e in train.values())
    return "peak" if has_peak else "activation"


def _paper_fields(paper: pd.DataFrame, row_id: str | None) -> dict[str, Any]:
    if row_id is None or row_id not in paper.index:
        return {"paper_row": "", "paper_model": "", "map_paper": math.nan,
                "speed_spec_per_s_paper": math.nan, "memory_gb_per_sample_paper": math.nan,
                "seq_len_paper": math.nan}
    p = paper.loc[row_id]
    return {"paper_row": row_id, "paper_model": p["model"], "map_paper": p["map"],
            "speed_spec_per_s_paper": p["speed_spec_per_s"],
            "memory_gb_per_sample_paper": p["mem_gb_per_sample"], "seq_len_paper": p["seq"]}


def _run_row(key: str, extra: dict[str, Any], paper: pd.DataFrame, measure: str,
             maps: dict[str, tuple[float, str]]) -> dict[str, Any]:
    """A row of a training benchmark of the run (ours or a peer's)."""
    variant, peer = extra["variant"], extra.get("peer") or ""
    row_id = _paper_row_id(variant)
    fields = _paper_fields(paper, row_id)
    name = _clean_name(fields["paper_model"]) if fields["paper_row"] else variant
    impl = extra.get("implementation") or ""
    if peer:
        name += f" ({PEER_LABELS.get(peer, peer + ', {impl}').format(impl=impl).strip(', ')})"
    map_value, source = (maps[variant] if variant in maps and not peer
                         else (fields["map_paper"], "paper"))
    oom = bool(extra.get("oom"))
    bytes_per_sample = extra.get(MEMORY_FIELDS[measure])
    return {
        **fields, "model": name, "variant": variant, "peer": peer, "implementation": impl,
        "status": "OOM" if oom else "measured", "map": map_value,
        "map_source": source if pd.notna(map_value) else "",
        "speed_spec_per_s": math.nan if oom else extra["samples_per_s"],
        "memory_gb_per_sample": math.nan if oom or bytes_per_sample is None
        else bytes_per_sample / 1e9,
        "memory_measure": measure,
        "seq_len": math.nan if oom else extra["seq_len"],
        "gflops_per_sample": math.nan if oom else extra["train_gflops_per_sample"],
        **{k: _number(extra.get(k)) for k in ("mfu", "mfu_of_ceiling", "joules_per_sample")},
        "benchmark": key,
    }


def _number(value: Any) -> float:
    return math.nan if value is None else float(value)


def _paper_only_row(paper: pd.DataFrame, row_id: str, variant: str | None) -> dict[str, Any]:
    """A row with the paper's values only: of a ``variant`` not in the run (``not run``), or
    of a model that is not ours (``paper``)."""
    fields = _paper_fields(paper, row_id)
    name = fields["paper_model"]
    return {**fields, "model": _clean_name(name) if variant else name, "variant": variant,
            "status": "not run" if variant else "paper", "map": fields["map_paper"],
            "map_source": "paper" if pd.notna(fields["map_paper"]) else ""}


def _order(extra: dict[str, Any]) -> tuple[int, str]:
    """Ours first, then the peers in `PEER_ORDER`, then unknown peers by name."""
    peer = extra.get("peer") or ""
    rank = 0 if not peer else 1 + (PEER_ORDER.index(peer) if peer in PEER_ORDER
                                   else len(PEER_ORDER))
    return rank, peer


def _reference(table: pd.DataFrame) -> pd.DataFrame:
    """Our measured passt-b row (empty if the run lacks it or it ran out of memory)."""
    return table[(table["variant"] == REFERENCE) & (table["peer"] == "")
                 & (table["status"] == "measured")]


def _add_ratios(table: pd.DataFrame, paper: pd.DataFrame) -> None:
    """Speed and memory over PaSST-B's: ours over our passt-b, the paper's over its PaSST-B."""
    ref = _reference(table)
    for name, column, paper_column in (("speed", "speed_spec_per_s", "speed_spec_per_s"),
                                       ("memory", "memory_gb_per_sample", "mem_gb_per_sample")):
        table[f"{name}_vs_b"] = table[column] / (ref[column].iloc[0] if len(ref) else math.nan)
        table[f"{name}_vs_b_paper"] = (table[f"{column}_paper"]
                                       / paper.loc[PAPER_REFERENCE, paper_column])


def build_table(bench_path: str | Path,
                maps_path: str | Path | None = None) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Table 1 of a benchmark run (one row per variant and peer, then the paper's other rows,
    in the paper's order) and the run's settings and notes."""
    train, machine_info = load_train_benchmarks(bench_path)
    by_key: dict[tuple[str, str], str] = {}
    for key, extra in train.items():
        pair = (extra["variant"], extra.get("peer") or "")
        if pair in by_key:
            raise UsageError(f"{Path(bench_path).name}: benchmarks {by_key[pair]} and {key} both "
                             f"measure training of {'/'.join(p for p in pair if p)}")
        by_key[pair] = key
    run_variants = list(dict.fromkeys(e["variant"] for e in train.values()))
    maps = load_maps(maps_path, run_variants) if maps_path is not None else {}
    paper, measure = load_paper_table(), _memory_measure(train)
    by_row: dict[str | None, list[str]] = {}  # paper row -> the run's benchmarks
    for key in sorted(train, key=lambda k: (run_variants.index(train[k]["variant"]),
                                            _order(train[k]))):
        by_row.setdefault(_paper_row_id(train[key]["variant"]), []).append(key)
    registered = {get_variant(v).paper_row: v for v in reversed(list_variants())}
    rows = []
    for row_id in [*paper.index, None]:  # None: variants that are not in the paper
        keys = by_row.get(row_id, [])
        rows += [_run_row(k, train[k], paper, measure, maps) for k in keys]
        if row_id is not None and not keys:
            rows.append(_paper_only_row(paper, row_id, registered.get(row_id)))
    table = pd.DataFrame(rows).reindex(columns=list(COLUMNS))
    for col in ("variant", "peer", "implementation", "paper_model", "map_source",
                "memory_measure", "benchmark"):
        table[col] = table[col].fillna("")
    table.loc[table["status"].isin(["paper", "not run"]), "memory_measure"] = ""
    _add_ratios(table, paper)
    ours = {k: e for k, e in train.items() if not e.get("peer")} or train
    meta = {**_run_meta(ours, machine_info, measure, Path(bench_path)),
            "has_reference": len(_reference(table)) > 0}
    meta["notes"] = _notes(table, train, meta, maps_path)
    return table, meta


def _setting(train: dict[str, dict[str, Any]], field: str) -> Any:
    """A run-wide setting: its value, or the distinct values joined by ``/``."""
    values = list(dict.fromkeys(e.get(field) for e in train.values() if e.get(field) is not None))
    return values[0] if len(values) == 1 else "/".join(map(str, values)) or None


def _run_meta(train: dict[str, dict[str, Any]], machine_info: dict[str, Any], measure: str,
              path: Path) -> dict[str, Any]:
    """The settings of the run's (our) training benchmarks, stated above the table."""
    device = str(_setting(train, "device"))
    cpu = (machine_info.get("cpu") or {}).get("brand_raw")
    fallback = machine_info.get("gpu") if device.startswith("cuda") else cpu and f"CPU {cpu}"
    return {
        "bench": path.name,
        "device": device,
        "device_name": _setting(train, "device_name") or fallback or device,
        "dtype": _setting(train, "dtype"),
        "batch_size": _setting(train, "batch_size"),
        "preset": machine_info.get("passt_preset") or "unknown",
        "clip_seconds": _setting(train, "clip_seconds"),
        "attention": _setting(train, "attention"),
        "compile": _setting(train, "compile"),
        "torch": machine_info.get("torch"),
        "memory_measure": measure,
        "memory_label": MEMORY_LABELS[measure],
    }


def _notes(table: pd.DataFrame, train: dict[str, dict[str, Any]], meta: dict[str, Any],
           maps_path: str | Path | None) -> list[str]:
    """The footnotes of the table: what each column holds and what the run lacks."""
    run = table[table["status"].isin(["measured", "OOM"])]
    notes = [
        "mAP: the paper's AudioSet mAP unless marked measured"
        + (f" (from {Path(maps_path).name})" if maps_path else "") + ".",
        "speed: training throughput (frontend, model, loss, backward, AdamW), spectrograms/s; "
        f"paper: the paper's values on an {PAPER_DEVICE}.",
        f"memory: {meta['memory_label']}; paper: GPU memory to train per sample.",
        "vs B: ratio to PaSST-B in the same column, ours to our passt-b, the paper's to the "
        "paper's PaSST-B: these compare across devices.",
    ]
    if not meta["has_reference"]:
        notes.append("passt-b was not measured in this run (missing or OOM): our ratios to "
                     "PaSST-B are empty.")
    if meta["clip_seconds"] not in (None, 10, 10.0):
        notes.append(f"clips are {meta['clip_seconds']} s, not the paper's 10 s: absolute "
                     "speeds, memory and sequence lengths differ from the paper's; compare the "
                     "ratios to PaSST-B.")
    oom = run[run["status"] == "OOM"]
    if len(oom):
        notes.append(f"OOM: out of memory at batch size {meta['batch_size']}: "
                     f"{', '.join(oom['model'])}.")
    not_run = table[table["status"] == "not run"]
    if len(not_run):
        notes.append(f"not run: rows of the paper not in this run: {', '.join(not_run['model'])}.")
    if (run["variant"] == "ast").any():
        notes.append("seq: ours counts the class and distillation tokens; the paper prints 1212 "
                     "for AST, which counts patches only (1214 - 2).")
    if run["mfu"].isna().all():
        notes.append("MFU (over the datasheet peak) is empty without a known GPU peak; the CSV's "
                     "mfu_of_ceiling is over a matmul ceiling measured in the run.")
    if run["joules_per_sample"].isna().all():
        notes.append("J/sample is empty without an NVML energy counter (GPUs only).")
    notes += sorted({f"{e['variant']} ({e['peer']}): {e['note']}." for e in train.values()
                     if e.get("note")})
    notes.append("[n]: the paper's citations; *: the paper's own runs.")
    return notes


# --- text formats ---------------------------------------------------------------------------


def _fmt(value: Any, spec: str) -> str:
    return "-" if value is None or pd.isna(value) else format(value, spec)


def _speed(value: Any) -> str:
    """Three significant digits, but every integer digit: 0.67, 23.1, 184.2, 1523.4."""
    return _fmt(value, ".1f" if pd.notna(value) and value >= 100 else ".3g")


def _cells(row: pd.Series) -> dict[str, str]:
    """The displayed cells of one row (markdown and LaTeX)."""
    missing = {"OOM": "OOM", "not run": "not run"}.get(row["status"], "-")
    mark = "" if row["map_source"] in ("paper", "") else f" ({row['map_source']})"
    return {
        "speed": missing if pd.isna(row["speed_spec_per_s"]) else
        _speed(row["speed_spec_per_s"]),
        "memory": missing if pd.isna(row["memory_gb_per_sample"]) else
        _fmt(row["memory_gb_per_sample"], ".3g"),
        "map": _fmt(row["map"], ".3f") + mark,
    }


def display_table(table: pd.DataFrame, meta: dict[str, Any]) -> pd.DataFrame:
    """The table as displayed: formatted strings under readable headers."""
    memory = meta["memory_label"]
    rows = []
    for _, r in table.iterrows():
        c = _cells(r)
        rows.append({
            "model": r["model"], "variant": r["variant"] or "-", "mAP": c["map"],
            "speed (spec/s)": c["speed"], "paper speed": _speed(r["speed_spec_per_s_paper"]),
            "vs B": _fmt(r["speed_vs_b"], ".2f"),
            "paper vs B": _fmt(r["speed_vs_b_paper"], ".2f"),
            memory: c["memory"],
            "paper GPU GB/sample": _fmt(r["memory_gb_per_sample_paper"], ".3g"),
            "mem vs B": _fmt(r["memory_vs_b"], ".2f"),
            "paper mem vs B": _fmt(r["memory_vs_b_paper"], ".2f"),
            "seq": _fmt(r["seq_len"], ".0f"), "paper seq": _fmt(r["seq_len_paper"], ".0f"),
            "train GFLOPs/sample": _fmt(r["gflops_per_sample"], ".1f"),
            "MFU": _fmt(r["mfu"], ".1%"), "J/sample": _fmt(r["joules_per_sample"], ".3g"),
        })
    return pd.DataFrame(rows)


def settings_line(meta: dict[str, Any]) -> str:
    """The run's settings, stated above the table."""
    compile_ = {True: "on", False: "off"}.get(meta["compile"], meta["compile"])
    return (f"device {meta['device_name']}, dtype {meta['dtype']}, batch {meta['batch_size']}, "
            f"preset {meta['preset']}, clip {meta['clip_seconds']} s, attention "
            f"{meta['attention']}, compile {compile_}, torch {meta['torch']}")


def format_markdown(table: pd.DataFrame, meta: dict[str, Any]) -> str:
    """Table 1 in markdown: a title, the run's settings, the table and its notes."""
    shown = display_table(table, meta)
    esc = [[str(v).replace("|", "\\|") for v in row] for row in shown.itertuples(index=False)]
    lines = [
        "# Table 1: training throughput, memory and mAP",
        "",
        f"Measured on **{meta['device_name']}**, dtype **{meta['dtype']}**, batch size "
        f"**{meta['batch_size']}**, preset **{meta['preset']}** (from {meta['bench']}).",
        "",
        f"Settings: {settings_line(meta)}.",
        "",
        "| " + " | ".join(shown.columns) + " |",
        "|" + "|".join("---" if i < 2 else "--:" for i in range(len(shown.columns))) + "|",
        *("| " + " | ".join(row) + " |" for row in esc),
        "",
        *(f"- {note}" for note in meta["notes"]),
    ]
    return "\n".join(lines) + "\n"


def _latex_escape(text: str) -> str:
    return re.sub(r"([\\&%$#_{}~^])", lambda m: {"\\": r"\textbackslash{}", "~": r"\~{}",
                                                "^": r"\^{}"}.get(m[1], "\\" + m[1]), text)


def format_latex(table: pd.DataFrame, meta: dict[str, Any]) -> str:
    """Table 1 as a LaTeX ``table`` with a ``tabular``; the settings and notes in the caption."""
    shown = display_table(table, meta)
    caption = _latex_escape(f"Table 1 measured: {settings_line(meta)}. " + " ".join(meta["notes"]))
    body = shown.to_latex(index=False, escape=True, caption=caption, label="tab:table1",
                          column_format="ll" + "r" * (len(shown.columns) - 2))
    return f"% passt report {meta['bench']}; needs \\usepackage{{booktabs}}\n{body}"


# --- the figure -----------------------------------------------------------------------------


def _paper_points(table: pd.DataFrame) -> pd.DataFrame:
    """The paper's rows with a speed and an mAP; rows at the same point share it."""
    rows = table[table["paper_row"] != ""].drop_duplicates("paper_row")
    rows = rows.dropna(subset=["speed_spec_per_s_paper", "map_paper"])
    points = rows.assign(label=rows["paper_model"].map(_clean_name))
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


# --- files ----------------------------------------------------------------------------------


def write_report(bench_path: str | Path, out_dir: str | Path = "reports",
                 maps_path: str | Path | None = None) -> Report:
    """Write ``table1.md``, ``table1.csv``, ``table1.tex``, ``speed_vs_map.png`` and ``.svg``
    of a benchmark run into ``out_dir``; with ablation benchmarks in the run, also
    ``ablation.md`` and ``.csv`` (a run of the ablation alone writes only those)."""
    ablation = ablation_rows(bench_path)
    if ablation and len(ablation) == len(load_benchmarks(bench_path)):
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
