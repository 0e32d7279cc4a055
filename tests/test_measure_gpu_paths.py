"""The GPU paths of a benchmark, proved on the CPU with stand-ins for what only a GPU has (NVML,
the allocator's peak, device memory): energy metered in a window of its own, the out-of-memory
short-cut and its stages, the official code at the largest batch that fits, CUDA-graph peak
memory, clocks instead of the probe's drift, and one compiled graph for a compiled peer."""

from __future__ import annotations

import dataclasses
import functools
import sys
import time

import pytest
import torch
from test_measure_suite import PLAN, cheap_profile, tiny
from test_measure_telemetry import fake_nvml

from passt.measure import memory, suite
from passt.measure.bench_record import BenchRecord
from passt.measure.compiled import compile_stats
from passt.measure.energy import meter_energy
from passt.measure.machine_speed import with_machine_drift
from passt.measure.memory import MemoryFit, MemoryPoint, largest_fitting_batch
from passt.measure.record import with_gpu_clocks
from passt.measure.step import build_step
from passt.measure.telemetry import GpuMonitor


class Counting:
    """A step's calls and the probe's, counted, to see which ran inside a metered window."""

    def __init__(self):
        self.steps = 0
        self.probes = 0

    def step_builder(self, settings, kind):
        step = build_step(settings, kind)
        forward = step.forward_fn

        def counted(*args):
            self.steps += 1
            return forward(*args)

        step.forward_fn = counted
        return step

    def probe(self, device):
        return _Probe(suite_speed_probe(device), self)


class _Probe:
    """The real probe, its calls counted."""

    def __init__(self, inner, counts: Counting):
        self.device, self.tries = inner.device, inner.tries
        self._inner, self._counts = inner, counts

    def __call__(self):
        self._counts.probes += 1
        self._inner()


suite_speed_probe = suite.speed_probe


@pytest.fixture
def fake_gpu_row(monkeypatch):
    """Rows measured as on a GPU: NVML's stand-in answers, clocks are sampled, energy metered."""
    monkeypatch.setattr(suite, "_on_gpu", lambda device: True)
    monkeypatch.setattr(suite, "_gpu_index", lambda device: 0)
    nvml = fake_nvml(1_000_000)
    nvml.nvmlDeviceGetClockInfo = lambda handle, clock: 1980
    monkeypatch.setitem(sys.modules, "pynvml", nvml)
    counts = Counting()
    reads = []  # (step calls, probe calls) at each read of the energy counter
    energy = nvml.nvmlDeviceGetTotalEnergyConsumption

    def read(handle):
        reads.append((counts.steps, counts.probes))
        return energy(handle)

    nvml.nvmlDeviceGetTotalEnergyConsumption = read
    monkeypatch.setattr(suite, "speed_probe", counts.probe)
    return counts, reads


@pytest.mark.slow
@pytest.mark.parametrize("compared", [False, True])  # our row; a peer's or an ablation's
def test_energy_is_metered_on_its_own_after_timing_without_the_probe(fake_gpu_row, compared):
    counts, reads = fake_gpu_row
    settings = tiny()
    record = suite.measure(settings, "inference", PLAN, build=counts.step_builder,
                           profile=cheap_profile,
                           reference=settings if compared else None).record
    # the counter is read around the timed rounds (clocks) and around the energy window
    (timed_start, timed_end), (start, end) = reads[-4:-2], reads[-2:]
    assert timed_end[1] > timed_start[1]  # the probe ran while timed ...
    assert end[1] == start[1]  # ... and never while metered
    steps = end[0] - start[0]
    assert steps == record.energy_steps >= 20
    assert record.energy_window_s >= 2.0
    # the fake counter gains 50 J between reads: all of it is this window's
    assert record.joules_per_sample == pytest.approx(50 / (steps * settings.batch_size))
    assert record.sm_clock_min_mhz == record.sm_clock_max_mhz == 1980
    assert not any("energy not metered" in n for n in record.notes)


def test_meter_energy_runs_steps_back_to_back_for_its_minimum():
    calls = []

    class Step:
        device = torch.device("cpu")
        settings = tiny(batch_size=3)

        def __call__(self):
            calls.append(time.perf_counter())

    window = {}

    class Monitor:
        seconds = joules = mean_power_w = mean_util_pct = throttle_reasons = None

        def __enter__(self):
            window["start"] = len(calls)
            return self

        def __exit__(self, *exc):
            window["end"] = len(calls)

    reading = meter_energy(Step(), Monitor, min_seconds=0.05, min_steps=5)
    assert window == {"start": 0, "end": len(calls)} and len(calls) >= 5
    assert calls[-1] - calls[0] >= 0.04 and reading.samples == 3 * len(calls)
    assert meter_energy(Step(), Monitor, min_seconds=0.0, min_steps=7).steps == 7


def fit_with_oom_at(limit: int):
    """`peak_step_bytes` of a GPU on which batches of ``limit`` and more do not fit."""

    def peak(step, warmup=memory.FIT_WARMUP):
        step()
        if step.settings.batch_size >= limit:
            raise torch.OutOfMemoryError("CUDA out of memory (injected)")
        return 1_000_000 + 1_000 * step.settings.batch_size

    return peak


@pytest.fixture
def fake_allocator(monkeypatch):
    monkeypatch.setattr(suite, "peak_memory_available", lambda device: True)
    monkeypatch.setattr(memory, "_require_peak_support", lambda device, what: None)
    monkeypatch.setattr(suite, "_capacity", lambda device: 1_375_000)  # batch 100 at 80%


@pytest.mark.slow
def test_a_timed_batch_that_does_not_fit_is_an_oom_row_at_once(fake_allocator, monkeypatch):
    monkeypatch.setattr(memory, "peak_step_bytes", fit_with_oom_at(4))
    builds = []

    def build(settings, kind):
        builds.append(settings.batch_size)
        return build_step(settings, kind)

    plan = dataclasses.replace(PLAN, memory_batch_sizes=(2, 3, 4))
    record = suite.measure(tiny(batch_size=4), "train", plan, build=build,
                           profile=cheap_profile).record
    assert record.oom is True and record.oom_stage == "memory-fit"
    assert record.peak_memory_points == {2: 1_002_000, 3: 1_003_000, 4: None}
    assert record.oom_batch_sizes == (4,) and record.median_step_s is None
    assert builds == [4]  # built (and compiled) once: nothing more ran after the fit


@pytest.mark.slow
def test_the_official_code_as_released_runs_at_the_largest_batch_that_fits(fake_allocator,
                                                                           monkeypatch):
    monkeypatch.setattr(memory, "peak_step_bytes", fit_with_oom_at(200))
    plan = dataclasses.replace(PLAN, memory_batch_sizes=(2, 3, 200))
    result = suite.measure(tiny(batch_size=200), "train", plan, profile=cheap_profile,
                           shrink_to_fit=True)
    record = result.record
    # line: 1 MB + 1 kB per sample; 80% of 1.375 MB leaves room for batch 100
    assert record.oom is False and record.batch_size == 100
    assert record.requested_batch_size == 200 and record.step_settings["batch_size"] == 100
    assert any("the largest that fits: batch 200 ran out of memory" in n for n in record.notes)
    assert record.samples_per_s == pytest.approx(100 / record.median_step_s)


def test_largest_fitting_batch():
    points = [MemoryPoint(16, 10_000, False), MemoryPoint(32, 18_000, False),
              MemoryPoint(64, None, True)]
    fit = MemoryFit(points, 500.0, 2_000.0)
    assert largest_fitting_batch(fit, 64, 40_000) == 60  # (0.8 * 40000 - 2000) / 500
    assert largest_fitting_batch(fit, 64, 20_000) == 32  # never under a batch that ran
    assert largest_fitting_batch(MemoryFit(points[2:], None, None), 64, 10**9) is None


@pytest.mark.slow
def test_an_oom_beside_our_step_times_the_row_alone(monkeypatch):
    def ours_does_not_fit(settings, kind, fresh_compiler=True):
        raise torch.OutOfMemoryError("CUDA out of memory (injected)")

    monkeypatch.setattr(suite, "build_step", ours_does_not_fit)
    record = suite.measure(tiny(), "train", PLAN, build=build_step, profile=cheap_profile,
                           reference=tiny()).record
    assert record.oom is False and record.oom_stage == "alternating"
    assert record.median_step_s > 0 and record.speedup_vs_ours is None
    assert any("timed alone" in n for n in record.notes)


def test_a_speedup_compares_per_sample_times_across_batch_sizes():
    from passt.measure.record import with_comparison

    row = BenchRecord(variant="passt-s", kind="train", batch_size=32, clip_seconds=10.0,
                      dtype="fp16", attention="math", compile=False, device="cuda:0")
    # ours: 64 samples in 1 s; theirs: 32 samples in 1 s -> ours is twice as fast per sample
    compared = with_comparison(row, [1.0] * 6, [1.0] * 6, ours_batch=64, theirs_batch=32)
    assert compared.speedup_vs_ours == pytest.approx(0.5)


class GraphStep:
    """A step whose first two calls allocate (warm-up, CUDA-graph recording) and whose replays
    allocate nothing the allocator sees."""

    def __init__(self, compile_mode):
        self.settings = tiny(compile=compile_mode is not None, compile_mode=compile_mode)
        self.device = torch.device("cpu")
        self.calls = 0
        self.peak = 0

    def __call__(self):
        self.calls += 1
        if self.calls <= 2:
            self.peak = max(self.peak, 5_000 * self.calls)


@pytest.mark.parametrize("mode, expected", [("reduce-overhead", 10_000), (None, 0)])
def test_cuda_graph_peaks_are_read_over_warm_up_and_recording(monkeypatch, mode, expected):
    step = GraphStep(mode)
    monkeypatch.setattr(memory, "_require_peak_support", lambda device, what: None)

    def reset(device):
        step.peak = 0

    monkeypatch.setattr(torch.cuda, "reset_peak_memory_stats", reset)
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda device: step.peak)
    # a replay is invisible: reading after warm-up only would give 0 for a graph step
    assert memory.peak_step_bytes(step) == expected


def gpu_row(**fields) -> BenchRecord:
    return BenchRecord(variant="passt-s", kind="train", batch_size=64, clip_seconds=10.0,
                       dtype="bf16", attention="sdpa", compile=True, device="cuda:0",
                       ci_half_width=0.01, unstable=False, **fields)


def test_on_a_gpu_the_probe_is_information_only():
    """A GPU row whose step over its probe is known within +-10% only is not judged by the
    probe (its own clocks judge it); the same row on a CPU is unstable."""
    wide = gpu_row(median_step_s=1.0, median_ci_low_s=0.9, median_ci_high_s=1.1,
                   probe_median_s=0.01, probe_ci_low_s=0.0099, probe_ci_high_s=0.0101)
    assert with_machine_drift(wide, 0.08, 0.03).unstable is False
    assert with_machine_drift(wide, 0.08, 0.03).machine_drift == 0.08
    cpu = dataclasses.replace(wide, device="cpu")
    assert with_machine_drift(cpu, 0.08, 0.03).unstable is True


def monitor(clocks, reasons=()):
    m = GpuMonitor()
    m.available, m.sm_clock_mhz, m.throttle_reasons = True, clocks, reasons
    m.sampled_power_w = 600.0
    return m


@pytest.mark.parametrize("clocks, reasons, unstable", [
    ((1950, 1980, 1980.0), (), False),  # 1.5% of clock movement: within 3%
    ((1755, 1980, 1980.0), (), True),  # the clock dropped 11%
    ((1980, 1980, 1980.0), ("sw_power_cap",), False),  # capped, but the clock held
    ((1980, 1980, 1980.0), ("hw_thermal",), True),
])
def test_a_gpu_row_is_unstable_by_its_clocks_and_throttling(clocks, reasons, unstable):
    record = with_gpu_clocks(gpu_row(), monitor(clocks, reasons), 0.03)
    assert record.unstable is unstable
    assert record.sm_clock_min_mhz == clocks[0] and record.timed_power_w == 600.0
    assert record.gpu_throttle_reasons == reasons


def aot_eager(monkeypatch):
    """torch.compile with the aot_eager backend: dynamo and AOT autograd without inductor's
    code generation, so compile counts are quick to see on the CPU."""
    monkeypatch.setattr(torch, "compile", functools.partial(torch.compile, backend="aot_eager"))


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:stft with return_complex=False:UserWarning")
@pytest.mark.filterwarnings("ignore:.*torch.cuda.amp.autocast:FutureWarning")
@pytest.mark.parametrize("dynamic, graphs, recompiles", [(True, 1, 0), (False, 4, 3)])
def test_a_compiled_peer_shares_one_graph_across_the_fit_and_the_timed_batch(
        monkeypatch, dynamic, graphs, recompiles):
    pytest.importorskip("hear21passt")
    from passt.measure.peers import build_peer_step

    aot_eager(monkeypatch)
    settings = tiny(compile=True, compile_dynamic_batch=dynamic, batch_size=5)
    step = build_peer_step("official-sdpa", settings)
    for batch in (2, 3, 4, 5):  # the memory fit's sizes, then the timed batch
        step.resize(batch)
        step()
        step()
    stats = compile_stats()
    assert (stats.graphs, stats.recompiles) == (graphs, recompiles)
