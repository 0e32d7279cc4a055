"""Regression check between two pytest-benchmark JSON files: speed, memory and FLOPs.

pytest-benchmark's ``--benchmark-compare-fail`` checks time statistics only; the memory and
FLOPs of each benchmark's `BenchRecord` (its ``extra_info``) are checked here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from passt.errors import UsageError
from passt.measure.bench_file import Benchmark, load_bench_file
from passt.measure.bench_record import FLOPS_FIELDS, MEMORY_FIELDS


@dataclass(frozen=True)
class Thresholds:
    """Largest accepted relative growth of each kind of metric (0.02 = 2%)."""

    memory: float = 0.02
    flops: float = 0.0
    slowdown: float = 0.10


@dataclass(frozen=True)
class Comparison:
    """One metric of one benchmark in both files."""

    benchmark: str
    metric: str
    baseline: float
    current: float
    limit: float

    @property
    def change(self) -> float:
        return self.current / self.baseline - 1.0 if self.baseline else 0.0

    @property
    def regressed(self) -> bool:
        return self.change > self.limit + 1e-9


@dataclass(frozen=True)
class CheckResult:
    comparisons: list[Comparison]
    missing: list[str]  # in the baseline, not in the current run
    added: list[str]  # in the current run only
    new_oom: list[str]  # ran in the baseline, out of memory now

    @property
    def regressions(self) -> list[Comparison]:
        return [c for c in self.comparisons if c.regressed]

    @property
    def ok(self) -> bool:
        return not self.regressions and not self.new_oom


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


def _metrics(bench: Benchmark, limits: Thresholds) -> dict[str, tuple[float, float]]:
    """``metric -> (value, limit)`` for the numbers present in one benchmark."""
    if bench.record.oom:  # its timing is a placeholder
        return {}
    out: dict[str, tuple[float, float]] = {}
    if bench.median_s is not None:
        out["median_s"] = (bench.median_s, limits.slowdown)
    for fields, limit in ((MEMORY_FIELDS, limits.memory), (FLOPS_FIELDS, limits.flops)):
        for name in fields:
            value = getattr(bench.record, name)
            if value is not None:
                out[name] = (float(value), limit)
    return out


def compare(baseline: str | Path, current: str | Path,
            limits: Thresholds = Thresholds()) -> CheckResult:
    """Match benchmarks by name and compare every metric both files hold."""
    base = load_bench_file(baseline).benchmarks
    cur = load_bench_file(current).benchmarks
    comparisons = []
    for name in base.keys() & cur.keys():
        base_metrics, cur_metrics = _metrics(base[name], limits), _metrics(cur[name], limits)
        for metric in base_metrics.keys() & cur_metrics.keys():
            (b, limit), (c, _) = base_metrics[metric], cur_metrics[metric]
            comparisons.append(Comparison(name, metric, b, c, limit))
    comparisons.sort(key=lambda c: (c.benchmark, c.metric))
    new_oom = sorted(n for n in base.keys() & cur.keys()
                     if cur[n].record.oom and not base[n].record.oom)
    return CheckResult(comparisons, sorted(base.keys() - cur.keys()),
                       sorted(cur.keys() - base.keys()), new_oom)


def format_result(result: CheckResult, only_regressions: bool = False) -> str:
    """A plain-text table of the comparisons, then the benchmarks found in one file only."""
    rows = result.regressions if only_regressions else result.comparisons
    lines = [f"{'benchmark':<56} {'metric':<30} {'baseline':>12} {'current':>12} "
             f"{'change':>8} {'limit':>7}  status"]
    for c in rows:
        status = "REGRESSED" if c.regressed else "ok"
        lines.append(f"{c.benchmark[-56:]:<56} {c.metric:<30} {c.baseline:>12.5g} "
                     f"{c.current:>12.5g} {c.change:>+8.2%} {c.limit:>7.1%}  {status}")
    for title, names in (("REGRESSED, out of memory now", result.new_oom),
                         ("missing from the current run", result.missing),
                         ("new in the current run", result.added)):
        lines += [f"{title}: {n}" for n in names]
    failures = len(result.regressions) + len(result.new_oom)
    verdict = (f"{failures} regression(s) in {len(result.comparisons)} comparisons"
               if not result.ok else
               f"no regression in {len(result.comparisons)} comparisons")
    return "\n".join([*lines, verdict])
