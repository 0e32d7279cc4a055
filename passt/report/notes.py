"""Table 1's footnotes: what each column holds and what the run lacks, each a small rule over
the table, the run's rows and its settings."""

from __future__ import annotations

from typing import Any

from passt.measure.bench_record import BenchRecord
from passt.measure.environment import environment_warnings
from passt.measure.machine_speed import DRIFT_WARNING
from passt.report.inputs import PAPER_DEVICE
from passt.utils.optional import require

pd = require("pandas", "the benchmark report")


def _map_notes(meta: dict[str, Any]) -> list[str]:
    """What the two mAP columns hold, and the proxy task's reference levels."""
    notes = ["paper mAP: the paper's AudioSet mAP (never ours)."]
    if meta["maps_file"] is None:
        return notes
    notes.append(f"proxy mAP: measured by passt sweep ({meta['maps_file']}) on a small proxy "
                 "task, not AudioSet: mean ± 95% t interval over seeds (task, model size, clip "
                 "length, training clips, budget, seeds); compare it between variants, not with "
                 "the paper's mAP.")
    levels = [f"{name} {meta[key]:.3f}" for name, key in
              (("chance", "chance_map"), ("the mean-spectrum baseline", "baseline_map"))
              if meta[key] is not None]
    if levels:
        notes.append(f"proxy task levels: {' and '.join(levels)}.")
    return notes


def table_notes(table: pd.DataFrame, train: dict[str, BenchRecord], meta: dict[str, Any],
           machine_info: dict[str, Any]) -> list[str]:
    """The footnotes of the table: what each column holds and what the run lacks."""
    run = table[table["status"].isin(["measured", "OOM"])]
    notes = [
        *_map_notes(meta),
        "speed: training throughput (frontend, model, loss, backward, AdamW), spectrograms/s; "
        f"paper: the paper's values on an {PAPER_DEVICE}.",
        f"memory: {meta['memory_label']}; paper: GPU memory to train per sample.",
        "vs B: ratio to PaSST-B in the same column, ours to our passt-b, the paper's to the "
        "paper's PaSST-B: these compare across devices; our speed ratios (and the figure's "
        "speeds) are at the run's typical machine speed: each row's speed times its probe "
        "factor (its probe, a fixed matmul timed beside it, over the run's median probe), so "
        "they hold while the machine's speed drifts between rows.",
    ]
    if meta["has_inference"]:
        notes.append("inference: the same variant's inference step (frontend and model "
                     "forward), spectrograms/s; inf vs B: over our passt-b's; reductions that act "
                     "at inference (acts eval or both) are judged here: patchout is free at "
                     "inference.")
    notes.append("acts: when the variant's sequence is reduced: train (patchout), eval, both "
                 "or none; seq: tokens per block averaged over the blocks in training, eval "
                 "seq at inference (the CSV has every block's).")
    if meta["model_mismatch"]:
        notes.append(f"warning: {meta['model_mismatch']}.")
    notes += sorted({f"{r.variant}: {n}" for r in train.values() for n in r.notes
                     if n.startswith("forward FLOPs:")})
    if meta["vs"] is not None:
        notes.append(f"vs {meta['vs']}: ratio to our {meta['vs']} in the same column (speed, "
                     "memory and, where it has one, proxy mAP).")
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
    notes += sorted({f"{r.variant} ({r.peer}): {r.note}." for r in train.values() if r.note})
    if table["speedup_vs_ours"].notna().any():
        notes.append("vs ours: a peer's speed over ours, timed in alternating rounds (the "
                     "median of the per-round ratios, with its 95% interval); above 1: the peer "
                     "is faster.")
    notes.append("speed: +-x% is the median's 95% interval; (unstable): the interval did not "
                 "reach +-3% within the time cap, so compare such rows with care.")
    above = sorted(f"{r.variant}{f' ({r.peer})' if r.peer else ''}" for r in train.values()
                   if r.above_ceiling)
    if above:
        notes.append(f"above the measured matmul ceiling: {', '.join(above)} (the ceiling was "
                     "measured while the machine was busy, or the FLOP count is too high): "
                     "their MFU over the ceiling is not trustworthy.")
    throttled = {reason for r in train.values() for reason in r.gpu_throttle_reasons or ()}
    notes += [f"warning: {w}" for w in environment_warnings(machine_info, sorted(throttled))]
    drift = max((r.machine_drift or 0.0 for r in train.values()), default=0.0)
    if drift > DRIFT_WARNING:
        notes.append(f"warning: the machine's own speed (a fixed matmul timed beside each row) "
                     f"strayed by {drift:.1%} during the run: raw speeds of rows measured "
                     "minutes apart differ by as much; the vs B ratios and the figure take it "
                     "out with each row's probe factor.")
    notes.append("[n]: the paper's citations; *: the paper's own runs.")
    return notes
