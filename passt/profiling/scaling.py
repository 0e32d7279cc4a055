"""How a training step's cost grows with clip length, the time embedding sized to the clip:
time, FLOPs and memory, attention's share of them, power-law exponents fitted on log-log
axes, and the clip length at which attention passes the MLP."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from passt.factory import create_model
from passt.frontend import create_frontend
from passt.measure.memory import fit_line, memory_slope, peak_memory_available
from passt.measure.presets import Preset
from passt.measure.step import StepSettings, build_step
from passt.profiling.breakdown import profile_step
from passt.profiling.components import ATTENTION_CORE, MLP
from passt.profiling.outputs import save_figures
from passt.utils.atomic import write_text_atomic
from passt.utils.device import resolve_device
from passt.utils.errors import UsageError
from passt.utils.optional import require
from passt.utils.tables import columns_of, csv_text, markdown_table, record_rows
from passt.variants import proportional_patchout, variant_config

CLIP_SECONDS = (2.5, 5.0, 10.0, 20.0, 30.0)
VARIANTS = ("passt-b", "passt-s", "passt-s-n")
MEMORY_BATCH_SIZES = (1, 2, 4)  # the CUDA peak fit of each point
# Unless told otherwise, a CPU measures batch 1 (30 s clips of passt-b at batch 2 need ~13 GB
# there) and a GPU the preset's batch: at batch 1 a GPU step measures launch overhead.
CPU_BATCH = 1
# (warm-up, profiled) steps per point, by device (the median counts): a GPU's steps are short
# and vary more.
STEPS = {"cpu": (1, 1), "cuda": (2, 5)}


@dataclass(frozen=True)
class ScalingPoint:
    """One variant at one clip length (batch 1 unless the preset says otherwise)."""

    variant: str
    clip_seconds: float
    frames: int
    seq_len: int
    step_ms: float  # the unprofiled step, median
    gflops: float  # the whole step, FlopCounterMode
    attention_gflops: float  # the attention core: scores and weighted sum, forward + backward
    mlp_gflops: float
    attention_ms: float  # from the profiled step
    mlp_ms: float
    bytes_per_sample: float  # CPU: saved for backward; CUDA: slope of the allocator's peak
    bytes_measure: str


def scaling_settings(preset: Preset, variant: str, clip_seconds: float,
                     **overrides: Any) -> StepSettings:
    """The preset's eager settings of ``variant`` (with ``overrides``; by default batch 1 on a
    CPU, the preset's batch on a GPU) on clips of ``clip_seconds``: a time embedding as long as
    the clip, and patchout keeping the fraction of patches it keeps at 10 s (patchout
    parameters in ``model_overrides`` win)."""
    frontend = create_frontend()
    frames = frontend.frames(round(clip_seconds * frontend.config.sample_rate))
    given = dict(overrides.pop("model_overrides", {}))
    # a time embedding of at least one patch, so that the model exists to check the frames
    embedding = max(frames, variant_config(variant, **given).patch_size)
    model_overrides = {**proportional_patchout(variant, embedding, **given), **given,
                       "frames": embedding}
    with torch.device("meta"):
        probe = create_model(variant, **model_overrides)
    probe.check_frames(frames, training=True, source=f"a clip of {clip_seconds} s",
                       frame_seconds=frontend.config.frame_seconds)
    base = dataclasses.replace(preset, proportional_patchout=False)
    device = resolve_device(overrides.get("device", preset.device))
    batch = preset.batch_size if device.type == "cuda" else CPU_BATCH
    return base.settings(variant, **{"batch_size": batch, **overrides,
                                     "clip_seconds": clip_seconds, "compile": False,
                                     "model_overrides": model_overrides})


def measure_point(settings: StepSettings) -> ScalingPoint:
    """Profile one training step of ``settings`` for the scaling curves (`STEPS` of its
    device)."""
    step = build_step(settings, "train")
    warmup, repeats = STEPS[step.device.type]
    profile = profile_step(step, warmup=warmup, repeats=repeats)

    def total(component: str, of: str) -> float:
        return sum(getattr(r, of) for r in profile.rows if r.component == component)

    if peak_memory_available(step.device):
        bytes_per_sample = memory_slope(step, MEMORY_BATCH_SIZES).slope_bytes_per_sample
    else:
        bytes_per_sample = sum(r.bytes for r in profile.rows) / settings.batch_size
    return ScalingPoint(
        variant=settings.variant, clip_seconds=settings.clip_seconds, frames=step.frames,
        seq_len=step.seq_len, step_ms=profile.unprofiled_ms, gflops=profile.total_gflops,
        attention_gflops=total(ATTENTION_CORE, "gflops"), mlp_gflops=total(MLP, "gflops"),
        attention_ms=total(ATTENTION_CORE, "ms"), mlp_ms=total(MLP, "ms"),
        bytes_per_sample=bytes_per_sample or math.nan, bytes_measure=profile.bytes_measure)


def exponent(points: Sequence[ScalingPoint], field: str) -> float:
    """The least-squares slope of ``log(field)`` over ``log(clip length)``: the cost grows as
    length^slope."""
    xs = [math.log(p.clip_seconds) for p in points]
    ys = [math.log(getattr(p, field)) for p in points]
    return fit_line(xs, ys)[0]


def crossover_seconds(points: Sequence[ScalingPoint]) -> float | None:
    """The clip length at which the attention core's time passes the MLP's (interpolated on
    log axes), or None when it does not within the measured lengths."""
    ordered = sorted(points, key=lambda p: p.clip_seconds)
    ratios = [math.log(p.attention_ms / p.mlp_ms) for p in ordered]
    if ratios[0] >= 0:
        return ordered[0].clip_seconds
    for (a, ra), (b, rb) in zip(zip(ordered, ratios, strict=True),
                                zip(ordered[1:], ratios[1:], strict=True), strict=False):
        if ra < 0 <= rb:
            t = -ra / (rb - ra)
            return math.exp(math.log(a.clip_seconds)
                            + t * (math.log(b.clip_seconds) - math.log(a.clip_seconds)))
    return None


def check_clip_lengths(preset: Preset, variants: Sequence[str], clips: Sequence[float],
                       overrides: dict[str, Any] | None = None) -> None:
    """Fail before measuring anything if a clip length cannot be profiled."""
    if len(set(clips)) < 2:
        raise UsageError(f"scaling needs at least two distinct clip lengths, got {list(clips)}")
    for variant in variants:
        for seconds in clips:
            scaling_settings(preset, variant, seconds, **(overrides or {}))  # checks the frames


def format_csv(points: Sequence[ScalingPoint]) -> str:
    return csv_text(columns_of(ScalingPoint), record_rows(points, columns_of(ScalingPoint)))


def summary(points: Sequence[ScalingPoint]) -> list[dict[str, object]]:
    """Per variant: the fitted exponents and the crossover clip length."""
    out = []
    for variant in dict.fromkeys(p.variant for p in points):
        mine = [p for p in points if p.variant == variant]
        out.append({"variant": variant,
                    "step_time_exponent": exponent(mine, "step_ms"),
                    "attention_flops_exponent": exponent(mine, "attention_gflops"),
                    "mlp_flops_exponent": exponent(mine, "mlp_gflops"),
                    "attention_passes_mlp_at_s": crossover_seconds(mine)})
    return out


MARKDOWN_COLUMNS = ("variant", "step time ~ clip^k", "attention FLOPs ~ clip^k",
                    "MLP FLOPs ~ clip^k", "attention passes the MLP at")


def format_markdown(points: Sequence[ScalingPoint]) -> str:
    rows = [[s["variant"], f"{s['step_time_exponent']:.2f}", f"{s['attention_flops_exponent']:.2f}",
             f"{s['mlp_flops_exponent']:.2f}",
             f"{s['attention_passes_mlp_at_s']:.1f} s" if s["attention_passes_mlp_at_s"]
             else "not within the lengths measured"] for s in summary(points)]
    return markdown_table(MARKDOWN_COLUMNS, rows, right=MARKDOWN_COLUMNS[1:])


def plot(points: Sequence[ScalingPoint]):
    """Log-log curves per variant: step time, attention and MLP FLOPs, fitted exponents in
    the legend."""
    plt = require("matplotlib.pyplot", "the scaling figure")
    fig, axes = plt.subplots(1, 2, figsize=(12, 5), dpi=100)
    variants = list(dict.fromkeys(p.variant for p in points))
    for variant, color in zip(variants, plt.get_cmap("tab10").colors, strict=False):
        mine = sorted((p for p in points if p.variant == variant), key=lambda p: p.clip_seconds)
        xs = [p.clip_seconds for p in mine]
        axes[0].plot(xs, [p.step_ms for p in mine], "o-", color=color,
                     label=f"{variant} (k={exponent(mine, 'step_ms'):.2f})")
        for field, style, what in (("attention_gflops", "o-", "attention core"),
                                   ("mlp_gflops", "s--", "MLP")):
            axes[1].plot(xs, [getattr(p, field) for p in mine], style, color=color,
                         label=f"{variant} {what} (k={exponent(mine, field):.2f})")
    clips = sorted({p.clip_seconds for p in points})
    for ax, label in zip(axes, ("training step, ms", "GFLOPs per step"), strict=True):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xticks(clips, [f"{c:g}" for c in clips])
        ax.minorticks_off()
        ax.set_xlabel("clip length, s")
        ax.set_ylabel(label)
        ax.legend(fontsize=8)
    fig.suptitle("Cost against clip length (cost ~ length^k, least squares on log-log axes)")
    fig.tight_layout()
    return fig


def write_scaling(points: Sequence[ScalingPoint], out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out / "scaling.csv", format_csv(points))
    write_text_atomic(out / "scaling.md", format_markdown(points))
    return [out / "scaling.csv", out / "scaling.md", *save_figures(plot(points), out, "scaling")]
