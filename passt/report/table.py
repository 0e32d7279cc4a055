"""Table 1 of a benchmark run as `Table1Row`s: a row per variant and per peer of the run's
training benchmarks, with the same variant's inference speed beside it (a reduction that acts
at inference is judged there), the paper's values beside ours, ratios to PaSST-B, the run's
settings and the table's notes."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path
from typing import Any

from passt.measure.bench_record import BenchRecord, reported
from passt.measure.machine_speed import probe_factor
from passt.measure.peers import PEERS, Peer
from passt.report.inputs import (
    load_maps,
    load_paper_table,
    load_run_benchmarks,
)
from passt.report.notes import Run, table_notes
from passt.report.row import Table1Row, missing
from passt.report.settings import MemoryMeasure, Table1Settings, bench_config, run_settings
from passt.sweep.maps import MapSummary
from passt.utils.errors import UsageError, check_choice
from passt.utils.optional import require
from passt.variants import get_variant, list_variants, reduction_acts

pd = require("pandas", "the benchmark report")

REFERENCE = "passt-b"  # ratios are to this variant, the paper's PaSST-B
PAPER_REFERENCE = "passt_b"


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
        return {}
    p = paper.loc[row_id]
    return {"paper_row": row_id, "paper_model": p["model"], "map_paper": p["map"],
            "speed_spec_per_s_paper": p["speed_spec_per_s"],
            "memory_gb_per_sample_paper": p["mem_gb_per_sample"], "seq_len_paper": p["seq"]}


def _proxy_fields(summary: MapSummary | None) -> dict[str, Any]:
    """The proxy mAP columns of a row: the sweep's mean over seeds, its spread and t interval,
    and ``mean ± CI (task, budget, seeds)``; none without a measured mAP."""
    if summary is None:
        return {}
    return {"map_proxy": summary.map_mean, "map_proxy_std": summary.map_std,
            "map_proxy_ci_low": summary.map_ci_low,
            "map_proxy_ci_high": summary.map_ci_high, "map_proxy_seeds": summary.seeds,
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
            "inference_ci_half_width": record.ci_half_width,
            "inference_unstable": record.unstable,
            "inference_gflops_per_sample": record.step_gflops_per_sample,
            "eval_seq_len": record.seq_len,
            "eval_seq_len_per_block": _blocks(record.seq_len_per_block)}


def _run_row(key: str, record: BenchRecord, paper: pd.DataFrame, measure: str,
             maps: dict[str, MapSummary], run: list[BenchRecord],
             inference: BenchRecord | None = None) -> Table1Row:
    """A row of a training benchmark of the run (ours or a peer's) and of its inference
    benchmark; a peer's has no proxy mAP (the sweep trains ours). ``run``: every row of the
    run, whose probes say the machine's typical speed."""
    variant, peer = record.variant, record.peer or ""
    row_id = _paper_row_id(variant)
    fields = _paper_fields(paper, row_id)
    name = clean_name(fields["paper_model"]) if fields else variant
    impl = record.implementation or ""
    if peer:
        label = PEERS.get(peer).label if peer in PEERS else Peer.label
        name += f" ({label.format(name=peer, impl=impl).strip(', ')})"
    oom = record.oom
    bytes_per_sample = _memory_bytes(record, measure)
    return Table1Row(
        **fields, **_proxy_fields(None if peer else maps.get(variant)),
        **_inference_fields(inference, run), model=name,
        variant=variant, peer=peer, implementation=impl, acts=_acts(record),
        status="OOM" if oom else "measured",
        speed_spec_per_s=None if oom else record.samples_per_s,
        memory_gb_per_sample=None if oom or bytes_per_sample is None
        else bytes_per_sample / 1e9,
        memory_measure=measure,
        seq_len=None if oom else record.seq_len,
        seq_len_per_block="" if oom else _blocks(record.seq_len_per_block),
        gflops_per_sample=None if oom else record.train_gflops_per_sample,
        metrics={cell.name: _cell(cell.value(getattr(record, name)))
                 for name, cell in reported("table1")},
        probe_factor=probe_factor(record, run),
        benchmark=key,
    )


def _cell(value: float | bool | None) -> float | bool | None:
    """A declared metric's value in the table: numbers as floats, flags and None kept."""
    return value if value is None or isinstance(value, bool) else float(value)


def _paper_only_row(paper: pd.DataFrame, row_id: str, variant: str | None) -> Table1Row:
    """A row with the paper's values only: of a ``variant`` not in the run (``not run``), or
    of a model that is not ours (``paper``)."""
    fields = _paper_fields(paper, row_id)
    name = fields["paper_model"]
    return Table1Row(**fields, model=clean_name(name) if variant else name,
                     variant=variant or "", status="not run" if variant else "paper")


def _order(record: BenchRecord) -> tuple[int, str]:
    """Ours first, then the peers in `PEERS` order, then unknown peers by name."""
    peer = record.peer or ""
    order = PEERS.names()
    rank = 0 if not peer else 1 + (order.index(peer) if peer in order else len(order))
    return rank, peer


def _measured(rows: list[Table1Row], variant: str) -> Table1Row | None:
    """Our measured row of ``variant`` (None if the run lacks it or it ran out of memory)."""
    return next((r for r in rows if r.variant == variant and not r.peer
                 and r.status == "measured"), None)


def typical_speed(row: Table1Row, kind: str = "train") -> float | None:
    """A row's measured speed at the run's typical machine speed: times its probe factor,
    so that ratios between rows timed minutes apart hold while the machine's speed drifts."""
    speed, factor = ((row.speed_spec_per_s, row.probe_factor) if kind == "train"
                     else (row.inference_spec_per_s, row.inference_probe_factor))
    return None if missing(speed) else speed * (1.0 if missing(factor) else factor)


def _over(value: float | None, reference: float | None) -> float | None:
    return None if missing(value) or missing(reference) else value / reference


def _with_ratios(rows: list[Table1Row], paper: pd.DataFrame) -> list[Table1Row]:
    """Speed and memory over PaSST-B's: ours over our passt-b (speeds at the run's typical
    machine speed), the paper's over its PaSST-B."""
    ref = _measured(rows, REFERENCE)
    b = paper.loc[PAPER_REFERENCE]
    return [replace(
        r, speed_vs_b=_over(typical_speed(r), ref and typical_speed(ref)),
        memory_vs_b=_over(r.memory_gb_per_sample, ref and ref.memory_gb_per_sample),
        inference_vs_b=_over(typical_speed(r, "inference"),
                             ref and typical_speed(ref, "inference")),
        speed_vs_b_paper=_over(r.speed_spec_per_s_paper, b["speed_spec_per_s"]),
        memory_vs_b_paper=_over(r.memory_gb_per_sample_paper, b["mem_gb_per_sample"]))
        for r in rows]


def _with_vs_ratios(rows: list[Table1Row], vs: str) -> list[Table1Row]:
    """Speed, memory and (where it has one) proxy mAP over our measured ``vs`` row's, each
    beside its ratio to PaSST-B."""
    ref = _measured(rows, vs)
    values = {"speed": typical_speed, "memory": lambda r: r.memory_gb_per_sample}
    if not missing(ref.map_proxy):
        values["map_proxy"] = lambda r: r.map_proxy
    return [replace(r, vs={f"{name}_vs_{vs}": _over(value(r), value(ref))
                           for name, value in values.items()}) for r in rows]


def measured_variants(train: dict[str, BenchRecord]) -> list[str]:
    """Our variants of the run that were measured (not out of memory), in run order."""
    return list(dict.fromkeys(r.variant for r in train.values() if not r.peer and not r.oom))


def build_table(bench_path: str | Path, maps_path: str | Path | None = None, *,
                vs: str | None = None,
                only_measured: bool = False) -> tuple[list[Table1Row], Table1Settings]:
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
    rows = _with_ratios(rows, paper)
    if vs is not None:
        rows = _with_vs_ratios(rows, vs)
    if only_measured:
        rows = [r for r in rows if r.run]
    ours = {k: r for k, r in train.items() if not r.peer} or train
    settings = run_settings(ours, machine_info, measure, Path(bench_path), maps,
                            has_reference=_measured(rows, REFERENCE) is not None, vs=vs,
                            has_inference=any(r.inference_spec_per_s is not None for r in rows))
    facts = Run(settings, list(train.values()), machine_info,
                oom=[r.model for r in rows if r.status == "OOM"],
                not_run=[r.model for r in rows if r.status == "not run"])
    return rows, replace(settings, notes=tuple(table_notes(facts)))


def _acts(record: BenchRecord) -> str:
    """When the row's sequence is reduced: its own field, else (rows of earlier versions)
    from its variant, where known here."""
    if record.acts or record.peer:
        return record.acts or ""
    cfg = bench_config(record)
    return "" if cfg is None else reduction_acts(cfg, get_variant(record.variant).reductions)
