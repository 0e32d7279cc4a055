"""GPU telemetry through NVML: name and driver, energy, power and utilisation over a window.

Without a GPU or NVML everything degrades to ``None``; nothing here raises for that.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import torch

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GpuInfo:
    """What NVML reports about one GPU."""

    index: int
    name: str
    driver: str
    memory_bytes: int


def _nvml() -> Any | None:
    """The initialised ``pynvml`` module, or None when NVML or its GPU driver is absent."""
    try:
        import pynvml

        pynvml.nvmlInit()
    except Exception as e:  # ImportError, or NVMLError (e.g. LibraryNotFound, DriverNotLoaded)
        log.debug("NVML unavailable: %s", e)
        return None
    return pynvml


def _handle(nvml: Any, index: int) -> Any:
    """NVML handle of CUDA device ``index``, matched by PCI bus id when torch sees the GPU.

    NVML numbers all GPUs, CUDA only the visible ones, so the indices can differ.
    """
    if torch.cuda.is_available() and index < torch.cuda.device_count():
        p = torch.cuda.get_device_properties(index)
        bus_id = f"{p.pci_domain_id:08x}:{p.pci_bus_id:02x}:{p.pci_device_id:02x}.0"
        return nvml.nvmlDeviceGetHandleByPciBusId(bus_id)
    return nvml.nvmlDeviceGetHandleByIndex(index)


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


def gpu_info(index: int = 0) -> GpuInfo | None:
    """Name, driver and memory of CUDA device ``index``; None without a GPU or NVML."""
    nvml = _nvml()
    if nvml is None:
        return None
    try:
        handle = _handle(nvml, index)
        return GpuInfo(
            index=index,
            name=_text(nvml.nvmlDeviceGetName(handle)),
            driver=_text(nvml.nvmlSystemGetDriverVersion()),
            memory_bytes=int(nvml.nvmlDeviceGetMemoryInfo(handle).total),
        )
    except nvml.NVMLError as e:
        log.warning("NVML could not describe GPU %d: %s", index, e)
        return None
    finally:
        nvml.nvmlShutdown()


class EnergyMeter:
    """Context manager measuring a GPU over its window: energy from the total-energy counter,
    mean power and utilisation from samples taken every ``interval_s`` in a thread.

    ``available`` is False (and every figure None) without a GPU or NVML. Energy is None for a
    window shorter than ``min_window_s``: NVML's counter and power readings update too rarely
    to resolve it.
    """

    def __init__(self, index: int = 0, interval_s: float = 0.1, min_window_s: float = 1.0):
        self.index = index
        self.interval_s = interval_s
        self.min_window_s = min_window_s
        self.available = False
        self.seconds: float | None = None
        self.joules: float | None = None
        self.mean_power_w: float | None = None
        self.mean_util_pct: float | None = None
        self._nvml: Any | None = None
        self._handle: Any | None = None
        self._start_mj: int | None = None
        self._start_s = 0.0
        self._power_mw: list[int] = []
        self._util_pct: list[int] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> EnergyMeter:
        self._nvml = _nvml()
        if self._nvml is None:
            return self
        try:
            self._handle = _handle(self._nvml, self.index)
        except self._nvml.NVMLError as e:
            log.warning("NVML has no handle for GPU %d: %s", self.index, e)
            self._close()
            return self
        self.available = True
        self._start_mj = self._energy_mj()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        self._start_s = time.perf_counter()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if not self.available:
            return
        self.seconds = time.perf_counter() - self._start_s
        end_mj = self._energy_mj()
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._close()
        if self.seconds < self.min_window_s:
            log.info("energy window of %.2f s is under %.1f s: not reported", self.seconds,
                     self.min_window_s)
            return
        if self._start_mj is not None and end_mj is not None:
            self.joules = (end_mj - self._start_mj) / 1e3
        if self.joules is not None:
            self.mean_power_w = self.joules / self.seconds
        elif self._power_mw:
            self.mean_power_w = sum(self._power_mw) / len(self._power_mw) / 1e3
        if self._util_pct:
            self.mean_util_pct = sum(self._util_pct) / len(self._util_pct)

    def joules_per_sample(self, samples: int) -> float | None:
        """Energy per sample over the window, when the GPU reports its energy counter."""
        return None if self.joules is None else self.joules / samples

    def _energy_mj(self) -> int | None:
        try:
            return self._nvml.nvmlDeviceGetTotalEnergyConsumption(self._handle)
        except self._nvml.NVMLError as e:  # pre-Volta GPUs have no energy counter
            log.debug("no NVML energy counter: %s", e)
            return None

    def _sample(self) -> None:
        nvml = self._nvml
        while not self._stop.is_set():
            try:
                self._power_mw.append(nvml.nvmlDeviceGetPowerUsage(self._handle))
                self._util_pct.append(nvml.nvmlDeviceGetUtilizationRates(self._handle).gpu)
            except nvml.NVMLError as e:
                log.debug("NVML sampling stopped: %s", e)
                return
            self._stop.wait(self.interval_s)

    def _close(self) -> None:
        self._nvml.nvmlShutdown()
        self._nvml = None
