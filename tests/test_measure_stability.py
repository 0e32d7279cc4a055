"""Confidence intervals of medians, adaptive rounds, alternating rounds, and the verdicts of
passt check on noisy numbers."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy.stats import quantile_test

from passt.measure.bench_file import Benchmark
from passt.measure.bench_record import BenchRecord
from passt.measure.regress import Thresholds, compare_benchmarks
from passt.measure.stability import median_ci, ratio_stability, replica_stability, stability
from passt.measure.timing import RoundPlan, Timing, time_rounds
from passt.utils.errors import UsageError


@pytest.mark.parametrize("n", [6, 7, 10, 21, 40, 101])
def test_median_interval_equals_scipys(n):
    x = np.random.default_rng(n).lognormal(size=n)
    ci = quantile_test(x, q=float(np.median(x)), p=0.5).confidence_interval(0.95)
    assert median_ci(list(x)) == (ci.low, ci.high)


def test_too_few_rounds_have_no_interval():
    assert median_ci([1.0, 2.0, 3.0, 4.0, 5.0]) is None
    s = stability([1.0, 2.0, 3.0])
    assert s.ci_low is None and s.half_width is None and not s.meets(0.5)


def test_stability_and_paired_ratios():
    s = stability([1.0, 1.0, 1.0, 1.0, 1.01, 0.99, 1.0, 1.0])
    assert s.median == 1.0 and s.meets(0.03) and s.iqr_over_median == pytest.approx(0.0)
    r = ratio_stability([2.0] * 8, [1.0] * 8)
    assert r.median == 2.0 and (r.ci_low, r.ci_high) == (2.0, 2.0)
    with pytest.raises(ValueError, match="differ in length"):
        ratio_stability([1.0], [1.0, 2.0])


def test_replicas_that_disagree_widen_the_interval():
    # three builds, each steady within itself, at 1.00, 1.03 and 1.06 s
    groups = [[1.00] * 10, [1.03] * 10, [1.06] * 10]
    s = replica_stability(groups)
    half = 4.302652729911275 * 0.03 / 3**0.5  # t(0.975, 2) * sd of medians / sqrt(3)
    assert s.median == pytest.approx(1.03) and s.rounds == 30
    assert (s.ci_low, s.ci_high) == (pytest.approx(1.03 - half), pytest.approx(1.03 + half))
    assert not s.meets(0.03)  # each build alone would look exact
    assert all(stability(g).meets(0.001) for g in groups)


def test_replicas_that_agree_keep_the_pooled_interval():
    rng = np.random.default_rng(0)
    groups = [list(1.0 + rng.normal(0, 0.01, 12)) for _ in range(3)]
    pooled = stability([t for g in groups for t in g])
    s = replica_stability(groups)
    assert s.ci_low <= pooled.ci_low and s.ci_high >= pooled.ci_high
    assert s.meets(0.03) and replica_stability([groups[0]]) == stability(groups[0])
    timing = Timing.of_replicas(groups, batch_size=2, warmup=0, target=0.03)
    assert timing.times_s[:3] == [groups[0][0], groups[1][0], groups[2][0]]  # round order
    assert timing.replica_medians_s == [float(np.median(g)) for g in groups]


class FakeStep:
    """A step that records the order it ran in and takes the next of its scripted times."""

    def __init__(self, name: str, log: list[str], durations):
        self.name, self.log, self.durations = name, log, iter(durations)
        self.device = "cpu"

    def __call__(self) -> None:
        self.log.append(self.name)


def test_rounds_alternate_and_stop_when_the_interval_is_tight(monkeypatch):
    log: list[str] = []
    a, b = FakeStep("A", log, []), FakeStep("B", log, [])
    clock = itertools.count(step=0.5)  # every step takes 0.5 s: the interval is tight at once
    monkeypatch.setattr("passt.measure.timing.time.perf_counter", lambda: next(clock))
    times = time_rounds([a, b], warmup=2, plan=RoundPlan(min_rounds=6, max_rounds=50))
    assert log[:4] == ["A", "A", "B", "B"]  # each warms up, then A B A B ...
    assert log[4:] == ["A", "B"] * 6 and [len(t) for t in times] == [6, 6]


def test_replicas_alternate_and_stop_on_their_pooled_interval(monkeypatch):
    log: list[str] = []
    copies = [FakeStep(name, log, []) for name in "ABC"]
    clock = itertools.count(step=0.5)
    monkeypatch.setattr("passt.measure.timing.time.perf_counter", lambda: next(clock))
    times = time_rounds(copies, warmup=1, plan=RoundPlan(min_rounds=6, max_rounds=50),
                        replicas=True)
    assert log == ["A", "B", "C"] + ["A", "B", "C"] * 6 and [len(t) for t in times] == [6] * 3


def test_noisy_rounds_go_on_to_the_cap_and_are_unstable(monkeypatch):
    noise = itertools.cycle([0.0, 1.0, 0.3, 2.0, 0.1, 0.7, 1.5])
    now = [0.0]

    def clock() -> float:
        now[0] += next(noise) + 0.1
        return now[0]

    monkeypatch.setattr("passt.measure.timing.time.perf_counter", clock)
    log: list[str] = []
    times = time_rounds([FakeStep("A", log, [])], warmup=0,
                        plan=RoundPlan(min_rounds=6, max_rounds=20))[0]
    assert len(times) == 20
    assert Timing.of(times, batch_size=2, warmup=0, target=0.03).unstable


def test_round_plan_refuses_bad_bounds():
    with pytest.raises(UsageError, match="min_rounds <= max_rounds"):
        RoundPlan(10, 5)


def bench(median: float, low: float | None, high: float | None) -> Benchmark:
    record = BenchRecord(variant="passt-s", kind="train", batch_size=2, clip_seconds=3.0,
                         dtype="fp32", attention="sdpa", compile=False, device="cpu",
                         median_step_s=median, median_ci_low_s=low, median_ci_high_s=high)
    return Benchmark("bench/test_passt.py::test_step[passt-s-train]", median, record)


@pytest.mark.parametrize("current, verdict, code", [
    (bench(1.01, 0.99, 1.03), "ok", 0),  # within the noise, which is narrow
    (bench(1.20, 1.16, 1.24), "regressed", 1),  # the ratio's interval is beyond 10%
    (bench(1.05, 0.90, 1.30), "inconclusive", 3),  # too noisy to rule out a 10% slowdown
    (bench(1.20, None, None), "regressed", 1),  # no interval: the median alone decides
])
def test_verdicts_follow_the_intervals(current, verdict, code):
    base = {"b": bench(1.0, 0.98, 1.02)}
    result = compare_benchmarks(base, {"b": current}, Thresholds(slowdown=0.10))
    assert result.verdict == verdict and result.exit_code == code


def test_the_ratio_interval_adds_the_two_in_quadrature():
    # nearest ends 1.14 / 1.05 = 1.086 would not show 10%; the ratio's interval does
    base, cur = bench(1.0, 0.95, 1.05), bench(1.20, 1.14, 1.26)
    result = compare_benchmarks({"b": base}, {"b": cur}, Thresholds(slowdown=0.10))
    (comparison,) = [c for c in result.comparisons if c.metric == "median_s"]
    down = np.hypot(np.log(1.20 / 1.14), np.log(1.05 / 1.0))
    up = np.hypot(np.log(1.26 / 1.20), np.log(1.0 / 0.95))
    assert comparison.ratio_interval == (pytest.approx(1.2 * np.exp(-down)),
                                         pytest.approx(1.2 * np.exp(up)))
    assert result.verdict == "regressed" and 1.2 * np.exp(-down) > 1.10


def test_dropped_and_new_benchmarks_are_listed():
    b = bench(1.0, 0.98, 1.02)
    result = compare_benchmarks({"old": b, "both": b}, {"both": b, "new": b})
    assert result.missing == ["old"] and result.added == ["new"]
