"""GPU telemetry through NVML: name and driver, clocks, power limit and processes, and energy,
power, utilisation, SM clock and throttling over a window.

Without a GPU or NVML everything degrades to ``None``; nothing here raises for that.
"""

from __future__ import annotations

import logging
import statistics
import threading
import time
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import torch

log = logging.getLogger(__name__)

_CLOCK_SM, _CLOCK_MEM = 1, 2  # nvmlClockType_t
# nvmlClocksEventReason* bits (nvml.h). The others lower the clocks on purpose (an idle GPU,
# applications clocks set by the user), so they are not throttling.
THROTTLE_REASONS = {
    0x4: "sw_power_cap",
    0x8: "hw_slowdown",
    0x10: "sync_boost",
    0x20: "sw_thermal",
    0x40: "hw_thermal",
    0x80: "hw_power_brake",
    0x100: "display_clock_setting",
    0x200: "board_limit",
    0x400: "reliability",
}
_NOT_THROTTLING = 0x1 | 0x2  # gpu_idle, applications_clocks_setting


@dataclass(frozen=True)
class GpuInfo:
    """What NVML reports about one GPU."""

    index: int
    name: str
    driver: str
    memory_bytes: int


@dataclass(frozen=True)
class GpuProcess:
    """A process holding a compute context on a GPU, as NVML lists it."""

    pid: int
    used_memory_bytes: int | None  # None where NVML cannot tell (e.g. under WDDM)


@dataclass(frozen=True)
class GpuState:
    """A GPU's settings and load at one moment: clocks, power limit, persistence, processes.

    A figure NVML does not report for this GPU is None.
    """

    index: int
    name: str
    driver: str
    sm_clock_mhz: int | None
    memory_clock_mhz: int | None
    max_sm_clock_mhz: int | None
    max_memory_clock_mhz: int | None
    power_limit_w: float | None
    persistence_mode: bool | None
    processes: tuple[GpuProcess, ...] | None


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


def gpu_state(index: int = 0) -> GpuState | None:
    """Clocks, power limit, persistence mode and compute processes of CUDA device ``index``;
    None without a GPU or NVML."""
    nvml = _nvml()
    if nvml is None:
        return None
    try:
        handle = _handle(nvml, index)
        limit_mw = _optional(nvml, nvml.nvmlDeviceGetEnforcedPowerLimit, handle)
        persistence = _optional(nvml, nvml.nvmlDeviceGetPersistenceMode, handle)
        processes = _optional(nvml, nvml.nvmlDeviceGetComputeRunningProcesses, handle)
        return GpuState(
            index=index,
            name=_text(nvml.nvmlDeviceGetName(handle)),
            driver=_text(nvml.nvmlSystemGetDriverVersion()),
            sm_clock_mhz=_optional(nvml, nvml.nvmlDeviceGetClockInfo, handle, _CLOCK_SM),
            memory_clock_mhz=_optional(nvml, nvml.nvmlDeviceGetClockInfo, handle, _CLOCK_MEM),
            max_sm_clock_mhz=_optional(nvml, nvml.nvmlDeviceGetMaxClockInfo, handle, _CLOCK_SM),
            max_memory_clock_mhz=_optional(nvml, nvml.nvmlDeviceGetMaxClockInfo, handle,
                                           _CLOCK_MEM),
            power_limit_w=None if limit_mw is None else limit_mw / 1e3,
            persistence_mode=None if persistence is None else bool(persistence),
            processes=None if processes is None else tuple(
                GpuProcess(int(p.pid), None if p.usedGpuMemory is None else int(p.usedGpuMemory))
                for p in processes),
        )
    except nvml.NVMLError as e:
        log.warning("NVML could not describe GPU %d: %s", index, e)
        return None
    finally:
        nvml.nvmlShutdown()


def _optional(nvml: Any, read: Any, *args: Any) -> Any | None:
    """``read(*args)``, or None where this GPU or driver does not support it."""
    try:
        return read(*args)
    except nvml.NVMLError as e:
        log.debug("NVML %s: %s", read.__name__, e)
        return None


def throttle_reasons(mask: int) -> tuple[str, ...]:
    """The throttling reasons in an NVML clocks-event ``mask``, by name (a bit this version does
    not know by its hex value)."""
    mask &= ~_NOT_THROTTLING
    bits = [1 << i for i in range(mask.bit_length()) if mask >> i & 1]
    return tuple(THROTTLE_REASONS.get(bit, hex(bit)) for bit in bits)


def _throttle_mask(nvml: Any, handle: Any) -> int | None:
    """The GPU's current clocks-event reasons, or None where NVML cannot read them."""
    read = (getattr(nvml, "nvmlDeviceGetCurrentClocksEventReasons", None)  # the newer name
            or getattr(nvml, "nvmlDeviceGetCurrentClocksThrottleReasons", None))
    return None if read is None else _optional(nvml, read, handle)


# A throttle reason that slows the clocks for a reason of the hardware's own (heat, a power
# brake) makes a row's speed a fact of that moment, not of the code: the row is unstable.
UNSTABLE_THROTTLES = ("hw_slowdown", "sw_thermal", "hw_thermal", "hw_power_brake")
SAMPLER_JOIN_S = 2.0  # an NVML call that hangs must not hang the benchmark


class GpuMonitor:
    """Context manager measuring a GPU over its window: energy from the total-energy counter,
    and, from samples taken every ``interval_s`` in a thread, mean power and utilisation, the
    SM clock's range and the throttling seen.

    ``available`` is False (and every figure None) without a GPU or NVML. Energy is None for a
    window shorter than ``min_window_s``: NVML's counter and power readings update too rarely
    to resolve it. ``throttle_reasons`` is every throttling reason any sample saw (`()`: none),
    None where NVML cannot read them.
    """

    def __init__(self, index: int = 0, interval_s: float = 0.1, min_window_s: float = 1.0):
        self.index = index
        self.interval_s = interval_s
        self.min_window_s = min_window_s
        self.available = False
        self.seconds: float | None = None
        self.joules: float | None = None
        self.mean_power_w: float | None = None
        self.sampled_power_w: float | None = None  # mean of the power samples, any window
        self.mean_util_pct: float | None = None
        self.sm_clock_mhz: tuple[int, int, float] | None = None  # min, max, median
        self.throttle_reasons: tuple[str, ...] | None = None
        self._nvml: Any | None = None
        self._handle: Any | None = None
        self._start_mj: int | None = None
        self._start_s = 0.0
        self._power_mw: list[int] = []
        self._util_pct: list[int] = []
        self._clock_mhz: list[int] = []
        self._throttle_mask: int | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> GpuMonitor:
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
            self._thread.join(timeout=SAMPLER_JOIN_S)
            if self._thread.is_alive():  # stuck in an NVML call: its samples are not read
                log.warning("NVML sampler of GPU %d did not stop within %.0f s; its samples "
                            "are dropped", self.index, SAMPLER_JOIN_S)
                self._power_mw, self._util_pct, self._clock_mhz = [], [], []
                self._throttle_mask = None
        power, util, clocks = list(self._power_mw), list(self._util_pct), list(self._clock_mhz)
        if self._thread is None or not self._thread.is_alive():
            self._close()
        if self._throttle_mask is not None:
            self.throttle_reasons = throttle_reasons(self._throttle_mask)
        if power:
            self.sampled_power_w = sum(power) / len(power) / 1e3
        if clocks:
            self.sm_clock_mhz = (min(clocks), max(clocks), statistics.median(clocks))
        if util:
            self.mean_util_pct = sum(util) / len(util)
        if self.seconds < self.min_window_s:
            log.info("energy window of %.2f s is under %.1f s: not reported", self.seconds,
                     self.min_window_s)
            return
        if self._start_mj is not None and end_mj is not None:
            self.joules = (end_mj - self._start_mj) / 1e3
        if self.joules is not None:
            self.mean_power_w = self.joules / self.seconds
        else:
            self.mean_power_w = self.sampled_power_w

    def joules_per_sample(self, samples: int) -> float | None:
        """Energy per sample over the window, when the GPU reports its energy counter."""
        return None if self.joules is None else self.joules / samples

    def clock_change(self) -> float | None:
        """The SM clock's range over the window as a fraction of its highest sample (0.05:
        the clock moved by 5%), None without clock samples."""
        if self.sm_clock_mhz is None or not self.sm_clock_mhz[1]:
            return None
        low, high, _ = self.sm_clock_mhz
        return (high - low) / high

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
            clock = _optional(nvml, nvml.nvmlDeviceGetClockInfo, self._handle, _CLOCK_SM) \
                if hasattr(nvml, "nvmlDeviceGetClockInfo") else None
            if clock is not None:
                self._clock_mhz.append(int(clock))
            mask = _throttle_mask(nvml, self._handle)
            if mask is not None:
                self._throttle_mask = (self._throttle_mask or 0) | mask
            self._stop.wait(self.interval_s)

    def _close(self) -> None:
        self._nvml.nvmlShutdown()
        self._nvml = None


def energy_and_power(index: int = 0) -> tuple[float | None, float | None] | None:
    """One reading of CUDA device ``index``'s total-energy counter (J) and power (W): None for
    either that NVML does not report; None without a GPU or NVML."""
    nvml = _nvml()
    if nvml is None:
        return None
    try:
        handle = _handle(nvml, index)
        energy = _optional(nvml, nvml.nvmlDeviceGetTotalEnergyConsumption, handle)
        power = _optional(nvml, nvml.nvmlDeviceGetPowerUsage, handle)
        return (None if energy is None else energy / 1e3, None if power is None else power / 1e3)
    except nvml.NVMLError as e:
        log.warning("NVML could not read GPU %d: %s", index, e)
        return None
    finally:
        nvml.nvmlShutdown()
