"""A small ESC-50-layout folder of generated sounds, for trying fine-tuning and cross-validation
without downloading ESC-50: one class per clip, five folds, 5 s clips at 44.1 kHz (as ESC-50
ships), ``meta/esc50.csv`` and ``audio/``.

Each clip holds one to three events of its class (the renderers of the synthetic task,
`passt.data.synthetic.CATALOG`) at random onsets and gains over coloured background noise. By
default the classes are the catalog's last ten, which ``--data synthetic --data-options
num_classes=22`` never shows: pre-training on those 22 and fine-tuning here is a transfer to
unseen classes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from passt.data.esc50 import Esc50Dataset
from passt.data.sounds import noise_freqs
from passt.data.synthetic import CATALOG, EVENT_RMS, SyntheticConfig, background
from passt.utils.atomic import write_text_atomic
from passt.utils.errors import UsageError
from passt.utils.optional import require
from passt.utils.tables import csv_text
from passt.utils.values import parse_list

DEFAULT_CLASSES = tuple(c.name for c in CATALOG[-10:])
EVENTS = (1, 3)  # events of the clip's class per clip
GAIN_DB = (-12.0, 0.0)


@dataclass(frozen=True)
class Esc50Like:
    """What `write_esc50_like` generates."""

    classes: tuple[str, ...] = DEFAULT_CLASSES
    folds: int = 5
    clips_per_class: int = 40  # ESC-50's: 8 per fold
    seconds: float = 5.0
    sample_rate: int = 44100
    seed: int = 0

    def __post_init__(self) -> None:
        known = {c.name for c in CATALOG}
        unknown = [c for c in self.classes if c not in known]
        if unknown or not self.classes or len(set(self.classes)) != len(self.classes):
            raise UsageError(f"classes must be distinct names of the synthetic catalog, got "
                             f"{list(self.classes)}; accepted: {', '.join(sorted(known))}")
        if self.folds < 2 or self.clips_per_class < self.folds:
            raise UsageError(f"need folds >= 2 and clips_per_class >= folds, got folds="
                             f"{self.folds}, clips_per_class={self.clips_per_class}")
        if self.seconds <= 0 or self.sample_rate <= 0:
            raise UsageError(f"seconds and sample_rate must be positive, got {self.seconds} "
                             f"and {self.sample_rate}")


def render_clip(spec: Esc50Like, target: int, rng: np.random.Generator,
                log_freq: np.ndarray) -> np.ndarray:
    """One clip of class ``spec.classes[target]``."""
    kind = next(c for c in CATALOG if c.name == spec.classes[target])
    config = SyntheticConfig(clip_seconds=spec.seconds, sample_rate=spec.sample_rate)
    n = config.clip_samples
    x = background(config, rng, log_freq)
    for _ in range(int(rng.integers(EVENTS[0], EVENTS[1] + 1))):
        length = max(1, min(n, int(rng.uniform(*kind.duration) * spec.sample_rate)))
        onset = int(rng.integers(0, n - length + 1))
        gain = np.float32(EVENT_RMS * 10 ** (rng.uniform(*GAIN_DB) / 20))
        x[onset:onset + length] += gain * kind.render(rng, length, spec.sample_rate)
    peak = float(np.abs(x).max())
    return x * np.float32(0.99 / peak) if peak > 0.99 else x


def write_esc50_like(out_dir: str | Path, spec: Esc50Like | None = None) -> Path:
    """Write ``spec``'s clips (16-bit WAV) and ``meta/esc50.csv`` under ``out_dir``; returns the
    CSV's path. Clip ``i`` of class ``t`` is in fold ``i % folds + 1``; a pure function of
    ``(seed, t, i)``."""
    sf = require("soundfile", "writing audio files")
    spec = spec or Esc50Like()
    out = Path(out_dir)
    audio = out / Esc50Dataset.AUDIO
    audio.mkdir(parents=True, exist_ok=True)
    n = round(spec.seconds * spec.sample_rate)
    freqs = noise_freqs(n, spec.sample_rate)
    log_freq = np.log(np.maximum(freqs, freqs[1] if len(freqs) > 1 else 1.0))
    rows = []
    for target in range(len(spec.classes)):
        for i in range(spec.clips_per_class):
            rng = np.random.default_rng([spec.seed, target, i])
            fold = i % spec.folds + 1
            name = f"{fold}-{target * 1000 + i:06d}-A-{target}.wav"
            sf.write(audio / name, render_clip(spec, target, rng, log_freq), spec.sample_rate,
                     subtype="PCM_16")
            rows.append([name, fold, target, spec.classes[target], "False",
                         f"{target * 1000 + i:06d}", "A"])
    csv_path = out / Esc50Dataset.CSV
    csv_path.parent.mkdir(parents=True, exist_ok=True)
    header = ["filename", "fold", "target", "category", "esc10", "src_file", "take"]
    # last: a cut run leaves no usable folder
    write_text_atomic(csv_path, csv_text(header, sorted(rows)))
    return csv_path


def parse_classes(text: str | None) -> tuple[str, ...]:
    """``"a,b,c"`` (None: `DEFAULT_CLASSES`) as class names."""
    if text is None:
        return DEFAULT_CLASSES
    return parse_list(text, "--classes")
