"""Benchmark presets: the settings of a whole suite run, chosen by name."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch

from passt.frontend import create_frontend
from passt.measure.step import StepSettings
from passt.measure.timing import RoundPlan
from passt.utils.errors import UsageError
from passt.utils.registry import Registry
from passt.utils.values import check_int
from passt.variants import proportional_patchout

# the Preset fields that say how long and how each benchmark is timed
PLAN_FIELDS = ("warmup", "rounds", "max_rounds", "max_seconds", "ci_target", "replicas")


@dataclass(frozen=True)
class Preset:
    """Settings shared by every benchmark of a run, and how long each is measured."""

    name: str
    description: str
    device: str
    batch_size: int
    clip_seconds: float
    dtype: str
    attention: str
    compile: bool
    warmup: int  # untimed steps before the timed rounds
    rounds: int  # timed steps at least; the median is reported
    memory_batch_sizes: tuple[int, ...]  # peak-memory fit (at least three)
    proportional_patchout: bool  # on short clips, keep the paper's fraction of patches
    # more rounds until the median's 95% interval is within ci_target, up to these bounds
    max_rounds: int = 200
    max_seconds: float = 30.0
    ci_target: float = 0.03
    # separately built copies of each step, timed in alternating rounds, so that the interval
    # covers the spread between builds too (a copy costs a step's memory; a compiled step and
    # a step compared with ours are timed as one copy)
    replicas: int = 1

    def __post_init__(self) -> None:
        check_int("warmup", self.warmup, minimum=0)
        check_int("rounds", self.rounds, minimum=1)
        if self.max_rounds < self.rounds:
            raise UsageError(f"max_rounds ({self.max_rounds}) must be at least rounds "
                             f"({self.rounds})")
        self.plan  # noqa: B018 (validates the timing bounds)
        check_int("replicas", self.replicas, minimum=1)
        sizes = self.memory_batch_sizes
        if len(set(sizes)) < 3 or any(isinstance(b, bool) or not isinstance(b, int) or b < 1
                                      for b in sizes):
            raise UsageError("memory_batch_sizes must be at least three distinct positive "
                             f"integers, got {','.join(map(str, sizes)) or 'none'}")

    @property
    def plan(self) -> RoundPlan:
        """How long each benchmark is timed."""
        return RoundPlan(self.rounds, self.max_rounds, self.max_seconds, self.ci_target)

    def plan_record(self) -> dict[str, Any]:
        """How a row was timed, as stored in it: enough to time it again alike."""
        return {"preset": self.name, **{f: getattr(self, f) for f in PLAN_FIELDS},
                "memory_batch_sizes": list(self.memory_batch_sizes)}

    @classmethod
    def from_plan_record(cls, plan: dict[str, Any]) -> Preset:
        """The preset a row stored with `plan_record` was timed under."""
        known = {f: plan[f] for f in PLAN_FIELDS if f in plan}  # older rows lack replicas
        return dataclasses.replace(get_preset(plan["preset"]), **known,
                                   memory_batch_sizes=tuple(plan["memory_batch_sizes"]))

    def settings(self, variant: str, **overrides) -> StepSettings:
        """The `StepSettings` of ``variant`` under this preset (``overrides`` win)."""
        batch_size = overrides.pop("batch_size", self.batch_size)
        clip_seconds = overrides.pop("clip_seconds", self.clip_seconds)
        model_overrides = dict(overrides.pop("model_overrides", {}))
        if self.proportional_patchout:
            frontend = create_frontend()
            try:
                frames = frontend.frames(round(clip_seconds * frontend.config.sample_rate))
            except UsageError:  # too short for the STFT: StepSettings says what is accepted
                frames = None
            if frames is not None:
                model_overrides = {**proportional_patchout(variant, frames, **model_overrides),
                                   **model_overrides}
        return StepSettings(
            variant=variant, batch_size=batch_size, clip_seconds=clip_seconds,
            device=overrides.pop("device", self.device), dtype=overrides.pop("dtype", self.dtype),
            attention=overrides.pop("attention", self.attention),
            compile=overrides.pop("compile", self.compile), model_overrides=model_overrides,
            **overrides,
        )


PRESETS: Registry[Preset] = Registry("preset")


def register_preset(preset: Preset) -> Preset:
    """Make ``preset`` available by name to the bench (``--bench-preset``) and `passt profile`."""
    return PRESETS.register(preset.name, preset)


register_preset(Preset(
    "cpu-small", "real architecture on 3 s clips, batch 2, fp32: the whole suite in minutes on "
    "a 2-core CPU; patchout keeps the paper's fraction of patches",
    device="cpu", batch_size=2, clip_seconds=3.0, dtype="fp32", attention="sdpa", compile=False,
    warmup=2, rounds=6, memory_batch_sizes=(1, 2, 4), proportional_patchout=True, max_rounds=40,
    max_seconds=20.0, replicas=3))
register_preset(Preset(
    "cpu-quick", "a first look on a CPU: cpu-small's settings timed for 6 rounds after one "
    "warm-up, one copy of each step, at most 10 s: a first table of a few variants in minutes, "
    "with wide intervals",
    device="cpu", batch_size=2, clip_seconds=3.0, dtype="fp32", attention="sdpa", compile=False,
    warmup=1, rounds=6, memory_batch_sizes=(1, 2, 4), proportional_patchout=True, max_rounds=6,
    max_seconds=10.0, replicas=1))
register_preset(Preset(
    "paper", "the paper's setting: 10 s clips, batch 12, fp16 AMP, math attention",
    device="cuda", batch_size=12, clip_seconds=10.0, dtype="fp16", attention="math",
    compile=False, warmup=5, rounds=10, memory_batch_sizes=(4, 8, 12),
    proportional_patchout=False, max_rounds=100, max_seconds=10.0))
register_preset(Preset(
    "gpu", "fast GPU training: 10 s clips, bf16 AMP, SDPA, torch.compile, batch 64",
    device="cuda", batch_size=64, clip_seconds=10.0, dtype="bf16", attention="sdpa",
    compile=True, warmup=10, rounds=10, memory_batch_sizes=(16, 32, 64),
    proportional_patchout=False, max_rounds=200, max_seconds=10.0))


def get_preset(name: str = "auto", cuda: bool | None = None) -> Preset:
    """The preset ``name``; ``auto`` is ``gpu`` when CUDA is available, else ``cpu-small``."""
    if name == "auto":
        cuda = torch.cuda.is_available() if cuda is None else cuda
        name = "gpu" if cuda else "cpu-small"
    if name not in PRESETS:
        raise UsageError(PRESETS.unknown(name, extra=("auto",)))
    return PRESETS.get(name)
