"""The learning-rate schedule: a linear warm-up, a constant phase and (the paper's) a linear
decay to a floor."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

from passt.utils.errors import UsageError

Schedule = Literal["paper", "constant"]  # paper: warm-up, constant, decay; constant: no decay
SCHEDULES: tuple[str, ...] = get_args(Schedule)
WARMUP_FRACTION = 0.05  # the paper: 5 of 100 epochs of warm-up,
DECAY_FRACTION = 0.5  # constant until epoch 50, then a linear decay to epoch 100


@dataclass(frozen=True)
class WarmupLinearDecay:
    """LR factor of step ``s`` for `LambdaLR`: a linear warm-up reaching 1 after
    ``warmup_steps``, then 1 until ``decay_start``, then linear to ``floor`` at ``decay_end``
    and ``floor`` after. ``decay_start=None`` never decays."""

    warmup_steps: int
    decay_start: int | None
    decay_end: int
    floor: float = 0.01

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            return (step + 1) / self.warmup_steps
        if self.decay_start is None or step < self.decay_start:
            return 1.0
        if step >= self.decay_end:
            return self.floor
        done = (step - self.decay_start) / (self.decay_end - self.decay_start)
        return 1.0 - (1.0 - self.floor) * done


def make_schedule(kind: Schedule, total_steps: int | None, *, warmup_steps: int | None = None,
                  decay_start: int | None = None, min_lr_ratio: float = 0.0
                  ) -> WarmupLinearDecay:
    """The ``kind`` schedule over ``total_steps`` (None: an unbounded, time-limited run);
    ``warmup_steps`` and ``decay_start`` default to the paper's fractions of the run."""
    if kind == "paper" and total_steps is None:
        raise UsageError("the paper schedule decays over a known number of steps: set epochs or "
                         "max_steps, or use schedule 'constant' for a time budget")
    horizon = total_steps or 0
    warmup = warmup_steps if warmup_steps is not None else round(WARMUP_FRACTION * horizon)
    if kind == "constant":
        return WarmupLinearDecay(warmup, None, horizon, min_lr_ratio)
    start = decay_start if decay_start is not None else round(DECAY_FRACTION * horizon)
    if not warmup <= start <= horizon:
        raise UsageError(f"need warmup_steps ({warmup}) <= decay_start ({start}) <= the run's "
                         f"steps ({horizon})")
    return WarmupLinearDecay(warmup, start, horizon, min_lr_ratio)
