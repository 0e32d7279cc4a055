"""Checks that an audio file is usable, returning the reason when it is not."""

from __future__ import annotations

import struct
from pathlib import Path

from passt.audio import AudioError, decode
from passt.errors import UsageError
from passt.optional import require

LEVELS = ("full", "header")


def check_level(validate: str) -> str:
    """Return ``validate`` if it is a known level, else raise a `ValueError`."""
    if validate not in LEVELS:
        raise UsageError(f"validate must be one of {LEVELS}, got {validate!r}")
    return validate


def wav_truncation(path: Path) -> str | None:
    """For a RIFF/WAVE file whose data chunk is cut short, say so; None otherwise (libsndfile
    reads such a file without complaint, shortened)."""
    size = path.stat().st_size
    with path.open("rb") as f:
        head = f.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return None
        offset = 12
        while offset + 8 <= size:
            f.seek(offset)
            chunk, length = struct.unpack("<4sI", f.read(8))
            if chunk == b"data":
                available = size - offset - 8
                if length != 0xFFFFFFFF and length > available:
                    return (f"truncated: the header declares {length} bytes of audio data, "
                            f"the file holds {available}")
                return None
            offset += 8 + length + (length & 1)
    return None


def check_file(path: Path, validate: str = "full") -> str | None:
    """Why ``path`` is not usable audio, or None if it is. ``"header"`` reads the header only
    (missing, empty, unreadable, no samples, truncated wav); ``"full"`` also decodes it
    (corrupt streams, NaN or infinite samples)."""
    check_level(validate)
    if not path.is_file():
        return "file not found"
    if path.stat().st_size == 0:
        return "empty file (0 bytes)"
    sf = require("soundfile", "reading audio files")
    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError, ValueError) as e:
        return f"not readable audio ({e})"
    if info.frames == 0:
        return "empty audio (0 samples)"
    truncated = wav_truncation(path)
    if truncated:
        return truncated
    if validate == "full":
        try:
            decode(path)
        except AudioError as e:
            return str(e).removeprefix(f"{path}: ")
    return None
