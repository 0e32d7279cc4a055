"""Table 1's footnotes: what each column holds and what the run lacks, each a small rule (when
it applies, and its text) over the run's rows and the table's settings."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from passt.measure.bench_record import BenchRecord
from passt.measure.environment import environment_warnings
from passt.measure.machine_speed import DRIFT_WARNING
from passt.report.inputs import PAPER_DEVICE
from passt.report.settings import Table1Settings


@dataclass(frozen=True)
class Run:
    """What the notes read: the table's settings, the run's training rows, its machine_info,
    and the table's rows (by their shown names) that ran out of memory or were not run."""

    settings: Table1Settings
    train: list[BenchRecord]
    machine_info: dict[str, Any]
    oom: list[str]
    not_run: list[str]

    @property
    def drift(self) -> float:
        return max((r.machine_drift or 0.0 for r in self.train), default=0.0)


@dataclass(frozen=True)
class Rule:
    """A footnote: its lines (a text, or a function of the run), where ``when`` holds."""

    lines: str | Callable[[Run], str | list[str]]
    when: Callable[[Run], bool] = lambda run: True

    def notes(self, run: Run) -> list[str]:
        if not self.when(run):
            return []
        lines = self.lines if isinstance(self.lines, str) else self.lines(run)
        return [lines] if isinstance(lines, str) else lines


def _levels(run: Run) -> str:
    s = run.settings
    levels = [f"{name} {value:.3f}" for name, value in
              (("chance", s.chance_map), ("the mean-spectrum baseline", s.baseline_map))
              if value is not None]
    return f"proxy task levels: {' and '.join(levels)}."


def _throttle_warnings(run: Run) -> list[str]:
    throttled = {reason for r in run.train for reason in r.gpu_throttle_reasons or ()}
    return [f"warning: {w}" for w in environment_warnings(run.machine_info, sorted(throttled))]


RULES = (
    Rule("paper mAP: the paper's AudioSet mAP (never ours)."),
    Rule(lambda run: f"proxy mAP: measured by passt sweep ({run.settings.maps_file}) on a small "
         "proxy task, not AudioSet: mean ± 95% t interval over seeds (task, model size, clip "
         "length, training clips, budget, seeds); compare it between variants, not with the "
         "paper's mAP.", when=lambda run: run.settings.maps_file is not None),
    Rule(_levels, when=lambda run: run.settings.maps_file is not None and (
        run.settings.chance_map is not None or run.settings.baseline_map is not None)),
    Rule("speed: training throughput (frontend, model, loss, backward, AdamW), spectrograms/s; "
         f"paper: the paper's values on an {PAPER_DEVICE}."),
    Rule(lambda run: f"memory: {run.settings.memory_label}; paper: GPU memory to train per "
         "sample."),
    Rule("vs B: ratio to PaSST-B in the same column, ours to our passt-b, the paper's to the "
         "paper's PaSST-B: these compare across devices; our speed ratios (and the figure's "
         "speeds) are at the run's typical machine speed: each row's speed times its probe "
         "factor (its probe, a fixed matmul timed beside it, over the run's median probe), so "
         "they hold while the machine's speed drifts between rows."),
    Rule("inference: the same variant's inference step (frontend and model forward), "
         "spectrograms/s; inf vs B: over our passt-b's; reductions that act at inference (acts "
         "eval or both) are judged here: patchout is free at inference.",
         when=lambda run: run.settings.has_inference),
    Rule("acts: when the variant's sequence is reduced: train (patchout), eval, both or none; "
         "seq: tokens per block averaged over the blocks in training, eval seq at inference "
         "(the CSV has every block's)."),
    Rule(lambda run: f"warning: {run.settings.model_mismatch}.",
         when=lambda run: run.settings.model_mismatch is not None),
    Rule(lambda run: sorted({f"{r.variant}: {n}" for r in run.train for n in r.notes
                             if n.startswith("forward FLOPs:")})),
    Rule(lambda run: f"vs {run.settings.vs}: ratio to our {run.settings.vs} in the same column "
         "(speed, memory and, where it has one, proxy mAP).",
         when=lambda run: run.settings.vs is not None),
    Rule("passt-b was not measured in this run (missing or OOM): our ratios to PaSST-B are "
         "empty.", when=lambda run: not run.settings.has_reference),
    Rule(lambda run: f"clips are {run.settings.clip_seconds} s, not the paper's 10 s: absolute "
         "speeds, memory and sequence lengths differ from the paper's; compare the ratios to "
         "PaSST-B.", when=lambda run: run.settings.clip_seconds not in (None, 10, 10.0)),
    Rule(lambda run: f"OOM: out of memory at batch size {run.settings.batch_size}: "
         f"{', '.join(run.oom)}.", when=lambda run: bool(run.oom)),
    Rule(lambda run: f"not run: rows of the paper not in this run: {', '.join(run.not_run)}.",
         when=lambda run: bool(run.not_run)),
    Rule("seq: ours counts the class and distillation tokens; the paper prints 1212 for AST, "
         "which counts patches only (1214 - 2).",
         when=lambda run: any(r.variant == "ast" for r in run.train)),
    Rule("MFU (over the datasheet peak) is empty without a known GPU peak; the CSV's "
         "mfu_of_ceiling is over a matmul ceiling measured in the run.",
         when=lambda run: all(r.mfu is None for r in run.train)),
    Rule("J/sample is empty without an NVML energy counter (GPUs only).",
         when=lambda run: all(r.joules_per_sample is None for r in run.train)),
    Rule(lambda run: sorted({f"{r.variant} ({r.peer}): {r.note}." for r in run.train
                             if r.note})),
    Rule("vs ours: a peer's speed over ours, timed in alternating rounds (the median of the "
         "per-round ratios, with its 95% interval); above 1: the peer is faster.",
         when=lambda run: any(r.speedup_vs_ours is not None for r in run.train)),
    Rule("speed: +-x% is the median's 95% interval; (unstable): the interval did not reach "
         "+-3% within the time cap, so compare such rows with care."),
    Rule(lambda run: "above the measured matmul ceiling: " + ", ".join(sorted(
        f"{r.variant}{f' ({r.peer})' if r.peer else ''}" for r in run.train if r.above_ceiling))
         + " (the ceiling was measured while the machine was busy, or the FLOP count is too "
         "high): their MFU over the ceiling is not trustworthy.",
         when=lambda run: any(r.above_ceiling for r in run.train)),
    Rule(_throttle_warnings),
    Rule(lambda run: f"warning: the machine's own speed (a fixed matmul timed beside each row) "
         f"strayed by {run.drift:.1%} during the run: raw speeds of rows measured minutes apart "
         "differ by as much; the vs B ratios and the figure take it out with each row's probe "
         "factor.", when=lambda run: run.drift > DRIFT_WARNING),
    Rule("[n]: the paper's citations; *: the paper's own runs."),
)


def table_notes(run: Run) -> list[str]:
    """The footnotes of the table: what each column holds and what the run lacks."""
    return [line for rule in RULES for line in rule.notes(run)]
