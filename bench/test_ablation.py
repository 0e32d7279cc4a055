"""Each fast-path optimization switched off in turn on one variant (``--bench-ablation``,
``--bench-ablation-variant``, default passt-s)."""

from __future__ import annotations

import pytest

from passt.measure.ablation import ABLATIONS, ablation_settings
from passt.measure.suite import measure


@pytest.mark.parametrize("ablation", list(ABLATIONS))
def test_ablation(benchmark, ablation, preset, overrides, ceilings, measured,
                  ablation_enabled, ablation_variant):
    if not ablation_enabled:
        pytest.skip("the ablation runs with --bench-ablation")
    benchmark.group = f"ablation {preset.name}"
    settings = preset.settings(ablation_variant, **{**overrides, **ablation_settings(ablation)})
    all_on = preset.settings(ablation_variant, **overrides)
    if settings.compile_mode == "reduce-overhead" and settings.torch_device.type != "cuda":
        pytest.skip("CUDA graphs need a CUDA device")
    if ablation != "all-on" and settings == all_on:
        pytest.skip(f"{ablation}: the same settings as all-on under preset {preset.name} "
                    "(the ablation switches off the gpu preset's optimizations)")
    if not settings.compile and "compile_dynamic_batch" in ablation_settings(ablation):
        pytest.skip(f"{ablation}: a shape policy of compiled steps; preset {preset.name} "
                    "does not compile")
    # each setting is timed in alternating rounds with all-on, which the row's speed-up is over
    reference = None if ablation == "all-on" else all_on
    measured(lambda: measure(settings, "train", preset, ceilings, reference=reference),
             settings, ablation=ablation)
