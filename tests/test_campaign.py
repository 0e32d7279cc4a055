"""`bash bench/campaign.sh --dry-run`: the GPU campaign's every step, on the CPU, with a tiny
variant (compile on, bf16, 2 s clips), so CI proves its plumbing on every change."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tarfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STEPS = ("env", "smoke-bench", "smoke-ablation", "train-bf16-resume", "train-fp16-resume", "tag",
         "paper", "gpu", "ablation", "profile", "scaling", "report")


def campaign(out: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHON": sys.executable}
    return subprocess.run(["bash", str(ROOT / "bench" / "campaign.sh"), "--dry-run", "--out",
                           str(out)], capture_output=True, text=True, env=env, timeout=900)


def test_campaign_dry_run_passes_every_step_and_resumes(tmp_path):
    out = tmp_path / "campaign"
    run = campaign(out)
    summary = run.stdout[run.stdout.index("== campaign summary"):]
    assert run.returncode == 0, summary + run.stderr[-3000:]
    for step in STEPS:
        assert f"PASS {step} " in summary, step
    # every compiled benchmark really ran compiled graphs
    gpu = json.loads((out / "gpu.json").read_text())["benchmarks"]
    compiled = [b["extra_info"] for b in gpu if b["extra_info"]["compile"]]
    assert compiled and all(e["compile_graphs"] >= 1 for e in compiled)
    assert {e.get("peer") for e in compiled} >= {None, "official", "official-sdpa"}
    ablation = json.loads((out / "ablation.json").read_text())["benchmarks"]
    assert {b["extra_info"]["ablation"] for b in ablation} >= {"all-on", "fp16", "static-batch"}
    for name in ("paper/table1.md", "gpu/table1.md", "ablation/ablation.md", "logs/gpu.log",
                 "profile/profile.csv", "profile/scaling.csv", "gpu/breakdown.png",
                 "gpu/scaling.png"):
        assert (out / name).is_file(), name
    with tarfile.open(out / "campaign.tar.gz") as tar:
        names = tar.getnames()
    assert "campaign/gpu.json" in names and not any(n.endswith(".pt") for n in names)
    # the gpu step took the smoke test's rows (same settings) from the journal
    assert "campaign-tiny" in (out / "gpu" / "table1.md").read_text()
    # run again: every step passed, nothing is measured again
    journal = (out / "journal.jsonl").read_text()
    again = campaign(out)
    assert again.returncode == 0, again.stdout[-3000:]
    assert again.stdout.count("(passed in an earlier run)") == len(STEPS)
    assert (out / "journal.jsonl").read_text() == journal


def test_a_spent_budget_skips_the_rest_and_a_stopped_campaign_stops_its_step(tmp_path):
    out = tmp_path / "campaign"
    env = {**os.environ, "PYTHON": sys.executable}
    run = subprocess.run(["bash", str(ROOT / "bench" / "campaign.sh"), "--dry-run", "--out",
                          str(out), "--budget-s", "25"], capture_output=True, text=True,
                         env=env, timeout=300)
    assert run.returncode == 1
    assert "SKIP report" in run.stdout and "budget is spent" in run.stdout
    # SIGTERM while a step runs: the summary names it and no process of it is left
    proc = subprocess.Popen(["bash", str(ROOT / "bench" / "campaign.sh"), "--dry-run",
                             "--out", str(out)], stdout=subprocess.PIPE, text=True, env=env)
    line = ""
    while "[campaign]" not in line:
        line = proc.stdout.readline()
    proc.send_signal(signal.SIGTERM)
    stdout = proc.communicate(timeout=120)[0]
    assert proc.returncode == 130 and "interrupted: the step was stopped" in stdout
    leftover = subprocess.run(["pgrep", "-f", f"benchmark-json={out}"], capture_output=True)
    assert leftover.stdout == b""
