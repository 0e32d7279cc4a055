"""Audio files of any length through a model in windows: which files, where the windows lie,
and a stream of each file's window outputs, batched across files."""

from __future__ import annotations

import math
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from passt.data.audio import AudioError, decode, fit_length
from passt.utils.errors import UsageError

PathLike = str | os.PathLike[str]
AUDIO_EXTENSIONS = frozenset({
    ".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aiff", ".aif", ".aifc", ".au", ".snd",
    ".caf", ".w64", ".rf64",
})


@dataclass(frozen=True)
class Failure:
    """An input that could not be processed, and why."""

    path: str
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


@dataclass(frozen=True)
class Windowing:
    """Windows of ``window_seconds`` every ``hop_seconds`` over audio at ``sample_rate``."""

    window_seconds: float = 10.0
    hop_seconds: float = 5.0
    sample_rate: int = 32000

    def __post_init__(self) -> None:
        if not self.window_seconds > 0:
            raise UsageError(f"window_seconds must be positive, got {self.window_seconds}")
        if not 0 < self.hop_seconds <= self.window_seconds:
            raise UsageError(f"hop_seconds must be in (0, window_seconds={self.window_seconds}] "
                             f"so that windows cover the audio, got {self.hop_seconds}")

    @property
    def window(self) -> int:
        return round(self.window_seconds * self.sample_rate)

    @property
    def hop(self) -> int:
        return max(1, round(self.hop_seconds * self.sample_rate))

    def starts(self, num_samples: int) -> list[int]:
        """Start samples: 0, hop, 2 hop, ... and a last window ending with the audio."""
        if num_samples <= self.window:
            return [0]
        starts = list(range(0, num_samples - self.window + 1, self.hop))
        if starts[-1] + self.window < num_samples:
            starts.append(num_samples - self.window)
        return starts


@dataclass
class FileWindows:
    """A decoded file's windows and the model outputs gathered for them so far."""

    path: str
    num_samples: int
    starts: list[int]
    outputs: list[np.ndarray] = field(default_factory=list)

    @property
    def done(self) -> bool:
        return len(self.outputs) == len(self.starts)

    def times(self, w: Windowing) -> tuple[np.ndarray, np.ndarray]:
        """Start and end of each window, in seconds."""
        starts = np.asarray(self.starts, dtype=np.int64)
        ends = np.minimum(starts + w.window, self.num_samples)
        return starts / w.sample_rate, ends / w.sample_rate


def collect_files(paths: Iterable[PathLike]) -> tuple[list[Path], list[Failure]]:
    """Files to process, in order: files as given, directories searched recursively for
    audio extensions (sorted). Missing paths and directories without audio are failures."""
    files: list[Path] = []
    failures: list[Failure] = []
    for path in map(Path, paths):
        if path.is_dir():
            found = sorted(p for p in path.rglob("*")
                           if p.suffix.lower() in AUDIO_EXTENSIONS and p.is_file())
            if not found:
                failures.append(Failure(str(path), "directory holds no audio files ("
                                        + " ".join(sorted(AUDIO_EXTENSIONS)) + ")"))
            files.extend(found)
        elif path.exists():
            files.append(path)
        else:
            failures.append(Failure(str(path), "no such file or directory"))
    return list(dict.fromkeys(files)), failures


def forward_batched(compute: Callable[[Tensor], Tensor], windows: Tensor, batch_size: int,
                    device: torch.device) -> Tensor:
    """``compute`` over windows ``[*lead, S]`` in passes of at most ``batch_size`` windows on
    ``device``, without autograd; the outputs ``[*lead, ...]`` stay on ``device``.

    ``windows`` may be a strided view of the audio (``Tensor.unfold``): only one batch of
    windows is copied at a time, so memory is bounded by ``batch_size``, not the audio length.
    """
    if batch_size < 1:
        raise UsageError(f"batch_size must be positive, got {batch_size}")
    lead = windows.shape[:-1]
    count = math.prod(lead)
    if count == 0:
        raise UsageError(f"no windows to compute (windows of shape {list(windows.shape)})")
    outputs = []
    with torch.no_grad():
        for first in range(0, count, batch_size):
            index = torch.unravel_index(
                torch.arange(first, min(first + batch_size, count), device=windows.device), lead)
            outputs.append(compute(windows[index].to(device)))
    out = torch.cat(outputs)
    return out.reshape(*lead, *out.shape[1:])


def _forward(batch: list[tuple[FileWindows, np.ndarray]],
             compute: Callable[[Tensor], Tensor], device: torch.device) -> None:
    waves = torch.from_numpy(np.stack([wave for _, wave in batch]))
    values = forward_batched(compute, waves, len(batch), device).float().cpu().numpy()
    for (item, _), value in zip(batch, values, strict=True):
        item.outputs.append(value)


def stream_windows(files: list[Path], compute: Callable[[Tensor], Tensor],
                   windowing: Windowing, batch_size: int,
                   device: torch.device) -> Iterator[FileWindows | Failure]:
    """Per file in order, its windows' outputs (or its failure); ``batch_size`` windows per
    forward, across file boundaries, holding one decoded file at a time."""
    waiting: deque[FileWindows] = deque()
    batch: list[tuple[FileWindows, np.ndarray]] = []
    for path in files:
        try:
            audio = decode(path, sample_rate=windowing.sample_rate)
        except AudioError as e:
            yield Failure(str(path), str(e).removeprefix(f"{path}: "))
            continue
        item = FileWindows(str(path), len(audio), windowing.starts(len(audio)))
        waiting.append(item)
        for start in item.starts:
            batch.append((item, fit_length(audio, windowing.window, start)))
            if len(batch) == batch_size:
                _forward(batch, compute, device)
                batch.clear()
                while waiting and waiting[0].done:
                    yield waiting.popleft()
    if batch:
        _forward(batch, compute, device)
    yield from waiting
