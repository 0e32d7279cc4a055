"""Launchers of independent training runs (a sweep's variant-seed pairs, a cross-validation's
folds): one after another in this process (``local``, the default: ``torchrun`` spans them),
N at once as processes of this machine (``local --jobs N``, one GPU each where there are
several), or a job each on a SLURM cluster through submitit (``slurm``).

A run is a `Job`: its folder, the function that trains it and the one that rebuilds the shared
files (``maps.csv``, ``folds.csv``, ``summary.json``) from the finished runs' ``result.json``.
Whoever finishes a run rebuilds them under a lock, so runs that finish together never corrupt
them, whether the launching command waits or has returned (``--detach``). A run's folder is
locked while it trains: a run started twice waits for the first and then finds it finished.
``python -m passt.train.launch RUN/job.json`` runs one job alone (what a failed job's message says).
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from passt.plugins import load_plugins, portable
from passt.utils.atomic import locked, write_text_atomic
from passt.utils.errors import UsageError
from passt.utils.settings import parse_overrides, setting
from passt.utils.values import check_int

log = logging.getLogger(__name__)

Launcher = Literal["local", "slurm"]
JOB_JSON = "job.json"
JOB_LOG = "job.log"
RESULT_JSON = "result.json"  # a finished run's record, written by its runner
RUN_LOCK = ".run.lock"
COLLECT_LOCK = ".collect.lock"
POLL_S = 1.0


@dataclass(frozen=True)
class LaunchConfig:
    """How a sweep's or a cross-validation's runs are started, each a setting and its flag."""

    launcher: Launcher = setting(
        "local", help="local: on this machine (one after another, or --jobs at once); slurm: "
                      "a SLURM job each through submitit (pip install -e '.[cluster]'; "
                      "without SLURM, submitit's local executor); default: %(default)s")
    jobs: int = setting(1, help="local: runs at once, each a process (one GPU each where there "
                                "are several, the CPU's threads shared out); default 1: one "
                                "after another in this process")
    detach: bool = setting(False, help="return once the runs are started; each writes its "
                                       "results into OUT when it finishes")
    slurm_partition: str | None = setting(None, help="SLURM partition; default: the cluster's")
    slurm_time: int = setting(240, help="minutes a SLURM job may run; default: %(default)s")
    slurm_gpus: int = setting(
        1, help="GPUs per SLURM job, one process each (a torchrun-like run); default: "
                "%(default)s")
    slurm_cpus: int = setting(8, help="CPUs per process of a SLURM job; default: %(default)s")
    slurm_mem_gb: int | None = setting(None, help="memory per SLURM job in GB")
    slurm_args: dict[str, Any] = setting(
        default_factory=dict, parse=parse_overrides, metavar="KEY=VALUE,...",
        help="more sbatch options, e.g. account=abc,qos=high,constraint=a100")

    def __post_init__(self) -> None:
        for name in ("jobs", "slurm_time", "slurm_cpus"):
            check_int(name, getattr(self, name), minimum=1)
        check_int("slurm_gpus", self.slurm_gpus, minimum=0)
        if self.launcher == "slurm" and self.jobs != 1:
            raise UsageError("--jobs is for --launcher local; SLURM runs every job it can")
        if self.detach and self.in_process:
            raise UsageError("--detach needs runs in processes of their own: --jobs N "
                             "(N > 1) or --launcher slurm")

    @property
    def in_process(self) -> bool:
        """Whether the runs run in this process, one after another."""
        return self.launcher == "local" and self.jobs == 1


@dataclass(frozen=True)
class Job:
    """One run: a name for people, its folder, the function (``module:name``) that trains it
    and the one that rebuilds the shared files of ``out_dir``, with their arguments."""

    name: str
    run_dir: str
    out_dir: str
    runner: str  # (payload) -> bool: True in the process that wrote the result (rank 0)
    collector: str  # (out_dir) -> None
    payload: dict[str, Any]
    plugins: tuple[str, ...] = ()  # what the run's process loads first (--plugin)

    def __post_init__(self) -> None:
        object.__setattr__(self, "plugins", tuple(portable(p) for p in self.plugins))

    @property
    def path(self) -> Path:
        return Path(self.run_dir) / JOB_JSON

    @property
    def finished(self) -> bool:
        return (Path(self.run_dir) / RESULT_JSON).exists()

    def write(self) -> Path:
        """``job.json`` in the run's folder, for a process of its own."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(self.path, json.dumps(dataclasses.asdict(self), indent=1))
        return self.path

    @classmethod
    def read(cls, path: str | Path) -> Job:
        data = json.loads(Path(path).read_text())
        return cls(**{**data, "plugins": tuple(data.get("plugins", ()))})

    def rerun_command(self) -> str:
        return f"python -m passt.train.launch {self.path}"


def _resolve(spec: str) -> Callable[..., Any]:
    module, _, name = spec.partition(":")
    return getattr(importlib.import_module(module), name)


def write_result(run_dir: str | Path, result: dict[str, Any]) -> None:
    """A runner's record of its finished run: what the collector reads."""
    write_text_atomic(Path(run_dir) / RESULT_JSON, json.dumps(result, indent=1))


def read_results(paths: Sequence[Path]) -> list[dict[str, Any]]:
    """The records of the finished runs among ``paths`` (run folders)."""
    return [json.loads((p / RESULT_JSON).read_text()) for p in paths
            if (p / RESULT_JSON).exists()]


def collect_job(job: Job) -> None:
    """Rebuild the shared files of ``job.out_dir``, one process at a time."""
    with locked(Path(job.out_dir) / COLLECT_LOCK):
        _resolve(job.collector)(Path(job.out_dir))


def run_job(job: Job) -> None:
    """Run ``job`` in this process, unless another has finished it, then rebuild the shared
    files. Rank 0 of a ``torchrun``-like job holds the run's lock while it trains."""
    load_plugins(job.plugins)
    writes = False
    lock = (locked(Path(job.run_dir) / RUN_LOCK) if os.environ.get("RANK", "0") == "0"
            else contextlib.nullcontext(True))
    with lock:
        if job.finished:
            log.info("%s: finished elsewhere", job.name)
            writes = os.environ.get("RANK", "0") == "0"
        else:
            writes = _resolve(job.runner)(job.payload)
    if writes:
        collect_job(job)


class RunsFailed(RuntimeError):
    """Runs launched in processes or jobs of their own failed (each has a log of its own)."""


@dataclass
class Outcome:
    """What a launch did: jobs started, failed (each with its log's end and how to rerun it)."""

    started: list[Job] = field(default_factory=list)
    failed: list[tuple[Job, str]] = field(default_factory=list)
    detached: bool = False

    def raise_for_failures(self) -> None:
        if not self.failed:
            return
        lines = [f"{len(self.failed)} of {len(self.started)} run(s) failed:"]
        for job, tail in self.failed:
            lines += [f"- {job.name}: {tail.strip()[-800:] or '(no output)'}",
                      f"  rerun it alone: {job.rerun_command()}"]
        lines.append("rerun the same command with --resume to run the failed and missing "
                     "runs again")
        raise RunsFailed("\n".join(lines))


def launch(jobs: Sequence[Job], cfg: LaunchConfig, out_dir: Path) -> Outcome:
    """Start ``jobs`` as ``cfg`` says and, unless detached, wait for them."""
    if not jobs:
        return Outcome()
    if cfg.in_process:
        for job in jobs:
            log.info("run %s", job.name)
            run_job(job)
        return Outcome(list(jobs))
    if os.environ.get("WORLD_SIZE", "1") != "1":
        raise UsageError("--jobs and --launcher slurm start processes of their own: run this "
                         "command alone, not under torchrun")
    for job in jobs:
        job.write()
    if cfg.launcher == "slurm":
        return _slurm(jobs, cfg, out_dir)
    if cfg.detach:
        log_path = out_dir / "launch.log"
        with open(log_path, "a") as f:
            subprocess.Popen([sys.executable, "-m", "passt.train.launch", "--jobs", str(cfg.jobs),
                              *(str(j.path) for j in jobs)], stdout=f, stderr=subprocess.STDOUT,
                             start_new_session=True)
        print(f"started {len(jobs)} run(s), {cfg.jobs} at a time, in the background; its log: "
              f"{log_path}", file=sys.stderr)
        return Outcome(list(jobs), detached=True)
    return run_processes(jobs, cfg.jobs)


def _gpus() -> list[int]:
    try:
        import torch

        return list(range(torch.cuda.device_count()))
    except Exception:  # no torch CUDA: CPU processes
        return []


def _tail(path: Path, lines: int = 12) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _progress(done: int, running: int, failed: int, total: int) -> None:
    print(f"\rjobs: {done} done, {running} running, {failed} failed of {total}", end="",
          file=sys.stderr, flush=True)


def run_processes(jobs: Sequence[Job], slots: int) -> Outcome:
    """Run ``jobs``, ``slots`` at a time, each ``python -m passt.train.launch JOB`` with its log in
    its folder; a GPU each where there are several, else the CPUs' threads shared out."""
    gpus = _gpus()
    threads = max(1, (os.cpu_count() or 1) // slots)
    pending, running = list(jobs), {}
    outcome = Outcome(list(jobs))
    done = 0
    try:
        while pending or running:
            for slot in range(slots):
                if slot in running or not pending:
                    continue
                job = pending.pop(0)
                env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
                if len(gpus) > 1:
                    env["CUDA_VISIBLE_DEVICES"] = str(gpus[slot % len(gpus)])
                log_file = open(Path(job.run_dir) / JOB_LOG, "w")  # noqa: SIM115 (closed below)
                proc = subprocess.Popen([sys.executable, "-m", "passt.train.launch", str(job.path)],
                                        stdout=log_file, stderr=subprocess.STDOUT, env=env)
                running[slot] = (job, proc, log_file)
            for slot, (job, proc, log_file) in list(running.items()):
                if proc.poll() is None:
                    continue
                log_file.close()
                del running[slot]
                if proc.returncode == 0:
                    done += 1
                else:
                    outcome.failed.append((job, _tail(Path(job.run_dir) / JOB_LOG)))
            _progress(done, len(running), len(outcome.failed), len(jobs))
            time.sleep(POLL_S if running else 0)
    finally:
        for _job, proc, log_file in running.values():  # interrupted: stop what is running
            proc.terminate()
            proc.wait()
            log_file.close()
        print(file=sys.stderr)
    return outcome


class SubmititRun:
    """A SLURM job's function: one run (`run_job`), the processes of a several-GPU job joined
    as ``torchrun`` would; on preemption or timeout submitit requeues it, and it continues
    from the run's last checkpoint."""

    def __init__(self, job_path: str, resume: bool = False):
        self.job_path = job_path
        self.resume = resume

    def __call__(self) -> None:
        import submitit

        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
        if submitit.JobEnvironment().num_tasks > 1:
            submitit.helpers.TorchDistributedEnvironment().export()
        job = Job.read(self.job_path)
        if self.resume:
            job = dataclasses.replace(job, payload={**job.payload, "resume": True})
        run_job(job)

    def checkpoint(self, *args: Any, **kwargs: Any) -> Any:
        import submitit

        return submitit.helpers.DelayedSubmission(SubmititRun(self.job_path, resume=True))


def _submitit() -> Any:
    try:
        import submitit
    except ModuleNotFoundError:
        raise UsageError("--launcher slurm needs submitit: pip install -e '.[cluster]' (or pip "
                         "install submitit)") from None
    return submitit


def _slurm(jobs: Sequence[Job], cfg: LaunchConfig, out_dir: Path) -> Outcome:
    submitit = _submitit()
    executor = submitit.AutoExecutor(folder=out_dir / "slurm" / "%j")
    if executor.cluster != "slurm":
        log.warning("no SLURM here (no sbatch): submitit runs the jobs as local processes")
    tasks = max(1, cfg.slurm_gpus)
    params: dict[str, Any] = {
        "timeout_min": cfg.slurm_time, "tasks_per_node": tasks, "cpus_per_task": cfg.slurm_cpus,
        "gpus_per_node": cfg.slurm_gpus, "name": f"passt-{out_dir.name}",
        "slurm_additional_parameters": dict(cfg.slurm_args)}
    if cfg.slurm_partition:
        params["slurm_partition"] = cfg.slurm_partition
    if cfg.slurm_mem_gb:
        params["mem_gb"] = cfg.slurm_mem_gb
    executor.update_parameters(**params)
    submitted = [(job, executor.submit(SubmititRun(str(job.path)))) for job in jobs]
    print(f"submitted {len(submitted)} job(s) to {executor.cluster}: "
          f"{', '.join(str(s.job_id) for _, s in submitted)}; logs in {out_dir / 'slurm'}",
          file=sys.stderr)
    outcome = Outcome(list(jobs), detached=cfg.detach)
    if cfg.detach:
        return outcome
    waiting = list(submitted)
    try:
        while waiting:
            for job, s in list(waiting):
                if not s.done():
                    continue
                waiting.remove((job, s))
                error = s.exception()
                if error is not None:
                    outcome.failed.append((job, f"{error}\n{_stderr(s)}"))
            _progress(len(submitted) - len(waiting) - len(outcome.failed), len(waiting),
                      len(outcome.failed), len(submitted))
            time.sleep(POLL_S if waiting else 0)
    finally:
        print(file=sys.stderr)
    return outcome


def _stderr(job: Any) -> str:
    try:
        return "\n".join((job.stderr() or "").splitlines()[-12:])
    except Exception:  # the log may be gone
        return ""


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m passt.train.launch JOB.json`` runs one job; ``--jobs N JOB.json...`` runs them N
    at a time (what ``--detach`` starts in the background)."""
    import argparse

    p = argparse.ArgumentParser(prog="python -m passt.train.launch")
    p.add_argument("--jobs", type=int, default=None)
    p.add_argument("job", nargs="+", metavar="JOB.json")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    jobs = [Job.read(path) for path in args.job]
    if args.jobs is None:
        for job in jobs:
            run_job(job)
        return 0
    outcome = run_processes(jobs, args.jobs)
    for job, tail in outcome.failed:
        print(f"{job.name} failed:\n{tail}\nrerun it alone: {job.rerun_command()}",
              file=sys.stderr)
    return 1 if outcome.failed else 0


if __name__ == "__main__":
    sys.exit(main())
