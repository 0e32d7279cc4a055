"""`open_dataset`: one entry point for every kind of data (``--data KIND[:LOCATION]``), and
`register_dataset`, by which a plugin adds its own kind."""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch.utils.data import Dataset

from passt.data.bad_files import check_policy
from passt.data.esc50 import Esc50Dataset
from passt.data.folder import FolderDataset
from passt.data.hdf5 import Hdf5Dataset
from passt.data.synthetic import SyntheticConfig, SyntheticDataset
from passt.utils.errors import UsageError
from passt.utils.registry import Registry
from passt.utils.settings import check_options

OPTION = "dataset option"
# what every kind is given besides its options (not settable through --data-options)
COMMON = ("root", "path", "location", "clip_seconds", "split", "on_bad_file")

# what training and evaluation read off a dataset besides its clips
ATTRIBUTES = {"targets": "every clip's target, an array [clips, num_classes]",
              "num_classes": "the number of classes"}

Opener = Callable[..., Dataset]


@dataclass(frozen=True)
class DatasetKind:
    """How ``--data NAME[:LOCATION]`` opens: ``open(location, clip_seconds=, split=,
    on_bad_file=, **options)`` returns a `Dataset` of ``(waveform [clip_samples] at 32 kHz,
    target [num_classes])`` pairs with `ATTRIBUTES` (and ``label_names`` where it names its
    classes). ``split=None`` asks for every clip (cross-validation's folds). The options come
    parsed (``size=16``: the int 16) and, unless ``open`` takes ``**options``, are checked
    against its parameters and their type hints first."""

    name: str
    open: Opener
    location: str | None = None  # what follows "NAME:", e.g. "DIR" (None: takes none)
    description: str = ""

    @property
    def form(self) -> str:
        return f"{self.name}:{self.location}" if self.location else self.name


DATASETS: Registry[DatasetKind] = Registry("dataset", label=lambda kind: kind.form)


def register_dataset(kind: DatasetKind) -> DatasetKind:
    """Make ``--data NAME[:LOCATION]`` open ``kind`` in every command and the Python API."""
    return DATASETS.register(kind.name, kind)


def dataset_forms() -> list[str]:
    """The accepted ``--data`` forms, e.g. ``synthetic, folder:DIR, ...``."""
    return [DATASETS.get(name).form for name in DATASETS]


def data_help() -> str:
    """What a ``--data`` flag accepts, for its help."""
    return f"{' | '.join(dataset_forms())} or a plugin's kind (passt.register_dataset)"


def open_dataset(spec: str, clip_seconds: float = 10.0, split: str | None = "train",
                 on_bad_file: str = "skip", **options: Any) -> Dataset:
    """Open the dataset ``spec`` (``NAME`` or ``NAME:LOCATION``, a registered `DatasetKind`)
    with its ``options``; ``split=None``: every clip of a folder, ESC-50 folder or HDF5 file
    (for its folds).

    - ``"synthetic"``: `SyntheticDataset`; options ``size``, ``seed``, ``num_classes`` and any
      other `SyntheticConfig` field. Splits ``train``/``eval``/``test`` are disjoint streams.
    - ``"folder:DIR"``: `FolderDataset`; options ``csv`` (default ``DIR/labels.csv``),
      ``labels_file``, ``validate``.
    - ``"esc50:DIR"``: `Esc50Dataset` (``DIR/meta/esc50.csv``, ``DIR/audio``); options as a
      folder's.
    - ``"hdf5:FILE"``: `Hdf5Dataset` (the file is the split); options ``num_classes``,
      ``labels_file``, ``validate``.
    """
    check_policy(on_bad_file)
    name, _, location = spec.partition(":")
    kind = DATASETS.get(name)
    if bool(location) != bool(kind.location):
        raise UsageError(f"dataset spec {spec!r}: expected the form {kind.form}")
    _, *parameters = inspect.signature(kind.open).parameters.values()
    if all(p.kind != p.VAR_KEYWORD for p in parameters):  # else the opener checks its own
        check_options(kind.open, options, OPTION,
                      known=[p.name for p in parameters if p.name not in COMMON])
    dataset = kind.open(location or None, clip_seconds=clip_seconds, split=split,
                        on_bad_file=on_bad_file, **options)
    missing = [f"{name} ({what})" for name, what in ATTRIBUTES.items()
               if not hasattr(dataset, name)]
    if missing:
        raise UsageError(f"dataset {spec!r}: its {type(dataset).__name__} lacks "
                         f"{'; '.join(missing)}")
    return dataset


def _open_synthetic(location: None, clip_seconds: float, split: str | None, on_bad_file: str,
                    **options: Any) -> Dataset:
    if options.pop("labels_file", None) is not None:
        raise UsageError("the synthetic task names its own classes; a class list "
                         "(--labels) is for folder and HDF5 data")
    if split is None:
        raise UsageError("the synthetic task comes in splits (train, eval, test), not "
                         "folds: cross-validation needs esc50:DIR or a folder CSV with a "
                         "fold column")
    config_keys = [f.name for f in dataclasses.fields(SyntheticConfig) if f.name != "clip_seconds"]
    check_options(SyntheticDataset, {k: v for k, v in options.items() if k in ("size", "seed")},
                  OPTION)
    check_options(SyntheticConfig, {k: v for k, v in options.items() if k not in ("size", "seed")},
                  OPTION, known=["size", "seed", *config_keys])
    size, seed = options.pop("size", None), options.pop("seed", 0)
    config = SyntheticConfig(clip_seconds=clip_seconds, **options)
    return SyntheticDataset(size, seed=seed, split=split, config=config)


def file_dataset(cls: type[Dataset], splits: bool = True) -> Opener:
    """The opener of a dataset class built as ``cls(LOCATION, clip_seconds=, [split=,]
    on_bad_file=, **options)``, its options checked against its signature first."""
    accepted = [p for p in inspect.signature(cls).parameters if p not in COMMON]

    def open_file(location: str, clip_seconds: float, split: str | None, on_bad_file: str,
                  **options: Any) -> Dataset:
        check_options(cls, options, OPTION, known=accepted)
        if splits:
            options["split"] = split
        return cls(location, clip_seconds=clip_seconds, on_bad_file=on_bad_file, **options)

    return open_file


register_dataset(DatasetKind("synthetic", _open_synthetic, description=(
    "a synthetic multi-label task with disjoint train/eval/test streams")))
register_dataset(DatasetKind("folder", file_dataset(FolderDataset), "DIR",
                             "audio files with a labels CSV"))
register_dataset(DatasetKind("esc50", file_dataset(Esc50Dataset), "DIR",
                             "the ESC-50 layout: meta/esc50.csv and audio/"))
register_dataset(DatasetKind("hdf5", file_dataset(Hdf5Dataset, splits=False), "FILE",
                             "an official-layout HDF5 file (the file is the split)"))
