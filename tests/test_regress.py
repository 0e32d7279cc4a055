"""`passt check`: memory, FLOPs and speed regressions between pytest-benchmark files."""

from __future__ import annotations

import copy
import json
from dataclasses import fields, replace
from types import SimpleNamespace

import pytest

from passt.cli import main
from passt.measure.bench_record import BenchRecord, checked_fields
from passt.measure.regress import Thresholds, compare, parse_percent


def bench_file(tmp_path, name: str, benchmarks: list[dict]) -> str:
    path = tmp_path / name
    path.write_text(json.dumps({"machine_info": {}, "benchmarks": benchmarks,
                                "version": "5.3.1"}))
    return str(path)


SETTINGS = BenchRecord(variant="passt-s", kind="train", batch_size=2, clip_seconds=3.0,
                       dtype="fp32", attention="sdpa", compile=False, device="cuda")


def entry(name: str, median: float = 0.5, peak: float = 2.0e8, act: float = 1.0e8,
          gflops: float = 270.0) -> dict:
    record = replace(SETTINGS, peak_memory_bytes_per_sample=peak,
                     activation_bytes_per_sample=act, train_gflops_per_sample=gflops,
                     forward_gflops_per_sample=gflops / 3)
    return {"name": name, "fullname": f"bench/test_speed.py::{name}", "group": "train",
            "stats": {"median": median, "mean": median, "min": median, "rounds": 5},
            "extra_info": record.to_json()}


BASE = [entry("test_train[passt-s]"), entry("test_train[passt-b]", median=1.5, peak=8e8)]


@pytest.fixture
def run_check(capsys):
    """Run ``passt check ARGS`` in-process; returns (exit code, stdout, stderr)."""

    def run(*args: str) -> SimpleNamespace:
        code = main(["check", *args])
        out = capsys.readouterr()
        return SimpleNamespace(returncode=code, stdout=out.out, stderr=out.err)

    return run


def test_identical_files_pass(tmp_path, run_check):
    base = bench_file(tmp_path, "base.json", BASE)
    cur = bench_file(tmp_path, "cur.json", BASE)
    proc = run_check(base, cur)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "no regression in 10 comparisons" in proc.stdout


def test_injected_memory_growth_fails(tmp_path, run_check):
    current = copy.deepcopy(BASE)
    current[0]["extra_info"]["peak_memory_bytes_per_sample"] *= 1.05
    proc = run_check(bench_file(tmp_path, "b.json", BASE), bench_file(tmp_path, "c.json", current))
    assert proc.returncode == 1
    bad = [line for line in proc.stdout.splitlines() if "REGRESSED" in line]
    assert len(bad) == 1
    assert "test_train[passt-s]" in bad[0] and "peak_memory_bytes_per_sample" in bad[0]
    assert "+5.00%" in bad[0]
    # a looser limit accepts it
    proc = run_check(bench_file(tmp_path, "b.json", BASE), bench_file(tmp_path, "c.json", current),
                     "--max-memory-growth", "6%")
    assert proc.returncode == 0


@pytest.mark.parametrize("field, factor, regressed", [
    ("train_gflops_per_sample", 1.001, True),    # any FLOPs growth fails by default
    ("train_gflops_per_sample", 0.9, False),     # a reduction is fine
    ("median", 1.09, False),                     # within the 10% slowdown
    ("median", 1.12, True),
    ("activation_bytes_per_sample", 1.019, False),
])
def test_limits_per_metric(tmp_path, field, factor, regressed):
    current = copy.deepcopy(BASE)
    where = current[1]["stats"] if field == "median" else current[1]["extra_info"]
    where[field] *= factor
    result = compare(bench_file(tmp_path, "b.json", BASE), bench_file(tmp_path, "c.json", current),
                     Thresholds())
    assert result.ok is not regressed
    assert all(c.benchmark.endswith("[passt-b]") for c in result.regressions)


def test_missing_and_new_benchmarks_are_reported(tmp_path):
    current = [BASE[0], entry("test_train[passt-u]")]
    result = compare(bench_file(tmp_path, "b.json", BASE), bench_file(tmp_path, "c.json", current))
    assert result.missing == ["bench/test_speed.py::test_train[passt-b]"]
    assert result.added == ["bench/test_speed.py::test_train[passt-u]"]


def test_bad_files_are_clear_errors(tmp_path, run_check):
    good = bench_file(tmp_path, "good.json", BASE)
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"results": [1, 2, 3]}))
    proc = run_check(good, str(other))
    assert proc.returncode == 2
    assert "is not pytest-benchmark JSON" in proc.stderr
    text = tmp_path / "text.json"
    text.write_text("median 0.5")
    assert "is not JSON" in run_check(good, str(text)).stderr
    assert "benchmark file not found" in run_check(good, str(tmp_path / "nope.json")).stderr
    proc = run_check(good, good, "--max-slowdown", "ten")
    assert proc.returncode == 2 and "not a percentage: 'ten'" in proc.stderr


def test_parse_percent():
    assert parse_percent("2%") == pytest.approx(0.02)
    assert parse_percent("0.1") == pytest.approx(0.1)
    with pytest.raises(ValueError, match="cannot be negative"):
        parse_percent("-1%")


def test_a_new_out_of_memory_is_a_regression(tmp_path, run_check):
    current = copy.deepcopy(BASE)
    current[0]["extra_info"] = replace(SETTINGS, oom=True).to_json()
    current[0]["stats"]["median"] = 1e-7  # the placeholder timing of an OOM row is not compared
    proc = run_check(bench_file(tmp_path, "b.json", BASE), bench_file(tmp_path, "c.json", current))
    assert proc.returncode == 1
    assert "REGRESSED, out of memory now: bench/test_speed.py::test_train[passt-s]" in proc.stdout
    assert "median_s" not in [line.split()[1] for line in proc.stdout.splitlines()
                              if line.startswith("bench/test_speed.py::test_train[passt-s]")]


def counted(base: list[dict], instructions: float, time_factor: float = 1.0,
            ci: float = 0.2, settings: dict | None = None) -> list[dict]:
    """``base`` with instruction counts and wide time intervals (a busy machine)."""
    out = copy.deepcopy(base)
    for e in out:
        info, median = e["extra_info"], e["stats"]["median"] * time_factor
        e["stats"]["median"] = median
        info.update(instructions=instructions, instructions_spread=0.001,
                    instructions_settings=settings or {"batch_size": 1, "clip_seconds": 1.0},
                    median_ci_low_s=median * (1 - ci), median_ci_high_s=median * (1 + ci))
    return out


@pytest.mark.parametrize("growth, code", [(1.001, 0), (1.019, 0), (1.021, 1), (1.10, 1)])
def test_instructions_decide_where_both_runs_counted(tmp_path, run_check, growth, code):
    """Intervals of +-20% would make every time comparison inconclusive (exit 3): with
    instruction counts the verdict is 0 or 1, from the 2% limit."""
    base = bench_file(tmp_path, "b.json", counted(BASE, 2.8e7))
    cur = bench_file(tmp_path, "c.json", counted(BASE, 2.8e7 * growth, time_factor=1.05))
    proc = run_check(base, cur)
    assert proc.returncode == code, proc.stdout
    time_rows = [line for line in proc.stdout.splitlines() if " median_s " in line]
    assert len(time_rows) == 2 and all("info: INCONCLUSIVE" in line for line in time_rows)
    assert "comparisons (2 more shown as information)" in proc.stdout
    # the time decides again when asked: inconclusive, or regressed with the instructions
    assert run_check(base, cur, "--time-verdict").returncode == (1 if code else 3)


def test_time_decides_without_counts_on_both_sides(tmp_path, run_check):
    base = bench_file(tmp_path, "b.json", counted(BASE, 2.8e7))
    cur = bench_file(tmp_path, "c.json", counted(BASE, 2.8e7, time_factor=1.05,
                                                 settings={"batch_size": 2}))
    proc = run_check(base, cur)  # counted at another size: not comparable
    assert proc.returncode == 3
    assert not [line for line in proc.stdout.splitlines() if line.split()[1:2] == ["instructions"]]


def test_a_file_compared_with_itself_passes_however_wide_its_intervals(tmp_path, run_check):
    path = bench_file(tmp_path, "b.json", counted(BASE, 2.8e7, ci=0.5))
    assert run_check(path, path, "--time-verdict").returncode == 0


def test_markdown_for_a_job_summary(tmp_path, run_check):
    base = bench_file(tmp_path, "b.json", counted(BASE, 2.8e7))
    cur = bench_file(tmp_path, "c.json", counted(BASE, 2.8e7 * 1.1))
    proc = run_check(base, cur, "--format", "markdown")
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("**passt check: 2 regression(s)")
    assert lines[2] == "| benchmark | metric | baseline | current | change | limit | status |"
    assert "| test_train[passt-s] | instructions | 2.8e+07 | 3.08e+07 | +10.00% | 2.0% " \
           "| REGRESSED |" in lines


def test_every_checked_metric_is_held_to_a_limit_of_thresholds():
    limits = {f.name for f in fields(Thresholds)}
    checked = checked_fields()
    assert set(checked.values()) <= limits
    # the metrics compared before the declarations moved into the record's fields
    assert {n: checked[n] for n in ("peak_memory_bytes_per_sample", "activation_bytes_per_sample",
                                    "train_gflops_per_sample", "forward_gflops_per_sample")} == {
        "peak_memory_bytes_per_sample": "memory", "activation_bytes_per_sample": "memory",
        "train_gflops_per_sample": "flops", "forward_gflops_per_sample": "flops"}
