"""`bash bench/campaign.sh`: the GPU campaign's plan fits one device call, and its dry run on
the CPU (every step, a tiny variant, compile on) passes, hands back at most 8 files after every
step, survives SIGTERM and SIGKILL with its results, and leaves no process behind."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

import campaign  # noqa: E402
import campaign_files  # noqa: E402

from passt.measure.bench_record import BenchRecord  # noqa: E402
from passt.measure.journal import Journal  # noqa: E402

STEPS = ("env", "key", "paper-key", "cuda-graphs", "train-fp16-resume", "tag", "gpu", "paper",
         "ablation", "profile", "scaling", "report")
SCRIPT = ROOT / "bench" / "campaign.sh"


def env(back: Path | None = None) -> dict[str, str]:
    e = {**os.environ, "PYTHON": sys.executable}
    e.pop("OUT", None)
    return {**e, "OUT": str(back)} if back else e


@pytest.mark.integration
def test_the_plan_fits_one_device_call():
    proc = subprocess.run(["bash", str(SCRIPT), "--plan", "--json"], capture_output=True,
                          text=True, env=env(), timeout=120)
    assert proc.returncode == 0, proc.stderr
    plan = json.loads(proc.stdout)
    assert [s["step"] for s in plan["steps"]] == list(STEPS)
    assert [s["group"] for s in plan["steps"]] == list("abcdddeeeee") + ["report"]
    head = sum(s["cap_s"] for s in plan["steps"] if s["group"] in "abc")
    assert head == plan["caps_a_to_c_s"] <= 300
    assert plan["budget_s"] <= 500
    assert next(s for s in plan["steps"] if s["step"] == "env")["cap_s"] <= 30


def published(back: Path) -> dict:
    """The return folder: at most 8 files, a valid summary and a readable archive."""
    files = [p for p in back.iterdir() if not p.name.startswith(".")]
    assert len(files) <= 8 and all(p.is_file() for p in files), files
    assert {p.name for p in files} <= set(campaign_files.RETURNED)
    with tarfile.open(back / "campaign.tar.gz") as tar:
        names = tar.getnames()
    assert not any(n.endswith((".pt", ".pickle", ".wav")) or "/runs/" in n for n in names)
    return {"summary": json.loads((back / "summary.json").read_text()), "archive": names}


@pytest.mark.integration
def test_dry_run_passes_hands_back_and_resumes(tmp_path):
    out, back = tmp_path / "work", tmp_path / "back"
    run = subprocess.run(["bash", str(SCRIPT), "--dry-run", "--out", str(out)],
                         capture_output=True, text=True, env=env(back), timeout=1500)
    summary = run.stdout[run.stdout.index("== campaign summary"):]
    assert run.returncode == 0, summary + run.stderr[-3000:]
    for step in STEPS:
        assert f"PASS {step} " in summary, step
    # the key numbers came first, right after the environment
    order = [e["step"] for e in Journal(out / "campaign.jsonl").read()]
    assert order == list(STEPS)
    got = published(back)
    steps = {s["step"]: s for s in got["summary"]["steps"]}
    assert all(steps[s]["status"] == "PASS" for s in STEPS)
    keys = {(k["variant"], k["who"]) for k in got["summary"]["key_numbers"]}
    assert keys >= {(campaign.TINY, "ours"), (campaign.TINY, "official"),
                    (campaign.TINY, "official-sdpa")}
    assert "speedup_vs_ours" in (back / "summary.md").read_text()
    assert "work/gpu.json" in got["archive"] and "work/logs/key.log" in got["archive"]
    # every compiled benchmark really ran compiled graphs, the official peer as released
    gpu = [campaign.BenchRecord.from_json(b["extra_info"])
           for b in json.loads((out / "gpu.json").read_text())["benchmarks"]]
    compiled = [r for r in gpu if r.compile]
    assert compiled and all(r.compile_graphs >= 1 for r in compiled)
    assert {r.peer for r in compiled} >= {None, "official-sdpa"}
    official = next(r for r in gpu if r.peer == "official")
    assert (official.compile, official.attention) == (False, "math")
    for name in ("paper/table1.md", "gpu/table1.md", "ablation/ablation.md",
                 "profile/profile.csv", "profile/scaling.csv", "gpu/breakdown.png"):
        assert (out / name).is_file(), name
    # the (e) step took the key step's rows (same settings) from the journal
    assert campaign.TINY in (out / "gpu" / "table1.md").read_text()
    # run again: every step passed, nothing is measured again
    journal = (out / "journal.jsonl").read_text()
    again = subprocess.run(["bash", str(SCRIPT), "--dry-run", "--out", str(out)],
                           capture_output=True, text=True, env=env(), timeout=600)
    assert again.returncode == 0, again.stdout[-3000:]
    assert again.stdout.count("(passed in an earlier run)") == len(STEPS)
    assert (out / "journal.jsonl").read_text() == journal
    # the report reports the presets whose JSON exists: here only the key step's
    only_key = tmp_path / "only-key"
    only_key.mkdir()
    for name in ("gpu-key.json", "tiny_variant.py"):
        shutil.copy(out / name, only_key / name)
    report = subprocess.run([sys.executable, "-c", campaign.REPORT, str(only_key)],
                            capture_output=True, text=True, timeout=300,
                            env={**env(), "PYTHONPATH": str(ROOT)})
    assert report.returncode == 0, report.stderr[-2000:]
    assert "gpu (gpu-key.json): 0" in report.stdout
    assert (only_key / "gpu" / "table1.md").is_file() and not (only_key / "paper").exists()


def wait_for(predicate, timeout: float, proc: subprocess.Popen) -> None:
    end = time.monotonic() + timeout
    while not predicate():
        assert proc.poll() is None, proc.stdout.read() if proc.stdout else "campaign ended"
        assert time.monotonic() < end, "timed out"
        time.sleep(0.5)


def leftovers(out: Path) -> str:
    """Processes whose command line names the campaign's folder."""
    return subprocess.run(["pgrep", "-af", str(out)], capture_output=True,
                          text=True).stdout.strip()


@pytest.mark.integration
def test_a_killed_campaign_leaves_its_results_and_no_process(tmp_path):
    out, back = tmp_path / "work", tmp_path / "back"
    proc = subprocess.Popen(["bash", str(SCRIPT), "--dry-run", "--out", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env=env(back))

    def key_done() -> bool:
        return any(e["step"] == "key" for e in Journal(back / "campaign.jsonl").read())

    wait_for(key_done, 900, proc)
    wait_for(lambda: leftovers(out) != "", 60, proc)  # the next step is running
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    time.sleep(2)  # the guard polls every 0.2 s
    assert leftovers(out) == ""
    got = published(back)
    steps = {s["step"]: s["status"] for s in got["summary"]["steps"]}
    assert steps["env"] == steps["key"] == "PASS" and steps["report"] == "PENDING"
    assert "work/gpu-key.json" in got["archive"]
    assert any(k["who"] == "official" for k in got["summary"]["key_numbers"])


@pytest.mark.integration
def test_a_spent_budget_skips_the_rest_and_a_stopped_campaign_stops_its_step(tmp_path):
    out = tmp_path / "work"
    run = subprocess.run(["bash", str(SCRIPT), "--dry-run", "--out", str(out), "--budget-s",
                          "25", "--select", "env,key"], capture_output=True, text=True,
                         env=env(), timeout=300)
    assert run.returncode == 1
    assert "SKIP key" in run.stdout and "budget is spent" in run.stdout
    # SIGTERM while a step runs: the summary names it and no process of it is left
    proc = subprocess.Popen(["bash", str(SCRIPT), "--dry-run", "--out", str(out)],
                            stdout=subprocess.PIPE, text=True, env=env())
    line = ""
    while "[campaign]" not in line:
        line = proc.stdout.readline()
    proc.send_signal(signal.SIGTERM)
    stdout = proc.communicate(timeout=120)[0]
    assert proc.returncode == 130 and "interrupted: the step was stopped" in stdout
    assert leftovers(out) == ""


@pytest.mark.integration
def test_select_names_the_steps_it_knows():
    proc = subprocess.run(["bash", str(SCRIPT), "--plan", "--select", "key,gpu-all"],
                          capture_output=True, text=True, env=env(), timeout=120)
    assert proc.returncode == 2
    assert "--select: unknown step(s) gpu-all; known: env, key, paper-key" in proc.stderr


@pytest.mark.integration
def test_two_versions_of_a_wheel_are_refused(tmp_path):
    (tmp_path / "bench").mkdir()
    shutil.copy(SCRIPT, tmp_path / "bench" / "campaign.sh")
    (tmp_path / ".whl").mkdir()
    for name in ("fvcore-0.1.5-py3-none-any.whl", "Fvcore-0.1.6-py3-none-any.whl",
                 "iopath-0.1.10-py3-none-any.whl"):
        (tmp_path / ".whl" / name).write_bytes(b"")
    proc = subprocess.run(["bash", str(tmp_path / "bench" / "campaign.sh"), "--plan"],
                          capture_output=True, text=True, env=env(), timeout=60)
    assert proc.returncode == 2
    assert ".whl/ holds two versions of: fvcore; keep one of each" in proc.stderr


# --- what is handed back -------------------------------------------------------------------


def row(**fields) -> BenchRecord:
    base = dict(variant="passt-s", kind="train", batch_size=64, clip_seconds=10.0,
                dtype="bf16", attention="sdpa", compile=True, device="cuda:0", mfu=0.4,
                peak_memory_bytes_per_sample=2e8, energy_steps=24, joules_per_sample=1.5,
                samples_per_s=900.0, compile_graphs=1)
    return BenchRecord(**{**base, **fields})


def bench_json(path: Path, records: list[BenchRecord]) -> Path:
    path.write_text(json.dumps({"machine_info": {}, "benchmarks": [
        {"name": f"b{i}", "fullname": f"b{i}", "stats": {"median": 0.1},
         "extra_info": r.to_json()} for i, r in enumerate(records)]}))
    return path


def test_energy_is_asked_only_where_it_was_metered(tmp_path):
    check = campaign.cuda_fields_filled("smoke.json")
    correct = [
        row(),  # ours
        row(peer="official", dtype="fp16", attention="math", compile=False, batch_size=32,
            requested_batch_size=64, speedup_vs_ours=0.3),
        row(peer="official-sdpa", speedup_vs_ours=0.9),
        row(kind="inference", peak_memory_bytes_per_sample=None),
        row(peer="hf-ast", joules_per_sample=None,  # a GPU without an energy counter
            notes=("energy not reported: this GPU's NVML has no energy counter",)),
        row(oom=True, oom_stage="memory-fit", energy_steps=None, joules_per_sample=None,
            mfu=None, peak_memory_bytes_per_sample=None),
        row(device="cpu", energy_steps=None, joules_per_sample=None, mfu=None),
    ]
    bench_json(tmp_path / "smoke.json", correct)
    assert check(tmp_path) == []
    bench_json(tmp_path / "smoke.json", [row(joules_per_sample=None),
                                         row(peer="official", energy_steps=None)])
    assert check(tmp_path) == ["passt-s train: metered, but joules_per_sample is null",
                               "passt-s official: energy was not metered"]


def test_key_numbers_come_from_the_journal_when_no_json_was_written(tmp_path):
    journal = Journal(tmp_path / "journal.jsonl")
    for record, preset in ((row(), "gpu"), (row(peer="official", speedup_vs_ours=0.25,
                                                 speedup_ci_low=0.24, speedup_ci_high=0.26),
                                             "gpu"),
                           (row(variant="passt-b"), "paper"), (row(kind="inference"), "gpu")):
        journal.append({"benchmark": f"{record.variant}-{record.peer}-{record.kind}",
                        "run": {"plan": {"preset": preset}}, "extra_info": record.to_json(),
                        "times_s": [0.1]})
    sources = {"gpu": ("gpu-key.json",), "paper": ("paper-key.json",)}
    numbers = campaign_files.key_numbers(tmp_path, sources, ("passt-s", "passt-b"))
    assert [(k.preset, k.variant, k.who, k.source) for k in numbers] == [
        ("gpu", "passt-s", "ours", "journal.jsonl"),
        ("gpu", "passt-s", "official", "journal.jsonl"),
        ("paper", "passt-b", "ours", "journal.jsonl")]
    text = "\n".join(campaign_files.key_lines(numbers))
    assert "ours 4.00x its speed per sample [3.85, 4.17]" in text
    # once the JSON is there, it is read instead
    bench_json(tmp_path / "gpu-key.json", [row(samples_per_s=1000.0)])
    numbers = campaign_files.key_numbers(tmp_path, sources, ("passt-s", "passt-b"))
    assert [(k.who, k.source, k.samples_per_s) for k in numbers if k.preset == "gpu"] == [
        ("ours", "gpu-key.json", 1000.0)]


def test_the_archive_keeps_under_its_limit_and_leaves_out_weights(tmp_path):
    (tmp_path / "logs").mkdir()
    (tmp_path / "runs" / "fp16").mkdir(parents=True)
    (tmp_path / "logs" / "key.log").write_text("ok\n")
    (tmp_path / "runs" / "fp16" / "last.pt").write_bytes(b"weights")
    (tmp_path / "memory_passt-s.pickle").write_bytes(b"x")
    (tmp_path / "clip.wav").write_bytes(b"x")
    (tmp_path / "big.svg").write_bytes(os.urandom(300_000))  # incompressible
    assert campaign_files.write_archive(tmp_path, limit=200_000) == ["big.svg"]
    with tarfile.open(tmp_path / "campaign.tar.gz") as tar:
        assert tar.getnames() == [f"{tmp_path.name}/logs/key.log"]


def test_a_check_that_raises_fails_its_step(tmp_path):
    def broken(out):
        raise ValueError("cannot read smoke.json")

    step = campaign.Step("x", "d", [sys.executable, "-c", "pass"], 30, checks=(broken,))
    status = campaign.run_step(step, tmp_path, 30)
    assert status.status == "FAIL"
    assert "raised ValueError: cannot read smoke.json" in status.reason


# A step that, once interrupted, says how many processes its group still holds: itself and
# the guard, which must outlive the interrupt to kill the group if the campaign dies now.
INTERRUPTIBLE = """
import os, signal, sys, time

def rows(signum, frame):
    time.sleep(0.5)
    def in_group(pid):  # and running: a zombie is dead
        try:
            with open(f"/proc/{pid}/stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
            return os.getpgid(pid) == os.getpgrp() and state != "Z"
        except (OSError, ProcessLookupError):
            return False
    alive = sum(in_group(int(p)) for p in os.listdir("/proc") if p.isdigit())
    print("interrupted, group of", alive, flush=True)

signal.signal(signal.SIGINT, rows)
time.sleep(float(sys.argv[1]))
time.sleep(float(sys.argv[1]))
"""


@pytest.mark.slow
@pytest.mark.parametrize("seconds, cut", [(0.1, False), (60, True)])
def test_a_step_past_its_cap_is_interrupted_then_killed(tmp_path, seconds, cut):
    step = campaign.Step("x", "d", [sys.executable, "-c", INTERRUPTIBLE, str(seconds)], 30)
    # SIGINT as a terminal delivers it (a shell may start this test with SIGINT ignored,
    # which its children would inherit)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        status = campaign.run_step(step, tmp_path, campaign.INTERRUPT_GRACE_S + 2)
    finally:
        signal.signal(signal.SIGINT, previous)
    assert (status.status == "CUT") is cut and status.seconds < campaign.INTERRUPT_GRACE_S + 5
    log = (tmp_path / "logs" / "x.log").read_text()
    assert ("interrupted, group of 2" in log) is cut, log


def test_the_env_step_needs_a_c_compiler(monkeypatch):
    import campaign_env

    facts, failures = campaign_env.probe("cpu")
    assert facts["c_compiler"] and facts["imports"]["passt"] == "ok"
    assert not any("compiler" in f for f in failures)
    monkeypatch.setattr(campaign_env.shutil, "which", lambda name: None)
    assert "no C compiler (cc, gcc or clang): torch.compile's inductor needs one" in (
        campaign_env.probe("cpu")[1])
