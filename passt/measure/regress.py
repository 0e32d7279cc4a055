"""Regression check between two pytest-benchmark JSON files: speed, memory and FLOPs, with an
honest verdict on noisy machines.

pytest-benchmark's ``--benchmark-compare-fail`` checks time statistics only; the memory and
FLOPs of each benchmark's `BenchRecord` (its ``extra_info``) are checked here. Speed compares
the medians through the interval of their ratio (the two runs' 95% intervals combined in
quadrature on a log scale, as for independent estimates): a slowdown is a regression only when
the whole interval lies beyond the limit; when the interval reaches beyond it, but not wholly,
the row is inconclusive. Between runs on the same device and software, each step time is first
divided by its row's probe time (`passt.measure.machine_speed`: a fixed matmul timed beside
it), which takes drift of the machine's own speed out; a row timed while other processes took
the CPUs (`passt.measure.foreign_cpu`) can show a regression, never the absence of one.

Where both rows carry instruction counts at the same size (``--bench-instructions``,
`passt.measure.instructions`), the instructions decide instead of the time: they hardly move
on a busy machine, so such a row is never inconclusive; its time comparison is shown beside as
information (it decides again with ``time_verdict``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

from passt.measure.bench_file import Benchmark, load_bench_file
from passt.measure.bench_record import BenchRecord, checked_fields
from passt.measure.environment import compare_environments, environment_from_machine_info
from passt.measure.foreign_cpu import too_busy
from passt.measure.machine_speed import probe_normalized
from passt.utils.errors import UsageError
from passt.utils.tables import markdown_table

Status = Literal["ok", "inconclusive", "regressed"]
EXIT_CODES = {"ok": 0, "regressed": 1, "inconclusive": 3}


@dataclass(frozen=True)
class Thresholds:
    """Largest accepted relative growth of each kind of metric (0.02 = 2%)."""

    memory: float = 0.02
    flops: float = 0.0
    slowdown: float = 0.10
    instructions: float = 0.02


@dataclass(frozen=True)
class Value:
    """A metric of one benchmark: its value and the interval it is known within (a point for
    deterministic counts, and for step times of rows without an interval)."""

    value: float
    low: float
    high: float

    @classmethod
    def point(cls, value: float) -> Value:
        return cls(value, value, value)


@dataclass(frozen=True)
class Comparison:
    """One metric of one benchmark in both files."""

    benchmark: str
    metric: str
    baseline: Value
    current: Value
    limit: float
    trusted: bool = True  # False: a row was timed on a busy machine, so "ok" is not shown
    decides: bool = True  # False: shown as information (a time beside instruction counts)

    @property
    def change(self) -> float:
        b = self.baseline.value
        return self.current.value / b - 1.0 if b else 0.0

    @property
    def ratio_interval(self) -> tuple[float, float]:
        """The interval of current over baseline: the log-scale half-widths of the two
        intervals added in quadrature, each on the side that moves the ratio."""
        b, c = self.baseline, self.current
        r = math.log(c.value / b.value)
        down = math.hypot(math.log(c.value / c.low), math.log(b.high / b.value))
        up = math.hypot(math.log(c.high / c.value), math.log(b.value / b.low))
        return math.exp(r - down), math.exp(r + up)

    @property
    def status(self) -> Status:
        """``regressed`` when the whole interval of the ratio is beyond the limit;
        ``inconclusive`` when its upper end is."""
        b, c = self.baseline, self.current
        if min(b.value, b.low, c.value, c.low) <= 0:
            return "ok"  # nothing to compare (a count of zero)
        if b == c and self.trusted:
            return "ok"  # no change at all: the limit cannot be crossed
        low, high = self.ratio_interval
        if low - 1.0 > self.limit + 1e-9:
            return "regressed"
        if high - 1.0 > self.limit + 1e-9 or not self.trusted:
            return "inconclusive"
        return "ok"


@dataclass(frozen=True)
class CheckResult:
    comparisons: list[Comparison]
    missing: list[str]  # in the baseline, not in the current run
    added: list[str]  # in the current run only
    new_oom: list[str]  # ran in the baseline, out of memory now
    warnings: list[str]  # the two runs' machines or software differ

    def with_status(self, status: Status) -> list[Comparison]:
        """The comparisons that decide the verdict and have ``status``."""
        return [c for c in self.comparisons if c.decides and c.status == status]

    @property
    def regressions(self) -> list[Comparison]:
        return self.with_status("regressed")

    @property
    def verdict(self) -> Status:
        if self.regressions or self.new_oom:
            return "regressed"
        return "inconclusive" if self.with_status("inconclusive") else "ok"

    @property
    def ok(self) -> bool:
        return self.verdict == "ok"

    @property
    def exit_code(self) -> int:
        """0: no regression; 1: a regression; 3: none shown, but noise wider than a limit."""
        return EXIT_CODES[self.verdict]


def parse_percent(text: str | float) -> float:
    """``"2%"`` -> 0.02; ``"0.02"`` -> 0.02. Negative limits are refused."""
    raw = str(text).strip()
    try:
        value = float(raw[:-1]) / 100 if raw.endswith("%") else float(raw)
    except ValueError:
        raise UsageError(f"not a percentage: {text!r}; accepted: e.g. '2%' or '0.02'") from None
    if value < 0:
        raise UsageError(f"a growth limit cannot be negative, got {text!r}")
    return value


def step_time(bench: Benchmark) -> Value | None:
    """The median step time and its interval (the row's, else the median alone)."""
    if bench.median_s is None:
        return None
    r = bench.record
    if r.median_ci_low_s is None or r.median_ci_high_s is None:
        return Value.point(bench.median_s)
    return Value(bench.median_s, r.median_ci_low_s, r.median_ci_high_s)


def probed_step_time(bench: Benchmark) -> Value | None:
    """The step time over its row's probe time, with its interval (None: no probe)."""
    time = step_time(bench)
    if time is None:
        return None
    normalized = probe_normalized(time.value, time.low, time.high, bench.record)
    return None if normalized is None else Value(*normalized)


PROBED = "median_s/probe"  # the metric name of a probe-normalized step time
TIME_METRICS = ("median_s", PROBED)
# instruction_settings keys that do not change what one step executes
_COUNTING_ONLY = ("repeats", "warmup")


def counted_alike(a: BenchRecord, b: BenchRecord) -> bool:
    """Whether both rows hold instruction counts of steps of the same size."""
    if a.instructions is None or b.instructions is None:
        return False
    size = [{k: v for k, v in (r.instructions_settings or {}).items() if k not in _COUNTING_ONLY}
            for r in (a, b)]
    return size[0] == size[1]


def _metrics(bench: Benchmark, limits: Thresholds, probed: bool, counted: bool
             ) -> dict[str, tuple[Value, float]]:
    """``metric -> (value, limit)`` for the numbers present in one benchmark; with ``probed``
    its step time over its probe time; with ``counted`` its instructions."""
    if bench.record.oom:  # its timing is a placeholder
        return {}
    out: dict[str, tuple[Value, float]] = {}
    time = probed_step_time(bench) if probed else step_time(bench)
    if time is not None:
        out[PROBED if probed else "median_s"] = (time, limits.slowdown)
    if counted:
        out["instructions"] = (Value.point(bench.record.instructions), limits.instructions)
    for name, limit in checked_fields().items():
        value = getattr(bench.record, name)
        if value is not None:
            out[name] = (Value.point(float(value)), getattr(limits, limit))
    return out


def _busy(bench: Benchmark) -> bool:
    return too_busy(bench.record.foreign_cpu_fraction)


def compare_benchmarks(base: Mapping[str, Benchmark], cur: Mapping[str, Benchmark],
                       limits: Thresholds = Thresholds(),
                       warnings: list[str] | None = None,
                       time_verdict: bool = False) -> CheckResult:
    """Match benchmarks by name and compare every metric both hold; step times over their
    probes' when both rows have one and ``warnings`` (of different devices or software) are
    none. Where both rows hold instruction counts of the same size, the time is information
    only, unless ``time_verdict``."""
    comparisons = []
    for name in base.keys() & cur.keys():
        probed = not warnings and all(probed_step_time(x[name]) is not None
                                      for x in (base, cur))
        counted = counted_alike(base[name].record, cur[name].record)
        base_metrics = _metrics(base[name], limits, probed, counted)
        cur_metrics = _metrics(cur[name], limits, probed, counted)
        # the same measurement in both (a file against itself) is trusted, busy or not
        trusted = base[name] == cur[name] or not (_busy(base[name]) or _busy(cur[name]))
        for metric in base_metrics.keys() & cur_metrics.keys():
            (b, limit), (c, _) = base_metrics[metric], cur_metrics[metric]
            timed = metric in TIME_METRICS
            comparisons.append(Comparison(name, metric, b, c, limit,
                                          trusted=trusted or not timed,
                                          decides=not (timed and counted and not time_verdict)))
    comparisons.sort(key=lambda c: (c.benchmark, c.metric))
    new_oom = sorted(n for n in base.keys() & cur.keys()
                     if cur[n].record.oom and not base[n].record.oom)
    return CheckResult(comparisons, sorted(base.keys() - cur.keys()),
                       sorted(cur.keys() - base.keys()), new_oom, warnings or [])


def compare(baseline: str | Path, current: str | Path, limits: Thresholds = Thresholds(),
            rerun: Callable[[BenchRecord], tuple[BenchRecord, list[float]]] | None = None,
            time_verdict: bool = False) -> CheckResult:
    """Compare two files; with ``rerun`` (a measurer of a row, e.g.
    `passt.measure.rerun.remeasure`), the current run's inconclusive rows are measured once
    more and compared again; ``time_verdict``: see `compare_benchmarks`."""
    base, cur = load_bench_file(baseline), load_bench_file(current)
    warnings = compare_environments(environment_from_machine_info(base.machine_info),
                                    environment_from_machine_info(cur.machine_info))
    result = compare_benchmarks(base.benchmarks, cur.benchmarks, limits, warnings,
                                time_verdict)
    if rerun is None or not result.with_status("inconclusive"):
        return result
    again = dict(cur.benchmarks)
    for name in sorted({c.benchmark for c in result.with_status("inconclusive")}):
        record, times = rerun(cur.benchmarks[name].record)
        median = record.median_step_s if not record.oom else None
        again[name] = replace(cur.benchmarks[name], median_s=median, record=record)
    return compare_benchmarks(base.benchmarks, again, limits,
                              [*warnings, "inconclusive rows were measured again (--rerun)"],
                              time_verdict)


def _short(name: str) -> str:
    """A benchmark's name without its file (``test_step[passt-s-train]``)."""
    return name.rsplit("::", 1)[-1]


COLUMNS = ("benchmark", "metric", "baseline", "current", "change", "limit", "status")


def _status(c: Comparison) -> str:
    status = c.status.upper() if c.status != "ok" else "ok"
    return status if c.decides else f"info: {status}"


def result_rows(result: CheckResult, only_regressions: bool = False) -> list[tuple[str, ...]]:
    """The comparisons as cells of `COLUMNS` (with ``only_regressions``, those that decide
    and are not ok)."""
    shown = ([c for c in result.comparisons if c.decides and c.status != "ok"]
             if only_regressions else result.comparisons)
    return [(_short(c.benchmark), c.metric, _interval(c.baseline), _interval(c.current),
             f"{c.change:+.2%}", f"{c.limit:.1%}", _status(c)) for c in shown]


def _notes(result: CheckResult) -> list[str]:
    """The lines under the table: one-sided benchmarks, busy rows, what metrics mean,
    warnings and the verdict."""
    lines = []
    for title, names in (("REGRESSED, out of memory now", result.new_oom),
                         ("missing from the current run", result.missing),
                         ("new in the current run", result.added)):
        lines += [f"{title}: {n}" for n in names]
    lines += [f"busy: {_short(c.benchmark)} was timed while other processes took the CPUs: "
              "it can show a regression, not the absence of one"
              for c in result.comparisons if not c.trusted and c.decides]
    metrics = {c.metric for c in result.comparisons}
    if PROBED in metrics:
        lines.append(f"{PROBED}: step times over the probe's (a fixed matmul timed beside "
                     "each row), which takes the machine's own speed out")
    if any(not c.decides for c in result.comparisons):
        lines.append("info: a time beside instruction counts, which decide for that row "
                     "(--time-verdict: the time decides too)")
    lines += [f"warning: {w}" for w in result.warnings]
    n = len([c for c in result.comparisons if c.decides])
    info = len(result.comparisons) - n
    shown = f" ({info} more shown as information)" if info else ""
    lines.append({
        "regressed": f"{len(result.regressions) + len(result.new_oom)} regression(s) in {n} "
                     f"comparisons{shown}",
        "inconclusive": f"no regression shown in {n} comparisons{shown}, but "
                        f"{len(result.with_status('inconclusive'))} inconclusive: the noise is "
                        "wider than the limit, or a row was timed on a busy machine (measure "
                        "again, on a quieter machine, with --rerun, or count instructions "
                        "with --bench-instructions)",
        "ok": f"no regression in {n} comparisons{shown}",
    }[result.verdict])
    return lines


def format_result(result: CheckResult, only_regressions: bool = False) -> str:
    """A plain-text table of the comparisons, then the benchmarks found in one file only, the
    warnings and the verdict."""
    widths = (44, 30, 22, 22, 8, 7, 0)
    lines = [" ".join(f"{c:<{w}}" if i < 2 else f"{c:>{w}}" if w else c
                      for i, (c, w) in enumerate(zip(COLUMNS, widths, strict=True)))]
    for row in result_rows(result, only_regressions):
        lines.append(" ".join(f"{c[:w]:<{w}}" if i < 2 else f"{c:>{w}}" if w else c
                              for i, (c, w) in enumerate(zip(row, widths, strict=True))))
    return "\n".join([*lines, *_notes(result)])


def format_markdown(result: CheckResult, only_regressions: bool = False) -> str:
    """The same as markdown (e.g. for a CI job summary): the verdict, the table, the notes."""
    notes = _notes(result)
    return (f"**passt check: {notes[-1]}**\n\n"
            + markdown_table(COLUMNS, result_rows(result, only_regressions),
                             right=COLUMNS[2:6])
            + "".join(f"\n- {n}" for n in notes[:-1]) + "\n")


def _interval(v: Value) -> str:
    if v.low == v.high:
        return f"{v.value:.5g}"
    return f"{v.value:.4g} [{v.low:.4g},{v.high:.4g}]"
