"""Regression check between two pytest-benchmark JSON files: speed, memory and FLOPs.

pytest-benchmark's ``--benchmark-compare-fail`` checks time statistics only; the memory and
FLOPs this project records in each benchmark's ``extra_info`` are checked here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from passt.errors import UsageError

MEMORY_FIELDS = ("peak_memory_bytes_per_sample", "activation_bytes_per_sample")
FLOPS_FIELDS = ("train_gflops_per_sample", "forward_gflops_per_sample")


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


def load_benchmarks(path: str | Path) -> dict[str, dict[str, Any]]:
    """Benchmarks of a pytest-benchmark JSON file keyed by ``fullname``; clear errors otherwise."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"benchmark file not found: {path}")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UsageError(f"{path} is not JSON: {e}") from None
    benchmarks = data.get("benchmarks") if isinstance(data, dict) else None
    if not isinstance(benchmarks, list) or not all(
        isinstance(b, dict) and "stats" in b and ("fullname" in b or "name" in b)
        for b in benchmarks
    ):
        raise UsageError(
            f"{path} is not pytest-benchmark JSON (expected a 'benchmarks' list whose entries "
            "have 'name' and 'stats'; write one with pytest --benchmark-json=FILE)"
        )
    return {b.get("fullname") or b["name"]: b for b in benchmarks}


def _metrics(bench: dict[str, Any], limits: Thresholds) -> dict[str, tuple[float, float]]:
    """``metric -> (value, limit)`` for the numbers present in one benchmark."""
    out: dict[str, tuple[float, float]] = {}
    if _oom(bench):  # its timing is a placeholder
        return out
    median = bench.get("stats", {}).get("median")
    if isinstance(median, (int, float)):
        out["median_s"] = (float(median), limits.slowdown)
    extra = bench.get("extra_info") or {}
    for fields, limit in ((MEMORY_FIELDS, limits.memory), (FLOPS_FIELDS, limits.flops)):
        for name in fields:
            value = extra.get(name)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                out[name] = (float(value), limit)
    return out


def _oom(bench: dict[str, Any]) -> bool:
    return bool((bench.get("extra_info") or {}).get("oom"))


def compare(baseline: str | Path, current: str | Path,
            limits: Thresholds = Thresholds()) -> CheckResult:
    """Match benchmarks by name and compare every metric both files hold."""
    base, cur = load_benchmarks(baseline), load_benchmarks(current)
    comparisons = []
    for name in base.keys() & cur.keys():
        base_metrics, cur_metrics = _metrics(base[name], limits), _metrics(cur[name], limits)
        for metric in base_metrics.keys() & cur_metrics.keys():
            (b, limit), (c, _) = base_metrics[metric], cur_metrics[metric]
            comparisons.append(Comparison(name, metric, b, c, limit))
    comparisons.sort(key=lambda c: (c.benchmark, c.metric))
    new_oom = sorted(n for n in base.keys() & cur.keys() if _oom(cur[n]) and not _oom(base[n]))
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
