"""`BenchRecord`: the schema of a benchmark's row (pytest-benchmark's ``extra_info``), written
by the bench and read back by ``passt report``, ``passt check`` and the GPU campaign.

Each field carries its group and a doc (``field.metadata``); docs/benchmarks.md's field table
is made from them (`passt.measure.field_table`). A reported metric also carries its `Metric`:
Table 1's CSV, ``passt check`` and the campaign summary read it from there. JSON holds every
field, ``null`` where nothing was measured. Reading accepts rows of earlier versions: a field
they lack takes its default, and a key this schema does not know is dropped (no reader could
use it).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from passt.measure.metric import Cell, Limit, Metric
from passt.utils.errors import UsageError

# group -> what its fields hold, in the field table's order (docs/benchmarks.md)
GROUPS = {
    "settings": "the settings, known before anything runs: every row has them, and an "
                "out-of-memory row only them (and its labels)",
    "labels": "with `--bench-peers`: the peer (`official`, `official-sdpa`, `hf-ast`), its "
              "package and version, and how it differs from ours; with `--bench-ablation`: the "
              "optimization switched off; `null` on the other rows",
    "model": "the step as it ran: patchout strategy and what it drops, block reduction and its "
             "settings, when the sequence is reduced, tokens entering each block and their "
             "mean (class and distillation tokens included), input frames, parameters, the "
             "device's name",
    "flops": "GFLOPs per sample of the model's forward and of the whole step (the training "
             "step's again as `train_gflops_per_sample`, Table 1's column): torch "
             "`FlopCounterMode` (2 per multiply-add, attention included); fvcore (`null` if "
             "fvcore is missing or cannot trace the model: `notes` says why) and an analytic "
             "formula beside them",
    "peak memory": "slope of the CUDA allocator's peak over whole steps at three batch sizes "
                   "(the intercept is weights, gradients and optimizer state); GPUs only: a "
                   "CPU has no allocator peak, its memory figure is the next one",
    "activation": "bytes autograd saves for backward, per sample and per token of `seq_len`: "
                  "deterministic and device-independent; training rows only (null on "
                  "inference rows)",
    "timing": "from the median step time",
    "stability": "how far the median can be trusted: a distribution-free 95% interval "
                 "(order statistics), widened to a t interval of the replicas' medians when "
                 "separately built copies disagree, and the IQR; rounds go on until the "
                 "interval is within +-3% of the median or the time cap is reached, else the "
                 "row is `unstable`",
    "comparison": "peers and ablation settings are timed in alternating rounds with our step "
                  "(A B A B ...), so drift hits both: the median of the per-round ratios of "
                  "our step's time to this row's, with its 95% interval (above 1: this row is "
                  "faster)",
    "instructions": "CPU instructions per step counted by callgrind (valgrind) with "
                    "`--bench-instructions`: one thread, after warm-up, at a small fixed size "
                    "(`instructions_settings`), so deterministic to a fraction of a percent on "
                    "any machine, busy or not; `null` where valgrind is missing (`notes` says "
                    "what to install) and on GPU rows",
    "mfu": "over the datasheet peak of the GPU for the dtype (GPUs only)",
    "ceiling": "over a matmul ceiling measured on the spot for the row's dtype (any device)",
    "energy": "NVML energy counter over a window of its own after the timing: the step back to "
              "back for at least 2 s and 20 steps, without the probe or any synchronisation "
              "between steps (CUDA rows only, peers and ablation rows included; `null` "
              "elsewhere, and with a note where NVML has no energy counter)",
    "gpu clocks": "NVML samples taken while the row was timed: the SM clock's range and the "
                  "power; on a GPU a row is `unstable` when its own interval misses the target, "
                  "the clock moved by more than the target or the hardware throttled (heat, "
                  "power brake); the probe's drift is information there",
    "compile": "dynamo's and inductor's counters for compiled rows: a compiled row that ran no "
               "compiled graph, hit the recompile limit or skipped CUDA graphs it asked for is "
               "an error, never a silent fall-back to eager",
    "oom": "`true` when the step ran out of memory (`oom_stage` says where); the row stays in "
           "the file and the next benchmark runs normally",
    "notes": "why a measurement that was attempted is `null` (fvcore missing, say); a field "
             "that does not apply to the device (a GPU figure on the CPU) is `null` without "
             "a note",
}


def _field(group: str, doc: str, metric: Metric | None = None, **kwargs: Any) -> Any:
    return field(metadata={"group": group, "doc": doc, "metric": metric}, **kwargs)


def _optional(group: str, doc: str, metric: Metric | None = None) -> Any:
    return _field(group, doc, metric, default=None)


@dataclass(frozen=True)
class BenchRecord:
    """One benchmark's row: what ran and everything measured about it (None: not measured)."""

    # The fields without a default are the required ones: they name the benchmark.
    variant: str = _field("settings", "the registered variant, e.g. passt-s")
    kind: str = _field("settings", "train (frontend, model, loss, backward, AdamW) or inference")
    batch_size: int = _field("settings", "spectrograms per step")
    clip_seconds: float = _field("settings", "clip length in seconds")
    dtype: str = _field("settings", "fp32, fp16 (autocast) or bf16 (autocast)")
    attention: str = _field("settings", "the attention path that ran: sdpa or math")
    compile: bool = _field("settings", "whether the step ran under torch.compile")
    device: str = _field("settings", "the torch device, e.g. cpu or cuda:0")
    compile_mode: str | None = _optional("settings", "torch.compile's mode (null: its default)")
    step_settings: dict[str, Any] | None = _optional(
        "settings", "every `StepSettings` field of the step, so that it can be measured again "
                    "(`passt check --rerun`)")
    round_plan: dict[str, Any] | None = _optional(
        "settings", "how it was timed: preset, warm-up, rounds, time cap, precision target, "
                    "replicas")

    peer: str | None = _optional("labels", "the other implementation measured (--bench-peers)")
    implementation: str | None = _optional("labels", "the peer's package and version")
    note: str | None = _optional("labels", "how the peer's step differs from ours")
    ablation: str | None = _optional("labels", "the optimization switched off (--bench-ablation)")

    strategy: str | None = _optional("model", "the patchout strategy (none: no patchout)")
    reductions: str | None = _optional("model", "the variant's token reductions, joined by +")
    patchout_args: dict[str, Any] | None = _optional(
        "model", "the patchout strategy's arguments, e.g. {time: 12, freq: 4}")
    reduction: str | None = _optional(
        "model", "the block reduction between attention and MLP (none: every token goes on)")
    reduction_args: dict[str, Any] | None = _optional(
        "model", "its arguments, e.g. {r: 0.08}")
    acts: str | None = _optional(
        "model", "when the model's sequence is reduced: train (patchout), eval, both or none")
    seq_len: int | None = _optional(
        "model", "tokens per block averaged over the blocks (the mean of seq_len_per_block), "
                 "class and distillation tokens included")
    seq_len_per_block: tuple[int, ...] | None = _optional(
        "model", "tokens entering each block, class and distillation tokens included")
    frames: int | None = _optional("model", "spectrogram frames of one clip")
    device_name: str | None = _optional("model", "the GPU's model, or the CPU's and its threads")
    params: int | None = _optional("model", "parameters of the model")

    forward_gflops_per_sample: float | None = _optional(
        "flops", "the model's forward by torch FlopCounterMode", Metric(check="flops"))
    forward_gflops_per_sample_fvcore: float | None = _optional(
        "flops", "the model's forward by fvcore (null: see notes)")
    forward_gflops_per_sample_analytic: float | None = _optional(
        "flops", "the model's forward by formula")
    step_gflops_per_sample: float | None = _optional(
        "flops", "the whole step by torch FlopCounterMode, frontend included")
    train_gflops_per_sample: float | None = _optional(
        "flops", "step_gflops_per_sample of a training step (null for inference)",
        Metric(check="flops"))

    peak_memory_bytes_per_sample: float | None = _optional(
        "peak memory", "slope of the allocator's peak over the fit's batch sizes",
        Metric(check="memory", summary=Cell("peak_gb_per_sample", 1, 1e-9, ".3f",
                                            "{} GB/sample")))
    peak_memory_intercept_bytes: float | None = _optional(
        "peak memory", "the fit's intercept: what does not grow with the batch")
    peak_memory_points: dict[int, int | None] | None = _optional(
        "peak memory", "batch size -> peak bytes of a whole step (null: out of memory)")
    oom_batch_sizes: tuple[int, ...] | None = _optional(
        "peak memory", "the fit's batch sizes that ran out of memory")

    activation_bytes_per_sample: float | None = _optional(
        "activation", "slope of the bytes saved for backward over batch sizes 1 and 2",
        Metric(check="memory"))
    activation_bytes_per_token: float | None = _optional(
        "activation", "activation_bytes_per_sample over seq_len: what a token of the sequence "
                      "leaves for backward, all blocks together",
        Metric(table1=Cell("activation_bytes_per_token"), check="memory",
               derive=lambda r: None if r.activation_bytes_per_sample is None or not r.seq_len
               else r.activation_bytes_per_sample / r.seq_len))

    median_step_s: float | None = _optional("timing", "median of the timed steps, seconds")
    timed_rounds: int | None = _optional("timing", "timed steps")
    warmup_rounds: int | None = _optional("timing", "untimed steps before them")
    samples_per_s: float | None = _optional("timing", "batch size over the median step time")
    achieved_tflops: float | None = _optional(
        "timing", "step FLOPs per sample times samples_per_s")

    median_ci_low_s: float | None = _optional(
        "stability", "lower end of the median's 95% interval (null: under 6 rounds)")
    median_ci_high_s: float | None = _optional("stability", "its upper end")
    ci_half_width: float | None = _optional(
        "stability", "the interval's larger half over the median (0.03: +-3%)",
        Metric(table1=Cell("speed_ci_half_width", 3)))
    iqr_over_median: float | None = _optional(
        "stability", "interquartile range of the timed steps over their median")
    unstable: bool | None = _optional(
        "stability", "true when the interval did not reach the target within the time cap",
        Metric(table1=Cell("unstable", 4)))
    foreign_cpu_fraction: float | None = _optional(
        "stability", "CPU time other processes (and the hypervisor) took while it was timed, "
                     "over all CPUs; above 0.05 the row is `unstable` (null: not Linux)")
    replica_medians_s: tuple[float, ...] | None = _optional(
        "stability", "the median of each separately built copy of the step, timed in "
                     "alternating rounds (the preset's replicas); their spread widens the "
                     "interval")
    probe_median_s: float | None = _optional(
        "stability", "median time of a fixed matmul timed in the same rounds: the machine's "
                     "own speed during the row (`passt check` divides step times by it)")
    probe_ci_low_s: float | None = _optional("stability", "its 95% interval's lower end")
    probe_ci_high_s: float | None = _optional("stability", "its upper end")
    machine_drift: float | None = _optional(
        "stability", "the run's largest deviation of a row's probe from their median (0.05: "
                     "+-5%); beyond the precision target with the row's interval, the row is "
                     "`unstable`")

    speedup_vs_ours: float | None = _optional(
        "comparison", "median over rounds of our step's time over this row's",
        Metric(table1=Cell("speedup_vs_ours", 5)))
    speedup_ci_low: float | None = _optional("comparison", "its 95% interval's lower end",
                                             Metric(table1=Cell("speedup_ci_low", 6)))
    speedup_ci_high: float | None = _optional("comparison", "its upper end",
                                              Metric(table1=Cell("speedup_ci_high", 7)))
    ours_median_s: float | None = _optional(
        "comparison", "our step's median in the same alternating rounds")
    reference_settings: dict[str, Any] | None = _optional(
        "comparison", "the `StepSettings` of our step it was compared with")

    instructions: float | None = _optional(
        "instructions", "instructions per step, the median over the counted repeats")
    instructions_spread: float | None = _optional(
        "instructions", "(largest - smallest) over the median of the repeats' counts")
    instructions_settings: dict[str, Any] | None = _optional(
        "instructions", "the size it was counted at: batch, clip, model overrides, repeats")

    peak_tflops: float | None = _optional("mfu", "the datasheet peak for the dtype")
    mfu: float | None = _optional(
        "mfu", "achieved_tflops over peak_tflops",
        Metric(table1=Cell("mfu", 0), summary=Cell("mfu", 0, spec=".1%", text="MFU {}")))

    matmul_ceiling_tflops: float | None = _optional(
        "ceiling", "the fastest matmul measured on the device for the dtype")
    mfu_of_ceiling: float | None = _optional(
        "ceiling", "achieved_tflops over matmul_ceiling_tflops",
        Metric(table1=Cell("mfu_of_ceiling", 1)))
    above_ceiling: bool | None = _optional(
        "ceiling", "true when the row claims more TFLOP/s than the ceiling: a ceiling measured "
                   "while the machine was busy, or a FLOP count that is too high")

    joules_per_sample: float | None = _optional(
        "energy", "energy of the metered window per sample",
        Metric(table1=Cell("joules_per_sample", 2),
               summary=Cell("joules_per_sample", 2, spec=".2f", text="{} J/sample")))
    mean_power_w: float | None = _optional("energy", "mean power over the metered window")
    mean_gpu_util_pct: float | None = _optional("energy", "mean GPU utilisation over it")
    energy_window_s: float | None = _optional("energy", "length of the metered window")
    energy_steps: int | None = _optional("energy", "steps in the metered window")
    gpu_throttle_reasons: tuple[str, ...] | None = _optional(
        "energy", "clock-throttle reasons NVML reported while the row was timed or metered "
                  "(empty: none)")

    sm_clock_min_mhz: int | None = _optional("gpu clocks", "lowest SM clock sampled while timed")
    sm_clock_max_mhz: int | None = _optional("gpu clocks", "highest SM clock sampled")
    sm_clock_median_mhz: float | None = _optional("gpu clocks", "median SM clock sampled")
    timed_power_w: float | None = _optional("gpu clocks", "mean power sampled while timed")

    compile_graphs: int | None = _optional("compile", "graphs dynamo compiled")
    compile_graph_breaks: int | None = _optional("compile", "graph breaks")
    compile_recompiles: int | None = _optional(
        "compile", "compilations of a frame already compiled (a guard failed)")
    compile_seconds: float | None = _optional("compile", "compile time of all frames")
    compile_cudagraph_skips: int | None = _optional(
        "compile", "graphs that asked for CUDA graphs and run without them")
    compile_cudagraph_skip_reasons: tuple[str, ...] | None = _optional(
        "compile", "inductor's reasons for those skips")

    oom: bool = _field("oom", "whether the step ran out of memory", default=False)
    oom_stage: str | None = _optional(
        "oom", "where it ran out of memory: build, memory-fit (the timed batch did not fit: "
               "`peak_memory_points` hold the sizes that did), timing, energy, or alternating "
               "(with our step resident: the row was then timed alone, without a speed-up)")
    requested_batch_size: int | None = _optional(
        "oom", "the preset's batch size, where the row ran at the largest batch that fits "
               "instead (the official code as released)")

    notes: tuple[str, ...] = _field("notes", "why a count is missing", default=())

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            metric = f.metadata["metric"]
            if metric is not None and metric.derive is not None:
                object.__setattr__(self, f.name, metric.derive(self))

    def to_json(self) -> dict[str, Any]:
        """Every field as JSON data (tuples as lists, dictionary keys as strings)."""
        return {f.name: _to_json(getattr(self, f.name)) for f in dataclasses.fields(self)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> BenchRecord:
        """A row as JSON gave it back, of this version or an earlier one; a `UsageError`
        naming the required fields it lacks or a field of the wrong type."""
        lacking = missing_fields(data)
        if lacking:
            raise UsageError(f"lacks fields {', '.join(lacking)}")
        hints = typing.get_type_hints(cls)
        return cls(**{f.name: _from_json(f.name, data[f.name], hints[f.name])
                      for f in dataclasses.fields(cls) if f.name in data})


def reported(report: str) -> list[tuple[str, Cell]]:
    """``(field, cell)`` of each field that ``report`` (``table1`` or ``summary``) shows, in the
    cells' rank order."""
    metrics = [(f.name, f.metadata["metric"]) for f in dataclasses.fields(BenchRecord)]
    cells = [(name, getattr(m, report)) for name, m in metrics if m is not None]
    return sorted([(name, cell) for name, cell in cells if cell is not None],
                  key=lambda pair: pair[1].rank)


def checked_fields() -> dict[str, Limit]:
    """The fields `passt check` compares, each with the limit its growth is held to."""
    return {f.name: f.metadata["metric"].check for f in dataclasses.fields(BenchRecord)
            if f.metadata["metric"] is not None and f.metadata["metric"].check is not None}


def required_fields() -> list[str]:
    """The fields every row has: those without a default."""
    return [f.name for f in dataclasses.fields(BenchRecord)
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]


def missing_fields(data: Mapping[str, Any]) -> list[str]:
    """The required fields that ``data`` lacks or holds as null."""
    return [name for name in required_fields() if data.get(name) is None]


def _to_json(value: Any) -> Any:
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, dict):
        return {str(k): v for k, v in value.items()}
    return value


def _from_json(name: str, value: Any, hint: Any) -> Any:
    """``value`` as ``hint`` (lists to tuples, string keys to int keys where typed so)."""
    if hint is Any:
        return value
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        (hint,) = [a for a in args if a is not type(None)]
        origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is tuple and isinstance(value, list | tuple):
        return tuple(_from_json(name, v, args[0]) for v in value)
    if origin is dict and isinstance(value, dict):
        return {_from_json(name, _key(name, k, args[0]), args[0]): _from_json(name, v, args[1])
                for k, v in value.items()}
    if hint is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if hint in (int, str, bool) and type(value) is hint:
        return value
    raise UsageError(f"field {name} should be {_type_name(hint)}, got {value!r}")


def _key(name: str, key: str, hint: Any) -> Any:
    """A dictionary key as JSON wrote it (always a string) as ``hint``."""
    if hint is int:
        try:
            return int(key)
        except ValueError:
            raise UsageError(f"field {name} should have integer keys, got {key!r}") from None
    return key


def _type_name(hint: Any) -> str:
    origin = typing.get_origin(hint)
    names = {int: "an integer", float: "a number", str: "a string", bool: "true or false",
             tuple: "a list", dict: "an object"}
    return names.get(origin or hint, str(hint))
