"""Training and evaluation data: a synthetic AudioSet-like task, audio folders, ESC-50 folders,
AudioSet HDF5, class lists, cross-validation folds, balanced sampling and augmentation."""

from passt.data.augment import (
    Augment,
    AugmentConfig,
    random_gain,
    random_roll,
    spectrogram_mixup,
    waveform_mixup,
)
from passt.data.bad_files import BadFileError
from passt.data.classes import align_classes, class_names
from passt.data.esc50 import Esc50Dataset
from passt.data.factory import DATASETS, DatasetKind, open_dataset, register_dataset
from passt.data.folder import FolderDataset
from passt.data.folds import choose_folds, data_folds, fold_sides, parse_folds
from passt.data.hdf5 import Hdf5Dataset, PackSummary, pack_hdf5
from passt.data.labels import LabelVocabulary, read_label_csv
from passt.data.sampler import BalancedSampler, balanced_weights
from passt.data.synthetic import CATALOG, SyntheticConfig, SyntheticDataset
from passt.data.views import DatasetView

__all__ = [
    "DATASETS",
    "DatasetKind",
    "CATALOG",
    "Augment",
    "AugmentConfig",
    "BadFileError",
    "BalancedSampler",
    "DatasetView",
    "Esc50Dataset",
    "FolderDataset",
    "Hdf5Dataset",
    "LabelVocabulary",
    "PackSummary",
    "SyntheticConfig",
    "SyntheticDataset",
    "align_classes",
    "balanced_weights",
    "choose_folds",
    "class_names",
    "data_folds",
    "fold_sides",
    "open_dataset",
    "register_dataset",
    "pack_hdf5",
    "parse_folds",
    "random_gain",
    "random_roll",
    "read_label_csv",
    "spectrogram_mixup",
    "waveform_mixup",
]
