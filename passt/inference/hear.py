"""The HEAR 2021 API (hear-eval-kit's interface) over any PaSST variant, a drop-in for
hear21passt: `load_model`, `get_scene_embeddings`, `get_timestamp_embeddings`.

The semantics are hear21passt's: timestamp embeddings of 160 ms windows every 50 ms over the
audio reflect-padded by half a window, stamped in milliseconds (window ``i`` at ``i`` hops,
its centre in the unpadded audio); the scene embedding of a clip up to the model's window
(10 s) from one pass over it, of a longer clip the mean over 10 s windows every 2.5 s, padded
alike. Unlike hear21passt, weights come from a local checkpoint only (never a download), the
windows of a call go through the model in batched passes of at most ``max_batch`` windows on
the model's device (`passt.inference.windows.forward_batched`, as ``passt embed``), and bad
audio gets a clear error.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from passt.frontend import MelFrontend, create_frontend
from passt.inference.run import (
    DEFAULT_WINDOW_SECONDS,
    EMBED_MODES,
    EmbedMode,
    check_fits,
    embedding_size,
    embeddings,
)
from passt.inference.run import (
    load_model as load_inference_model,
)
from passt.inference.windows import PathLike, Windowing, forward_batched
from passt.model import PaSST
from passt.utils.device import resolve_device
from passt.utils.errors import UsageError, check_choice
from passt.utils.values import check_int

NO_DOWNLOAD = (
    "load_model needs model_file_path, a local checkpoint: passt.inference.hear never downloads. "
    "Accepted: an official PaSST state_dict (e.g. passt-s-f128-p16-s10-ap.476-swa.pt from "
    "https://github.com/kkoutini/PaSST/releases, fetched once where there is a network) or a "
    "`passt train` checkpoint"
)


@dataclass(frozen=True)
class HearConfig:
    """How `HearModel` embeds: the mode, where the windows lie, and the batching."""

    mode: EmbedMode = "all"  # hear21passt's: logits then features (527 + 768), or one of them
    timestamp_window_seconds: float = 0.16
    timestamp_hop_seconds: float = 0.05
    # None: the clip length of a `passt train` checkpoint, else 10 s
    scene_window_seconds: float | None = None
    scene_hop_seconds: float | None = None  # None: a quarter of the scene window (2.5 s)
    max_batch: int = 64  # windows per forward pass: bounds the memory, not the results

    def __post_init__(self) -> None:
        check_choice("embedding mode", self.mode, EMBED_MODES)
        check_int("max_batch", self.max_batch, minimum=1)


HEAR_SETTINGS = tuple(f.name for f in fields(HearConfig) if f.name != "mode")


class HearModel(nn.Module):
    """A PaSST and its frontend as the HEAR API sees them: ``sample_rate``, the embedding
    sizes, and ``forward``: waveforms ``[B, S]`` to embeddings ``[B, size]`` of the mode."""

    def __init__(self, model: PaSST, frontend: MelFrontend, config: HearConfig | None = None,
                 clip_seconds: float | None = None):
        super().__init__()
        self.model, self.frontend = model.eval(), frontend.eval()
        self.config = config or HearConfig()
        c, rate = self.config, frontend.config.sample_rate
        self.sample_rate = rate
        self.timestamp_windows = Windowing(c.timestamp_window_seconds, c.timestamp_hop_seconds,
                                           rate)
        scene = c.scene_window_seconds or clip_seconds or DEFAULT_WINDOW_SECONDS
        self.scene_windows = Windowing(scene, c.scene_hop_seconds or scene / 4, rate)
        for windowing in (self.timestamp_windows, self.scene_windows):
            check_fits(model, frontend, windowing)
        self.scene_embedding_size = self.timestamp_embedding_size = embedding_size(model,
                                                                                   c.mode)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def forward(self, waves: Tensor) -> Tensor:
        return embeddings(self.model, self.frontend(waves), self.config.mode)


def load_model(model_file_path: PathLike | Mapping[str, Any] = "", variant: str | None = None,
               mode: EmbedMode = "all", *, device: str | torch.device = "auto",
               **overrides: Any) -> HearModel:
    """A `HearModel` from a local checkpoint: an official state_dict (architecture ``variant``,
    default passt-s; any variant or reduction, e.g. ``"passt-s-n"``, ``"passt-s-tome"``) or a
    ``passt train`` checkpoint (its own architecture and frontend), on ``device`` (``"auto"``:
    CUDA when available). ``overrides``: `HearConfig` fields (``max_batch=``, windows) and
    model settings (``embed_dim=``, a reduction's ``r=``, ...) over the variant's."""
    if isinstance(model_file_path, (str, bytes)) and not model_file_path:
        raise UsageError(NO_DOWNLOAD)
    hear = {name: overrides.pop(name) for name in HEAR_SETTINGS if name in overrides}
    config = HearConfig(mode=mode, **hear)
    loaded = load_inference_model(model_file_path, variant, **overrides)
    frontend = loaded.frontend if loaded.frontend is not None else create_frontend()
    hear_model = HearModel(loaded.model, frontend, config, loaded.clip_seconds)
    return hear_model.to(resolve_device(device))


def get_scene_embeddings(audio: Tensor, model: HearModel, *,
                         sample_rate: int | None = None) -> Tensor:
    """``[n_sounds, scene_embedding_size]`` of mono ``audio`` ``[n_sounds, n_samples]`` (floats
    in [-1, 1] at ``model.sample_rate``; ``sample_rate``, when given, is checked against it),
    on the model's device."""
    audio = _checked(audio, model, sample_rate)
    windows = model.scene_windows
    if audio.shape[1] > windows.window:
        return _windowed(audio, model, windows)[0].mean(dim=1)
    model.model.check_frames(model.frontend.frames(audio.shape[1]),
                             source=f"audio of {audio.shape[1]} samples",
                             frame_seconds=model.frontend.config.frame_seconds)
    return forward_batched(model, audio, model.config.max_batch, model.device)


def get_timestamp_embeddings(audio: Tensor, model: HearModel, *,
                             sample_rate: int | None = None) -> tuple[Tensor, Tensor]:
    """Embeddings ``[n_sounds, n_timestamps, timestamp_embedding_size]`` and their timestamps
    ``[n_sounds, n_timestamps]`` (float32 milliseconds) of ``audio`` as for
    `get_scene_embeddings`, on the model's device."""
    audio = _checked(audio, model, sample_rate)
    out, starts = _windowed(audio, model, model.timestamp_windows)
    millis = (starts.double() * 1000 / model.sample_rate).float()
    return out, millis.expand(audio.shape[0], -1).contiguous()


def _checked(audio: Tensor, model: HearModel, sample_rate: int | None) -> Tensor:
    """``audio`` as a float ``[n_sounds, n_samples]`` tensor on the model's device, the model
    in eval mode; a clear error for audio it cannot embed."""
    if sample_rate is not None and sample_rate != model.sample_rate:
        raise UsageError(f"audio at {sample_rate} Hz, but the model takes "
                         f"{model.sample_rate} Hz (model.sample_rate): resample it first")
    audio = torch.as_tensor(audio)
    if audio.dim() == 3 and audio.shape[1] == 1:
        audio = audio[:, 0]
    if audio.dim() == 3:
        raise UsageError(f"audio of shape {list(audio.shape)} has {audio.shape[1]} channels; "
                         "accepted: mono [n_sounds, n_samples] (average the channels first)")
    if audio.dim() != 2:
        raise UsageError(f"expected mono audio [n_sounds, n_samples], got shape "
                         f"{list(audio.shape)}" + (" (one sound: audio[None])"
                                                   if audio.dim() == 1 else ""))
    if audio.numel() == 0:
        raise UsageError(f"empty audio of shape {list(audio.shape)}; accepted: at least one "
                         "sound of at least one window's samples")
    if not audio.is_floating_point():
        raise UsageError(f"audio of dtype {audio.dtype}; accepted: floating-point samples in "
                         "[-1, 1] (integer PCM divided by its full scale, e.g. 32768)")
    if not torch.isfinite(audio).all():
        raise UsageError("audio holds NaN or infinite samples")
    model.eval()
    return audio.to(model.device, torch.float32)


def _windowed(audio: Tensor, model: HearModel, windowing: Windowing) -> tuple[Tensor, Tensor]:
    """Embeddings ``[n_sounds, W, E]`` of the windows of ``audio`` reflect-padded by half a
    window, and their start samples in the padded audio ``[W]`` (their centres unpadded)."""
    pad = windowing.window // 2
    if audio.shape[1] <= pad:
        raise UsageError(f"audio of {audio.shape[1]} samples is too short for windows of "
                         f"{windowing.window_seconds} s: reflect padding by half a window "
                         f"needs more than {pad} samples")
    padded = F.pad(audio[:, None], (pad, pad), mode="reflect")[:, 0]
    windows = padded.unfold(-1, windowing.window, windowing.hop)  # a view: nothing copied
    out = forward_batched(model, windows, model.config.max_batch, model.device)
    return out, torch.arange(windows.shape[1], device=out.device) * windowing.hop
