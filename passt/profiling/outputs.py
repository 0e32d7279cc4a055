"""Files of a profile run: ``profile.csv``/``.md``, a Chrome/Perfetto trace per variant, and the
figures (stacked breakdown bars, saved-bytes or memory timeline)."""

from __future__ import annotations

import gzip
import json
from collections.abc import Sequence
from pathlib import Path

from passt.profiling.breakdown import OVERHEAD_WARNING, StepProfile
from passt.profiling.components import COMPONENTS
from passt.utils.atomic import atomic_path, write_text_atomic
from passt.utils.figures import save_figure
from passt.utils.optional import require
from passt.utils.tables import csv_text, markdown_table, record_rows

CSV_COLUMNS = ("variant", "kind", "phase", "component", "ms", "pct_of_step", "gflops",
               "tflops_per_s", "bytes", "bytes_measure", "step_ms", "unprofiled_ms", "overhead",
               "device", "batch_size", "clip_seconds", "dtype")


def csv_rows(profiles: Sequence[StepProfile]) -> list[dict[str, object]]:
    """One row per variant, kind, phase and component."""
    return [{"variant": p.name, "kind": p.kind, "phase": r.phase, "component": r.component,
             "ms": round(r.ms, 4), "pct_of_step": round(r.pct_of_step, 3),
             "gflops": round(r.gflops, 6),
             "tflops_per_s": None if r.tflops_per_s is None else round(r.tflops_per_s, 6),
             "bytes": r.bytes, "bytes_measure": p.bytes_measure, "step_ms": round(p.step_ms, 3),
             "unprofiled_ms": round(p.unprofiled_ms, 3), "overhead": round(p.overhead, 4),
             "device": p.device,
             "batch_size": p.batch_size, "clip_seconds": p.clip_seconds, "dtype": p.dtype}
            for p in profiles for r in p.rows]


def format_csv(profiles: Sequence[StepProfile]) -> str:
    return csv_text(CSV_COLUMNS, record_rows(csv_rows(profiles), CSV_COLUMNS))


def by_component(profile: StepProfile) -> dict[str, tuple[float, float]]:
    """``component -> (ms, gflops)`` over all phases."""
    out: dict[str, tuple[float, float]] = {}
    for r in profile.rows:
        ms, gflops = out.get(r.component, (0.0, 0.0))
        out[r.component] = (ms + r.ms, gflops + r.gflops)
    return out


def format_markdown(profiles: Sequence[StepProfile]) -> str:
    """Per step kind, a table of components (rows) by variant: ms and % of the step."""
    lines = []
    for kind in dict.fromkeys(p.kind for p in profiles):
        chosen = [p for p in profiles if p.kind == kind]
        parts = [by_component(p) for p in chosen]
        rows = [[component, *(_cell(part[component][0], p.step_ms) if component in part else "-"
                              for part, p in zip(parts, chosen, strict=True))]
                for component in COMPONENTS if any(component in part for part in parts)]
        rows += [["**profiled step**", *(f"{p.step_ms:.1f} ms" for p in chosen)],
                 ["unprofiled step", *(f"{p.unprofiled_ms:.1f} ms" for p in chosen)],
                 ["profiler overhead",
                  *(f"{p.overhead:.0%}" + (" **(high)**" if p.overhead > OVERHEAD_WARNING else "")
                    for p in chosen)]]
        names = [p.name for p in chosen]
        lines += [f"### {kind} step", "",
                  *markdown_table(["component", *names], rows, right=names).splitlines()]
        lines.append("")
        lines += [f"- warning: the recorders made {p.name}'s {kind} step {p.overhead:.0%} "
                  f"slower ({p.step_ms:.1f} ms against {p.unprofiled_ms:.1f} ms unprofiled), "
                  f"above {OVERHEAD_WARNING:.0%}: its shares are of the slowed step, where the "
                  "host-side time of every op (Python, dispatch) is inflated; compare its "
                  "FLOPs, and the unprofiled step's time." for p in chosen
                  if p.overhead > OVERHEAD_WARNING]
        if any(p.overhead > OVERHEAD_WARNING for p in chosen):
            lines.append("")
    first = profiles[0]
    lines.append(f"Device {first.device}, dtype {first.dtype}, batch {first.batch_size}, clips "
                 f"{first.clip_seconds} s, eager (the breakdown records every op). Each op "
                 "counts from the end of the op before it, host time included; `other`: the "
                 "step's time after its last op; `token reduction`: a block reduction's own "
                 "work (matching, merging, pruning); `unattributed`: ops of a module of the "
                 "model that no rule names. The profiled step runs under the recorders; the "
                 "unprofiled one beside it is the same step without them (their difference "
                 "is the profiler's overhead, flagged above "
                 f"{OVERHEAD_WARNING:.0%}).")
    return "\n".join(lines) + "\n"


def _cell(ms: float, step_ms: float) -> str:
    return f"{ms:.1f} ms ({100 * ms / step_ms:.0f}%)"


def trace(profile: StepProfile) -> dict[str, object]:
    """The step's ops as a Chrome trace (chrome://tracing, Perfetto): one event per op, named by
    its component, on a track per phase."""
    events = [{"name": e.component, "cat": e.phase, "ph": "X", "pid": profile.name,
               "tid": e.phase, "ts": 1e6 * e.start_s, "dur": 1e6 * e.seconds,
               "args": {"op": e.op, "allocated_bytes": e.allocated_bytes}}
              for e in profile.events]
    return {"traceEvents": events, "displayTimeUnit": "ms",
            "otherData": {"variant": profile.name, "kind": profile.kind,
                          "device": profile.device, "step_ms": profile.step_ms}}


def write_trace(profile: StepProfile, path: Path) -> None:
    with atomic_path(path) as tmp, gzip.open(tmp, "wt", encoding="utf-8") as f:
        json.dump(trace(profile), f)


def plot_breakdown(profiles: Sequence[StepProfile], kind: str = "train"):
    """Stacked bars per variant: absolute ms (left) and % of the step (right)."""
    plt = require("matplotlib.pyplot", "the profile figures")
    chosen = [p for p in profiles if p.kind == kind]
    fig, axes = plt.subplots(1, 2, figsize=(12, 5), dpi=100)
    colors = dict(zip(COMPONENTS, plt.get_cmap("tab20").colors, strict=False))
    names = [p.name for p in chosen]
    for ax, relative in zip(axes, (False, True), strict=True):
        bottom = [0.0] * len(chosen)
        for component in COMPONENTS:
            values = [by_component(p).get(component, (0.0, 0.0))[0] for p in chosen]
            if relative:
                values = [100 * v / p.step_ms for v, p in zip(values, chosen, strict=True)]
            if any(values):
                ax.bar(names, values, bottom=bottom, label=component, color=colors[component])
                bottom = [b + v for b, v in zip(bottom, values, strict=True)]
        ax.set_ylabel("% of the step" if relative else "ms per step")
        ax.tick_params(axis="x", rotation=30)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=6, fontsize=8)
    first = chosen[0]
    fig.suptitle(f"Where the {kind} step's time goes ({first.device}, {first.dtype}, batch "
                 f"{first.batch_size}, {first.clip_seconds} s clips)")
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    return fig


def plot_memory(profiles: Sequence[StepProfile]):
    """CPU: bytes saved for backward by component (bars). CUDA: allocated bytes through one
    training step, the variants overlaid."""
    plt = require("matplotlib.pyplot", "the profile figures")
    chosen = [p for p in profiles if p.kind == "train"]
    fig, ax = plt.subplots(figsize=(10, 5), dpi=100)
    if chosen and chosen[0].device.startswith("cuda"):
        for p in chosen:
            level, xs, ys = 0, [], []
            for e in p.events:
                level += e.allocated_bytes
                xs.append(1e3 * (e.start_s + e.seconds))
                ys.append(level / 2**20)
            ax.plot(xs, ys, label=p.name)
        ax.set_xlabel("ms into the step")
        ax.set_ylabel("MiB allocated (relative to the step's start)")
        ax.legend()
    else:
        bottom = [0.0] * len(chosen)
        for component in COMPONENTS:
            values = [sum(r.bytes for r in p.rows if r.component == component) / 2**20
                      for p in chosen]
            if any(values):
                ax.bar([p.name for p in chosen], values, bottom=bottom, label=component)
                bottom = [b + v for b, v in zip(bottom, values, strict=True)]
        ax.set_ylabel("MiB saved for backward per step")
        ax.legend(fontsize=8)
        ax.tick_params(axis="x", rotation=30)
    fig.tight_layout()
    return fig


def save_figures(fig, out: Path, stem: str, formats: tuple[str, ...] = ("png", "svg")
                 ) -> list[Path]:
    """``fig`` as ``out/STEM.png`` and ``.svg``, then closed."""
    paths = [save_figure(fig, out / f"{stem}.{fmt}") for fmt in formats]
    require("matplotlib.pyplot", "the profile figures").close(fig)
    return paths


def write_profile(profiles: Sequence[StepProfile], out: Path) -> list[Path]:
    """Write every file of a profile run into ``out``; returns their paths."""
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out / "profile.csv", format_csv(profiles))
    write_text_atomic(out / "profile.md", format_markdown(profiles))
    paths = [out / "profile.csv", out / "profile.md"]
    for p in profiles:
        if p.kind == "train":
            path = out / f"trace_{p.name.replace(' ', '_')}.json.gz"
            write_trace(p, path)
            paths.append(path)
    for kind in dict.fromkeys(p.kind for p in profiles):
        stem = "breakdown" if kind == "train" else f"breakdown_{kind}"
        paths += save_figures(plot_breakdown(profiles, kind), out, stem)
    if any(p.kind == "train" for p in profiles):
        cuda = profiles[0].device.startswith("cuda")
        paths += save_figures(plot_memory(profiles), out,
                             "memory_timeline" if cuda else "saved_bytes", ("png",))
    return paths
