"""One step broken into components: time, FLOPs, achieved TFLOP/s and memory of each.

A step (frontend, model, loss, backward, optimizer; or frontend and model in inference) runs
eagerly under a `ComponentTracker` in separate passes: one counting FLOPs, one counting the
bytes saved for backward, and timed passes recording every op. The timed pass whose wall time
is the median is reported. Each op is charged with its own time and the host time since the
op before it (the Python and dispatch that issued it); what follows the last op until the step
returns is the ``other`` row, so the rows add up to the profiled step's time. The step timed
without any recorder is reported beside it: the difference is the profiler's overhead.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field

import torch

from passt.measure.step import Step
from passt.measure.timing import time_step
from passt.profiling.components import COMPONENTS, OPTIMIZER, OTHER
from passt.profiling.recorders import ComponentFlopCounter, OpEvent, OpRecorder, saved_bytes
from passt.profiling.tracker import ComponentTracker
from passt.utils.device import synchronize
from passt.utils.precision import backward_and_step

PHASES = ("forward", "backward", "optimizer", "step")  # "step": the host time between ops
# Above this, the recorders' own cost distorts the shares: the profile says so.
OVERHEAD_WARNING = 0.20


@dataclass(frozen=True)
class ComponentCost:
    """One row of a breakdown: a component in one phase of the step."""

    phase: str
    component: str
    ms: float
    pct_of_step: float
    gflops: float
    tflops_per_s: float | None  # None where no time was measured
    bytes: int  # saved for backward (CPU) or left allocated by its ops (CUDA)


@dataclass(frozen=True)
class StepProfile:
    """The breakdown of one step of one variant (or peer)."""

    name: str  # the variant, or "variant [peer]"
    kind: str  # "train" or "inference"
    device: str
    batch_size: int
    clip_seconds: float
    dtype: str
    step_ms: float  # the profiled step's wall time
    unprofiled_ms: float  # the same step, timed without recorders (median)
    bytes_measure: str  # what the bytes column counts
    rows: list[ComponentCost]
    events: list[OpEvent] = field(repr=False)

    @property
    def overhead(self) -> float:
        """The recorders' cost: how much longer the profiled step took than the unprofiled
        one, as a fraction of the unprofiled (0.55: 55% longer)."""
        return self.step_ms / self.unprofiled_ms - 1.0

    @property
    def total_gflops(self) -> float:
        return sum(r.gflops for r in self.rows)

    def share(self, component: str, of: str = "ms") -> float:
        """The fraction of the step's time (or ``of="gflops"``) spent in ``component``."""
        total = self.step_ms if of == "ms" else self.total_gflops
        return sum(getattr(r, of) for r in self.rows if r.component == component) / total


def run_traced(step: Step, tracker: ComponentTracker) -> None:
    """One step with the optimizer's work labelled (backward is attributed by its nodes)."""
    if step.optimizer is None:
        step.forward()
        return
    with tracker.label(OPTIMIZER):
        step.optimizer.zero_grad(set_to_none=True)
    loss = step.forward()
    with tracker.label(OPTIMIZER):
        backward_and_step(loss, step.optimizer, step.scaler)


def profile_step(step: Step, name: str | None = None, warmup: int = 2,
                 repeats: int = 3) -> StepProfile:
    """Break one eager step of ``step`` into components (see the module's docstring)."""
    if step.settings.compile:
        raise ValueError("the breakdown records eager ops; build the step with compile=False")
    device = step.device
    unprofiled = time_step(step, warmup=warmup, iters=repeats).median_s

    with ComponentTracker(step.model, step.frontend) as tracker, \
            ComponentFlopCounter(tracker) as flops:
        run_traced(step, tracker)
    if sum(flops.by_component.values()) != flops.get_total_flops():
        raise RuntimeError("component FLOPs do not add up to FlopCounterMode's total: this "
                           f"torch ({torch.__version__}) counts FLOPs differently")

    memory: Counter = Counter()
    if device.type != "cuda" and step.kind == "train":
        with ComponentTracker(step.model, step.frontend) as tracker, \
                saved_bytes(tracker, step.model) as memory:
            step.forward()  # forward only: what backward would need, nothing updated

    passes = []
    for _ in range(repeats):
        with ComponentTracker(step.model, step.frontend) as tracker:
            recorder = OpRecorder(tracker, device)
            synchronize(device)
            start = time.perf_counter()
            with recorder:
                run_traced(step, tracker)
            synchronize(device)
            passes.append((time.perf_counter() - start, recorder.events()))
    wall, events = sorted(passes, key=lambda p: p[0])[len(passes) // 2]
    if device.type == "cuda":
        memory = Counter()
        for e in events:
            if e.phase == "forward":
                memory[(e.phase, e.component)] += e.allocated_bytes

    # Each op is charged from the end of the op before it: its own time and the host time
    # (Python, dispatch) that issued it, so the components tile the step's timeline.
    seconds: Counter = Counter()
    previous_end = 0.0
    for e in sorted(events, key=lambda e: e.start_s):
        end = e.start_s + e.seconds
        seconds[(e.phase, e.component)] += max(0.0, end - previous_end)
        previous_end = max(previous_end, end)
    seconds[("step", OTHER)] = wall - sum(seconds.values())
    keys = sorted(set(seconds) | set(flops.by_component) | set(memory),
                  key=lambda k: (PHASES.index(k[0]), COMPONENTS.index(k[1])))
    rows = []
    for key in keys:
        ms, gflops = 1e3 * seconds[key], flops.by_component[key] / 1e9
        rows.append(ComponentCost(
            phase=key[0], component=key[1], ms=ms, pct_of_step=100 * seconds[key] / wall,
            gflops=gflops, tflops_per_s=gflops / ms if ms > 0 else None, bytes=memory[key]))
    s = step.settings
    return StepProfile(
        name=name or s.variant, kind=step.kind, device=str(device), batch_size=s.batch_size,
        clip_seconds=s.clip_seconds, dtype=s.dtype, step_ms=1e3 * wall,
        unprofiled_ms=1e3 * unprofiled,
        bytes_measure=("CUDA allocator bytes left by the forward ops" if device.type == "cuda"
                       else "bytes saved for backward"),
        rows=rows, events=events)
