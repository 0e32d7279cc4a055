"""The fast path's optimizations as settings, each switched off in turn (issue: GPU fast path).

Every ablation is the preset's settings with one change, so the bench measures what each
optimization buys: bf16 autocast, SDPA (FlashAttention on CUDA), torch.compile, fused AdamW,
CUDA graphs (compile mode "reduce-overhead"), and a static batch dimension instead of a
dynamic one.
"""

from __future__ import annotations

from typing import Any

from passt.utils.errors import UsageError

# name -> the StepSettings fields that differ from the preset ("all-on": none)
ABLATIONS: dict[str, dict[str, Any]] = {
    "all-on": {},
    "fp32": {"dtype": "fp32"},
    "fp16": {"dtype": "fp16"},
    "math-attention": {"attention": "math"},
    "no-compile": {"compile": False},
    "unfused-adamw": {"fused_adamw": False},
    "cuda-graphs": {"compile": True, "compile_mode": "reduce-overhead"},
    # what sharing one graph across batch sizes costs: a graph specialised to the batch
    "static-batch": {"compile_dynamic_batch": False},
}


def ablation_settings(name: str) -> dict[str, Any]:
    """The settings changed by ablation ``name``."""
    try:
        return dict(ABLATIONS[name])
    except KeyError:
        raise UsageError(f"unknown ablation {name!r}; known: {', '.join(ABLATIONS)}") from None
