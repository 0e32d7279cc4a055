"""Training and inference steps of every variant: time, FLOPs, memory, MFU and energy.

Run: ``pytest bench/ --benchmark-only [--bench-preset cpu-small|paper|gpu] [--bench-peers]
[--bench-instructions]``.
"""

from __future__ import annotations

import pytest

from passt.measure.suite import measure


@pytest.mark.parametrize("kind", ["train", "inference"])
def test_step(benchmark, kind, variant, preset, overrides, ceilings, measured, instructions):
    benchmark.group = f"{kind} {preset.name}"
    settings = preset.settings(variant, **overrides)
    counted = instructions(variant, kind) if instructions is not None else None
    measured(lambda: measure(settings, kind, preset, ceilings), settings, counted)
