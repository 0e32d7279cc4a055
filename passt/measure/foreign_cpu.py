"""CPU time that other processes took while a benchmark was timed: the machine's busy time in
``/proc/stat`` (steal time included: a hypervisor's other guests) minus this process's own.
A row timed while others used more than `FOREIGN_CPU_LIMIT` of the CPUs is unstable."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

PROC_STAT = Path("/proc/stat")
FOREIGN_CPU_LIMIT = 0.05  # of all CPUs over the timed rounds
_IDLE = (3, 4)  # idle and iowait in /proc/stat's cpu line
_COUNTED = 8  # user, nice, system, idle, iowait, irq, softirq, steal (guest is in user)


def _machine_busy_s() -> float | None:
    """Seconds of CPU time all processes and the hypervisor took since boot (None: no
    /proc/stat, e.g. not Linux)."""
    try:
        values = [int(v) for v in PROC_STAT.read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return None
    counted = values[:_COUNTED]
    busy = sum(counted) - sum(counted[i] for i in _IDLE if i < len(counted))
    return busy / os.sysconf("SC_CLK_TCK")


def _own_s() -> float:
    t = os.times()
    return t.user + t.system


@dataclass
class ForeignCpu:
    """A block's foreign CPU use: ``fraction`` of all CPUs (None where unknown)."""

    fraction: float | None = None
    _start: tuple[float | None, float, float] = field(default=(None, 0.0, 0.0), repr=False)

    def __enter__(self) -> ForeignCpu:
        self._start = (_machine_busy_s(), _own_s(), time.perf_counter())
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 tb: TracebackType | None) -> None:
        busy0, own0, wall0 = self._start
        busy1, wall = _machine_busy_s(), time.perf_counter() - wall0
        if busy0 is None or busy1 is None or wall <= 0:
            return
        foreign = (busy1 - busy0) - (_own_s() - own0)
        self.fraction = max(0.0, foreign) / (wall * (os.cpu_count() or 1))

    @property
    def too_busy(self) -> bool:
        return too_busy(self.fraction)


def too_busy(fraction: float | None) -> bool:
    """Whether others took more than `FOREIGN_CPU_LIMIT` of the CPUs (None: unknown, no)."""
    return fraction is not None and fraction > FOREIGN_CPU_LIMIT
