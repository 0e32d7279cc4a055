"""Class lists of datasets: eval data (or a checkpoint's) lined up with a model's classes, by
name where both have names, else by position when the counts agree."""

from __future__ import annotations

import logging

from torch.utils.data import Dataset

from passt.data.labels import LabelVocabulary, column_map
from passt.data.views import DatasetView
from passt.utils.errors import UsageError

log = logging.getLogger(__name__)


def class_names(dataset: Dataset) -> list[str] | None:
    """The dataset's class names, or None when it does not name its classes (an HDF5 file
    without ``label_names`` and no ``--labels``)."""
    names = getattr(dataset, "label_names", None)
    return list(names) if names else None


def align_classes(dataset: Dataset, names: list[str] | None, num_classes: int,
                  what: str = "the eval data", model: str = "the training data") -> Dataset:
    """``dataset`` with its targets' columns in the order of ``model``'s classes (``names``,
    ``num_classes``): mapped by name where both have names (a class ``model`` lacks is a
    `UsageError`; one ``dataset`` lacks has no positives), else taken as they are when the
    counts agree; otherwise a `UsageError` saying what to pass."""
    own = class_names(dataset)
    if own is not None and names is not None:
        if own == list(names):
            return dataset
        columns = column_map(own, LabelVocabulary(list(names)), f"{what} (mapped by name onto "
                                                                 f"the classes of {model})")
        log.info("%s: %d classes mapped by name onto the %d of %s", what, len(own), len(names),
                 model)
        return DatasetView(dataset, columns=columns, label_names=list(names))
    if dataset.num_classes != num_classes:
        raise UsageError(f"{what} has {dataset.num_classes} classes, {model} {num_classes}; "
                         "they must be the same classes: give both the same class list "
                         "(--labels class_labels_indices.csv) so that they line up by name")
    if own is None or names is None:
        log.info("%s: %d classes taken in the order of %s (one side has no class names)",
                 what, num_classes, model)
    return dataset
