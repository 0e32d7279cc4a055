"""Tests for passt.measure.environment and the throttling `GpuMonitor` sees: what is captured
with and without a GPU, the busy-machine and different-machine warnings, and the bench JSON."""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
import types

import pytest
import torch
from test_measure_telemetry import FakeNVMLError, fake_nvml

from passt.measure import environment
from passt.measure.environment import (
    MACHINE_INFO_KEY,
    Environment,
    busy_warnings,
    capture,
    compare_environments,
    environment_from_machine_info,
    environment_warnings,
    read_environments,
)
from passt.measure.telemetry import GpuMonitor, GpuProcess, GpuState, throttle_reasons
from passt.utils.errors import UsageError
from tests.helpers import run_bench

no_gpu = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the machine has no GPU")
OTHER_PID = 4242  # a process that is not this one


def fake_gpu(masks=(0x1,), event_api=True, throttle_api=True) -> types.ModuleType:
    """`fake_nvml`'s GPU at 1410 of 1980 MHz, 2619 MHz memory, a 700 W limit, persistence on,
    and this process and another (3 GiB) on it; its clocks-event reasons are ``masks`` in turn,
    read through the newer API, the older one, or neither."""
    nvml = fake_nvml(1_000_000)
    reasons = iter(masks)
    nvml.nvmlDeviceGetClockInfo = lambda handle, clock: {1: 1410, 2: 2619}[clock]
    nvml.nvmlDeviceGetMaxClockInfo = lambda handle, clock: {1: 1980, 2: 2619}[clock]
    nvml.nvmlDeviceGetEnforcedPowerLimit = lambda handle: 700_000
    nvml.nvmlDeviceGetPersistenceMode = lambda handle: 1
    nvml.nvmlDeviceGetComputeRunningProcesses = lambda handle: [
        types.SimpleNamespace(pid=OTHER_PID, usedGpuMemory=3 * 2**30),
        types.SimpleNamespace(pid=os.getpid(), usedGpuMemory=None)]

    def mask(handle):
        return next(reasons, masks[-1])

    if event_api:
        nvml.nvmlDeviceGetCurrentClocksEventReasons = mask
    if throttle_api:
        nvml.nvmlDeviceGetCurrentClocksThrottleReasons = mask
    return nvml


def env(**changes) -> Environment:
    """A quiet 8-CPU machine running 8 torch threads, without a GPU."""
    quiet = Environment(
        pid=100, load_avg=(0.2, 0.3, 0.4), cpu_model="AMD EPYC 9654", cpu_count=8,
        cpu_governor="performance", torch_threads=8, python="3.11.7", torch="2.14.1",
        cuda="13.0", cudnn=92400, passt_bench="0.1.0", cuda_initialized=False, gpu=None)
    return dataclasses.replace(quiet, **changes)


def gpu(*pids: int, name: str = "NVIDIA H200") -> GpuState:
    return GpuState(index=0, name=name, driver="580.65.06", sm_clock_mhz=1980,
                    memory_clock_mhz=3201, max_sm_clock_mhz=1980, max_memory_clock_mhz=3201,
                    power_limit_w=700.0, persistence_mode=True,
                    processes=tuple(GpuProcess(pid, 2**30) for pid in pids))


# capture

def test_capture_reads_the_host_and_software():
    e = capture(gpu_index=None)
    assert e.pid == os.getpid() and e.cpu_count == os.cpu_count()
    assert len(e.load_avg) == 3 and all(x >= 0 for x in e.load_avg)
    assert e.torch_threads == torch.get_num_threads() and e.torch == torch.__version__
    assert e.python == ".".join(map(str, sys.version_info[:3]))
    assert e.cuda == torch.version.cuda and e.passt_bench  # installed in the venv
    assert e.gpu is None


@no_gpu
def test_capture_without_a_gpu_has_no_gpu_state():
    assert capture().gpu is None


def test_capture_without_nvml_has_no_gpu_state(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import pynvml raises ImportError
    assert capture(0).gpu is None


def test_cpu_governor_is_read_where_cpufreq_exists(monkeypatch, tmp_path):
    governor = tmp_path / "scaling_governor"
    monkeypatch.setattr(environment, "GOVERNOR", governor)
    assert capture(None).cpu_governor is None
    governor.write_text("powersave\n")
    assert capture(None).cpu_governor == "powersave"


def test_capture_reads_the_gpu_through_nvml(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", fake_gpu())
    state = capture(0).gpu
    assert state == GpuState(
        index=0, name="NVIDIA H100 80GB HBM3", driver="580.65.06", sm_clock_mhz=1410,
        memory_clock_mhz=2619, max_sm_clock_mhz=1980, max_memory_clock_mhz=2619,
        power_limit_w=700.0, persistence_mode=True,
        processes=(GpuProcess(OTHER_PID, 3 * 2**30), GpuProcess(os.getpid(), None)))


def test_a_figure_the_gpu_does_not_report_is_none(monkeypatch):
    nvml = fake_gpu()

    def unsupported(*args):
        raise FakeNVMLError("Not Supported")

    nvml.nvmlDeviceGetMaxClockInfo = nvml.nvmlDeviceGetPersistenceMode = unsupported
    monkeypatch.setitem(sys.modules, "pynvml", nvml)
    state = capture(0).gpu
    assert state.max_sm_clock_mhz is None and state.persistence_mode is None
    assert state.sm_clock_mhz == 1410 and state.power_limit_w == 700.0


# throttling seen by GpuMonitor

def test_throttle_reasons_are_named_and_idle_is_not_throttling():
    assert throttle_reasons(0x0) == () and throttle_reasons(0x1 | 0x2) == ()
    assert throttle_reasons(0x4 | 0x8 | 0x20 | 0x40 | 0x80) == (
        "sw_power_cap", "hw_slowdown", "sw_thermal", "hw_thermal", "hw_power_brake")
    assert throttle_reasons(0x1 | 0x1000) == ("0x1000",)  # a bit of a newer driver


@pytest.mark.parametrize("event_api, throttle_api", [(True, False), (False, True)])
def test_energy_meter_collects_every_throttle_reason_it_saw(monkeypatch, event_api,
                                                            throttle_api):
    masks = (0x1, 0x4 | 0x1, 0x0, 0x20)  # idle, power cap, nothing, thermal
    monkeypatch.setitem(sys.modules, "pynvml", fake_gpu(masks, event_api, throttle_api))
    with GpuMonitor(interval_s=0.01, min_window_s=0.05) as meter:
        time.sleep(0.1)
    assert meter.throttle_reasons == ("sw_power_cap", "sw_thermal")


def test_energy_meter_without_throttling_or_its_api(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", fake_gpu((0x1, 0x2)))
    with GpuMonitor(interval_s=0.01, min_window_s=0.05) as meter:
        time.sleep(0.05)
    assert meter.throttle_reasons == ()
    monkeypatch.setitem(sys.modules, "pynvml", fake_gpu(event_api=False, throttle_api=False))
    with GpuMonitor(interval_s=0.01, min_window_s=0.05) as meter:
        time.sleep(0.05)
    assert meter.available and meter.mean_util_pct == 80 and meter.throttle_reasons is None


@no_gpu
def test_energy_meter_without_a_gpu_has_no_throttle_reasons():
    with GpuMonitor() as meter:
        sum(range(1000))
    assert meter.throttle_reasons is None


# busy_warnings

def test_a_quiet_machine_has_no_busy_warnings():
    assert busy_warnings(env(), env(load_avg=(8.5, 8.0, 7.0))) == []  # the run's own 8 threads


@pytest.mark.parametrize("cpus, threads, quiet, busy", [
    (8, 8, 8.5, 8.6),  # the run's threads fill the CPUs: anything above them is busy
    (8, 2, 8.5, 8.6),  # others may use the 6 CPUs the run leaves free, not more
    (2, 4, 4.5, 4.6),  # more threads than CPUs: the run's own load is its threads
])
def test_busy_when_the_load_beyond_the_runs_threads_takes_its_cpus(cpus, threads, quiet, busy):
    def warnings(load):
        e = env(cpu_count=cpus, torch_threads=threads, load_avg=(load, 0.0, 0.0))
        return busy_warnings(e, env())

    assert warnings(quiet) == []
    assert warnings(busy) == [
        f"machine busy before the run: 1-minute load average {busy:.2f} > {quiet:.1f} "
        f"({cpus} logical CPUs, {threads} torch threads)"]


def test_busy_after_the_run_and_without_a_load_average():
    lines = busy_warnings(env(load_avg=None), env(load_avg=(12.0, 6.0, 3.0)))
    assert len(lines) == 1 and lines[0].startswith("machine busy after the run: ")


def test_other_processes_on_the_gpu_are_named_and_this_one_is_not():
    before = env(gpu=gpu(OTHER_PID))
    after = env(gpu=gpu(OTHER_PID, 100), cuda_initialized=True)  # 100 is this process
    assert busy_warnings(before, after) == [
        f"other processes on GPU 0 {when} the run: pid {OTHER_PID} (1.0 GiB)"
        for when in ("before", "after")]
    assert busy_warnings(env(gpu=gpu()), env(gpu=gpu(100), cuda_initialized=True)) == []


def test_gpu_pids_of_another_namespace_count_this_process_once():
    # In a container an older driver lists host PIDs: this process is among them unnamed.
    alone = env(gpu=gpu(OTHER_PID), cuda_initialized=True)
    assert busy_warnings(env(), alone) == []
    shared = env(gpu=gpu(OTHER_PID, OTHER_PID + 1), cuda_initialized=True)
    assert busy_warnings(env(), shared) == [
        f"1 other process(es) on GPU 0 after the run, among pid {OTHER_PID} (1.0 GiB), "
        f"pid {OTHER_PID + 1} (1.0 GiB) (PIDs of another namespace)"]


def test_throttling_is_a_busy_warning():
    assert busy_warnings(env(), env(), ["sw_thermal", "sw_power_cap", "sw_thermal"]) == [
        "GPU throttled during the timed steps: sw_power_cap, sw_thermal"]


# compare_environments

def test_identical_environments_compare_equal():
    assert compare_environments(env(gpu=gpu()), env(gpu=gpu(OTHER_PID), load_avg=(3, 2, 1))) == []


@pytest.mark.parametrize("change, warning", [
    ({"torch": "2.15.0"}, "different torch: 2.14.1 vs 2.15.0"),
    ({"cpu_model": "Intel Xeon 8480"}, "different CPU: AMD EPYC 9654 vs Intel Xeon 8480"),
    ({"gpu": gpu(name="NVIDIA H100")}, "different GPU: NVIDIA H200 vs NVIDIA H100"),
    ({"torch_threads": 4}, "different torch threads: 8 vs 4"),
    ({"cuda": "12.8", "cudnn": 91000}, "different CUDA: 13.0 vs 12.8"),
])
def test_different_devices_threads_and_versions_are_flagged(change, warning):
    assert warning in compare_environments(env(gpu=gpu()), env(**{"gpu": gpu(), **change}))


def test_a_field_one_run_lacks_is_not_compared():
    assert compare_environments(env(gpu=gpu()), env(torch=None, gpu=None)) == []


# JSON

def test_environment_round_trips_through_json():
    for e in (env(), env(gpu=gpu(OTHER_PID, 100), cuda_initialized=True), capture(None)):
        assert Environment.from_json(json.loads(json.dumps(e.to_json()))) == e


def test_environment_from_json_tolerates_missing_and_unknown_keys():
    assert Environment.from_json({"torch": "2.14.1", "new_field": 1}) == Environment(
        **{f.name: None for f in dataclasses.fields(Environment)} | {"torch": "2.14.1"})
    with pytest.raises(UsageError, match=r"passt_environment.after should be a JSON object"):
        read_environments({MACHINE_INFO_KEY: {"before": {}}})


def test_environment_warnings_read_back_from_machine_info():
    busy = env(load_avg=(20.0, 10.0, 5.0), gpu=gpu(OTHER_PID))
    machine_info = json.loads(json.dumps({
        "torch": "2.14.1", MACHINE_INFO_KEY: {"before": busy.to_json(), "after": env().to_json()}}))
    assert environment_warnings(machine_info, ["hw_slowdown"]) == busy_warnings(
        busy, env(), ["hw_slowdown"])
    assert len(environment_warnings(machine_info)) == 2
    assert environment_warnings({"torch": "2.14.1"}) == []  # written before environments


def test_environment_from_machine_info_reads_older_files_too():
    before = env(gpu=gpu(OTHER_PID))
    machine_info = {"torch": "2.14.1", MACHINE_INFO_KEY: {"before": before.to_json(),
                                                          "after": env().to_json()}}
    assert environment_from_machine_info(machine_info) == before
    older = environment_from_machine_info({
        "torch": "2.13.0", "cuda": "13.0", "cudnn": 92400, "python": "3.11.7",
        "torch_threads": 8, "gpu": "NVIDIA H100", "passt_preset": "gpu"})
    assert compare_environments(env(gpu=gpu()), older) == [
        "different torch: 2.14.1 vs 2.13.0", "different GPU: NVIDIA H200 vs NVIDIA H100"]
    assert compare_environments(env(), environment_from_machine_info({})) == []


# A pytest plugin that changes the machine between the start and the end of the run.
ONE_MORE_THREAD = """
import torch

def pytest_collection_finish(session):
    torch.set_num_threads(torch.get_num_threads() + 1)
"""


@pytest.mark.integration
def test_bench_json_holds_the_environment_before_and_after(tmp_path, tiny_plugin):
    out = tmp_path / "out.json"
    (tmp_path / "one_more_thread.py").write_text(ONE_MORE_THREAD)  # run_bench's cwd
    proc = run_bench(tiny_plugin, "--bench-variants", "tiny-s", "--bench-clip-seconds", "1",
                     "--bench-rounds", "1", "--bench-max-rounds", "1", "--bench-warmup", "0",
                     "--bench-journal=", f"--benchmark-json={out}", "-k", "inference",
                     "-p", "one_more_thread")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    machine_info = json.loads(out.read_text())["machine_info"]
    assert machine_info["passt_preset"] == "cpu-small"
    before, after = read_environments(machine_info)
    assert after.torch_threads == machine_info["torch_threads"] == before.torch_threads + 1
    for e in (before, after):
        assert e.pid and e.pid == before.pid != os.getpid()  # the bench's own process
        assert e.torch == torch.__version__ and e.cpu_count == os.cpu_count()
        assert len(e.load_avg) == 3
        assert e.gpu is None  # a run on the CPU
    assert isinstance(environment_warnings(machine_info), list)
