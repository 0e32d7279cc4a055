"""`open_dataset`: one entry point for the synthetic task, audio folders and HDF5 files."""

from __future__ import annotations

import dataclasses
import inspect

from torch.utils.data import Dataset

from passt.data.bad_files import check_policy
from passt.data.esc50 import Esc50Dataset
from passt.data.folder import FolderDataset
from passt.data.hdf5 import Hdf5Dataset
from passt.data.synthetic import SyntheticConfig, SyntheticDataset
from passt.utils.errors import UsageError
from passt.utils.settings import check_options

SPECS = ("synthetic", "folder:DIR", "esc50:DIR", "hdf5:FILE")
FILE_DATASETS = {"folder": FolderDataset, "esc50": Esc50Dataset, "hdf5": Hdf5Dataset}
OPTION = "dataset option"


def open_dataset(spec: str, clip_seconds: float = 10.0, split: str | None = "train",
                 on_bad_file: str = "skip", **kwargs) -> Dataset:
    """Open a dataset of ``(waveform [clip_samples] at 32 kHz, target [num_classes])`` pairs;
    ``split=None``: every clip of a folder, ESC-50 folder or HDF5 file (for its folds).

    - ``"synthetic"``: `SyntheticDataset`; kwargs ``size``, ``seed``, ``num_classes`` and any
      other `SyntheticConfig` field. Splits ``train``/``eval``/``test`` are disjoint streams.
    - ``"folder:DIR"``: `FolderDataset`; kwargs ``csv`` (default ``DIR/labels.csv``),
      ``labels_file``, ``validate``.
    - ``"esc50:DIR"``: `Esc50Dataset` (``DIR/meta/esc50.csv``, ``DIR/audio``); kwargs as a
      folder's.
    - ``"hdf5:FILE"``: `Hdf5Dataset` (the file is the split); kwargs ``num_classes``,
      ``labels_file``, ``validate``.
    """
    check_policy(on_bad_file)
    kind, _, location = spec.partition(":")
    if kind == "synthetic" and not location:
        if kwargs.pop("labels_file", None) is not None:
            raise UsageError("the synthetic task names its own classes; a class list "
                             "(--labels) is for folder and HDF5 data")
        if split is None:
            raise UsageError("the synthetic task comes in splits (train, eval, test), not "
                             "folds: cross-validation needs esc50:DIR or a folder CSV with a "
                             "fold column")
        config_keys = [f.name for f in dataclasses.fields(SyntheticConfig)
                       if f.name != "clip_seconds"]
        check_options(SyntheticDataset, {k: v for k, v in kwargs.items() if k in ("size", "seed")},
                      OPTION)
        check_options(SyntheticConfig, {k: v for k, v in kwargs.items()
                                        if k not in ("size", "seed")}, OPTION,
                      known=["size", "seed", *config_keys])
        size, seed = kwargs.pop("size", None), kwargs.pop("seed", 0)
        config = SyntheticConfig(clip_seconds=clip_seconds, **kwargs)
        return SyntheticDataset(size, seed=seed, split=split, config=config)
    if location and kind in FILE_DATASETS:
        dataset = FILE_DATASETS[kind]
        check_options(dataset, kwargs, OPTION, known=[
            name for name in inspect.signature(dataset).parameters
            if name not in ("root", "path", "clip_seconds", "split", "on_bad_file")])
    if kind == "folder" and location:
        return FolderDataset(location, clip_seconds=clip_seconds, split=split,
                             on_bad_file=on_bad_file, **kwargs)
    if kind == "esc50" and location:
        return Esc50Dataset(location, clip_seconds=clip_seconds, split=split,
                            on_bad_file=on_bad_file, **kwargs)
    if kind == "hdf5" and location:
        return Hdf5Dataset(location, clip_seconds=clip_seconds, on_bad_file=on_bad_file,
                           **kwargs)
    raise UsageError(f"unknown dataset spec {spec!r}; accepted forms: {', '.join(SPECS)}")
