"""Reading audio files as the model wants them: 32 kHz mono float32, with clear errors."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch

from passt.utils.errors import UsageError
from passt.utils.optional import require

SAMPLE_RATE = 32000


class AudioError(UsageError):
    """An audio file that cannot be used, with the file named and the reason."""


def to_mono(audio: np.ndarray) -> np.ndarray:
    """Average the channels of ``[samples, channels]`` audio; mono passes through."""
    return audio.mean(axis=1) if audio.ndim == 2 else audio


def resample(audio: np.ndarray, rate: int, target: int = SAMPLE_RATE) -> np.ndarray:
    """Band-limited resampling of mono ``audio`` from ``rate`` to ``target`` Hz."""
    if rate == target:
        return audio
    AF = require("torchaudio.functional", "resampling audio")
    out = AF.resample(torch.from_numpy(np.ascontiguousarray(audio)), rate, target)
    return out.numpy()


def decode(source: str | Path | bytes, name: str | None = None,
           sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Decode a file (any format soundfile reads: wav, flac, ogg, mp3, ...) or its bytes to
    mono float32 at ``sample_rate``. Empty, undecodable or non-finite audio is an `AudioError`.
    """
    sf = require("soundfile", "decoding audio")
    label = name or (str(source) if not isinstance(source, bytes) else "<bytes>")
    handle = io.BytesIO(source) if isinstance(source, bytes) else source
    try:
        audio, rate = sf.read(handle, dtype="float32", always_2d=False)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as e:
        raise AudioError(f"{label}: not readable audio ({e})") from None
    if audio.size == 0:
        raise AudioError(f"{label}: empty audio (0 samples)")
    if not np.isfinite(audio).all():
        raise AudioError(f"{label}: contains NaN or infinite samples")
    return resample(to_mono(audio), rate, sample_rate).astype(np.float32, copy=False)


def fit_length(audio: np.ndarray, samples: int, offset: int = 0) -> np.ndarray:
    """Crop ``audio`` to ``samples`` from ``offset``, or zero-pad its end to that length."""
    audio = audio[offset:offset + samples]
    if len(audio) < samples:
        audio = np.pad(audio, (0, samples - len(audio)))
    return audio
