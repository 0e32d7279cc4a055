"""The machine's own speed beside every row: the probe timed in the rounds, the run's drift
that makes rows unstable, and ``passt check`` on step times over probe times."""

from __future__ import annotations

import itertools
import math
from dataclasses import replace

import numpy as np
import pytest
import torch

from passt.measure.bench_file import Benchmark
from passt.measure.bench_record import BenchRecord
from passt.measure.machine_speed import (
    machine_drift,
    probe_factor,
    probed_half_width,
    speed_probe,
    with_machine_drift,
    with_probe,
    with_run_drift,
)
from passt.measure.regress import PROBED, Thresholds, compare_benchmarks, format_result
from passt.measure.stability import median_ci
from passt.measure.timing import RoundPlan, time_rounds

ROW = BenchRecord(variant="passt-s", kind="train", batch_size=2, clip_seconds=3.0, dtype="fp32",
                  attention="sdpa", compile=False, device="cpu")


class Logged:
    def __init__(self, name: str, log: list[str], tries: int = 3):
        self.name, self.log, self.device, self.tries = name, log, "cpu", tries

    def __call__(self) -> None:
        self.log.append(self.name)


def test_the_probe_is_timed_after_the_steps_of_each_round(monkeypatch):
    log: list[str] = []
    steps = [Logged("A", log), Logged("B", log)]
    clock = itertools.count(step=0.5)
    monkeypatch.setattr("passt.measure.timing.time.perf_counter", lambda: next(clock))
    *times, probe = time_rounds(steps, warmup=1, plan=RoundPlan(6, 50),
                                probe=Logged("P", log))
    assert log == ["A", "B"] + ["A", "B", "P", "P", "P"] * 6  # the probe is not warmed up
    assert [len(t) for t in times] == [6, 6] and len(probe) == 6


def test_a_round_keeps_the_probes_fastest_try_and_the_steps_decide_the_end(monkeypatch):
    """Each call moves the clock by its scripted seconds. A probe far noisier than the steps
    does not prolong the rounds, and a round keeps its fastest try."""
    now = [0.0]

    class Scripted:
        def __init__(self, durations, tries=1):
            self.durations, self.device, self.tries = itertools.cycle(durations), "cpu", tries

        def __call__(self) -> None:
            now[0] += next(self.durations)

    monkeypatch.setattr("passt.measure.timing.time.perf_counter", lambda: now[0])
    *_, probe = time_rounds([Scripted([0.5]), Scripted([0.5])], 0, RoundPlan(6, 50),
                            probe=Scripted([0.04, 0.025, 0.06], tries=3))
    assert probe == [pytest.approx(0.025)] * 6


def test_the_probe_is_the_same_work_on_every_run():
    a, b = speed_probe("cpu"), speed_probe(torch.device("cpu"))
    assert torch.equal(a.a, b.a) and torch.equal(a.b, b.b) and a.repeats == b.repeats
    a()  # runs


def test_with_probe_records_the_median_and_its_interval():
    times = [0.021, 0.025, 0.022, 0.030, 0.024, 0.023, 0.026, 0.022]
    record = with_probe(ROW, times)
    assert record.probe_median_s == pytest.approx(float(np.median(times)))
    assert (record.probe_ci_low_s, record.probe_ci_high_s) == median_ci(times)


def probed(median: float, half: float, probe: float) -> BenchRecord:
    return replace(ROW, median_step_s=median, median_ci_low_s=median * (1 - half),
                   median_ci_high_s=median * (1 + half), ci_half_width=half, unstable=False,
                   probe_median_s=probe, probe_ci_low_s=probe * 0.99,
                   probe_ci_high_s=probe * 1.01, round_plan={"ci_target": 0.03})


def test_the_run_drift_is_the_largest_deviation_of_a_probe():
    rows = [probed(1.0, 0.01, p) for p in (0.025, 0.024, 0.027, 0.025)]
    assert machine_drift(rows) == pytest.approx(math.log(0.027 / 0.025))
    assert machine_drift(rows[:1]) is None and machine_drift([ROW, ROW]) is None


def test_rows_are_judged_on_their_probe_normalised_interval_and_drift_is_information():
    """A run whose machine drifted 8% over minutes: rows precise over their own probes are
    stable (a run-wide flag on every row would tell nothing); a row whose step over probe is
    known within +-5% only is unstable."""
    drifting = with_run_drift([probed(1.0, 0.01, p) for p in (0.025, 0.023, 0.027)])
    assert not any(r.unstable for r in drifting)
    assert drifting[0].machine_drift == pytest.approx(math.log(0.025 / 0.023))
    wide = with_run_drift([probed(1.0, 0.05, p) for p in (0.0250, 0.0252, 0.0249)])
    assert all(r.unstable for r in wide)
    half = math.exp(math.hypot(math.log(1 / 0.95), math.log(1.01))) - 1
    assert f"known within +-{half:.1%} only, beyond the target +-3%" in wide[0].notes[-1]
    assert probed_half_width(wide[0]) == pytest.approx(half)
    # no target (a row without a plan) or no probe: the drift is recorded, nothing judged
    assert with_machine_drift(probed(1.0, 0.05, 0.025), 0.2, None).unstable is False
    assert with_machine_drift(ROW, 0.2, 0.03).machine_drift == 0.2


def test_the_probe_factor_is_the_rows_probe_over_the_runs_median():
    run = [probed(1.0, 0.01, p) for p in (0.025, 0.020, 0.030)]
    assert [probe_factor(r, run) for r in run] == pytest.approx([1.0, 0.8, 1.2])
    assert probe_factor(ROW, run) == 1.0


def bench(record: BenchRecord) -> Benchmark:
    return Benchmark("bench/test_passt.py::test_step[passt-s-train]", record.median_step_s,
                     record)


def test_check_takes_the_machines_speed_out():
    base = bench(probed(1.00, 0.02, 0.025))
    # the whole machine ran 12% slower: the step too, but not the step over the probe
    slower_machine = bench(probed(1.12, 0.02, 0.028))
    result = compare_benchmarks({"b": base}, {"b": slower_machine}, Thresholds(slowdown=0.05))
    (c,) = [c for c in result.comparisons if c.metric == PROBED]
    assert c.baseline.value == pytest.approx(1.0 / 0.025)
    assert c.change == pytest.approx(1.12 / 0.028 * 0.025 - 1)
    assert result.verdict == "ok"
    # the step 15% slower on a machine of the same speed: shown beyond 10%
    slower_step = bench(probed(1.15, 0.015, 0.025))
    assert compare_benchmarks({"b": base}, {"b": slower_step}).verdict == "regressed"
    # the interval of step over probe holds both intervals, in quadrature on a log scale
    low = 1.0 / 0.025 * math.exp(-math.hypot(-math.log(0.98), math.log(1.01)))
    assert c.baseline.low == pytest.approx(low)


def test_other_software_compares_raw_step_times():
    base, cur = bench(probed(1.0, 0.02, 0.025)), bench(probed(1.12, 0.02, 0.028))
    result = compare_benchmarks({"b": base}, {"b": cur}, Thresholds(slowdown=0.05),
                                warnings=["different torch: 2.11 vs 2.14"])
    assert {c.metric for c in result.comparisons} == {"median_s"}
    assert result.verdict == "regressed"  # a matmul that got slower is not taken out


def test_a_row_timed_on_a_busy_machine_cannot_show_no_regression():
    base = bench(probed(1.0, 0.02, 0.025))
    busy = bench(replace(probed(1.0, 0.02, 0.025), foreign_cpu_fraction=0.09))
    result = compare_benchmarks({"b": base}, {"b": busy})
    (c,) = [c for c in result.comparisons if c.metric == PROBED]
    assert c.status == "inconclusive" and result.exit_code == 3
    assert "busy: b was timed while other processes took the CPUs" in format_result(result)
    slower = bench(replace(probed(1.3, 0.02, 0.025), foreign_cpu_fraction=0.09))
    assert compare_benchmarks({"b": base}, {"b": slower}).verdict == "regressed"
