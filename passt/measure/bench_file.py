"""A pytest-benchmark JSON file of the bench read back as typed rows: each benchmark's median
step time and `BenchRecord`, with clear errors for files the bench did not write."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from passt.measure.bench_record import BenchRecord, missing_fields
from passt.utils.errors import UsageError

# The fields a reader needs of a row beyond the required ones (names of `BenchRecord` fields).
Needs = Callable[[BenchRecord], Sequence[str]]


@dataclass(frozen=True)
class Benchmark:
    """One benchmark of the file: pytest-benchmark's median step time and passt's row."""

    name: str
    median_s: float | None
    record: BenchRecord


@dataclass(frozen=True)
class BenchFile:
    """The benchmarks of a file by ``fullname``, and pytest-benchmark's ``machine_info``,
    ``commit_info`` (id, time, author_time, dirty, project, branch; empty when the run was
    outside git) and ``datetime`` (when the run was saved)."""

    benchmarks: dict[str, Benchmark]
    machine_info: dict[str, Any]
    commit_info: dict[str, Any] = field(default_factory=dict)
    datetime: str | None = None

    @property
    def records(self) -> list[BenchRecord]:
        return [b.record for b in self.benchmarks.values()]


def load_bench_file(path: str | Path, needs: Needs = lambda record: ()) -> BenchFile:
    """Read ``path``; rows lacking required fields, or fields ``needs(row)`` names, are an
    error naming the first such benchmark and how many more there are."""
    path = Path(path)
    data = _read_pytest_benchmark(path)
    benchmarks, lacking = {}, {}
    for bench in data["benchmarks"]:
        name = bench.get("fullname") or bench["name"]
        extra = bench.get("extra_info")
        extra = extra if isinstance(extra, dict) else {}
        lacks = missing_fields(extra)
        if not lacks:
            try:
                record = BenchRecord.from_json(extra)
            except UsageError as e:
                raise UsageError(f"{path.name}: benchmark {name}: {e}") from None
            lacks = [f for f in needs(record) if getattr(record, f) is None]
            median = (bench.get("stats") or {}).get("median")
            ok = isinstance(median, int | float) and not isinstance(median, bool)
            benchmarks[name] = Benchmark(name, float(median) if ok else None, record)
        if lacks:
            lacking[name] = lacks
    if lacking:
        name, lacks = next(iter(lacking.items()))
        more = f" (and {len(lacking) - 1} more benchmark(s))" if len(lacking) > 1 else ""
        raise UsageError(f"{path.name}: benchmark {name} lacks fields {', '.join(lacks)}{more} "
                         "(was it written by pytest bench/ of passt-bench?)")
    commit_info = data.get("commit_info")
    run_time = data.get("datetime")
    return BenchFile(benchmarks, data.get("machine_info") or {},
                     commit_info if isinstance(commit_info, dict) else {},
                     run_time if isinstance(run_time, str) else None)


def _read_pytest_benchmark(path: Path) -> dict[str, Any]:
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
    return data
