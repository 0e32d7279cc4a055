"""passt.measure.suite and the compile bookkeeping on the CPU: OOM rows, compiled rows that
provably ran compiled, the memory fit's reuse of one compiled graph, per-dtype ceilings."""

from __future__ import annotations

import contextlib
import dataclasses
import sys

import pytest
import torch

from passt.measure import StepSettings, build_step, memory, memory_slope, time_step
from passt.measure.bench_record import BenchRecord
from passt.measure.compiled import compile_stats
from passt.measure.presets import get_preset
from passt.measure.record import settings_record
from passt.measure.step import make_forward
from passt.measure.suite import measure
from tests import helpers
from tests.helpers import FEW_PATCHES, step_settings

TINY = {**helpers.TINY, **FEW_PATCHES}
PLAN = dataclasses.replace(get_preset("cpu-small"), warmup=1, rounds=2, max_rounds=2)


def tiny(**kwargs) -> StepSettings:
    return step_settings(**{"model_overrides": TINY, **kwargs})


def cheap_profile(step) -> BenchRecord:
    """The fields timing needs, without the FLOPs and activation counts (tested elsewhere)."""
    return dataclasses.replace(settings_record(step.settings, step.kind), device_name="CPU",
                               step_gflops_per_sample=1.0, train_gflops_per_sample=1.0)


def oom_on_call(n: int):
    """A step builder whose steps run out of memory on their ``n``-th call."""

    def build(settings, kind):
        step = build_step(settings, kind)
        calls = iter(range(1, 10**6))
        forward = step.forward_fn

        def forward_or_oom(*args):
            if next(calls) == n:
                raise torch.OutOfMemoryError("CUDA out of memory (injected)")
            return forward(*args)

        step.forward_fn = forward_or_oom
        return step

    return build


@pytest.mark.slow
@pytest.mark.parametrize("call", [1, 3])  # in the warm-up, in the timed steps
def test_oom_during_timing_gives_an_oom_row_and_the_next_benchmark_runs(call):
    result = measure(tiny(), "train", PLAN, build=oom_on_call(call), profile=cheap_profile)
    assert result.record.oom is True and result.times_s == []
    assert result.record.variant == "passt-s" and result.record.batch_size == 2
    after = measure(tiny(), "train", PLAN, profile=cheap_profile)
    assert after.record.oom is False and len(after.times_s) == PLAN.rounds * PLAN.replicas


def test_other_errors_are_raised():
    def broken(settings, kind):
        raise RuntimeError("not an OOM")

    with pytest.raises(RuntimeError, match="not an OOM"):
        measure(tiny(), "train", PLAN, build=broken, profile=cheap_profile)


@pytest.mark.slow
def test_rows_use_the_ceiling_of_their_own_dtype():
    ceilings = {"fp32": 50.0, "bf16": 200.0}.get  # far above what a CPU step achieves
    for dtype in ("fp32", "bf16"):
        record = measure(tiny(dtype=dtype), "inference", PLAN, ceilings,
                         profile=cheap_profile).record
        assert record.matmul_ceiling_tflops == ceilings(dtype)
        assert record.mfu_of_ceiling == pytest.approx(
            record.achieved_tflops / ceilings(dtype))


@pytest.mark.slow
def test_compiled_rows_count_their_graphs_past_the_recompile_limit():
    # Every build compiles the same `forward` code object; without a fresh compiler per build,
    # the builds past dynamo's recompile limit (lowered to 2 here) would run eager.
    with torch._dynamo.config.patch(recompile_limit=2):
        for batch in (2, 3, 4):
            record = measure(tiny(compile=True, batch_size=batch), "inference", PLAN,
                             profile=cheap_profile).record
            assert record.compile_graphs >= 1 and record.compile_graph_breaks == 0


def model_compiled(settings, kind):
    """A step compiled as the peers are: the model alone, graph breaks allowed."""
    step = build_step(settings, kind)
    step.forward_fn = make_forward(step.model, step.frontend, kind, settings,
                                   compile_scope="model")
    return step


@pytest.mark.slow
def test_a_compiled_row_that_ran_eager_fails_loudly():
    assert measure(tiny(compile=True), "inference", PLAN, build=model_compiled,
                   profile=cheap_profile).record.compile_graphs == 1
    with torch._dynamo.config.patch(disable=True), \
            pytest.raises(RuntimeError, match="dynamo compiled no graph"):
        measure(tiny(compile=True), "inference", PLAN, build=model_compiled,
                profile=cheap_profile)


def test_eager_rows_have_no_compile_counts():
    record = measure(tiny(), "inference", PLAN, profile=cheap_profile).record
    assert record.compile_graphs is None


def run_the_step(step) -> int:
    """A peak reader for the CPU: runs the fit's steps as `peak_step_bytes` does."""
    for _ in range(memory.FIT_WARMUP + 1):
        step()
    return 1_000 * step.settings.batch_size


@pytest.mark.slow
@pytest.mark.parametrize("dynamic, recompiles", [(True, 0), (False, 2)])
def test_memory_fit_shares_one_compiled_step_across_batch_sizes(monkeypatch, dynamic,
                                                                recompiles):
    monkeypatch.setattr(memory, "_require_peak_support", lambda device, what: None)
    monkeypatch.setattr(memory, "peak_step_bytes", run_the_step)
    # (inductor adds guards on sizes, e.g. 527 * batch <= 4096 for the loss's reduction: small
    # batches stay on one side of it)
    step = build_step(tiny(compile=True, compile_dynamic_batch=dynamic, batch_size=4))
    model = step.model
    fit = memory_slope(step, batch_sizes=(2, 3, 4))
    assert fit.slope_bytes_per_sample == pytest.approx(1_000)
    assert step.model is model and step.inputs.shape[0] == 4
    stats = compile_stats()
    assert stats.recompiles == recompiles
    assert stats.graphs == 1 + recompiles


def test_recompile_limit_is_a_hard_failure():
    step = build_step(tiny(compile=True, compile_dynamic_batch=False), "inference")
    with torch._dynamo.config.patch(recompile_limit=1), pytest.raises(Exception,
                                                                      match="recompile"):
        for batch in (2, 3):
            step.resize(batch)
            step()


def test_energy_window_covers_the_timed_steps_only():
    step = build_step(tiny(), "inference")
    calls = []
    step_fn = step.forward_fn

    def counted(*args):
        calls.append(1)
        return step_fn(*args)

    step.forward_fn = counted
    window = {}

    @contextlib.contextmanager
    def meter():
        window["start"] = len(calls)
        yield
        window["end"] = len(calls)

    time_step(step, warmup=2, iters=3, during=meter())
    assert window == {"start": 2, "end": 5}


@pytest.mark.slow
def test_cpu_rows_are_not_metered_on_a_gpu(monkeypatch):
    # NVML present (a fake GPU 0 drawing power): a CPU benchmark must not report its energy
    from test_measure_telemetry import fake_nvml

    monkeypatch.setitem(sys.modules, "pynvml", fake_nvml(1_000_000))
    record = measure(tiny(), "inference", PLAN, profile=cheap_profile).record
    assert record.joules_per_sample is None and record.mean_power_w is None


def test_peak_reading_follows_warm_up_and_a_reset(monkeypatch):
    events = []
    step = build_step(tiny(), "inference")
    forward = step.forward_fn

    def counted(*args):
        events.append("step")
        return forward(*args)

    step.forward_fn = counted
    monkeypatch.setattr(memory, "_require_peak_support", lambda device, what: None)
    monkeypatch.setattr(torch.cuda, "reset_peak_memory_stats", lambda d: events.append("reset"))
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda d: 123)
    assert memory.peak_step_bytes(step) == 123
    # at least three warm-up steps: CUDA graph trees warm up, record, then replay
    assert memory.FIT_WARMUP >= 3
    assert events == ["step"] * memory.FIT_WARMUP + ["reset", "step"]


@pytest.mark.slow
def test_an_efficiency_above_the_ceiling_is_never_a_number():
    """A ceiling measured too low (a busy machine) would make the row claim more than 100%."""
    tiny_ceiling = {"fp32": 1e-9}.get
    record = measure(tiny(), "inference", PLAN, tiny_ceiling, profile=cheap_profile).record
    assert record.above_ceiling is True and record.mfu_of_ceiling is None
    assert any("x the matmul ceiling" in note for note in record.notes)
