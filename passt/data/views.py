"""A dataset seen through a choice of its clips and a class list of its own: a fold's side, or
eval data lined up with the training data's classes."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from torch.utils.data import Dataset

from passt.data.labels import remap_targets


class DatasetView(Dataset):
    """Clips ``rows`` of ``dataset`` (default: all), their targets' columns picked by
    ``columns`` (`passt.data.labels.column_map`; default: as they are) for the classes
    ``label_names``. Follows the `passt.data.open_dataset` contract, with the clips' ``names``
    and ``folds`` where the dataset has them."""

    def __init__(self, dataset: Dataset, rows: Sequence[int] | None = None,
                 columns: np.ndarray | None = None, label_names: list[str] | None = None):
        self.dataset = dataset
        self.rows = list(range(len(dataset))) if rows is None else [int(r) for r in rows]
        self.columns = columns
        targets = np.asarray(dataset.targets)[self.rows]
        self.targets = targets if columns is None else remap_targets(targets, columns)
        self.num_classes = self.targets.shape[1] if columns is not None else dataset.num_classes
        own = getattr(dataset, "label_names", None)
        self.label_names = label_names if columns is not None else own
        self.clip_samples = dataset.clip_samples
        self.has_splits = getattr(dataset, "has_splits", True)
        for name in ("names", "folds"):
            values = getattr(dataset, name, None)
            setattr(self, name, None if values is None else [values[r] for r in self.rows])

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        audio, target = self.dataset[self.rows[index]]
        if self.columns is not None:
            target = remap_targets(np.asarray(target), self.columns)
        return audio, target
