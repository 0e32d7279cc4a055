"""passt.train.launch: a sweep's runs and a cross-validation's folds as processes of this machine or
as SLURM jobs through submitit (its local executor here), killed and resumed without a row twice
and with the numbers of the sequential launcher; training across two "nodes" of torchrun."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from passt.data.esc50_synthetic import Esc50Like, write_esc50_like
from passt.frontend import create_frontend
from passt.sweep.maps import read_maps
from passt.train import METRICS_JSONL
from passt.train.launch import Job, LaunchConfig, RunsFailed, run_processes
from passt.utils.atomic import locked
from passt.utils.errors import UsageError
from tests.helpers import TINY, model_flags

ROOT = Path(__file__).resolve().parents[1]
TINY_ARGS = ["--data", "synthetic", "--data-options", "size=32", "--eval-data-options",
             "size=16", "--clip-seconds", "1", *model_flags(TINY), "--batch-size", "8", "--lr",
             "1e-3", "--no-progress",
             "--device", "cpu"]
SWEEP = ["sweep", "--variants", "passt-s,passt-s-n", "--seeds", "0,1", "--steps", "3",
         *TINY_ARGS]


def passt(*args: str, threads: int = 1, **kwargs) -> subprocess.Popen:
    """``passt ARGS`` as a process, each of its processes on ``threads`` threads (the same
    arithmetic in every launcher)."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads),
           "PYTHONPATH": os.pathsep.join(filter(None, (str(ROOT), os.environ.get("PYTHONPATH"))))}
    return subprocess.Popen([sys.executable, "-m", "passt.cli", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)


def finished(proc: subprocess.Popen, timeout: float = 600) -> str:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err[-3000:]
    return out + err


def maps(out: Path) -> dict[tuple[str, int], tuple[float, int]]:
    rows = read_maps(out / "maps.csv")
    assert len({(r.variant, r.seed) for r in rows}) == len(rows)  # none twice
    return {(r.variant, r.seed): (r.map, r.steps) for r in rows}


@pytest.fixture(scope="module")
def sequential(tmp_path_factory) -> dict:
    """The sweep run by the default launcher: in one process, one run after another."""
    out = tmp_path_factory.mktemp("sequential")
    finished(passt(*SWEEP, "--out", str(out)))
    return maps(out)


@pytest.mark.integration
def test_a_slurm_sweep_killed_after_its_first_job_resumes_to_the_same_numbers(tmp_path,
                                                                             sequential):
    pytest.importorskip("submitit")
    out = tmp_path / "slurm"
    # its own session: the kill takes the launcher and the jobs submitit runs locally
    proc = passt(*SWEEP, "--launcher", "slurm", "--out", str(out), start_new_session=True)
    deadline = time.monotonic() + 600
    while not (out / "maps.csv").exists():  # the first job has finished and collected
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        assert time.monotonic() < deadline
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    before = len(read_maps(out / "maps.csv"))
    again = finished(passt(*SWEEP, "--launcher", "slurm", "--resume", "--out", str(out)))
    if before < 4:  # the rerun submits the runs not in maps.csv, and only those
        assert f"submitted {4 - before} job(s)" in again
    assert maps(out) == sequential and len(sequential) == 4
    assert (out / "slurm").is_dir()  # submitit's logs


@pytest.mark.integration
def test_local_jobs_run_at_once_with_the_same_numbers(tmp_path, sequential):
    out = tmp_path / "jobs"
    printed = finished(passt(*SWEEP, "--jobs", "2", "--out", str(out)))
    assert "jobs: 4 done, 0 running, 0 failed of 4" in printed
    assert maps(out) == sequential
    assert all((out / "runs" / v / f"seed-{s}" / "job.log").is_file() for v, s in sequential)


@pytest.mark.integration
def test_a_failed_job_shows_its_log_and_how_to_rerun_it(tmp_path):
    out = tmp_path / "failing"
    proc = passt("sweep", "--variants", "passt-s", "--steps", "2", "--clip-seconds", "1",
                 "--jobs", "2", "--seeds", "0,1", "--data", "folder:/nonexistent", "--out",
                 str(out))
    proc.communicate(timeout=300)
    # the data is checked before anything is launched: a usage error, nothing started
    assert proc.returncode == 2 and not (out / "runs").exists()
    job = Job(name="broken", run_dir=str(tmp_path / "run"), out_dir=str(tmp_path),
              runner="passt.sweep.run:run_one", collector="passt.sweep.run:collect",
              payload={"config": {"data": "folder:/nonexistent"}, "variant": "passt-s",
                       "seed": 0, "baseline_map": None, "resume": False, "progress": False})
    job.write()
    outcome = run_processes([job], 1)
    assert [j.name for j, _ in outcome.failed] == ["broken"]
    with pytest.raises(RunsFailed) as e:
        outcome.raise_for_failures()
    assert "audio folder /nonexistent does not exist" in str(e.value)  # its log's end
    assert f"rerun it alone: python -m passt.train.launch {job.path}" in str(e.value)


@pytest.mark.integration
def test_local_cross_validation_in_processes(tmp_path):
    data = tmp_path / "esc50"
    write_esc50_like(data, Esc50Like(classes=("chord", "arpeggio-up", "hiss"), folds=3,
                                     clips_per_class=6, seconds=1.0))
    out = tmp_path / "cv"
    printed = finished(passt("train", "--data", f"esc50:{data}", "--folds", "all",
                             "--clip-seconds", "1", *model_flags(TINY), "--batch-size", "6",
                             "--epochs", "1",
                             "--no-progress", "--jobs", "3", "--out", str(out)))
    assert "3 fold(s) (1, 2, 3), single-label" in printed
    summary = json.loads((out / "summary.json").read_text())
    assert summary["folds"] == [1, 2, 3] and summary["steps"] == 3 * 2


def test_launch_settings_are_checked():
    with pytest.raises(UsageError, match="--detach needs runs in processes of their own"):
        LaunchConfig(detach=True)
    with pytest.raises(UsageError, match="jobs must be an integer >= 1, got 0"):
        LaunchConfig(jobs=0)
    with pytest.raises(UsageError, match="--jobs is for --launcher local"):
        LaunchConfig(launcher="slurm", jobs=2)


def test_without_submitit_the_message_names_the_extra(tmp_path, monkeypatch):
    from passt.train import launch

    monkeypatch.setitem(sys.modules, "submitit", None)  # import submitit fails
    with pytest.raises(UsageError, match=r"needs submitit: pip install -e '\.\[cluster\]'"):
        launch._slurm([], LaunchConfig(launcher="slurm"), tmp_path)


@pytest.mark.integration
def test_one_writer_at_a_time(tmp_path):
    lock = tmp_path / ".lock"
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from passt.utils.atomic "
                               "import locked\nwith locked(sys.argv[1]):\n print('held', "
                               "flush=True); time.sleep(30)", str(lock)],
                              stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        assert holder.stdout.readline().strip() == "held"
        with locked(lock, wait=False) as got:
            assert got is False
    finally:
        holder.kill()
        holder.wait()
    with locked(lock, wait=False) as got:
        assert got is True


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def train_losses(out: Path) -> list[float]:
    rows = [json.loads(line) for line in (out / METRICS_JSONL).read_text().splitlines()]
    return [r["loss"] for r in rows if r["kind"] == "train"]


@pytest.mark.integration
def test_two_nodes_train_as_one_process_over_the_same_global_batch(tmp_path):
    """torchrun with a c10d rendezvous on 127.0.0.1: node ranks 0 and 1, one process each,
    gloo; the loss of each step equals a one-process run with both nodes' batches."""
    frames = create_frontend().frames(32_000)
    # nothing random in a step: no patchout (passt-b), augmentation, jitter, masks or crop
    common = ["--variant", "passt-b", "--data", "synthetic", "--data-options", "size=64",
              "--eval-data-options", "size=8", "--clip-seconds", "1", *model_flags(TINY),
              "--lr", "1e-3", "--uniform",
              "--no-augment", "all", "--frontend-overrides",
              "fmin_aug_range=1,fmax_aug_range=1,freq_mask=0,time_mask=0",
              "--model-overrides", f"frames={frames}", "--max-steps", "4", "--log-every", "1",
              "--no-progress", "--device", "cpu"]
    one = tmp_path / "one"
    finished(passt("train", *common, "--batch-size", "8", "--out", str(one)))
    port, nodes = free_port(), tmp_path / "nodes"
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, (str(ROOT), os.environ.get("PYTHONPATH"))))}
    procs = [subprocess.Popen(
        [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc-per-node", "1",
         "--node-rank", str(rank), "--rdzv-backend", "c10d", "--rdzv-id", "passt-test",
         "--rdzv-endpoint", f"127.0.0.1:{port}", "-m", "passt.cli", "train", *common,
         "--batch-size", "4", "--out", str(nodes)], env=env, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True) for rank in (0, 1)]
    for proc in procs:
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err[-3000:]
    expected, got = train_losses(one), train_losses(nodes)
    assert len(expected) == len(got) == 4
    assert got == pytest.approx(expected, rel=1e-5)


def children(pid: int) -> list[int]:
    """The processes whose parent is ``pid``."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry))
    return found


@pytest.mark.slow
def test_a_preempted_slurm_job_is_requeued_and_resumes_from_its_checkpoint(tmp_path):
    """submitit's preemption signal (its local executor's stand-in for SLURM's): the job is
    checkpointed by submitit, requeued, and its training continues from the last checkpoint,
    with no step lost or repeated in its metrics."""
    submitit = pytest.importorskip("submitit")
    from passt.sweep.run import Budget, run_config
    from passt.train import TrainConfig
    from passt.train.launch import SubmititRun

    run = run_config(TrainConfig(variant="passt-s", data="synthetic",
                                 data_options={"size": 64}, eval_data_options={"size": 16},
                                 clip_seconds=1.0, model_overrides=TINY,
                                 batch_size=4, lr=1e-3, log_every=1, checkpoint_every=5,
                                 device="cpu"),
                     "passt-s", 0, tmp_path, Budget(steps=60))
    job = Job(name="passt-s seed 0", run_dir=run.out_dir, out_dir=str(tmp_path),
              runner="passt.sweep.run:run_one", collector="passt.sweep.run:collect",
              payload={"config": run.to_dict(), "variant": "passt-s", "seed": 0,
                       "baseline_map": None, "resume": False, "progress": False})
    job.write()
    executor = submitit.AutoExecutor(folder=tmp_path / "slurm", cluster="local")
    executor.update_parameters(timeout_min=60)
    submitted = executor.submit(SubmititRun(str(job.path)))
    checkpoint = Path(run.out_dir) / "last.pt"
    deadline = time.monotonic() + 300
    while not checkpoint.exists():
        assert not submitted.done(), submitted.stderr()
        assert time.monotonic() < deadline
        time.sleep(0.2)
    # SLURM's preemption notice to the job's task (submitit's local controller would send it
    # only near the time limit)
    for task in children(submitted._process.pid):
        os.kill(task, submitit.local.local.LocalJobEnvironment._usr_sig())
    submitted.result()  # waits: requeued, then finished
    rows = [json.loads(line) for line in (Path(run.out_dir) / METRICS_JSONL).read_text()
            .splitlines()]
    assert [r["step"] for r in rows if r["kind"] == "train"] == list(range(1, 61))
    assert "resumed at step" in submitted.stderr()
    assert [(r.variant, r.seed, r.steps) for r in read_maps(tmp_path / "maps.csv")] == [
        ("passt-s", 0, 60)]


@pytest.mark.integration
def test_detached_runs_fill_maps_csv_after_the_command_returns(tmp_path):
    out = tmp_path / "detached"
    started = time.monotonic()
    printed = finished(passt("sweep", "--variants", "passt-s", "--seeds", "0,1", "--steps", "2",
                             *TINY_ARGS, "--jobs", "2", "--detach", "--out", str(out)))
    assert time.monotonic() - started < 60 and "in the background" in printed
    deadline = time.monotonic() + 300
    while not (out / "maps.csv").exists() or len(read_maps(out / "maps.csv")) < 2:
        assert time.monotonic() < deadline, (out / "launch.log").read_text()[-2000:]
        time.sleep(0.5)
    assert sorted(maps(out)) == [("passt-s", 0), ("passt-s", 1)]
