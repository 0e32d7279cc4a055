"""How fast the machine itself ran while a row was timed: a fixed matmul (the probe) timed in
the same alternating rounds as the step (the fastest of three tries a round).

On a shared host the machine's speed drifts by several percent over minutes (a busy neighbour
on the same physical core, clocks), unseen by a row's own rounds: two runs minutes apart then
disagree beyond their intervals. The probe shows it. A row is judged on its step time over
its probe time (`probe_normalized`): unstable when that interval misses the precision target
(`with_machine_drift`); over a run, the probes' spread is the machine's drift, recorded as
information (a run-wide drift would flag every row, and tell nothing). Between two runs on the
same machine and software, ``passt check`` divides each step time by its row's probe time,
and Table 1's ratios between rows do the same (`probe_factor`), which takes the machine's
speed out of the comparison.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, replace

import torch

from passt.measure.bench_record import BenchRecord
from passt.measure.stability import stability
from passt.utils.device import resolve_device, synchronize

DRIFT_WARNING = 0.03  # a run whose machine strayed further is flagged in its report
# (matrix size, matmuls per try): about 8 ms on a 2-core CPU, 8 ms on an H200 (fp32)
PROBE_SHAPES = {"cpu": (384, 14), "cuda": (4096, 4)}
# Tries a round, of which the fastest counts: a try right after a step sometimes waits for
# the step's aftermath (freed memory, threads), which is noise, not the machine's speed.
PROBE_TRIES = 3


@dataclass
class SpeedProbe:
    """A fixed fp32 matmul workload on ``device``; call it like a `passt.measure.step.Step`,
    ``tries`` times a round."""

    device: torch.device
    a: torch.Tensor
    b: torch.Tensor
    repeats: int
    tries: int = PROBE_TRIES

    def __call__(self) -> None:
        for _ in range(self.repeats):
            torch.mm(self.a, self.b)


def speed_probe(device: str | torch.device) -> SpeedProbe:
    """The probe of ``device``: the same operands (seeded) and count on every run."""
    dev = resolve_device(str(device))
    size, repeats = PROBE_SHAPES["cuda" if dev.type == "cuda" else "cpu"]
    g = torch.Generator().manual_seed(0)
    a, b = (torch.randn(size, size, generator=g).to(dev) for _ in range(2))
    synchronize(dev)
    return SpeedProbe(dev, a, b, repeats)


def with_probe(record: BenchRecord, probe_times_s: Sequence[float]) -> BenchRecord:
    """``record`` with the median and 95% interval of its probe's times."""
    s = stability(probe_times_s)
    return replace(record, probe_median_s=s.median, probe_ci_low_s=s.ci_low,
                   probe_ci_high_s=s.ci_high)


def machine_drift(records: Sequence[BenchRecord]) -> float | None:
    """How far the machine's speed strayed during a run: the largest deviation of a row's
    probe median from the median over the rows, on a log scale (0.05: +-5%); None with fewer
    than two probed rows."""
    probes = [r.probe_median_s for r in records if r.probe_median_s]
    if len(probes) < 2:
        return None
    centre = statistics.median(probes)
    return max(abs(math.log(p / centre)) for p in probes)


def with_machine_drift(record: BenchRecord, drift: float | None,
                       target: float | None) -> BenchRecord:
    """``record`` with the run's ``drift`` (information); on the CPU, unstable when the
    interval of its step time over its probe time exceeds ``target`` (the plan's precision,
    e.g. 0.03).

    On a GPU the probe is information only: a GPU's probe times its own clock, which the row
    samples itself (`passt.measure.record.with_gpu_clocks` judges it).
    """
    if record.oom:
        return record
    record = replace(record, machine_drift=drift)
    if record.device.startswith("cuda") or target is None:
        return record
    half = probed_half_width(record)
    if half is None or half <= target:
        return record
    note = (f"its step time over its probe's (the machine's own speed, timed beside it) is "
            f"known within +-{half:.1%} only, beyond the target +-{target:.0%}: unstable")
    return replace(record, unstable=True, notes=(*record.notes, note))


def probed_half_width(record: BenchRecord) -> float | None:
    """The larger half of the interval of the row's step time over its probe time, over the
    value (None: no interval or no probe)."""
    m, low, high = record.median_step_s, record.median_ci_low_s, record.median_ci_high_s
    if m is None or low is None or high is None:
        return None
    normalized = probe_normalized(m, low, high, record)
    if normalized is None:
        return None
    value, n_low, n_high = normalized
    return max(value / n_low, n_high / value) - 1.0


def probe_factor(record: BenchRecord, run: Sequence[BenchRecord]) -> float:
    """How much slower the machine ran while ``record`` was timed than over the ``run``
    typically (its probe over the run's median probe; 1.0 without probes): a speed times
    this factor is the speed at the run's typical machine speed."""
    probes = [r.probe_median_s for r in run if r.probe_median_s]
    if not record.probe_median_s or not probes:
        return 1.0
    return record.probe_median_s / statistics.median(probes)


def with_run_drift(records: Sequence[BenchRecord]) -> list[BenchRecord]:
    """Every row of a run with the run's `machine_drift`, judged against its own plan's
    precision target (`with_machine_drift`)."""
    drift = machine_drift(records)
    return [with_machine_drift(r, drift, (r.round_plan or {}).get("ci_target"))
            for r in records]


def probe_normalized(median_s: float, low_s: float, high_s: float,
                     record: BenchRecord) -> tuple[float, float, float] | None:
    """The step time over its row's probe time, with an interval that holds both intervals
    (in quadrature on a log scale); None for a row without a probe."""
    p, p_low, p_high = record.probe_median_s, record.probe_ci_low_s, record.probe_ci_high_s
    if not p or not p_low or not p_high or median_s <= 0 or low_s <= 0:
        return None
    value = median_s / p
    down = math.hypot(math.log(median_s / low_s), math.log(p_high / p))
    up = math.hypot(math.log(high_s / median_s), math.log(p / p_low))
    return value, value * math.exp(-down), value * math.exp(up)
