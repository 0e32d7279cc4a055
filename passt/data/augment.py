"""Batched training augmentations on the batch's device: two-level mixup, gain and roll.

All draws come from ``generator`` (on the data's device) or torch's default generator, with no
host synchronisation. SpecAugment and the mel-band jitter live in `MelFrontend`'s training mode.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from passt.utils.errors import UsageError
from passt.utils.rng import DeviceGenerators

GAMMA_TRIES = 8


def sample_gamma(concentration: float, shape: tuple[int, ...], device: torch.device,
                 generator: torch.Generator | None = None) -> Tensor:
    """Gamma(concentration, 1) draws by Marsaglia and Tsang's method, vectorised: each sample
    takes the first of ``GAMMA_TRIES`` accepted proposals (all rejected: p < 1e-10, the mode).
    Concentrations below 1 use the boost ``Gamma(a) = Gamma(a + 1) * U^(1/a)``."""
    if concentration <= 0:
        raise UsageError(f"concentration must be positive, got {concentration}")
    d = concentration + 1.0 - 1.0 / 3.0
    c = 1.0 / (9.0 * d) ** 0.5
    normal = torch.randn((GAMMA_TRIES, *shape), device=device, generator=generator)
    uniform = torch.rand((GAMMA_TRIES, *shape), device=device, generator=generator)
    v = (1.0 + c * normal) ** 3
    log_v = torch.log(v.clamp(min=1e-30))
    accept = (v > 0) & (torch.log(uniform) < 0.5 * normal**2 + d - d * v + d * log_v)
    first = accept.int().argmax(dim=0, keepdim=True)
    chosen = torch.gather(d * v, 0, first).squeeze(0)
    chosen = torch.where(accept.any(dim=0), chosen, torch.full_like(chosen, d))
    boost = torch.rand(shape, device=device, generator=generator) ** (1.0 / concentration)
    return chosen * boost


def sample_mixing(alpha: float, batch: int, device: torch.device,
                  generator: torch.Generator | None = None) -> Tensor:
    """Mixing weights ``max(l, 1 - l)`` with ``l ~ Beta(alpha, alpha)``, as PaSST: the sample
    keeps the larger share."""
    a = sample_gamma(alpha, (batch,), device, generator)
    b = sample_gamma(alpha, (batch,), device, generator)
    lam = a / (a + b)
    return torch.maximum(lam, 1.0 - lam)


def _mix(x: Tensor, y: Tensor, lam: Tensor, partner: Tensor) -> tuple[Tensor, Tensor]:
    lx = lam.reshape(-1, *([1] * (x.dim() - 1))).to(x.dtype)
    ly = lam.reshape(-1, *([1] * (y.dim() - 1))).to(y.dtype)
    return x * lx + x[partner] * (1 - lx), y * ly + y[partner] * (1 - ly)


def waveform_mixup(x: Tensor, y: Tensor, rate: float = 0.5, alpha: float = 2.0,
                   generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """Mix each sample with probability ``rate`` with a random partner of the batch, weight
    ``max(l, 1 - l)``, ``l ~ Beta(alpha, alpha)``; targets mix alike. As PaSST, mixed waveforms
    are the mix of the two with their means removed. ``x`` ``[B, S]``, ``y`` ``[B, C]``."""
    if not 0 <= rate <= 1:
        raise UsageError(f"rate must be in [0, 1], got {rate}")
    batch = x.shape[0]
    partner = torch.randperm(batch, device=x.device, generator=generator)
    lam = sample_mixing(alpha, batch, x.device, generator)
    chosen = torch.rand(batch, device=x.device, generator=generator) < rate
    mixed_x, mixed_y = _mix(x - x.mean(dim=-1, keepdim=True), y, lam, partner)
    return (torch.where(chosen[:, None], mixed_x, x),
            torch.where(chosen[:, None], mixed_y, y))


def spectrogram_mixup(mel: Tensor, y: Tensor, alpha: float = 0.3,
                      generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """Mix every log-mel ``[B, F, T]`` with a random partner of the batch, weight
    ``max(l, 1 - l)``, ``l ~ Beta(alpha, alpha)``; targets mix alike."""
    batch = mel.shape[0]
    partner = torch.randperm(batch, device=mel.device, generator=generator)
    return _mix(mel, y, sample_mixing(alpha, batch, mel.device, generator), partner)


def random_gain(x: Tensor, max_db: float = 7.0,
                generator: torch.Generator | None = None) -> Tensor:
    """Scale each sample by a gain uniform in ``[-max_db, max_db]`` dB."""
    db = (torch.rand(x.shape[0], device=x.device, generator=generator) * 2 - 1) * max_db
    return x * (10.0 ** (db / 20.0)).reshape(-1, *([1] * (x.dim() - 1))).to(x.dtype)


def random_roll(x: Tensor, max_shift: int | None = None,
                generator: torch.Generator | None = None) -> Tensor:
    """Circularly shift each sample along its last (time) axis by its own random amount,
    uniform in ``[-max_shift, max_shift]`` (default: any shift)."""
    length = x.shape[-1]
    limit = length - 1 if max_shift is None else min(max_shift, length - 1)
    shift = torch.randint(-limit, limit + 1, (x.shape[0],), device=x.device, generator=generator)
    source = (torch.arange(length, device=x.device) - shift[:, None]) % length
    source = source.reshape(x.shape[0], *([1] * (x.dim() - 2)), length).expand_as(x)
    return torch.gather(x, -1, source)


@dataclass(frozen=True)
class AugmentConfig:
    """Which augmentations `Augment` applies; the defaults are PaSST's AudioSet recipe."""

    gain_db: float = 7.0
    roll: bool = True
    roll_max_shift: int | None = None
    waveform_mixup_rate: float = 0.5
    waveform_mixup_alpha: float = 2.0
    spectrogram_mixup_alpha: float = 0.3

    def __post_init__(self) -> None:
        if self.gain_db < 0:
            raise UsageError(f"gain_db must be >= 0 (0 disables), got {self.gain_db}")
        if not 0 <= self.waveform_mixup_rate <= 1:
            raise UsageError(f"waveform_mixup_rate must be in [0, 1] (0 disables), got "
                             f"{self.waveform_mixup_rate}")
        for name in ("waveform_mixup_alpha", "spectrogram_mixup_alpha"):
            if getattr(self, name) < 0:
                raise UsageError(f"{name} must be >= 0 (0 disables), got {getattr(self, name)}")

    @classmethod
    def off(cls) -> AugmentConfig:
        """Every augmentation disabled."""
        return cls(gain_db=0.0, roll=False, waveform_mixup_rate=0.0, spectrogram_mixup_alpha=0.0)


class Augment:
    """Applies `AugmentConfig`'s augmentations: `waveform` before the frontend (gain, roll,
    waveform mixup), `spectrogram` after it (spectrogram mixup). ``seed`` seeds a generator per
    device; ``None`` uses torch's default generator."""

    def __init__(self, config: AugmentConfig | None = None, seed: int | None = None):
        self.config = config or AugmentConfig()
        self.draws = DeviceGenerators(seed)

    def waveform(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        """Augment a batch of waveforms ``[B, S]`` and their targets ``[B, C]``."""
        c, gen = self.config, self.draws.get(x.device)
        if c.gain_db > 0:
            x = random_gain(x, c.gain_db, gen)
        if c.roll:
            x = random_roll(x, c.roll_max_shift, gen)
        if c.waveform_mixup_rate > 0 and c.waveform_mixup_alpha > 0:
            x, y = waveform_mixup(x, y, c.waveform_mixup_rate, c.waveform_mixup_alpha, gen)
        return x, y

    def spectrogram(self, mel: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        """Augment a batch of log-mels ``[B, F, T]`` and their targets ``[B, C]``."""
        if self.config.spectrogram_mixup_alpha > 0:
            return spectrogram_mixup(mel, y, self.config.spectrogram_mixup_alpha,
                                     self.draws.get(mel.device))
        return mel, y
