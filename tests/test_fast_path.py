"""The GPU fast path's correctness, checked on the CPU: no graph breaks under torch.compile,
and bf16 + SDPA (+ compile) logits within bf16 tolerance of the fp32 math path."""

from __future__ import annotations

import pytest
import torch

import passt
from passt.measure import StepSettings, build_step
from tests.helpers import SMALL

TINY = {**SMALL, "depth": 2, "time": 4, "freq": 1}


@pytest.mark.slow
@pytest.mark.parametrize("dtype", ["fp32", "bf16"])
def test_training_step_compiles_without_graph_breaks(dtype):
    """Frontend, model and loss of a training step are one function; frontend draws, time crop
    and patchout are device ops, so dynamo captures it as one graph. (A private seed passes a
    torch.Generator around, which dynamo cannot trace: the fast path uses the default
    generator, seeded with torch.manual_seed.)"""
    settings = StepSettings(batch_size=2, clip_seconds=2.0, dtype=dtype, model_overrides=TINY)
    step = build_step(settings)
    torch._dynamo.reset()
    explained = torch._dynamo.explain(step.forward_fn)(step.inputs, step.targets)
    assert explained.graph_break_count == 0, explained.break_reasons
    assert explained.graph_count == 1


@pytest.mark.slow
def test_fast_path_eval_logits_match_fp32_math_within_bf16_tolerance():
    torch.manual_seed(0)
    model = passt.create_model("passt-s", attention="math", **TINY).eval()
    frontend = passt.create_frontend().eval()
    mel = frontend(0.1 * torch.randn(4, 64000, generator=torch.Generator().manual_seed(1)))
    with torch.no_grad():
        reference = model(mel)
        model.set_attention("sdpa")
        fast = torch.compile(model)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            got = fast(mel).float()
    scale = reference.abs().max()
    # bf16 keeps 8 bits of mantissa: relative error ~2^-8 per op, a few ops deep
    assert (got - reference).abs().max() < 3e-2 * scale
    assert not torch.equal(got, reference)  # the fast path really ran in bf16
