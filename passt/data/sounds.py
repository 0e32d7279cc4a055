"""Vectorised synthesis of single sound events, each returned at unit RMS.

Every renderer takes ``(rng, n, sr, **class_parameters)`` and returns float32 ``[n]``; the class
parameters (pitch range, band, modulation rate, ...) are fixed per class, the rest is drawn from
``rng`` per event. Frequencies above 0.45 ``sr`` are dropped or clipped.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

Render = Callable[[np.random.Generator, int, int], np.ndarray]
TABLE_SIZE = 4096
NYQUIST_GUARD = 0.45


def loguniform(rng: np.random.Generator, low: float, high: float) -> float:
    """One draw uniform on a log scale between ``low`` and ``high``."""
    return float(np.exp(rng.uniform(np.log(low), np.log(high))))


def seconds(n: int, sr: int) -> np.ndarray:
    """Sample times ``[n]`` in seconds, float32."""
    return np.arange(n, dtype=np.float32) / np.float32(sr)


def unit_rms(x: np.ndarray) -> np.ndarray:
    """Scale ``x`` to RMS 1 (silence stays silence), as float32."""
    rms = float(np.sqrt(np.dot(x, x) / x.size)) if x.size else 0.0
    return (x / rms if rms > 0 else x).astype(np.float32, copy=False)


def fade(x: np.ndarray, sr: int, attack: float = 0.01, release: float = 0.01) -> np.ndarray:
    """Linear fade-in and fade-out of ``attack`` and ``release`` seconds, in place."""
    k = min(int(attack * sr), len(x) // 2)
    if k:
        x[:k] *= np.linspace(0.0, 1.0, k, dtype=np.float32)
    k = min(int(release * sr), len(x) // 2)
    if k:
        x[-k:] *= np.linspace(1.0, 0.0, k, dtype=np.float32)
    return x


def wavetable(amplitudes: np.ndarray, phases: np.ndarray) -> np.ndarray:
    """One period ``[TABLE_SIZE]`` of the partials ``k = 1..K`` with the given amplitudes."""
    cycle = np.arange(TABLE_SIZE) / TABLE_SIZE
    k = np.arange(1, len(amplitudes) + 1)[:, None]
    table = (amplitudes[:, None] * np.sin(2 * np.pi * k * cycle + phases[:, None])).sum(0)
    return table.astype(np.float32)


def play(table: np.ndarray, cycles: np.ndarray) -> np.ndarray:
    """Read ``table`` at phases ``cycles`` (in periods, float64) by nearest-sample lookup."""
    frac = cycles - np.floor(cycles)
    return table[(frac * TABLE_SIZE).astype(np.int32) % TABLE_SIZE]


def partials(
    rng: np.random.Generator, f0: float, sr: int, count: int, rolloff: float,
    odd_only: bool = False, top: float = 1.0,
) -> np.ndarray:
    """Wavetable of ``count`` harmonics ``k^-rolloff`` (odd ones only if asked), band-limited
    so that ``top * k * f0`` stays below the guard frequency."""
    k = np.arange(1, count + 1)
    amps = k.astype(np.float64) ** -rolloff
    amps[(k * f0 * top) >= NYQUIST_GUARD * sr] = 0.0
    if odd_only:
        amps[k % 2 == 0] = 0.0
    return wavetable(amps, rng.uniform(0, 2 * np.pi, count))


def tone(
    rng: np.random.Generator, n: int, sr: int, f0: tuple[float, float], rolloff: float,
    count: int, odd_only: bool = False, vibrato_hz: float = 0.0, vibrato_depth: float = 0.0,
    am_hz: float = 0.0,
) -> np.ndarray:
    """Sustained harmonic tone, optionally with vibrato (relative ``vibrato_depth``) or full-depth
    amplitude modulation at ``am_hz``; rates are jittered by +-10 % per event."""
    base = loguniform(rng, *f0)
    table = partials(rng, base, sr, count, rolloff, odd_only, top=1.0 + vibrato_depth)
    t = np.arange(n) / sr
    cycles = base * t
    if vibrato_hz:
        rate = vibrato_hz * rng.uniform(0.9, 1.1)
        cycles = cycles - base * vibrato_depth / (2 * np.pi * rate) * np.cos(
            2 * np.pi * rate * t + rng.uniform(0, 2 * np.pi))
    x = play(table, cycles)
    if am_hz:
        rate = am_hz * rng.uniform(0.9, 1.1)
        x = x * (0.5 - 0.5 * np.cos(2 * np.pi * rate * t + rng.uniform(0, 2 * np.pi))).astype(
            np.float32)
    return unit_rms(fade(x, sr, 0.02, 0.05))


def pluck(
    rng: np.random.Generator, n: int, sr: int, f0: tuple[float, float], count: int = 12,
) -> np.ndarray:
    """Plucked string: sharp attack, exponential decay, upper partials dying first."""
    base = loguniform(rng, *f0)
    bright = partials(rng, base, sr, count, rolloff=1.0)
    dull = partials(rng, base, sr, count, rolloff=3.0)
    cycles = base * np.arange(n) / sr
    t = seconds(n, sr)
    duration = n / sr
    brightness = np.exp(-t / np.float32(0.1 * duration))
    x = (brightness * play(bright, cycles) + (1 - brightness) * play(dull, cycles))
    x *= np.exp(-t / np.float32(0.2 * duration))
    return unit_rms(fade(x, sr, 0.002, 0.01))


def chirp(rng: np.random.Generator, n: int, sr: int, band: tuple[float, float]) -> np.ndarray:
    """Exponential sine sweep upwards across ``band`` (jittered +-10 %) over the event."""
    shift = rng.uniform(0.9, 1.1)
    low = band[0] * shift
    high = min(band[1] * shift, NYQUIST_GUARD * sr)
    duration = n / sr
    k = np.log(high / low) / duration
    t = np.arange(n) / sr
    cycles = low / k * np.expm1(k * t) + rng.uniform()
    x = np.sin(2 * np.pi * cycles).astype(np.float32)
    return unit_rms(fade(x, sr, 0.01, 0.01))


def shaped_noise(rng: np.random.Generator, n: int, gain: np.ndarray | None = None) -> np.ndarray:
    """``n`` samples of noise with amplitude spectrum ``gain`` (over `noise_freqs`), from one
    inverse FFT of a spectrum with iid uniform real and imaginary parts (Gaussian by the CLT)."""
    size = fft_size(n)
    spectrum = (rng.random(2 * (size // 2 + 1), dtype=np.float32) * 2 - 1).view(np.complex64)
    if gain is not None:
        spectrum *= gain
    return np.fft.irfft(spectrum, size)[:n].astype(np.float32, copy=False)


def fft_size(n: int) -> int:
    """The FFT length `shaped_noise` uses for ``n`` samples: ``n`` if it has only the factors 2,
    3 and 5, else the next power of two (a prime length would be slow)."""
    m = n
    for p in (2, 3, 5):
        while m > 1 and m % p == 0:
            m //= p
    return n if m == 1 else 1 << (n - 1).bit_length()


def noise_freqs(n: int, sr: int) -> np.ndarray:
    """Frequencies in Hz of the spectrum `shaped_noise` draws for ``n`` samples."""
    return np.fft.rfftfreq(fft_size(n), 1 / sr).astype(np.float32)


def band_gain(n: int, sr: int, low: float, high: float) -> np.ndarray:
    """Flat amplitude response between ``low`` and ``high`` Hz, clipped below the guard."""
    high = min(high, NYQUIST_GUARD * sr)
    low = min(low, high / 2)
    freqs = noise_freqs(n, sr)
    return ((freqs >= low) & (freqs <= high)).astype(np.float32)


def noise(
    rng: np.random.Generator, n: int, sr: int, band: tuple[float, float], decay: float = 0.0,
) -> np.ndarray:
    """Band-limited noise: sustained, or with ``decay`` (time constant as a fraction of the
    event) a percussive hit."""
    shift = rng.uniform(0.9, 1.1)
    x = shaped_noise(rng, n, band_gain(n, sr, band[0] * shift, band[1] * shift))
    if decay:
        x *= np.exp(-seconds(n, sr) / np.float32(decay * n / sr))
        return unit_rms(fade(x, sr, 0.002, 0.01))
    return unit_rms(fade(x, sr, 0.05, 0.05))


def formant_noise(
    rng: np.random.Generator, n: int, sr: int, formants: tuple[float, ...],
) -> np.ndarray:
    """Whispered vowel: noise through resonances at ``formants`` (jittered +-8 %), each
    6 dB below the one before."""
    freqs = noise_freqs(n, sr)
    gain = np.zeros_like(freqs)
    for i, centre in enumerate(formants):
        centre = min(centre * rng.uniform(0.92, 1.08), NYQUIST_GUARD * sr)
        width = 60.0 + 0.08 * centre
        gain += 0.5**i / (1.0 + ((freqs - centre) / width) ** 2)
    x = shaped_noise(rng, n, gain)
    return unit_rms(fade(x, sr, 0.05, 0.08))


def clicks(
    rng: np.random.Generator, n: int, sr: int, rate: float, centre: float = 3000.0,
) -> np.ndarray:
    """Train of identical damped-resonance clicks at ``rate`` per second (+-10 %, 3 % timing
    jitter); the click's spectrum does not depend on the rate."""
    rate *= rng.uniform(0.9, 1.1)
    centre = min(centre * rng.uniform(0.9, 1.1), NYQUIST_GUARD * sr)
    length = max(int(0.004 * sr), 1)
    t = seconds(length, sr)
    click = np.sin(2 * np.pi * centre * t) * np.exp(-t / np.float32(0.0008))
    period = sr / rate
    starts = np.arange(rng.uniform(0, period), n - length, period)
    starts = (starts + rng.normal(0, 0.03 * period, len(starts))).astype(np.int64)
    starts = np.clip(starts, 0, max(n - length, 0))
    x = np.zeros(n, dtype=np.float32)
    if n >= length:
        x[starts[:, None] + np.arange(length)] = click
    return unit_rms(x)


def chord_notes(rng: np.random.Generator, root: tuple[float, float]) -> np.ndarray:
    """Fundamentals of a major triad plus octave on a random root."""
    return loguniform(rng, *root) * np.array([1.0, 1.25, 1.5, 2.0])


def chord(
    rng: np.random.Generator, n: int, sr: int, root: tuple[float, float], order: str = "together",
) -> np.ndarray:
    """The four notes of `chord_notes` struck together (``"together"``) or one after the other
    (``"up"``, ``"down"``), each with the same decaying envelope."""
    notes = chord_notes(rng, root)
    if order == "down":
        notes = notes[::-1]
    slots = 1 if order == "together" else len(notes)
    span = n // slots
    t = seconds(span, sr)
    envelope = np.exp(-t / np.float32(0.4 * span / sr))
    x = np.zeros(n, dtype=np.float32)
    for i, f0 in enumerate(notes):
        table = partials(rng, f0, sr, 4, rolloff=1.5)
        start = 0 if slots == 1 else i * span
        x[start:start + span] += envelope * play(table, f0 * np.arange(span) / sr)
    return unit_rms(fade(x, sr, 0.005, 0.02))


def beeps(
    rng: np.random.Generator, n: int, sr: int, pitch: tuple[float, float], slot: float,
    alternate: bool,
) -> np.ndarray:
    """Two tones a fifth apart gated in slots of ``slot`` seconds: alternating (A, B, A, ...)
    or together on every other slot. Each band is on for the same fraction of time."""
    low = loguniform(rng, *pitch)
    slot *= rng.uniform(0.9, 1.1)
    t = np.arange(n) / sr
    position = t / slot
    ramp = 0.01 / slot
    frac = position - np.floor(position)
    gate = np.clip(np.minimum(frac, 1 - frac) / ramp, 0, 1).astype(np.float32)
    even = (np.floor(position) % 2 == 0).astype(np.float32)
    a = np.sin(2 * np.pi * low * t).astype(np.float32)
    b = np.sin(2 * np.pi * 1.5 * low * t).astype(np.float32)
    x = gate * (a * even + b * (1 - even)) if alternate else gate * even * (a + b)
    return unit_rms(x)


def reversed_event(rng: np.random.Generator, n: int, sr: int, render: Render) -> np.ndarray:
    """``render``'s event played backwards: the same average spectrum, opposite time course."""
    return np.ascontiguousarray(render(rng, n, sr)[::-1])
