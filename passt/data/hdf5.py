"""AudioSet HDF5 files in the official PaSST layout: a reader, and a writer from a folder.

Datasets: ``audio_name`` (byte strings), ``mp3`` (variable-length uint8: one encoded clip each),
``target`` (multi-hot packed with ``np.packbits`` along the classes: uint8 ``[N, ceil(C/8)]``),
and here also ``label_names`` (byte strings; absent from the official files).
"""

from __future__ import annotations

import io
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from torch.utils.data import Dataset

from passt.data.audio import SAMPLE_RATE, decode, fit_length
from passt.data.bad_files import BadFiles
from passt.data.folder import FolderDataset
from passt.data.labels import LabelVocabulary, column_map, remap_targets
from passt.data.validate import Validation, check_encoded, check_level
from passt.utils.atomic import atomic_path
from passt.utils.errors import UsageError
from passt.utils.optional import require

if TYPE_CHECKING:
    import h5py

log = logging.getLogger(__name__)

AUDIOSET_CLASSES = 527
AUDIOSET_TARGET_BYTES = 66  # 527 classes packed 8 to a byte


def _open(path: Path) -> h5py.File:
    """``path`` opened for reading; `UsageError` naming it when it is not an HDF5 file."""
    h5py = require("h5py", "reading HDF5 data")
    try:
        return h5py.File(path, "r")
    except OSError as e:
        raise UsageError(f"{path} is not an HDF5 file ({e}); hdf5:FILE takes a file in the "
                         "official AudioSet layout (audio_name, mp3, target)") from None


def encode_mp3(waveform: np.ndarray, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """MP3 bytes of a mono waveform, as a uint8 array."""
    sf = require("soundfile", "encoding mp3")
    buffer = io.BytesIO()
    sf.write(buffer, waveform, sample_rate, format="MP3")
    return np.frombuffer(buffer.getvalue(), dtype=np.uint8)


class Hdf5Dataset(Dataset):
    """Clips of an official-layout HDF5 file, decoded, mono, 32 kHz, padded or cropped.

    Names and targets are read at open time; the mp3 bytes on access, through a handle opened
    lazily in each process (so DataLoader workers each get their own). ``validate="full"``
    decodes every clip at open time and ``"header"`` reads each clip's header, applying
    ``on_bad_file``; with ``"none"`` (the default, for large files) a clip that fails to
    decode raises `AudioError` naming it when read.

    The classes: the file's ``label_names`` (the targets are mapped by name onto the class list
    of ``labels_file`` when both are there), else those of ``labels_file`` (an AudioSet
    ``class_labels_indices.csv``) or ``num_classes`` unnamed (``label_names`` None); an
    official file (no names, 66 target bytes) holds AudioSet's 527 classes.
    """

    def __init__(self, path: str | Path, clip_seconds: float = 10.0, on_bad_file: str = "skip",
                 num_classes: int | None = None, validate: Validation = "none",
                 labels_file: str | Path | None = None):
        check_level(validate)
        if clip_seconds <= 0:
            raise UsageError(f"clip_seconds must be positive, got {clip_seconds}")
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"HDF5 file {self.path} does not exist")
        with _open(self.path) as f:
            missing = {"audio_name", "mp3", "target"} - set(f.keys())
            if missing:
                raise UsageError(f"{self.path}: missing dataset(s) {sorted(missing)}; "
                                 "need audio_name, mp3, target")
            names = [n.decode() if isinstance(n, bytes) else str(n) for n in f["audio_name"][:]]
            packed = f["target"][:]
            stored = f["label_names"][:] if "label_names" in f else f.attrs.get("label_names")
            if len(f["mp3"]) != len(names) or len(packed) != len(names):
                raise UsageError(f"{self.path}: audio_name, mp3 and target differ in length "
                                 f"({len(names)}, {len(f['mp3'])}, {len(packed)})")
        stored_names = ([n.decode() if isinstance(n, bytes) else str(n) for n in stored]
                        if stored is not None else None)
        vocabulary = LabelVocabulary.from_file(labels_file) if labels_file is not None else None
        count = self._num_classes(num_classes, stored_names, vocabulary, packed)
        targets = np.unpackbits(packed, axis=-1, count=count).astype(np.float32)
        if stored_names is not None and vocabulary is not None:  # the file's classes, by name
            targets = remap_targets(targets, column_map(
                stored_names, vocabulary, f"{self.path}'s label_names"))
        self.label_names = vocabulary.names if vocabulary is not None else stored_names
        self.num_classes = len(self.label_names) if self.label_names is not None else count
        self.has_splits = False  # the file is one split

        self.clip_samples = round(clip_seconds * SAMPLE_RATE)
        self._handle: h5py.File | None = None
        self._pid: int | None = None
        bad = BadFiles(on_bad_file)
        self.rows = list(range(len(names)))
        if validate != "none":
            tqdm = require("tqdm", "showing progress").tqdm
            try:
                self.rows = [i for i in tqdm(self.rows, desc=f"checking {self.path.name}",
                                             unit="clip", disable=None)
                             if self._usable(i, names[i], validate, bad)]
            finally:
                self.close()
            bad.summarise(str(self.path), len(names))
        self.bad_files = bad.items
        self.names = [names[i] for i in self.rows]
        self.targets = targets[self.rows]

    def _num_classes(self, num_classes: int | None, stored: list[str] | None,
                     vocabulary: LabelVocabulary | None, packed: np.ndarray) -> int:
        """The classes packed in the targets: the file's ``label_names``, else the class list
        of ``labels_file`` or ``num_classes``, else AudioSet's 527 for 66 bytes."""
        width = packed.shape[-1]
        counts = {"its label_names": len(stored) if stored is not None else None,
                  "num_classes": num_classes}
        if stored is None:
            counts["the class list"] = len(vocabulary) if vocabulary is not None else None
        given = {k: v for k, v in counts.items() if v is not None}
        if len(set(given.values())) > 1:
            raise UsageError(f"{self.path}: the class counts disagree: "
                             + ", ".join(f"{k} {v}" for k, v in given.items()))
        if given:
            count = next(iter(given.values()))
        elif width == AUDIOSET_TARGET_BYTES:
            log.warning("%s has no label_names and %d target bytes: AudioSet's %d classes "
                        "(pass --labels class_labels_indices.csv for their names)", self.path,
                        width, AUDIOSET_CLASSES)
            count = AUDIOSET_CLASSES
        else:
            raise UsageError(f"{self.path} has no label_names and targets of {width} bytes "
                             f"({8 * width - 7} to {8 * width} classes): pass the class list "
                             "(--labels class_labels_indices.csv) or the count (--data-options "
                             "num_classes=N)")
        if not 8 * width - 8 < count <= 8 * width:
            raise UsageError(f"{self.path}: {count} classes do not fit targets packed in "
                             f"{width} bytes")
        return count

    def _usable(self, row: int, name: str, validate: Validation, bad: BadFiles) -> bool:
        reason = check_encoded(self._mp3(row).tobytes(), name, validate)
        if reason:
            bad.report(name, reason)
        return reason is None

    def _mp3(self, row: int) -> np.ndarray:
        if self._handle is None or self._pid != os.getpid():
            self._handle = _open(self.path)
            self._pid = os.getpid()
        return self._handle["mp3"][row]

    def close(self) -> None:
        """Close this process's file handle (it reopens on the next access)."""
        if self._handle is not None and self._pid == os.getpid():
            self._handle.close()
        self._handle = None

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_handle": None, "_pid": None}

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        audio = decode(self._mp3(self.rows[index]).tobytes(), name=self.names[index])
        return fit_length(audio, self.clip_samples), self.targets[index]


@dataclass(frozen=True)
class PackSummary:
    """What `pack_hdf5` wrote: the file, its clip and class counts, the files it skipped."""

    path: Path
    clips: int
    num_classes: int
    bad_files: list[tuple[str, str]]


def pack_hdf5(folder: str | Path, csv: str | Path, out_path: str | Path,
              clip_seconds: float = 10.0, on_bad_file: str = "skip",
              labels_file: str | Path | None = None) -> PackSummary:
    """Write every usable row of ``csv`` (all splits) as an official-layout HDF5 file: clips
    decoded to 32 kHz mono, fitted to ``clip_seconds``, re-encoded as mp3. Atomic: a temporary
    file in the same folder is renamed over ``out_path`` once complete."""
    h5py = require("h5py", "writing HDF5 data")
    tqdm = require("tqdm", "showing progress").tqdm
    dataset = FolderDataset(folder, csv=csv, clip_seconds=clip_seconds, split=None,
                            on_bad_file=on_bad_file, labels_file=labels_file)
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out_path) as tmp, h5py.File(tmp, "w") as f:
        names = [name.encode() for name in dataset.names]
        f.create_dataset("audio_name", data=np.array(names, dtype=np.bytes_))
        mp3 = f.create_dataset("mp3", shape=(len(dataset),),
                               dtype=h5py.vlen_dtype(np.dtype("uint8")))
        for i in tqdm(range(len(dataset)), desc=f"packing {out_path.name}", unit="clip",
                      disable=None):
            mp3[i] = encode_mp3(dataset[i][0])
        f.create_dataset("target", data=np.packbits(dataset.targets.astype(bool), axis=-1))
        f.create_dataset("label_names",
                         data=np.array([n.encode() for n in dataset.label_names],
                                       dtype=np.bytes_))
    return PackSummary(out_path, len(dataset), dataset.num_classes, dataset.bad_files)
