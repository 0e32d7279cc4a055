"""A synthetic, AudioSet-like multi-label task whose classes differ in time-frequency structure.

32 classes from 10 families. Many come in pairs with the same average spectrum and a different
time course (a pluck and its time reversal, up- and down-chirps over one band, slow and fast
modulation of one carrier, clicks at 8 and 30 per second, a chord and its arpeggios, two tones
alternating or together), so a classifier of the mean spectrum cannot tell them apart.
A clip holds 1 to 4 events at random onsets and gains over coloured background noise; class
frequencies are long-tailed. Clip ``index`` of ``split`` is a pure function of
``np.random.default_rng([seed, split_key, index])``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import numpy as np
from torch.utils.data import Dataset

from passt.data.audio import SAMPLE_RATE
from passt.data.sounds import (
    Render,
    beeps,
    chirp,
    chord,
    clicks,
    formant_noise,
    noise,
    noise_freqs,
    pluck,
    reversed_event,
    shaped_noise,
    tone,
)
from passt.utils.errors import UsageError

SPLITS = {"train": 0, "eval": 1, "test": 2}
DEFAULT_SIZES = {"train": 2000, "eval": 500, "test": 500}
EVENT_RMS = 0.1
PRIOR_SHUFFLE_SEED = 0


@dataclass(frozen=True)
class EventClass:
    """One class: its name, family, renderer and event duration range in seconds."""

    name: str
    family: str
    render: Render
    duration: tuple[float, float]


def _pair(name: str, family: str, render: Render, duration: tuple[float, float],
          reverse_name: str) -> tuple[EventClass, EventClass]:
    return (EventClass(name, family, render, duration),
            EventClass(reverse_name, family, partial(reversed_event, render=render), duration))


CATALOG: tuple[EventClass, ...] = (
    EventClass("organ", "tone", partial(tone, f0=(80, 160), rolloff=1.0, count=16), (0.5, 3.0)),
    EventClass("flute", "tone", partial(tone, f0=(700, 1400), rolloff=3.0, count=4), (0.3, 2.0)),
    EventClass("clarinet", "tone",
               partial(tone, f0=(180, 360), rolloff=1.0, count=15, odd_only=True), (0.3, 2.0)),
    EventClass("brass", "tone", partial(tone, f0=(250, 500), rolloff=0.5, count=20), (0.3, 2.0)),
    *_pair("pluck-low", "pluck", partial(pluck, f0=(110, 220)), (0.4, 2.0), "swell-low"),
    *_pair("pluck-high", "pluck", partial(pluck, f0=(440, 880)), (0.3, 1.5), "swell-high"),
    *_pair("chirp-up-low", "chirp", partial(chirp, band=(300, 1500)), (0.3, 1.5),
           "chirp-down-low"),
    *_pair("chirp-up-high", "chirp", partial(chirp, band=(2000, 7000)), (0.2, 1.2),
           "chirp-down-high"),
    EventClass("am-slow-low", "am",
               partial(tone, f0=(400, 800), rolloff=2.0, count=3, am_hz=4.0), (0.8, 3.0)),
    EventClass("am-fast-low", "am",
               partial(tone, f0=(400, 800), rolloff=2.0, count=3, am_hz=16.0), (0.8, 3.0)),
    EventClass("am-slow-high", "am",
               partial(tone, f0=(2000, 4000), rolloff=2.0, count=2, am_hz=4.0), (0.8, 3.0)),
    EventClass("am-fast-high", "am",
               partial(tone, f0=(2000, 4000), rolloff=2.0, count=2, am_hz=16.0), (0.8, 3.0)),
    EventClass("clicks-slow", "clicks", partial(clicks, rate=8.0), (0.8, 3.0)),
    EventClass("clicks-fast", "clicks", partial(clicks, rate=30.0), (0.8, 3.0)),
    EventClass("rumble", "noise", partial(noise, band=(40, 300)), (0.5, 3.0)),
    EventClass("hiss", "noise", partial(noise, band=(5000, 12000)), (0.3, 2.0)),
    *_pair("hit", "noise", partial(noise, band=(300, 3000), decay=0.15), (0.2, 1.0),
           "hit-reversed"),
    EventClass("whisper-a", "formant", partial(formant_noise, formants=(750, 1200, 2600)),
               (0.3, 1.5)),
    EventClass("whisper-i", "formant", partial(formant_noise, formants=(300, 2300, 3000)),
               (0.3, 1.5)),
    EventClass("whisper-u", "formant", partial(formant_noise, formants=(320, 800, 2300)),
               (0.3, 1.5)),
    EventClass("chord", "chord", partial(chord, root=(250, 500), order="together"), (0.6, 2.0)),
    EventClass("arpeggio-up", "chord", partial(chord, root=(250, 500), order="up"), (0.6, 2.0)),
    EventClass("arpeggio-down", "chord", partial(chord, root=(250, 500), order="down"),
               (0.6, 2.0)),
    EventClass("vibrato-slow", "vibrato", partial(
        tone, f0=(500, 1000), rolloff=2.0, count=3, vibrato_hz=1.5, vibrato_depth=0.05),
        (1.0, 3.0)),
    EventClass("vibrato-fast", "vibrato", partial(
        tone, f0=(500, 1000), rolloff=2.0, count=3, vibrato_hz=7.0, vibrato_depth=0.05),
        (1.0, 3.0)),
    EventClass("beeps-alternating", "beeps",
               partial(beeps, pitch=(800, 1300), slot=0.12, alternate=True), (0.8, 3.0)),
    EventClass("beeps-together", "beeps",
               partial(beeps, pitch=(800, 1300), slot=0.12, alternate=False), (0.8, 3.0)),
)


@dataclass(frozen=True)
class SyntheticConfig:
    """What a synthetic clip looks like. ``num_classes`` takes the first classes of `CATALOG`;
    ``events`` bounds the events per clip; ``gain_db`` is each event's gain; ``snr_db`` is the
    level of an event at 0 dB gain over the background's; ``tail_ratio`` is the prior of the most
    common class over the rarest's."""

    num_classes: int = len(CATALOG)
    clip_seconds: float = 10.0
    sample_rate: int = SAMPLE_RATE
    events: tuple[int, int] = (1, 4)
    gain_db: tuple[float, float] = (-20.0, 0.0)
    snr_db: tuple[float, float] = (10.0, 30.0)
    tail_ratio: float = 20.0

    def __post_init__(self) -> None:
        if not 1 <= self.num_classes <= len(CATALOG):
            raise UsageError(f"num_classes must be in [1, {len(CATALOG)}], got {self.num_classes}")
        if self.clip_seconds <= 0 or self.sample_rate <= 0:
            raise UsageError(f"clip_seconds and sample_rate must be positive, got "
                             f"{self.clip_seconds} and {self.sample_rate}")
        if not 1 <= self.events[0] <= self.events[1]:
            raise UsageError(f"events must be (low, high) with 1 <= low <= high, got {self.events}")
        if self.tail_ratio < 1:
            raise UsageError(f"tail_ratio must be >= 1, got {self.tail_ratio}")

    @property
    def classes(self) -> tuple[EventClass, ...]:
        return CATALOG[:self.num_classes]

    @property
    def clip_samples(self) -> int:
        return round(self.clip_seconds * self.sample_rate)


def class_prior(num_classes: int, tail_ratio: float) -> np.ndarray:
    """Event class probabilities decaying geometrically with a fixed rank per class, the most
    common ``tail_ratio`` times as likely as the rarest; ranks are shuffled across families."""
    rank = np.random.default_rng(PRIOR_SHUFFLE_SEED).permutation(num_classes)
    prior = tail_ratio ** (-rank / max(num_classes - 1, 1))
    return prior / prior.sum()


@dataclass(frozen=True)
class Plan:
    """The events of one clip: class labels, onsets and durations in samples, gains in dB."""

    labels: np.ndarray
    onsets: np.ndarray
    lengths: np.ndarray
    gains_db: np.ndarray


def plan_clip(config: SyntheticConfig, prior: np.ndarray, rng: np.random.Generator) -> Plan:
    """Draw a clip's events (cheap: no audio), the first draws of the clip's generator."""
    count = int(rng.integers(config.events[0], config.events[1] + 1))
    labels = rng.choice(config.num_classes, size=count, p=prior)
    bounds = np.array([config.classes[c].duration for c in labels])
    lengths = np.minimum(rng.uniform(bounds[:, 0], bounds[:, 1]) * config.sample_rate,
                         config.clip_samples).astype(np.int64)
    lengths = np.maximum(lengths, 1)
    onsets = (rng.uniform(size=count) * (config.clip_samples - lengths + 1)).astype(np.int64)
    gains_db = rng.uniform(*config.gain_db, size=count)
    return Plan(labels, onsets, lengths, gains_db)


def background(config: SyntheticConfig, rng: np.random.Generator,
               log_freq: np.ndarray) -> np.ndarray:
    """Noise between white and pink (random spectral slope) at a random SNR below the events;
    ``log_freq`` is the log of `noise_freqs` (DC clamped to the first bin)."""
    slope = np.float32(rng.uniform(0.0, 1.0))
    x = shaped_noise(rng, config.clip_samples, np.exp(-0.5 * slope * log_freq))
    rms = float(np.sqrt(np.dot(x, x) / x.size))
    level = EVENT_RMS * 10 ** (-rng.uniform(*config.snr_db) / 20)
    return x * np.float32(level / rms) if rms > 0 else x


class SyntheticClips:
    """Renders clip ``index`` of one (seed, split) stream: waveform and multi-hot target."""

    def __init__(self, config: SyntheticConfig, seed: int = 0, split: str = "train"):
        if split not in SPLITS:
            raise UsageError(f"unknown split {split!r}; accepted: {sorted(SPLITS)}")
        self.config = config
        self.seed = seed
        self.split = split
        self.prior = class_prior(config.num_classes, config.tail_ratio)
        freqs = noise_freqs(config.clip_samples, config.sample_rate)
        self.log_freq = np.log(np.maximum(freqs, freqs[1] if len(freqs) > 1 else 1.0))

    def rng(self, index: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, SPLITS[self.split], index])

    def target(self, index: int) -> np.ndarray:
        """The clip's multi-hot labels, without rendering its audio."""
        return self._target(plan_clip(self.config, self.prior, self.rng(index)))

    def _target(self, plan: Plan) -> np.ndarray:
        target = np.zeros(self.config.num_classes, dtype=np.float32)
        target[plan.labels] = 1.0
        return target

    def __call__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        rng = self.rng(index)
        plan = plan_clip(self.config, self.prior, rng)
        x = background(self.config, rng, self.log_freq)
        sr = self.config.sample_rate
        for label, onset, length, gain_db in zip(
                plan.labels, plan.onsets, plan.lengths, plan.gains_db, strict=True):
            event = self.config.classes[label].render(rng, int(length), sr)
            x[onset:onset + length] += np.float32(EVENT_RMS * 10 ** (gain_db / 20)) * event
        peak = float(np.abs(x).max())
        if peak > 0.99:
            x *= np.float32(0.99 / peak)
        return x, self._target(plan)


class SyntheticDataset(Dataset):
    """``size`` synthetic clips of one split: ``(waveform [clip_samples], target [C])``."""

    def __init__(self, size: int | None = None, seed: int = 0, split: str = "train",
                 config: SyntheticConfig | None = None):
        self.clips = SyntheticClips(config or SyntheticConfig(), seed, split)
        self.size = DEFAULT_SIZES[split] if size is None else size
        if self.size < 0:
            raise UsageError(f"size must be >= 0, got {self.size}")
        config = self.clips.config
        self.num_classes = config.num_classes
        self.label_names = [c.name for c in config.classes]
        self.clip_samples = config.clip_samples
        self.bad_files: list[tuple[str, str]] = []
        self.targets = (np.stack([self.clips.target(i) for i in range(self.size)])
                        if self.size else np.zeros((0, self.num_classes), dtype=np.float32))

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        if not 0 <= index < self.size:
            raise IndexError(f"index {index} out of range for {self.size} clips")
        return self.clips(index)
