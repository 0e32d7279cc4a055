"""Generated pytest-benchmark files of runs at successive fake commits, with a planted change:
the input of the `passt history` tests (no benchmark runs)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np

from passt.measure.bench_record import BenchRecord

START = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)
SETTINGS = BenchRecord(variant="passt-s", kind="train", batch_size=2, clip_seconds=3.0,
                       dtype="fp32", attention="sdpa", compile=False, device="cpu")


@dataclass(frozen=True)
class Bench:
    """A benchmark of every run: its step time, instruction count (None: not counted) and
    lognormal noise; ``factor`` multiplies both from run ``change_at`` on."""

    name: str
    median_s: float
    instructions: float | None = None
    noise: float = 0.02
    change_at: int | None = None
    factor: float = 1.15
    extra: dict = field(default_factory=dict)


def commit_sha(i: int) -> str:
    return hashlib.sha1(f"commit {i}".encode()).hexdigest()


def write_runs(folder: Path, benches: list[Bench], runs: int = 10, seed: int = 0) -> list[Path]:
    """``runs`` files, run i at commit ``commit_sha(i)`` an hour after run i - 1; the file
    names are not in commit order (history must order by commit_info)."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(runs):
        entries = []
        for b in benches:
            scale = b.factor if b.change_at is not None and i >= b.change_at else 1.0
            median = b.median_s * scale * float(np.exp(rng.normal(0, b.noise)))
            record = replace(
                SETTINGS, variant=b.name, median_step_s=median,
                median_ci_low_s=median * (1 - b.noise), median_ci_high_s=median * (1 + b.noise),
                samples_per_s=2 / median, peak_memory_bytes_per_sample=2e8,
                activation_bytes_per_sample=1e8, step_gflops_per_sample=270.0,
                instructions=None if b.instructions is None else
                b.instructions * scale * float(np.exp(rng.normal(0, 0.001))),
                instructions_spread=None if b.instructions is None else 0.002, **b.extra)
            entries.append({"name": f"test_step[{b.name}]",
                            "fullname": f"bench/test_passt.py::test_step[{b.name}]",
                            "group": "train", "stats": {"median": median, "rounds": 8},
                            "extra_info": record.to_json()})
        commit_time = START + timedelta(hours=i)
        data = {"machine_info": {"node": "ci"}, "benchmarks": entries, "version": "5.1.0",
                "datetime": (commit_time + timedelta(minutes=20)).isoformat(),
                "commit_info": {"id": commit_sha(i), "time": commit_time.isoformat(),
                                "author_time": commit_time.isoformat(), "dirty": False,
                                "project": "passt-bench", "branch": "main"}}
        path = folder / f"run-{(i * 7) % runs:02d}-{i}.json"  # names out of commit order
        path.write_text(json.dumps(data))
        paths.append(path)
    return paths
