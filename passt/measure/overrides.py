"""The command line's changes to a benchmark preset's settings, declared once: the
``--bench-*`` options of ``pytest bench/`` and the step flags of ``passt profile``."""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from passt.measure.presets import PLAN_FIELDS, Preset
from passt.model import AttentionPath
from passt.utils.precision import Dtype
from passt.utils.settings import flag_names, read_flags, setting
from passt.utils.values import parse_list

ON_OFF = {"on": True, "off": False}
BENCH_PREFIX = "bench-"  # pytest bench/'s options: --bench-batch-size, ...
# the fields that change each benchmark's `StepSettings` (the others: how long it is timed)
STEP_FIELDS = ("batch_size", "clip_seconds", "dtype", "attention", "compile", "device")


def _on_off(text: str) -> bool:
    return ON_OFF[text]


def _batch_sizes(text: str) -> tuple[int, ...]:
    return parse_list(text, "--bench-memory-batch-sizes", int, minimum=1)


@dataclass(frozen=True)
class BenchOverrides:
    """A benchmark preset's settings (`Preset`'s fields) that the command line changes; None:
    the preset's."""

    batch_size: int | None = setting(None, help="override the preset's batch size")
    clip_seconds: float | None = setting(None, help="override the preset's clip length")
    dtype: Dtype | None = setting(None, help="override the preset's precision")
    attention: AttentionPath | None = setting(None, help="override the preset's attention")
    compile: bool | None = setting(None, parse=_on_off, choices=tuple(ON_OFF),
                                   help="override the preset's torch.compile")
    device: str | None = setting(None, help="override the preset's device, e.g. cpu, cuda:1")
    warmup: int | None = setting(
        None, help="untimed steps before the timed ones (default: the preset's)")
    rounds: int | None = setting(
        None, help="timed steps; the median is reported (default: the preset's)")
    max_rounds: int | None = setting(None, help="timed steps at most (default: the preset's)")
    max_seconds: float | None = setting(
        None, help="time spent timing one benchmark at most, once --bench-rounds are done "
                   "(default: the preset's)")
    ci_target: float | None = setting(
        None, help="time until the median's 95%% interval is within this fraction of it, "
                   "e.g. 0.03 for +-3%% (default: the preset's)")
    replicas: int | None = setting(
        None, help="separately built copies of each step, timed in alternating rounds, so "
                   "that the interval covers the spread between builds (default: the preset's; "
                   "1 for a compiled step)")
    memory_batch_sizes: tuple[int, ...] | None = setting(
        None, parse=_batch_sizes, metavar="B1,B2,B3",
        help="batch sizes of the CUDA peak-memory fit (default: the preset's)")

    @classmethod
    def from_flags(cls, args: argparse.Namespace, names: Iterable[str] | None = None,
                   prefix: str = "") -> BenchOverrides:
        """The overrides given by the flags of ``names`` (default: all), added with
        `add_flags` behind ``prefix``, in ``args``."""
        names = flag_names(cls) if names is None else names
        return cls(**read_flags(cls, args, names, prefix))

    def given(self) -> list[str]:
        """The fields set."""
        return [f.name for f in dataclasses.fields(self) if getattr(self, f.name) is not None]

    @property
    def step(self) -> dict[str, Any]:
        """The `Preset.settings` overrides: the `StepSettings` fields set."""
        return {name: getattr(self, name) for name in self.given() if name in STEP_FIELDS}

    def apply(self, preset: Preset) -> Preset:
        """``preset`` timed as set here (more rounds than its maximum raise the maximum)."""
        plan = {name: getattr(self, name) for name in self.given()
                if name in (*PLAN_FIELDS, "memory_batch_sizes")}
        if "rounds" in plan and "max_rounds" not in plan:
            plan["max_rounds"] = max(preset.max_rounds, plan["rounds"])
        return dataclasses.replace(preset, **plan) if plan else preset
