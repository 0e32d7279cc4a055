"""One training or inference step of a PaSST variant on fixed synthetic audio, ready to time.

A training step is frontend, model, BCE loss, backward and an AdamW update; an inference step
is frontend and model forward under ``torch.inference_mode``. Both run under the chosen
precision (fp32, fp16 autocast with gradient scaling, bf16 autocast) and attention path.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from passt.factory import create_model
from passt.frontend import MelFrontend, create_frontend
from passt.measure.compiled import CUDA_GRAPH_MODES, compile_fn, reset_compiler
from passt.model import ATTENTION_PATHS, PaSSTConfig
from passt.utils.device import resolve_device
from passt.utils.errors import UsageError, check_choice
from passt.utils.precision import DTYPES, autocast, backward_and_step
from passt.utils.values import check_int, check_number
from passt.variants import seq_len_per_block, variant_config

log = logging.getLogger(__name__)

KINDS = ("train", "inference")
COMPILE_SCOPES = ("step", "model")
COMPILE_MODES = (None, "default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
LEARNING_RATE = 1e-5
WEIGHT_DECAY = 1e-4
TARGET_DENSITY = 0.05  # fraction of positive labels in the synthetic multi-hot targets


@dataclass(frozen=True)
class StepSettings:
    """What one benchmark step runs: variant, batch, clip, device, precision and compilation."""

    variant: str = "passt-s"
    batch_size: int = 1
    clip_seconds: float = 10.0
    device: str = "cpu"
    dtype: str = "fp32"
    attention: str = "sdpa"
    compile: bool = False
    compile_mode: str | None = None  # torch.compile mode, e.g. "reduce-overhead" (CUDA graphs)
    # Compile once with a symbolic batch dimension, so every batch size of the memory fit and
    # the timed batch share one graph; False compiles a static graph per batch size.
    compile_dynamic_batch: bool = True
    model_overrides: dict[str, Any] = field(default_factory=dict)  # see passt.create_model
    num_classes: int = 527
    seed: int = 0
    # None: fused on CUDA (with fp16 it also spares the scaler's host sync), default elsewhere
    fused_adamw: bool | None = None

    def __post_init__(self) -> None:
        check_int("batch_size", self.batch_size, minimum=1)
        if self.compile_mode not in COMPILE_MODES:
            raise UsageError(
                f"unknown compile mode {self.compile_mode!r}; accepted: "
                f"{', '.join(str(m) for m in COMPILE_MODES)}"
            )
        check_choice("dtype", self.dtype, DTYPES)
        check_choice("attention path", self.attention, ATTENTION_PATHS)
        for key in ("attention", "num_classes"):
            if key in self.model_overrides:
                raise UsageError(f"set {key} on StepSettings, not in model_overrides")
        check_number("clip_seconds", self.clip_seconds, above=0)
        self.torch_device  # noqa: B018 (validates the device)
        self._check_clip()

    @property
    def torch_device(self) -> torch.device:
        return resolve_device(self.device)

    def num_samples(self, frontend: MelFrontend) -> int:
        """Waveform samples in one clip at the frontend's sample rate."""
        return round(self.clip_seconds * frontend.config.sample_rate)

    @property
    def model_kwargs(self) -> dict[str, Any]:
        return {**self.model_overrides, "num_classes": self.num_classes,
                "attention": self.attention}

    @property
    def model_config(self) -> PaSSTConfig:
        """The `PaSSTConfig` of the step's model."""
        return variant_config(self.variant, **self.model_kwargs)

    def _check_clip(self) -> None:
        with torch.device("meta"):  # the architecture without memory
            model = create_model(self.variant, **self.model_kwargs)
        frontend = create_frontend()
        try:
            frames = frontend.frames(self.num_samples(frontend))
        except UsageError:  # shorter than the STFT's padding
            frames = 0
        model.check_frames(frames, training=True, source=f"a clip of {self.clip_seconds} s",
                           frame_seconds=frontend.config.frame_seconds)


@dataclass(eq=False)
class Step:
    """A built step: call it to run one step (no host synchronisation inside)."""

    settings: StepSettings
    kind: str
    frames: int
    seq_len: int  # tokens entering the first block
    seq_len_per_block: tuple[int, ...]  # tokens entering each block
    # The eager modules; `forward_fn` runs them (compiled if the settings ask).
    model: nn.Module = field(repr=False)  # ours is a PaSST; a peer's, its own module
    frontend: nn.Module = field(repr=False)
    forward_fn: Callable[[Tensor, Tensor], Tensor] = field(repr=False)  # see `make_forward`
    inputs: Tensor = field(repr=False)  # waveforms [B, samples]
    targets: Tensor = field(repr=False)  # multi-hot [B, num_classes]
    optimizer: torch.optim.Optimizer | None = field(repr=False)
    scaler: torch.amp.GradScaler | None = field(repr=False)

    @property
    def device(self) -> torch.device:
        return self.inputs.device

    @property
    def num_params(self) -> int:
        return sum(p.numel() for p in self.model.parameters())

    def autocast(self) -> contextlib.AbstractContextManager:
        """Autocast to the step's half precision; a no-op context for fp32."""
        return autocast(self.settings.dtype, self.device.type)

    def forward(self) -> Tensor:
        """The training loss, or the inference logits, of the fixed batch."""
        if self.kind == "inference":
            with torch.inference_mode():
                return self.forward_fn(self.inputs, self.targets)
        return self.forward_fn(self.inputs, self.targets)

    def resize(self, batch_size: int) -> None:
        """Replace the fixed batch by one of ``batch_size`` (the same seed's data); the model,
        optimizer state and compiled graphs are kept."""
        num_samples, device = self.inputs.shape[-1], self.device
        self.settings = dataclasses.replace(self.settings, batch_size=batch_size)
        del self.inputs, self.targets  # free the old batch before making the new one
        self.inputs, self.targets = place_batch(self.settings, num_samples, device)

    def __call__(self) -> None:
        """Run one step: forward (and backward and update, for training); returns nothing."""
        if self.settings.compile and self.settings.compile_mode in CUDA_GRAPH_MODES:
            torch.compiler.cudagraph_mark_step_begin()  # the last step's outputs may be reused
        if self.optimizer is None:
            self.forward()
            return
        self.optimizer.zero_grad(set_to_none=True)
        loss = self.forward()
        backward_and_step(loss, self.optimizer, self.scaler)


def synthetic_batch(settings: StepSettings, num_samples: int) -> tuple[Tensor, Tensor]:
    """Deterministic waveforms ``[B, num_samples]`` and multi-hot targets from ``settings.seed``."""
    gen = torch.Generator().manual_seed(settings.seed)
    waves = 0.1 * torch.randn(settings.batch_size, num_samples, generator=gen)
    targets = torch.rand(settings.batch_size, settings.num_classes, generator=gen)
    return waves, (targets < TARGET_DENSITY).float()


def place_batch(settings: StepSettings, num_samples: int,
                device: torch.device) -> tuple[Tensor, Tensor]:
    """`synthetic_batch` on ``device``, its batch dimension marked dynamic when the step
    compiles with `StepSettings.compile_dynamic_batch` (sizes 0 and 1 cannot be marked)."""
    waves, targets = synthetic_batch(settings, num_samples)
    waves, targets = waves.to(device), targets.to(device)
    if settings.compile and settings.compile_dynamic_batch and settings.batch_size > 1:
        torch._dynamo.mark_dynamic(waves, 0)
        torch._dynamo.mark_dynamic(targets, 0)
    return waves, targets


def make_forward(model: nn.Module, frontend: nn.Module, kind: str, settings: StepSettings,
                 compile_scope: str = "step") -> Callable[[Tensor, Tensor], Tensor]:
    """``(waveforms, targets) -> loss`` (train) or ``-> logits`` (inference).

    With ``settings.compile``, ``compile_scope="step"`` compiles frontend, model and loss as
    one graph, with no graph break allowed; ``"model"`` compiles the model alone (for peers
    whose frontend does not compile), its input's batch dimension marked dynamic as the
    waveforms' are (`place_batch`), so that every batch size shares one graph.
    """
    if compile_scope not in COMPILE_SCOPES:
        raise UsageError(f"unknown compile scope {compile_scope!r}; accepted: "
                         f"{', '.join(COMPILE_SCOPES)}")
    device_type = settings.torch_device.type
    mark_batch = settings.compile and compile_scope == "model" and settings.compile_dynamic_batch
    if settings.compile and compile_scope == "model":
        model = compile_fn(model, mode=settings.compile_mode, fullgraph=False,
                           static=not settings.compile_dynamic_batch)

    def forward(waves: Tensor, targets: Tensor) -> Tensor:
        with autocast(settings.dtype, device_type):
            mel = frontend(waves)
            if mark_batch and mel.shape[0] > 1:  # sizes 0 and 1 cannot be marked
                torch._dynamo.maybe_mark_dynamic(mel, 0)
            logits = model(mel)
        if kind == "inference":
            return logits
        return F.binary_cross_entropy_with_logits(logits.float(), targets)

    if settings.compile and compile_scope == "step":
        return compile_fn(forward, mode=settings.compile_mode, fullgraph=True,
                          static=not settings.compile_dynamic_batch)
    return forward


def make_optimizer(
    model: nn.Module, settings: StepSettings
) -> tuple[torch.optim.Optimizer, torch.amp.GradScaler | None]:
    """AdamW (fused on CUDA unless told otherwise) and, for fp16, a gradient scaler."""
    device = settings.torch_device
    fused = settings.fused_adamw if settings.fused_adamw is not None else device.type == "cuda"
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=LEARNING_RATE, weight_decay=WEIGHT_DECAY, fused=fused
    )
    scaler = torch.amp.GradScaler(device.type) if settings.dtype == "fp16" else None
    return optimizer, scaler


def build_step(settings: StepSettings, kind: str = "train",
               fresh_compiler: bool = True) -> Step:
    """Build the model, frontend, data and optimizer of one ``"train"`` or ``"inference"`` step.

    Seeds torch's global RNG with ``settings.seed`` so initialisation and draws repeat. A
    compiled step starts from a fresh compiler (its own recompile budget and counters) unless
    ``fresh_compiler`` is False: a step built beside one already compiled, to be timed with it.
    """
    check_choice("step kind", kind, KINDS)
    device = settings.torch_device
    training = kind == "train"
    if settings.compile and fresh_compiler:
        reset_compiler()
    torch.manual_seed(settings.seed)
    model = create_model(settings.variant, **settings.model_kwargs).to(device)
    frontend = create_frontend().to(device)
    model.train(training)
    frontend.train(training)
    num_samples = settings.num_samples(frontend)
    inputs, targets = place_batch(settings, num_samples, device)
    frames = frontend.frames(num_samples)
    optimizer, scaler = make_optimizer(model, settings) if training else (None, None)
    forward_fn = make_forward(model, frontend, kind, settings)
    seq_len = model.seq_len(frames, training=training)
    per_block = tuple(seq_len_per_block(model.cfg, frames, training=training))
    log.info("built %s step: %s, tokens per block %s", kind, settings, per_block)
    return Step(
        settings=settings,
        kind=kind,
        model=model,
        frontend=frontend,
        forward_fn=forward_fn,
        inputs=inputs,
        targets=targets,
        frames=frames,
        seq_len=seq_len,
        seq_len_per_block=per_block,
        optimizer=optimizer,
        scaler=scaler,
    )
