"""A folder of audio files with a CSV of multi-labels, as 32 kHz mono clips of fixed length."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from torch.utils.data import Dataset

from passt.data.audio import SAMPLE_RATE, decode, fit_length
from passt.data.bad_files import BadFiles
from passt.data.labels import LabelRow, LabelVocabulary, read_label_csv
from passt.data.validate import Validation, check_file, check_level
from passt.utils.errors import UsageError
from passt.utils.optional import require

log = logging.getLogger(__name__)


class FolderDataset(Dataset):
    """Audio files under ``root`` labelled by ``csv`` (default ``root/labels.csv``; columns
    ``filename``, ``labels`` and optional ``split`` and ``fold``).

    Files are decoded (wav, flac, ogg, mp3, ... through soundfile), mixed to mono, resampled to
    32 kHz and zero-padded or cropped (from the start) to ``clip_seconds``. Every file of the
    split is checked at open time (``validate="full"`` decodes it, ``"header"`` reads its
    header only, ``"none"`` checks that it exists); bad files and rows (missing file, unknown
    label) follow ``on_bad_file``. With a ``split`` column only the rows of ``split`` are used
    (``split=None``: all rows); without one, all rows are (``has_splits`` is then False: the
    eval data must come from elsewhere). The vocabulary is every label of the CSV, sorted, or
    ``labels_file``, where a label it lacks is an error. With a ``fold`` column, ``folds``
    holds each clip's cross-validation fold (else None).

    Another layout subclasses it with its own `CSV` and `AUDIO` (paths under ``root``) and
    its own `read` (`passt.data.esc50.Esc50Dataset`).
    """

    CSV = "labels.csv"
    AUDIO = "."  # the folder the CSV's file names are relative to

    @staticmethod
    def read(csv_path: Path) -> tuple[list[LabelRow], LabelVocabulary]:
        """The rows of the layout's CSV and its classes (used without a class list)."""
        rows = read_label_csv(csv_path)
        return rows, LabelVocabulary.from_rows(rows)

    def __init__(self, root: str | Path, csv: str | Path | None = None,
                 clip_seconds: float = 10.0, split: str | None = "train",
                 on_bad_file: str = "skip", labels_file: str | Path | None = None,
                 validate: Validation = "full"):
        if clip_seconds <= 0:
            raise UsageError(f"clip_seconds must be positive, got {clip_seconds}")
        self.root = Path(root) / self.AUDIO
        if not self.root.is_dir():
            raise FileNotFoundError(f"audio folder {self.root} does not exist")
        csv_path = Path(csv) if csv is not None else Path(root) / self.CSV
        if not csv_path.is_file():
            raise FileNotFoundError(f"label CSV {csv_path} does not exist")
        check_level(validate)
        rows, vocabulary = self.read(csv_path)
        if labels_file is not None:
            vocabulary = LabelVocabulary.from_file(labels_file)
        self._check_labels(rows, vocabulary, csv_path, labels_file)
        self.has_splits = bool(rows) and rows[0].split is not None
        rows = self._select_split(rows, split, csv_path)

        bad = BadFiles(on_bad_file)
        self.files: list[Path] = []
        self.names: list[str] = []
        folds = []
        targets = []
        tqdm = require("tqdm", "showing progress").tqdm
        for row in tqdm(rows, desc=f"checking {csv_path.name}", unit="file", disable=None):
            reason = check_file(self.root / row.filename, validate)
            if reason:
                bad.report(row.filename, reason)
                continue
            self.files.append(self.root / row.filename)
            self.names.append(row.filename)
            folds.append(row.fold)
            targets.append(vocabulary.encode(row.labels))
        bad.summarise(str(csv_path), len(rows))

        self.bad_files = bad.items
        self.folds: list[int] | None = folds if rows and rows[0].fold is not None else None
        self.label_names = list(vocabulary.names)
        self.num_classes = len(vocabulary)
        self.clip_samples = round(clip_seconds * SAMPLE_RATE)
        self.targets = (np.stack(targets) if targets
                        else np.zeros((0, self.num_classes), dtype=np.float32))

    @staticmethod
    def _select_split(rows: list[LabelRow], split: str | None, csv_path: Path) -> list[LabelRow]:
        if split is None:
            return rows
        if rows and rows[0].split is None:
            log.info("%s has no split column: all %d rows are split %r", csv_path, len(rows), split)
            return rows
        chosen = [row for row in rows if row.split == split]
        if not chosen:
            found = sorted({row.split for row in rows})
            raise UsageError(f"{csv_path}: no rows of split {split!r}; splits found: {found}")
        return chosen

    @staticmethod
    def _check_labels(rows: list[LabelRow], vocabulary: LabelVocabulary, csv_path: Path,
                      labels_file: str | Path | None) -> None:
        """A label the class list lacks is a `UsageError` naming the first such row."""
        for row in rows:
            unknown = vocabulary.unknown(row.labels)
            if unknown:
                raise UsageError(f"{csv_path}: line {row.line} ({row.filename}): label(s) "
                                 f"{unknown} not in the class list {labels_file} (accepted: "
                                 "its display names or mids)")

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        audio = decode(self.files[index], name=self.names[index])  # AudioError names the file
        return fit_length(audio, self.clip_samples), self.targets[index]
