"""Waveform to log-mel frontend, numerically equal to the official PaSST preprocessing.

Eval mode reproduces `AugmentMelSTFT` from the PaSST repository; training mode adds its
augmentations (fmin/fmax jitter of the mel filterbank and iid SpecAugment masks).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from passt.utils.errors import UsageError
from passt.utils.rng import DeviceGenerators, rand, randint
from passt.utils.settings import check_options


@dataclass(frozen=True)
class FrontendConfig:
    """Settings of the log-mel frontend; the defaults are those of the released PaSST models."""

    sample_rate: int = 32000
    n_mels: int = 128
    n_fft: int = 1024
    win_length: int = 800
    hop_length: int = 320
    fmin: float = 0.0
    fmax: float = 15000.0
    preemphasis: float = 0.97
    fmin_aug_range: int = 10
    fmax_aug_range: int = 2000
    freq_mask: int = 48
    time_mask: int = 192

    def __post_init__(self) -> None:
        for name in ("sample_rate", "n_mels", "n_fft", "win_length", "hop_length"):
            if getattr(self, name) <= 0:
                raise UsageError(f"{name} must be positive, got {getattr(self, name)}")
        if self.win_length > self.n_fft:
            raise UsageError(
                f"win_length ({self.win_length}) must not exceed n_fft ({self.n_fft})"
            )
        nyquist = self.sample_rate / 2
        if not 0.0 <= self.fmin < self.fmax <= nyquist:
            raise UsageError(
                f"need 0 <= fmin < fmax <= sample_rate/2 = {nyquist}, "
                f"got fmin={self.fmin}, fmax={self.fmax}"
            )
        if not 0.0 <= self.preemphasis <= 1.0:
            raise UsageError(f"preemphasis must be in [0, 1], got {self.preemphasis}")
        for name in ("fmin_aug_range", "fmax_aug_range"):
            if getattr(self, name) < 1:
                raise UsageError(
                    f"{name} must be >= 1 (1 means no augmentation), got {getattr(self, name)}"
                )
        for name in ("freq_mask", "time_mask"):
            if getattr(self, name) < 0:
                raise UsageError(f"{name} must be >= 0, got {getattr(self, name)}")
        # The jittered band must stay valid for every draw, as Kaldi's mel banks require.
        fmin_hi = self.fmin + self.fmin_aug_range - 1
        fmax_lo = self.fmax + self.fmax_aug_range // 2 - (self.fmax_aug_range - 1)
        fmax_hi = self.fmax + self.fmax_aug_range // 2
        if fmax_hi > nyquist or fmin_hi >= fmax_lo:
            raise UsageError(
                f"augmented band fmin in [{self.fmin}, {fmin_hi}], fmax in [{fmax_lo}, {fmax_hi}] "
                f"must keep fmin < fmax <= sample_rate/2 = {nyquist}"
            )

    @property
    def frame_seconds(self) -> float:
        """Seconds from one frame to the next (the hop)."""
        return self.hop_length / self.sample_rate


def _mel_scale(freq: Tensor) -> Tensor:
    return 1127.0 * torch.log(1.0 + freq / 700.0)


def kaldi_mel_banks(
    n_mels: int, n_fft: int, sample_rate: float, fmin: Tensor, fmax: Tensor
) -> Tensor:
    """Kaldi mel filterbank `[n_mels, n_fft // 2 + 1]` for 0-d tensors fmin/fmax, on their device.

    Equals `torchaudio.compliance.kaldi.get_mel_banks` (no VTLN) padded with a zero Nyquist column.
    """
    device = fmin.device
    # Kaldi computes the band edges in double precision; float32 here costs ~1e-5 in the weights.
    mel_low = _mel_scale(fmin.double())
    mel_delta = ((_mel_scale(fmax.double()) - mel_low) / (n_mels + 1)).float()
    mel_low = mel_low.float()
    band = torch.arange(n_mels, device=device, dtype=torch.float32).unsqueeze(1)
    left = mel_low + band * mel_delta
    center = mel_low + (band + 1.0) * mel_delta
    right = mel_low + (band + 2.0) * mel_delta
    bin_freqs = sample_rate / n_fft * torch.arange(n_fft // 2, device=device, dtype=torch.float32)
    mel = _mel_scale(bin_freqs).unsqueeze(0)
    up_slope = (mel - left) / (center - left)
    down_slope = (right - mel) / (right - center)
    banks = torch.minimum(up_slope, down_slope).clamp(min=0.0)
    return F.pad(banks, (0, 1))


def _mask_along(x: Tensor, max_width: int, dim: int, generator: torch.Generator | None) -> Tensor:
    """Zero one random block of width floor(u * max_width) along `dim` (1 or 2), iid per sample."""
    if max_width == 0:
        return x
    batch, size = x.shape[0], x.shape[dim]
    width = (rand(batch, device=x.device, generator=generator) * max_width).floor()
    start = (rand(batch, device=x.device, generator=generator) * (size - width)).floor()
    idx = torch.arange(size, device=x.device)
    mask = (idx >= start[:, None]) & (idx < (start + width)[:, None])
    mask = mask[:, :, None] if dim == 1 else mask[:, None, :]
    return x.masked_fill(mask, 0.0)


class MelFrontend(nn.Module):
    """Maps waveforms `[B, S]` or `[B, 1, S]` to normalised log-mels `[B, n_mels, frames]`."""

    def __init__(self, config: FrontendConfig | None = None, seed: int | None = None) -> None:
        super().__init__()
        self.config = config if config is not None else FrontendConfig()
        self.draws = DeviceGenerators(seed)
        c = self.config
        window = torch.hann_window(c.win_length, periodic=False)
        self.register_buffer("window", window, persistent=False)
        mel_basis = kaldi_mel_banks(
            c.n_mels, c.n_fft, c.sample_rate, torch.tensor(c.fmin), torch.tensor(c.fmax)
        )
        self.register_buffer("mel_basis", mel_basis, persistent=False)

    def frames(self, num_samples: int) -> int:
        """Number of output frames for an input of `num_samples` samples."""
        self._check_length(num_samples)
        # Pre-emphasis drops one sample; a centred STFT then yields one frame per hop plus one.
        return (num_samples - 1) // self.config.hop_length + 1

    def _check_length(self, num_samples: int) -> None:
        # Reflect padding of n_fft // 2 needs more samples than that after pre-emphasis.
        min_samples = self.config.n_fft // 2 + 2
        if num_samples < min_samples:
            raise UsageError(f"need at least {min_samples} samples, got {num_samples}")

    def forward(self, x: Tensor) -> Tensor:
        """Log-mel of `x`; in training mode with fmin/fmax jitter and SpecAugment masks."""
        if x.dim() == 3 and x.shape[1] == 1:
            x = x.squeeze(1)
        if x.dim() != 2:
            raise UsageError(
                f"expected waveform of shape [B, S] or [B, 1, S], got {list(x.shape)}"
            )
        self._check_length(x.shape[-1])
        c = self.config
        x = x.float()
        x = x[:, 1:] - c.preemphasis * x[:, :-1]
        spec = torch.stft(
            x, c.n_fft, hop_length=c.hop_length, win_length=c.win_length,
            window=self.window.float(), center=True, pad_mode="reflect", return_complex=True,
        )
        power = spec.real**2 + spec.imag**2

        gen = self.draws.get(x.device) if self.training else None
        if self.training:
            fmin = c.fmin + randint(c.fmin_aug_range, (), device=x.device, generator=gen)
            fmax_jitter = randint(c.fmax_aug_range, (), device=x.device, generator=gen)
            fmax = c.fmax + c.fmax_aug_range // 2 - fmax_jitter
            mel_basis = kaldi_mel_banks(c.n_mels, c.n_fft, c.sample_rate, fmin, fmax)
        else:
            mel_basis = self.mel_basis
        with torch.autocast(device_type=x.device.type, enabled=False):
            mel = torch.matmul(mel_basis.float(), power.float())
        mel = torch.log(mel + 1e-5)

        if self.training:
            mel = _mask_along(mel, c.freq_mask, dim=1, generator=gen)
            mel = _mask_along(mel, c.time_mask, dim=2, generator=gen)
        return (mel + 4.5) / 5.0


def create_frontend(seed: int | None = None, **overrides: float) -> MelFrontend:
    """Build a `MelFrontend` from the default config with the given field overrides."""
    check_options(FrontendConfig, overrides, "frontend option")
    return MelFrontend(FrontendConfig(**overrides), seed=seed)
