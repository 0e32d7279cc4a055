"""FLOPs of a PaSST step, three ways, and model FLOPs utilisation (MFU).

Every count is in FLOPs of matrix products and convolutions, two per multiply-add:
fvcore's `FlopCountAnalysis` (which counts one per multiply-add and skips attention unless
given a handle), torch's `FlopCounterMode` (which misses the CPU attention kernel unless given
a formula), and a closed-form count of the transformer's matmuls.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import re
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode

from passt.measure.step import StepSettings, build_step
from passt.model import PaSSTConfig, grid_size, token_counts
from passt.utils.device import synchronize
from passt.utils.errors import UsageError, check_choice
from passt.utils.modes import module_mode
from passt.utils.optional import require
from passt.utils.precision import AUTOCAST_DTYPES, DTYPES

log = logging.getLogger(__name__)

aten = torch.ops.aten

# Names under which a traced graph may hold scaled dot-product attention; q, k, v come first.
FVCORE_SDPA_OPS = (
    "aten::scaled_dot_product_attention",
    "aten::_scaled_dot_product_flash_attention_for_cpu",
    "aten::_scaled_dot_product_flash_attention",
    "aten::_scaled_dot_product_efficient_attention",
    "aten::_scaled_dot_product_cudnn_attention",
)


def _attention_macs(q: Any, k: Any, v: Any) -> int:
    """Multiply-adds of ``softmax(q k^T) v`` for ``[B, H, N, D]`` shapes: two batched matmuls."""
    b, h, n_q, d_q = q
    n_k, d_v = k[-2], v[-1]
    return b * h * n_q * n_k * (d_q + d_v)


def _fvcore_sdpa(inputs: list[Any], outputs: list[Any]) -> int:
    return _attention_macs(*(v.type().sizes() for v in inputs[:3]))


def _not_counted(inputs: list[Any], outputs: list[Any]) -> int:
    return 0


def fvcore_forward_flops(model: nn.Module, x: Tensor) -> float:
    """FLOPs of ``model(x)`` for the whole batch by fvcore, attention included, 2 per MAC."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # fvcore imports torch.jit.script
        FlopCountAnalysis = require("fvcore.nn", "counting FLOPs with fvcore").FlopCountAnalysis

    analysis = FlopCountAnalysis(model, x)
    for op in FVCORE_SDPA_OPS:
        analysis.set_op_handle(op, _fvcore_sdpa)
    # Matmuls only, like the other counts (a None handle would not replace fvcore's default).
    analysis.set_op_handle("aten::layer_norm", _not_counted)
    analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # jit tracing's deprecation and tracer warnings
        macs = analysis.total()
    missed = [op for op in analysis.unsupported_ops() if "attention" in op or "matmul" in op]
    if missed:
        log.warning("fvcore left uncounted: %s", missed)
    return 2.0 * macs


def _sdpa_cpu_flops(q: Any, k: Any, v: Any, *args: Any, **kwargs: Any) -> int:
    return 2 * _attention_macs(q, k, v)


def _sdpa_cpu_backward_flops(grad_out: Any, q: Any, k: Any, v: Any, *args: Any,
                             **kwargs: Any) -> int:
    """torch's count for its CUDA SDPA backward kernels: the scores are recomputed (one
    matmul) and four matmuls propagate the gradients, 2.5x the forward."""
    b, h, n_q, d_q = q
    n_k, d_v = k[-2], v[-1]
    return 2 * b * h * n_q * n_k * (3 * d_q + 2 * d_v)


CPU_SDPA_FORMULAS = {
    aten._scaled_dot_product_flash_attention_for_cpu: _sdpa_cpu_flops,
    aten._scaled_dot_product_flash_attention_for_cpu_backward: _sdpa_cpu_backward_flops,
}


def torch_flops(fn: Callable[[], Any]) -> int:
    """FLOPs that ``fn()`` runs, by torch's `FlopCounterMode`, CPU attention included."""
    with FlopCounterMode(display=False, custom_mapping=CPU_SDPA_FORMULAS) as counter:
        fn()
    return counter.get_total_flops()


def train_flops_per_sample(model: nn.Module, frames: int) -> float:
    """FLOPs of one sample's training pass through ``model`` (a PaSST): forward with its
    patchout, loss and backward, by `FlopCounterMode` on a zero log-mel clip of ``frames``
    frames. The global RNG (patchout draws) and the model's gradients are left as they were;
    what the optimizer does per parameter is not counted."""
    p = next(model.parameters())
    mel = torch.zeros(1, 1, model.cfg.n_mels, frames, device=p.device, dtype=p.dtype)
    grads = {q: q.grad for q in model.parameters()}
    devices = [p.device] if p.device.type == "cuda" else []
    try:
        with module_mode(model, training=True), torch.random.fork_rng(devices=devices):
            flops = torch_flops(lambda: model(mel).float().sum().backward())
    finally:
        for q, g in grads.items():
            q.grad = g
    return float(flops)


def analytic_flops(cfg: PaSSTConfig, seq_len: int | Sequence[int],
                   frames: int | None = None) -> float:
    """Forward FLOPs per sample of the matmuls of a PaSST with ``seq_len`` tokens in every
    block, or ``seq_len[i]`` tokens entering block ``i`` (a block reduction merges or drops
    tokens after a block's attention, so its MLP and the later blocks see fewer); one more
    entry is the tokens leaving the last block (its MLP's; default: those entering it).

    The patch embedding runs on the full grid of ``frames`` input frames (default
    ``cfg.frames``, at the patch size and stride it runs at) even when patchout drops tokens
    after it. A training step is 3x this. What a reduction computes itself (ToMe's matching,
    EViT's class-attention row, flex's kernel resize) is not counted.
    """
    counts = [seq_len] * cfg.depth if isinstance(seq_len, int) else list(seq_len)
    if len(counts) == cfg.depth:
        counts.append(counts[-1])  # the tokens leaving the last block (its MLP's)
    e = cfg.embed_dim
    hidden = int(e * cfg.mlp_ratio)
    patch, stride = cfg.embed_patch
    patches = (grid_size(cfg.n_mels, patch, stride)
               * grid_size(frames or cfg.frames, patch, stride))
    patch_embed = 2 * patches * e * patch**2
    blocks = 0
    for n, after in zip(counts, counts[1:], strict=False):
        qkv, proj, mlp = 2 * n * e * 3 * e, 2 * n * e * e, 2 * 2 * after * e * hidden
        attention = 2 * 2 * n * n * e  # scores q k^T and their weighted sum of v
        blocks += qkv + attention + proj + mlp
    head = 2 * e * cfg.num_classes
    return float(patch_embed + blocks + head)


@dataclass(frozen=True)
class FlopsReport:
    """GFLOPs per sample of one step's model forward (three ways) and of the whole step."""

    variant: str
    kind: str  # "train": forward with patchout, step = forward + backward; "inference"
    seq_len: int
    forward_fvcore: float | None  # None when fvcore is missing or failed: see ``notes``
    forward_torch: float
    forward_analytic: float
    step_torch: float  # the whole step by FlopCounterMode, frontend's mel matmul included
    step_analytic: float  # 3x forward for training, 1x for inference
    notes: tuple[str, ...] = ()  # why a count is missing

    @property
    def step_over_forward(self) -> float:
        return self.step_torch / self.forward_torch


def count_flops(settings: StepSettings, kind: str = "train") -> FlopsReport:
    """Count the FLOPs of one eager step of ``settings``; use batch size 1 for speed."""
    step = build_step(dataclasses.replace(settings, compile=False), kind)
    batch = settings.batch_size
    with torch.no_grad():
        mel = step.frontend(step.inputs)
        forward_torch = torch_flops(lambda: step.model(mel))
    forward_fvcore, notes = _fvcore_or_note(step.model, mel, settings.variant)
    counts = token_counts(step.model, mel[:1], leaving=True)
    forward_analytic = analytic_flops(step.model.cfg, counts, step.frames)
    gap = analytic_gap_note(forward_torch / batch, forward_analytic)
    return FlopsReport(
        variant=settings.variant,
        kind=kind,
        seq_len=step.seq_len,
        forward_fvcore=None if forward_fvcore is None else forward_fvcore / batch / 1e9,
        forward_torch=forward_torch / batch / 1e9,
        forward_analytic=forward_analytic / 1e9,
        step_torch=torch_flops(step) / batch / 1e9,
        step_analytic=forward_analytic * (3 if kind == "train" else 1) / 1e9,
        notes=(*notes, gap) if gap else notes,
    )


ANALYTIC_TOLERANCE = 0.01


def analytic_gap_note(measured: float, analytic: float) -> str | None:
    """A note when the forward FLOPs counted by `FlopCounterMode` and the analytic formula
    differ by more than `ANALYTIC_TOLERANCE` (None when they agree)."""
    gap = measured / analytic - 1.0
    if abs(gap) <= ANALYTIC_TOLERANCE:
        return None
    return (f"forward FLOPs: FlopCounterMode counts {measured / 1e9:.4g} GFLOPs, the analytic "
            f"formula {analytic / 1e9:.4g} ({gap:+.1%}): the formula counts the blocks' matmuls "
            "at each block's tokens, the patch embedding and the head; what a reduction "
            "computes itself (ToMe's matching, EViT's class-attention row, flex's kernel "
            "resize) is in the measured count only")


def _fvcore_or_note(model: nn.Module, mel: Tensor,
                    variant: str) -> tuple[float | None, tuple[str, ...]]:
    """fvcore's count, or None and a note saying why: fvcore is optional, and it traces the
    model with torch.jit, which a user's strategy may not survive."""
    try:
        return fvcore_forward_flops(model, mel), ()
    except ImportError as e:
        return None, (f"fvcore FLOPs not counted: {e}",)
    except Exception as e:
        strategy = getattr(getattr(model, "patchout", None), "name", "?")
        first_line = next(iter(str(e).strip().splitlines()), "")[:300]
        note = (f"fvcore FLOPs not counted: tracing {variant} (patchout {strategy!r}) failed: "
                f"{type(e).__name__}: {first_line}")
        log.warning(note)
        return None, (note,)


# Dense (no sparsity) peak TFLOPS from the vendors' datasheets: (name pattern, fp32, fp16,
# bf16). fp32 is the non-tensor-core rate: the steps leave TF32 off (torch's default).
# None: the GPU has no tensor-core path for that type. The first matching pattern wins.
PEAK_TFLOPS: tuple[tuple[str, float, float, float | None], ...] = (
    (r"H100.*PCIe", 51.0, 756.0, 756.0),
    (r"H100 NVL|H200 NVL", 60.0, 835.0, 835.0),
    (r"H100|H200|GH200", 67.0, 989.4, 989.4),  # SXM / HBM3
    (r"\bA100\b", 19.5, 312.0, 312.0),
    (r"L40S", 91.6, 362.05, 362.05),
    (r"L40\b", 90.5, 181.05, 181.05),
    (r"\bL4\b", 30.3, 121.0, 121.0),
    (r"RTX 4090", 82.6, 165.2, 165.2),  # fp32 accumulation
    (r"RTX A6000", 38.7, 154.8, 154.8),
    (r"\bA10\b", 31.2, 125.0, 125.0),
    (r"V100.*PCIE", 14.0, 112.0, None),
    (r"V100", 15.7, 125.0, None),  # SXM2
    (r"TITAN RTX", 16.3, 130.5, None),
    (r"\bT4\b", 8.1, 65.0, None),
)
_DTYPE_COLUMN = {"fp32": 0, "fp16": 1, "bf16": 2}


def peak_tflops(device_name: str, dtype: str) -> float | None:
    """The datasheet's dense peak for ``dtype`` on the GPU named ``device_name``, if known."""
    check_choice("dtype", dtype, DTYPES)
    for pattern, *peaks in PEAK_TFLOPS:
        if re.search(pattern, device_name, flags=re.IGNORECASE):
            return peaks[_DTYPE_COLUMN[dtype]]
    return None


def matmul_ceiling_tflops(
    device: torch.device | str = "cuda", dtype: str = "bf16", n: int | None = None,
    iters: int | None = None, repeats: int = 10, window_s: float = 0.05,
) -> float:
    """Best achieved TFLOPS of ``n x n`` matmuls in ``dtype`` over ``repeats`` timed windows of
    ``iters`` each, after a warm-up (a ceiling: the fastest window, not the typical one).

    ``n`` defaults to 8192 on CUDA and to 1024 elsewhere: the size of the step's matmuls
    (PaSST's widths of 768 to 3072 over a thousand tokens), never smaller on a slow or busy
    machine, where overheads would make a small matmul's rate no ceiling at all. ``iters``
    defaults to what fills ``window_s``; where one matmul takes longer than that (a CPU without
    native half-precision kernels), 3 windows of one each.
    """
    device = torch.device(device)
    check_choice("dtype", dtype, DTYPES)
    torch_dtype = AUTOCAST_DTYPES.get(dtype, torch.float32)
    gen = torch.Generator().manual_seed(0)

    def operands(size: int) -> tuple[Tensor, Tensor]:
        return tuple(torch.randn(size, size, generator=gen).to(device, torch_dtype)
                     for _ in range(2))

    def seconds(a: Tensor, b: Tensor) -> float:
        a @ b  # warm-up: kernel selection, allocation
        synchronize(device)
        start = time.perf_counter()
        a @ b
        synchronize(device)
        return time.perf_counter() - start

    n = n or (8192 if device.type == "cuda" else 1024)
    a, b = operands(n)
    one = seconds(a, b)
    if one > window_s:
        repeats = min(repeats, 3)
    iters = iters or max(1, math.ceil(window_s / max(one, 1e-9)))
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(iters):
            a @ b
        synchronize(device)
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 * iters / best / 1e12


def mfu(flops_per_sample: float, samples_per_s: float, peak_tflops: float) -> float:
    """Model FLOPs utilisation: achieved FLOPs per second over a peak given in TFLOPS."""
    if not peak_tflops > 0:
        raise UsageError(f"peak_tflops must be positive, got {peak_tflops}")
    return flops_per_sample * samples_per_s / (peak_tflops * 1e12)

