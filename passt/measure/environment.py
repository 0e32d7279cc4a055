"""The machine a benchmark ran on, before and after the run: host load, CPU, software versions
and GPU state, and the warnings they raise (a busy machine, two runs on different machines).

Everything this cannot read (no GPU, no NVML, no cpufreq) is None; nothing here raises for that.
"""

from __future__ import annotations

import dataclasses
import os
import platform
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import torch

from passt.measure.telemetry import GpuProcess, GpuState, gpu_state
from passt.utils.errors import UsageError

GOVERNOR = Path("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor")
# machine_info's key of the run's environments: {"before": ..., "after": ...}
MACHINE_INFO_KEY = "passt_environment"
# The load above a run's own threads taken as noise (the shell, pytest's own bookkeeping).
LOAD_MARGIN = 0.5


@dataclass(frozen=True)
class Environment:
    """Host, software and GPU at one moment of a run (None: could not be read)."""

    pid: int | None  # this process, to tell its GPU context from other processes'
    load_avg: tuple[float, ...] | None  # 1, 5 and 15 minutes
    cpu_model: str | None
    cpu_count: int | None  # logical CPUs
    cpu_governor: str | None
    torch_threads: int | None
    python: str | None
    torch: str | None
    cuda: str | None
    cudnn: int | None
    passt_bench: str | None
    cuda_initialized: bool | None  # whether this process had a CUDA context to list
    gpu: GpuState | None

    def to_json(self) -> dict[str, Any]:
        """Every field as data for JSON."""
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: Any) -> Environment:
        """An environment as `to_json` wrote it; a key it lacks is None, one it does not know
        is dropped. A `UsageError` for anything but a JSON object."""
        data = _mapping("environment", data)
        values = {f.name: data.get(f.name) for f in dataclasses.fields(cls)}
        if values["load_avg"] is not None:
            values["load_avg"] = tuple(values["load_avg"])
        if values["gpu"] is not None:
            values["gpu"] = _gpu_from_json(_mapping("environment gpu", values["gpu"]))
        return cls(**values)


def _mapping(what: str, data: Any) -> Mapping[str, Any]:
    if not isinstance(data, Mapping):
        raise UsageError(f"{what} should be a JSON object, got {data!r}")
    return data


def _gpu_from_json(data: Mapping[str, Any]) -> GpuState:
    values = {f.name: data.get(f.name) for f in dataclasses.fields(GpuState)}
    if values["processes"] is not None:
        values["processes"] = tuple(
            GpuProcess(**{f.name: _mapping("GPU process", p).get(f.name)
                          for f in dataclasses.fields(GpuProcess)})
            for p in values["processes"])
    return GpuState(**values)


def capture(gpu_index: int | None = 0) -> Environment:
    """The environment now, with CUDA device ``gpu_index``'s state (None: no GPU state, for a
    run on the CPU)."""
    try:
        load: tuple[float, ...] | None = os.getloadavg()
    except OSError:  # a platform without a load average
        load = None
    return Environment(
        pid=os.getpid(),
        load_avg=load,
        cpu_model=_cpu_model(),
        cpu_count=os.cpu_count(),
        cpu_governor=_read(GOVERNOR),
        torch_threads=torch.get_num_threads(),
        python=platform.python_version(),
        torch=torch.__version__,
        cuda=torch.version.cuda,
        cudnn=torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        passt_bench=_version("passt-bench"),
        cuda_initialized=torch.cuda.is_initialized(),
        gpu=None if gpu_index is None else gpu_state(gpu_index),
    )


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def _cpu_model() -> str | None:
    """The CPU's model name from /proc/cpuinfo (Linux on x86), else what platform reports."""
    for line in (_read(Path("/proc/cpuinfo")) or "").splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name":
            return value.strip()
    return platform.processor() or None


def _version(package: str) -> str | None:
    try:
        return version(package)
    except PackageNotFoundError:
        return None


def busy_warnings(before: Environment, after: Environment,
                  throttle_reasons: Iterable[str] = ()) -> list[str]:
    """Lines saying the machine was busy around a run: a high load average or other processes
    on the GPU before or after it, and the GPU throttling reasons seen while it ran.

    The 1-minute load average is taken to include the run's own torch threads (it does after
    the run, and before a run that follows another), so the machine counts as busy when the
    load exceeds max(logical CPUs, torch threads) + 0.5: the load beyond the run's own threads
    would then take CPUs that the run needs.
    """
    lines = []
    for when, env in (("before", before), ("after", after)):
        limit = _load_limit(env)
        if env.load_avg and limit is not None and env.load_avg[0] > limit:
            lines.append(f"machine busy {when} the run: 1-minute load average "
                         f"{env.load_avg[0]:.2f} > {limit:.1f} ({env.cpu_count} logical CPUs, "
                         f"{env.torch_threads} torch threads)")
        gpu_line = _gpu_processes_line(env, when)
        if gpu_line:
            lines.append(gpu_line)
    reasons = sorted(set(throttle_reasons))
    if reasons:
        lines.append(f"GPU throttled during the timed steps: {', '.join(reasons)}")
    return lines


def _load_limit(env: Environment) -> float | None:
    """The 1-minute load average above which `busy_warnings` calls the machine busy."""
    if env.cpu_count is None or env.torch_threads is None:
        return None
    return max(env.cpu_count, env.torch_threads) + LOAD_MARGIN


def _gpu_processes_line(env: Environment, when: str) -> str | None:
    """The line naming the processes on the GPU besides this one; None when there are none."""
    if env.gpu is None or not env.gpu.processes:
        return None
    listed = env.gpu.processes
    others = [p for p in listed if p.pid != env.pid]
    where = f"on GPU {env.gpu.index} {when} the run"
    if env.cuda_initialized and len(others) == len(listed):
        # This process holds a context yet is not listed: NVML gave the PIDs of another PID
        # namespace (an older driver in a container), and one of them, unknown which, is ours.
        if len(listed) == 1:
            return None
        return (f"{len(listed) - 1} other process(es) {where}, among "
                f"{', '.join(_describe(p) for p in listed)} (PIDs of another namespace)")
    if not others:
        return None
    return f"other processes {where}: {', '.join(_describe(p) for p in others)}"


def _describe(p: GpuProcess) -> str:
    used = "" if p.used_memory_bytes is None else f" ({p.used_memory_bytes / 2**30:.1f} GiB)"
    return f"pid {p.pid}{used}"


# Fields that make two runs incomparable, with how a warning names them.
_COMPARED = {"cpu_model": "CPU", "torch_threads": "torch threads", "torch": "torch",
             "cuda": "CUDA", "cudnn": "cuDNN", "python": "python"}


def compare_environments(a: Environment, b: Environment) -> list[str]:
    """Warnings that runs ``a`` and ``b`` differ in device (CPU model, GPU), torch threads or
    software (torch, CUDA, cuDNN, python); a field either run lacks is not compared."""
    pairs = [(name, getattr(a, field), getattr(b, field)) for field, name in _COMPARED.items()]
    pairs.append(("GPU", a.gpu and a.gpu.name, b.gpu and b.gpu.name))
    return [f"different {name}: {x} vs {y}" for name, x, y in pairs
            if x is not None and y is not None and x != y]


def read_environments(machine_info: Mapping[str, Any]) -> tuple[Environment, Environment] | None:
    """The environments before and after the run of a benchmark JSON's ``machine_info``; None
    for a file written without them."""
    data = machine_info.get(MACHINE_INFO_KEY)
    if data is None:
        return None
    data = _mapping(MACHINE_INFO_KEY, data)
    before, after = (_mapping(f"{MACHINE_INFO_KEY}.{when}", data.get(when))
                     for when in ("before", "after"))
    return Environment.from_json(before), Environment.from_json(after)


def environment_from_machine_info(machine_info: Mapping[str, Any]) -> Environment:
    """The environment a benchmark JSON's run started in, for `compare_environments`; for a
    file written without environments, what its older keys say (versions, threads, GPU)."""
    environments = read_environments(machine_info)
    if environments is not None:
        return environments[0]
    legacy = {key: machine_info.get(key)
              for key in ("torch", "cuda", "cudnn", "python", "torch_threads")}
    name = machine_info.get("gpu")
    return Environment.from_json({**legacy, "gpu": None if name is None else {"name": name}})


def environment_warnings(machine_info: Mapping[str, Any],
                         throttle_reasons: Iterable[str] = ()) -> list[str]:
    """`busy_warnings` of a benchmark JSON's ``machine_info`` (``throttle_reasons``: those its
    rows saw); [] for a file written without its environments."""
    environments = read_environments(machine_info)
    if environments is None:
        return []
    return busy_warnings(*environments, throttle_reasons=throttle_reasons)
