"""Measure a benchmark row again exactly as it was measured: its stored settings, timing plan,
peer and reference step (``passt check --rerun``)."""

from __future__ import annotations

import dataclasses
import functools

from passt.measure.bench_record import BenchRecord
from passt.measure.flops import matmul_ceiling_tflops
from passt.measure.peers import build_peer_step, profile_peer
from passt.measure.presets import Preset
from passt.measure.record import profile_step
from passt.measure.step import StepSettings, build_step
from passt.measure.suite import measure
from passt.utils.errors import UsageError


def _settings(stored: dict) -> StepSettings:
    return StepSettings(**{**stored, "model_overrides": dict(stored.get("model_overrides", {}))})


def remeasure(record: BenchRecord) -> tuple[BenchRecord, list[float]]:
    """The row measured once more, and its timed steps."""
    if record.step_settings is None or record.round_plan is None:
        raise UsageError(f"the row of {record.variant} {record.kind} was written before rows "
                         "kept their settings; measure it again with pytest bench/")
    settings = _settings(record.step_settings)
    preset = Preset.from_plan_record(record.round_plan)
    reference = (None if record.reference_settings is None
                 else _settings(record.reference_settings))
    build, profile = build_step, profile_step
    if record.peer is not None:
        build = functools.partial(build_peer_step, record.peer)
        profile = profile_peer
    ceilings = functools.cache(functools.partial(matmul_ceiling_tflops, settings.device))
    result = measure(settings, record.kind, preset, ceilings, build, profile, reference)
    again = dataclasses.replace(result.record, peer=record.peer, ablation=record.ablation)
    return again, result.times_s
