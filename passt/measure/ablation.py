"""The fast path's optimizations as settings, each switched off in turn (issue: GPU fast path).

Every ablation is the preset's settings with one change, so the bench measures what each
optimization buys: bf16 autocast, SDPA (FlashAttention on CUDA), torch.compile, fused AdamW,
CUDA graphs (compile mode "reduce-overhead"), and a static batch dimension instead of a
dynamic one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from passt.measure.step import StepSettings
from passt.utils.errors import UsageError
from passt.utils.registry import Registry
from passt.utils.settings import check_options

# name -> the StepSettings fields that differ from the preset ("all-on": none)
ABLATIONS: Registry[Mapping[str, Any]] = Registry("ablation")


def register_ablation(name: str, changes: Mapping[str, Any]) -> Mapping[str, Any]:
    """Make ``name`` (the preset's settings with ``changes``, `StepSettings` fields) one of the
    ablation's rows."""
    try:
        check_options(StepSettings, changes, "step setting")
    except UsageError as e:
        raise UsageError(f"ablation {name!r}: {e}") from None
    return ABLATIONS.register(name, dict(changes))


register_ablation("all-on", {})
register_ablation("fp32", {"dtype": "fp32"})
register_ablation("fp16", {"dtype": "fp16"})
register_ablation("math-attention", {"attention": "math"})
register_ablation("no-compile", {"compile": False})
register_ablation("unfused-adamw", {"fused_adamw": False})
register_ablation("cuda-graphs", {"compile": True, "compile_mode": "reduce-overhead"})
# what sharing one graph across batch sizes costs: a graph specialised to the batch
register_ablation("static-batch", {"compile_dynamic_batch": False})


def ablation_settings(name: str) -> dict[str, Any]:
    """The settings changed by ablation ``name``."""
    return dict(ABLATIONS.get(name))
