"""torch.compile of the training path: random draws with a symbolic batch size."""

from __future__ import annotations

import pytest
import torch

import passt
from tests.helpers import FEW_PATCHES, TINY


@pytest.mark.slow
@pytest.mark.parametrize("per_sample", [False, True])
def test_training_draws_compile_with_a_symbolic_batch(per_sample):
    # The memory fit runs one compiled step at several batch sizes; dynamo then makes the
    # batch dimension symbolic, and every draw (SpecAugment masks, fmin/fmax jitter, time
    # crop, patchout) must trace with it.
    torch.manual_seed(0)
    frontend = passt.create_frontend().train()
    model = passt.create_model("passt-s", **TINY, **FEW_PATCHES, frames=200,
                               per_sample=per_sample).train()
    step = torch.compile(lambda w: model(frontend(w)), fullgraph=True)
    for batch in (2, 3):
        waves = torch.randn(batch, 32000)
        torch._dynamo.mark_dynamic(waves, 0)
        assert step(waves).shape == (batch, 527)
