"""The example CI workflow (.github/workflows/bench.yml.example): its ``run:`` steps after the
benchmarks, run as GitHub Actions runs them on generated benchmark files (no benchmark runs)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.history_runs import Bench, commit_sha, write_runs

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW = ROOT / ".github" / "workflows" / "bench.yml.example"
MEASURING = ("Install", "Benchmarks")  # replaced by generated files
BENCHES = [Bench("passt-s", 0.5, instructions=2.8e9), Bench("passt-b", 1.5, instructions=9e9)]


def job() -> dict:
    (only,) = yaml.safe_load(WORKFLOW.read_text())["jobs"].values()
    return only


def run_steps(workdir: Path, event: str) -> dict[str, subprocess.CompletedProcess]:
    """Run the workflow's ``run:`` steps after the measuring ones in ``workdir`` as Actions
    does (bash -e, job and step env, GITHUB_OUTPUT per step, ``if:`` on the event); a
    ``passt`` on PATH runs this checkout's CLI. Returns each step's process by name."""
    bin_dir = workdir / "bin"
    bin_dir.mkdir()
    shim = bin_dir / "passt"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -c "import sys; from passt.cli import '
                    f'main; sys.exit(main())" "$@"\n')
    shim.chmod(0o755)
    spec = job()
    outputs: dict[str, dict[str, str]] = {}
    results = {}
    failed = False
    for step in spec["steps"]:
        if "run" not in step or step.get("name") in MEASURING:
            continue
        condition = step.get("if", "success()")
        if ("github.event_name == 'push'" in condition and event != "push") or (
                failed and "always()" not in condition):
            continue
        out_file = workdir / f"output-{len(results)}"
        out_file.write_text("")
        env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}",
               "PYTHONPATH": str(ROOT), "GITHUB_OUTPUT": str(out_file),
               "GITHUB_STEP_SUMMARY": str(workdir / "summary.md"),
               "GITHUB_SHA": commit_sha(99), "GITHUB_EVENT_NAME": event,
               **{k: str(v) for k, v in spec.get("env", {}).items()}}
        for key, value in step.get("env", {}).items():
            env[key] = re.sub(r"\$\{\{\s*steps\.(\w+)\.outputs\.(\w+)\s*\}\}",
                              lambda m: outputs[m[1]][m[2]], str(value))
        proc = subprocess.run(["bash", "-e", "-c", step["run"]], cwd=workdir, env=env,
                              capture_output=True, text=True, timeout=300)
        results[step["name"]] = proc
        outputs[step.get("id", "")] = dict(line.split("=", 1) for line in
                                           out_file.read_text().splitlines() if "=" in line)
        failed = failed or proc.returncode != 0
    return results


def place_runs(workdir: Path, regress: bool) -> None:
    """The baseline (run 8 of a history), this run's two files (run 9), and the history."""
    paths = write_runs(workdir / "bench-history", BENCHES, runs=8)
    baseline = workdir / job()["env"]["BASELINE"]
    baseline.parent.mkdir(parents=True)
    baseline.write_text(paths[-1].read_text())
    current = json.loads(paths[-1].read_text())
    current["commit_info"] = {**current["commit_info"], "id": commit_sha(99),
                              "time": "2026-03-03T09:00:00+00:00"}
    if regress:  # more memory and 15% more instructions for one benchmark
        extra = current["benchmarks"][0]["extra_info"]
        extra["peak_memory_bytes_per_sample"] *= 1.05
        extra["instructions"] *= 1.15
    (workdir / "bench.json").write_text(json.dumps(current))


def test_the_measuring_step_counts_instructions_beside_the_times():
    runs = {s["name"]: " ".join(s["run"].split()) for s in job()["steps"] if "run" in s}
    assert "pytest bench/ --benchmark-only --bench-preset cpu-quick --bench-instructions " \
           "--benchmark-json=bench.json" in runs["Benchmarks"]
    assert any("passt check" in r for r in runs.values())
    assert any("passt history" in r for r in runs.values())


@pytest.mark.integration
def test_a_clean_run_passes_and_writes_the_summary_and_history(tmp_path):
    place_runs(tmp_path, regress=False)
    steps = run_steps(tmp_path, event="push")
    assert {n: p.returncode for n, p in steps.items()} == {
        "Check against the baseline": 0, "Job summary": 0, "History": 0, "Verdict": 0}, \
        {n: p.stderr for n, p in steps.items()}
    summary = (tmp_path / "summary.md").read_text().splitlines()
    assert summary[0].startswith("### passt check against reports/baselines/")
    assert summary[1].startswith("**passt check: no regression in")
    assert "| benchmark | metric | baseline | current | change | limit | status |" in summary
    assert "no change point" in steps["History"].stdout
    assert (tmp_path / "history" / "history.html").is_file()
    assert len((tmp_path / "history" / "history.csv").read_text().splitlines()) == 1 + 2 * 9


@pytest.mark.integration
def test_a_regression_fails_the_job_with_its_row_in_the_summary(tmp_path):
    place_runs(tmp_path, regress=True)
    steps = run_steps(tmp_path, event="pull_request")
    assert "History" not in steps  # a push-only step
    assert steps["Verdict"].returncode == 1
    assert "passt check found a regression" in steps["Verdict"].stdout
    summary = (tmp_path / "summary.md").read_text()
    regressed = [line for line in summary.splitlines() if "| REGRESSED |" in line]
    assert any("test_step[passt-s]" in line and "peak_memory" in line for line in regressed)
    assert any("test_step[passt-s]" in line and "| instructions |" in line for line in regressed)
