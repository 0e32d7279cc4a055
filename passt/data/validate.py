"""Checks that an audio file is usable, returning the reason when it is not."""

from __future__ import annotations

import io
import struct
from pathlib import Path
from typing import Literal, get_args

from passt.data.audio import AudioError, decode
from passt.utils.errors import check_choice
from passt.utils.optional import require

# How much of each clip a dataset checks when it is opened: "none" (a bad clip fails when it
# is read), "header" (the audio header: format, length) or "full" (decodes it).
Validation = Literal["none", "header", "full"]
VALIDATION_LEVELS: tuple[str, ...] = get_args(Validation)


def check_level(validate: str) -> str:
    """Return ``validate`` if it is a known validation level, else raise `UsageError`."""
    check_choice("validation level", validate, VALIDATION_LEVELS)
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


def check_file(path: Path, validate: Validation = "full") -> str | None:
    """Why ``path`` is not usable audio, or None if it is. ``"none"`` checks that the file
    exists; ``"header"`` reads the header only (empty, unreadable, no samples, truncated wav);
    ``"full"`` also decodes it (corrupt streams, NaN or infinite samples)."""
    check_level(validate)
    if not path.is_file():
        return "file not found"
    if validate == "none":
        return None
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


def check_encoded(data: bytes, name: str, validate: Validation) -> str | None:
    """Why the encoded clip ``data`` (an mp3 in an HDF5 file, say) is not usable audio, or None
    if it is, checked to the level ``validate``."""
    check_level(validate)
    if validate == "none":
        return None
    if validate == "header":
        sf = require("soundfile", "reading audio")
        try:
            info = sf.info(io.BytesIO(data))
        except (sf.LibsndfileError, RuntimeError, ValueError) as e:
            return f"not readable audio ({e})"
        return "empty audio (0 samples)" if info.frames == 0 else None
    try:
        decode(data, name=name)
    except AudioError as e:
        return str(e).removeprefix(f"{name}: ")
    return None
