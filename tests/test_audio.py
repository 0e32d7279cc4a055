"""Audio decoding: formats, rates, channels, and clear errors for bad files."""

from __future__ import annotations

import io

import numpy as np
import pytest
import soundfile as sf

from passt.data.audio import AudioError, decode, fit_length


def encode(audio: np.ndarray, rate: int, fmt: str = "WAV", subtype: str | None = None) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, audio, rate, format=fmt, subtype=subtype)
    return buf.getvalue()


@pytest.mark.parametrize("fmt", ["WAV", "FLAC", "OGG", "MP3"])
@pytest.mark.parametrize("rate", [8000, 48000])
def test_formats_rates_and_channels_become_32k_mono(fmt, rate):
    t = np.arange(rate) / rate
    tone = 0.5 * np.sin(2 * np.pi * 1000 * t).astype(np.float32)
    out = decode(encode(np.stack([tone, tone], axis=1), rate, fmt), name=f"x.{fmt}")
    assert out.dtype == np.float32 and out.ndim == 1
    assert abs(len(out) - 32000) <= 1200  # mp3 adds encoder padding
    spectrum = np.abs(np.fft.rfft(out[:32000] if len(out) >= 32000 else out))
    peak_hz = np.argmax(spectrum) * 32000 / (2 * (len(spectrum) - 1))
    assert abs(peak_hz - 1000) < 20  # the tone survives resampling at its frequency


@pytest.mark.parametrize("data, message", [
    (b"RIFF1234not audio at all", "not readable audio"),
    (encode(np.zeros(0, dtype=np.float32), 32000), "empty audio"),
    (encode(np.full(100, np.nan, dtype=np.float32), 32000, subtype="FLOAT"), "NaN or infinite"),
])
def test_bad_audio_is_a_named_error(data, message):
    with pytest.raises(AudioError, match=f"clip.wav: .*{message}"):
        decode(data, name="clip.wav")


def test_fit_length_crops_and_pads():
    audio = np.arange(10, dtype=np.float32)
    assert fit_length(audio, 4, offset=3).tolist() == [3, 4, 5, 6]
    assert fit_length(audio, 12).tolist() == list(range(10)) + [0, 0]
