"""Tests for passt.measure.telemetry: clean degradation without a GPU, and NVML bookkeeping."""

import sys
import threading
import time
import types

import pytest
import torch

from passt.measure import GpuMonitor, gpu_info, telemetry

no_gpu = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the machine has no GPU")


@no_gpu
def test_gpu_info_is_none_without_a_gpu():
    assert gpu_info() is None


@no_gpu
def test_energy_meter_degrades_without_a_gpu():
    with GpuMonitor() as meter:
        sum(range(1000))
    assert not meter.available
    assert meter.joules is None and meter.mean_power_w is None and meter.mean_util_pct is None
    assert meter.joules_per_sample(8) is None


class FakeNVMLError(Exception):
    pass


def fake_nvml(energy_mj=None) -> types.ModuleType:
    """A stand-in for pynvml: one GPU at 250 W and 80 % utilisation whose energy counter, if
    it has one, advances by 50 J between reads."""
    reads = iter(range(10))

    def energy(handle):
        if energy_mj is None:
            raise FakeNVMLError("not supported")
        return energy_mj + 50_000 * next(reads)

    nvml = types.ModuleType("pynvml")
    nvml.NVMLError = FakeNVMLError
    nvml.nvmlInit = lambda: None
    nvml.nvmlShutdown = lambda: None
    nvml.nvmlDeviceGetHandleByIndex = lambda index: f"gpu{index}"
    nvml.nvmlDeviceGetHandleByPciBusId = lambda bus_id: "gpu0"  # where torch sees a GPU
    nvml.nvmlDeviceGetName = lambda handle: b"NVIDIA H100 80GB HBM3"
    nvml.nvmlSystemGetDriverVersion = lambda: "580.65.06"
    nvml.nvmlDeviceGetMemoryInfo = lambda handle: types.SimpleNamespace(total=80 * 2**30)
    nvml.nvmlDeviceGetTotalEnergyConsumption = energy
    nvml.nvmlDeviceGetPowerUsage = lambda handle: 250_000
    nvml.nvmlDeviceGetUtilizationRates = lambda handle: types.SimpleNamespace(gpu=80)
    return nvml


def test_gpu_info_reads_nvml(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", fake_nvml())
    info = gpu_info()
    assert info.name == "NVIDIA H100 80GB HBM3" and info.driver == "580.65.06"
    assert info.memory_bytes == 80 * 2**30 and info.index == 0


@pytest.mark.parametrize("energy_mj", [1_000_000, None])
def test_energy_meter_with_nvml(monkeypatch, energy_mj):
    monkeypatch.setitem(sys.modules, "pynvml", fake_nvml(energy_mj))
    with GpuMonitor(interval_s=0.01, min_window_s=0.05) as meter:
        time.sleep(0.1)
    assert meter.available and meter.seconds >= 0.1
    assert meter.mean_util_pct == 80
    if energy_mj is None:  # power from the samples
        assert meter.joules is None and meter.joules_per_sample(4) is None
        assert meter.mean_power_w == 250
    else:  # power from the energy counter
        assert meter.joules == 50 and meter.joules_per_sample(4) == 12.5
        assert meter.mean_power_w == 50 / meter.seconds


def test_energy_of_a_window_too_short_to_resolve_is_not_reported(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", fake_nvml(1_000_000))
    with GpuMonitor(interval_s=0.01, min_window_s=0.5) as meter:
        time.sleep(0.05)
    assert meter.available and meter.seconds < 0.5
    assert meter.joules is None and meter.joules_per_sample(4) is None
    assert meter.mean_power_w is None


def test_the_monitor_samples_the_sm_clock(monkeypatch):
    nvml = fake_nvml(1_000_000)
    clocks = iter([1980, 1755, 1980, 1950])
    nvml.nvmlDeviceGetClockInfo = lambda handle, clock: next(clocks, 1980)
    monkeypatch.setitem(sys.modules, "pynvml", nvml)
    with GpuMonitor(interval_s=0.01, min_window_s=0.05) as meter:
        time.sleep(0.1)
    low, high, _ = meter.sm_clock_mhz
    assert (low, high) == (1755, 1980)
    assert meter.clock_change() == pytest.approx((1980 - 1755) / 1980)
    assert meter.sampled_power_w == 250


def test_a_hanging_nvml_call_does_not_hang_the_benchmark(monkeypatch):
    nvml = fake_nvml(1_000_000)
    release = threading.Event()

    def hang(handle):
        release.wait(30)
        return 250_000

    nvml.nvmlDeviceGetPowerUsage = hang
    monkeypatch.setitem(sys.modules, "pynvml", nvml)
    monkeypatch.setattr(telemetry, "SAMPLER_JOIN_S", 0.2)
    start = time.perf_counter()
    with GpuMonitor(interval_s=0.01, min_window_s=0.01) as meter:
        time.sleep(0.05)
    assert time.perf_counter() - start < 2
    assert meter.available and meter.sampled_power_w is None  # its samples are dropped
    release.set()
