"""Table 1 of a benchmark run as a DataFrame: a row per variant and per peer of the run's
training benchmarks, with the same variant's inference speed beside it (a reduction that acts
at inference is judged there), the paper's values beside ours, ratios to PaSST-B, the run's
settings and the table's notes."""

from __future__ import annotations

import math
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

from passt.measure.bench_record import BenchRecord, reported
from passt.measure.machine_speed import probe_factor
from passt.measure.peers import PEERS
from passt.report.inputs import (
    load_maps,
    load_paper_table,
    load_run_benchmarks,
)
from passt.report.notes import Run, table_notes
from passt.report.settings import MemoryMeasure, Table1Settings, bench_config, run_settings
from passt.sweep.maps import MapSummary
from passt.utils.errors import UsageError, check_choice
from passt.utils.optional import require
from passt.variants import get_variant, list_variants, reduction_acts

pd = require("pandas", "the benchmark report")

REFERENCE = "passt-b"  # ratios are to this variant, the paper's PaSST-B
PAPER_REFERENCE = "passt_b"
PEER_LABELS = {"official": "official {impl}", "official-sdpa": "official {impl} + SDPA",
               "hf-ast": "HF AST, {impl}"}
COLUMNS = (
    "model", "variant", "peer", "implementation", "paper_row", "paper_model", "status",
    "map_paper", "map_proxy", "map_proxy_std", "map_proxy_ci_low", "map_proxy_ci_high",
    "map_proxy_seeds", "map_proxy_text", "speed_spec_per_s", "speed_spec_per_s_paper",
    "speed_vs_b", "speed_vs_b_paper", "memory_gb_per_sample", "memory_gb_per_sample_paper",
    "memory_vs_b", "memory_vs_b_paper", "memory_measure", "acts", "seq_len", "seq_len_paper",
    "eval_seq_len", "seq_len_per_block", "eval_seq_len_per_block", "gflops_per_sample",
    "inference_spec_per_s", "inference_vs_b", "inference_ci_half_width", "inference_unstable",
    "inference_gflops_per_sample", *(cell.name for _, cell in reported("table1")),
    "probe_factor", "inference_probe_factor", "benchmark",
)


def _paper_row_id(variant: str) -> str | None:
    try:
        return get_variant(variant).paper_row
    except ValueError:  # a variant of a plugin not loaded here
        return None


def clean_name(paper_model: str) -> str:
    """``"PaSST-S *"`` -> ``"PaSST-S"``; ``"AST [5]"`` -> ``"AST"``."""
    return re.sub(r"\s*(\[\d+\]|\*)", "", paper_model).strip()


def _memory_measure(train: dict[str, BenchRecord]) -> MemoryMeasure:
    """``peak`` when the run has CUDA allocator peaks, else ``activation``."""
    has_peak = any(r.peak_memory_bytes_per_sample is not None and r.device.startswith("cuda")
                   for r in train.values())
    return "peak" if has_peak else "activation"


def _memory_bytes(record: BenchRecord, measure: str) -> float | None:
    """The row's memory per sample by the run's measure (`_memory_measure`)."""
    if measure == "peak":
        return record.peak_memory_bytes_per_sample
    return record.activation_bytes_per_sample


def _paper_fields(paper: pd.DataFrame, row_id: str | None) -> dict[str, Any]:
    if row_id is None or row_id not in paper.index:
        return {"paper_row": "", "paper_model": "", "map_paper": math.nan,
                "speed_spec_per_s_paper": math.nan, "memory_gb_per_sample_paper": math.nan,
                "seq_len_paper": math.nan}
    p = paper.loc[row_id]
    return {"paper_row": row_id, "paper_model": p["model"], "map_paper": p["map"],
            "speed_spec_per_s_paper": p["speed_spec_per_s"],
            "memory_gb_per_sample_paper": p["mem_gb_per_sample"], "seq_len_paper": p["seq"]}


def _proxy_fields(summary: MapSummary | None) -> dict[str, Any]:
    """The proxy mAP columns of a row: the sweep's mean over seeds, its spread and t interval,
    and ``mean ± CI (task, budget, seeds)``; none without a measured mAP."""
    if summary is None:
        return {}
    return {"map_proxy": summary.map_mean, "map_proxy_std": _number(summary.map_std),
            "map_proxy_ci_low": _number(summary.map_ci_low),
            "map_proxy_ci_high": _number(summary.map_ci_high), "map_proxy_seeds": summary.seeds,
            "map_proxy_text": summary.describe()}


def _blocks(counts: tuple[int, ...] | None) -> str:
    """Tokens per block as ``"474"`` (all blocks alike) or ``"1190 1095 ... 145"``."""
    if not counts:
        return ""
    return str(counts[0]) if len(set(counts)) == 1 else " ".join(map(str, counts))


def _inference_fields(record: BenchRecord | None, run: list[BenchRecord]) -> dict[str, Any]:
    """The inference row's speed, precision, tokens and FLOPs (none without a row)."""
    if record is None or record.oom:
        return {}
    return {"inference_spec_per_s": record.samples_per_s,
            "inference_probe_factor": probe_factor(record, run),
            "inference_ci_half_width": _number(record.ci_half_width),
            "inference_unstable": record.unstable,
            "inference_gflops_per_sample": _number(record.step_gflops_per_sample),
            "eval_seq_len": _number(record.seq_len),
            "eval_seq_len_per_block": _blocks(record.seq_len_per_block)}


def _run_row(key: str, record: BenchRecord, paper: pd.DataFrame, measure: str,
             maps: dict[str, MapSummary], run: list[BenchRecord],
             inference: BenchRecord | None = None) -> dict[str, Any]:
    """A row of a training benchmark of the run (ours or a peer's) and of its inference
    benchmark; a peer's has no proxy mAP (the sweep trains ours). ``run``: every row of the
    run, whose probes say the machine's typical speed."""
    variant, peer = record.variant, record.peer or ""
    row_id = _paper_row_id(variant)
    fields = _paper_fields(paper, row_id)
    name = clean_name(fields["paper_model"]) if fields["paper_row"] else variant
    impl = record.implementation or ""
    if peer:
        name += f" ({PEER_LABELS.get(peer, peer + ', {impl}').format(impl=impl).strip(', ')})"
    oom = record.oom
    bytes_per_sample = _memory_bytes(record, measure)
    return {
        **fields, **_proxy_fields(None if peer else maps.get(variant)),
        **_inference_fields(inference, run), "model": name,
        "variant": variant, "peer": peer, "implementation": impl, "acts": _acts(record),
        "status": "OOM" if oom else "measured",
        "speed_spec_per_s": math.nan if oom else record.samples_per_s,
        "memory_gb_per_sample": math.nan if oom or bytes_per_sample is None
        else bytes_per_sample / 1e9,
        "memory_measure": measure,
        "seq_len": math.nan if oom else record.seq_len,
        "seq_len_per_block": "" if oom else _blocks(record.seq_len_per_block),
        "gflops_per_sample": math.nan if oom else record.train_gflops_per_sample,
        **{cell.name: _cell(cell.value(getattr(record, name)))
           for name, cell in reported("table1")},
        "probe_factor": probe_factor(record, run),
        "benchmark": key,
    }


def _number(value: float | None) -> float:
    return math.nan if value is None else float(value)


def _cell(value: float | bool | None) -> float | bool | None:
    """A declared metric's value in the table: numbers as floats, flags and None kept."""
    return value if value is None or isinstance(value, bool) else float(value)


def _paper_only_row(paper: pd.DataFrame, row_id: str, variant: str | None) -> dict[str, Any]:
    """A row with the paper's values only: of a ``variant`` not in the run (``not run``), or
    of a model that is not ours (``paper``)."""
    fields = _paper_fields(paper, row_id)
    name = fields["paper_model"]
    return {**fields, "model": clean_name(name) if variant else name, "variant": variant,
            "status": "not run" if variant else "paper"}


def _order(record: BenchRecord) -> tuple[int, str]:
    """Ours first, then the peers in `PEERS` order, then unknown peers by name."""
    peer = record.peer or ""
    rank = 0 if not peer else 1 + (PEERS.index(peer) if peer in PEERS else len(PEERS))
    return rank, peer


def _reference(table: pd.DataFrame) -> pd.DataFrame:
    """Our measured passt-b row (empty if the run lacks it or it ran out of memory)."""
    return table[(table["variant"] == REFERENCE) & (table["peer"] == "")
                 & (table["status"] == "measured")]


def typical_speed(table: pd.DataFrame, kind: str = "train") -> pd.Series:
    """Each row's measured speed at the run's typical machine speed: times its probe factor,
    so that ratios between rows timed minutes apart hold while the machine's speed drifts."""
    speed, factor = (("speed_spec_per_s", "probe_factor") if kind == "train"
                     else ("inference_spec_per_s", "inference_probe_factor"))
    return table[speed] * table[factor].fillna(1.0)


def _add_ratios(table: pd.DataFrame, paper: pd.DataFrame) -> None:
    """Speed and memory over PaSST-B's: ours over our passt-b (speeds at the run's typical
    machine speed), the paper's over its PaSST-B."""
    ref = _reference(table)

    def over_reference(values: pd.Series) -> pd.Series:
        return values / (values[ref.index[0]] if len(ref) else math.nan)

    table["speed_vs_b"] = over_reference(typical_speed(table))
    table["memory_vs_b"] = over_reference(table["memory_gb_per_sample"])
    table["inference_vs_b"] = over_reference(typical_speed(table, "inference"))
    for column, paper_column in (("speed_spec_per_s", "speed_spec_per_s"),
                                 ("memory_gb_per_sample", "mem_gb_per_sample")):
        name = column.split("_")[0]
        table[f"{name}_vs_b_paper"] = (table[f"{column}_paper"]
                                       / paper.loc[PAPER_REFERENCE, paper_column])


def _add_vs_ratios(table: pd.DataFrame, vs: str) -> None:
    """Speed, memory and (where it has one) proxy mAP over our measured ``vs`` row's, each
    beside its ratio to PaSST-B."""
    ref = table[(table["variant"] == vs) & (table["peer"] == "")
                & (table["status"] == "measured")].iloc[0]
    typical = typical_speed(table)
    pairs = [(typical, "speed", "speed_vs_b_paper"),
             (table["memory_gb_per_sample"], "memory", "memory_vs_b_paper")]
    if pd.notna(ref["map_proxy"]):
        pairs.append((table["map_proxy"], "map_proxy", "map_proxy_text"))
    for values, name, after in pairs:
        table.insert(table.columns.get_loc(after) + 1, f"{name}_vs_{vs}",
                     values / values[ref.name])


def measured_variants(train: dict[str, BenchRecord]) -> list[str]:
    """Our variants of the run that were measured (not out of memory), in run order."""
    return list(dict.fromkeys(r.variant for r in train.values() if not r.peer and not r.oom))


def build_table(bench_path: str | Path, maps_path: str | Path | None = None, *,
                vs: str | None = None,
                only_measured: bool = False) -> tuple[pd.DataFrame, Table1Settings]:
    """Table 1 of a benchmark run (one row per variant and peer, then the paper's other rows,
    in the paper's order; ``only_measured``: the run's rows only) and the run's settings and
    notes; ``vs``: ratios to that measured variant of the run too."""
    run = load_run_benchmarks(bench_path)
    train, machine_info = run.train, run.machine_info
    if vs is not None:
        check_choice("--vs variant", vs, measured_variants(train))
    by_key: dict[tuple[str, str], str] = {}
    for key, record in train.items():
        pair = (record.variant, record.peer or "")
        if pair in by_key:
            raise UsageError(f"{Path(bench_path).name}: benchmarks {by_key[pair]} and {key} both "
                             f"measure training of {'/'.join(p for p in pair if p)}")
        by_key[pair] = key
    run_variants = list(dict.fromkeys(r.variant for r in train.values()))
    everything = [*train.values(), *run.inference.values()]
    maps = load_maps(maps_path, run_variants) if maps_path is not None else None
    paper, measure = load_paper_table(), _memory_measure(train)
    by_row: dict[str | None, list[str]] = {}  # paper row -> the run's benchmarks
    for key in sorted(train, key=lambda k: (run_variants.index(train[k].variant),
                                            _order(train[k]))):
        by_row.setdefault(_paper_row_id(train[key].variant), []).append(key)
    registered = {get_variant(v).paper_row: v for v in reversed(list_variants())}
    rows = []
    for row_id in [*paper.index, None]:  # None: variants that are not in the paper
        keys = by_row.get(row_id, [])
        rows += [_run_row(k, train[k], paper, measure, maps.summaries if maps else {},
                          everything, run.inference.get((train[k].variant, train[k].peer or "")))
                 for k in keys]
        if row_id is not None and not keys:
            rows.append(_paper_only_row(paper, row_id, registered.get(row_id)))
    table = pd.DataFrame(rows).reindex(columns=list(COLUMNS))
    for col in ("variant", "peer", "implementation", "paper_model", "map_proxy_text",
                "memory_measure", "benchmark", "acts", "seq_len_per_block",
                "eval_seq_len_per_block"):
        table[col] = table[col].astype(object).fillna("")  # all-NaN (float) without maps
    table["map_proxy_seeds"] = table["map_proxy_seeds"].astype("Int64")
    table.loc[table["status"].isin(["paper", "not run"]), "memory_measure"] = ""
    _add_ratios(table, paper)
    if vs is not None:
        _add_vs_ratios(table, vs)
    if only_measured:
        table = table[table["status"].isin(["measured", "OOM"])].reset_index(drop=True)
    ours = {k: r for k, r in train.items() if not r.peer} or train
    settings = run_settings(ours, machine_info, measure, Path(bench_path), maps,
                            has_reference=len(_reference(table)) > 0, vs=vs,
                            has_inference=bool(table["inference_spec_per_s"].notna().any()))
    run_rows = Run(settings, list(train.values()), machine_info,
                   oom=list(table.loc[table["status"] == "OOM", "model"]),
                   not_run=list(table.loc[table["status"] == "not run", "model"]))
    settings = replace(settings, notes=tuple(table_notes(run_rows)))
    return table, settings


def _acts(record: BenchRecord) -> str:
    """When the row's sequence is reduced: its own field, else (rows of earlier versions)
    from its variant, where known here."""
    if record.acts or record.peer:
        return record.acts or ""
    cfg = bench_config(record)
    return "" if cfg is None else reduction_acts(cfg, get_variant(record.variant).reductions)
