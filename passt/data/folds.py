"""Cross-validation folds of a dataset with a fold column (``esc50:DIR``, a folder CSV's
``fold``): fold k trains on every other fold and evaluates on its own, so no clip is on both
sides."""

from __future__ import annotations

from collections import defaultdict

from torch.utils.data import Dataset

from passt.data.views import DatasetView
from passt.utils.errors import UsageError
from passt.utils.values import parse_list


def parse_folds(text: str) -> list[int] | None:
    """``"1,2,3"`` as ``[1, 2, 3]``; ``"all"`` as None (every fold of the data)."""
    folds = parse_list(text, "--folds", int, allow_all=True, unique=True, noun="fold")
    return None if folds is None else list(folds)


def data_folds(dataset: Dataset, spec: str = "the data") -> list[int]:
    """The folds of ``dataset``'s clips, sorted; a `UsageError` when it has no fold column, or
    when a clip (by name) is in more than one fold."""
    folds = getattr(dataset, "folds", None)
    if folds is None:
        raise UsageError(f"{spec} has no fold column: cross-validation needs esc50:DIR or a "
                         "folder CSV with a fold column (an integer per row)")
    where: dict[str, set[int]] = defaultdict(set)
    for name, fold in zip(getattr(dataset, "names", None) or [], folds, strict=False):
        where[name].add(fold)
    twice = sorted(name for name, found in where.items() if len(found) > 1)
    if twice:
        raise UsageError(f"{spec}: clip(s) {', '.join(twice[:5])} are in more than one fold "
                         f"({', '.join(map(str, sorted(where[twice[0]])))}); a clip must be in "
                         "one fold only")
    return sorted(set(folds))


def choose_folds(dataset: Dataset, wanted: list[int] | None, spec: str = "the data"
                 ) -> list[int]:
    """``wanted`` (None: every fold of the data) after checking that the data has them."""
    found = data_folds(dataset, spec)
    if wanted is None:
        return found
    missing = [f for f in wanted if f not in found]
    if missing:
        raise UsageError(f"fold(s) {', '.join(map(str, missing))} not in {spec}; its folds: "
                         f"{', '.join(map(str, found))}")
    return list(wanted)


def fold_sides(dataset: Dataset, fold: int, spec: str = "the data"
               ) -> tuple[DatasetView, DatasetView]:
    """The training side (every other fold) and the evaluation side (``fold``) of
    ``dataset``."""
    choose_folds(dataset, [fold], spec)
    folds = dataset.folds
    train = DatasetView(dataset, [i for i, f in enumerate(folds) if f != fold])
    held_out = DatasetView(dataset, [i for i, f in enumerate(folds) if f == fold])
    if not len(train):
        raise UsageError(f"{spec} has fold {fold} only: nothing to train on")
    return train, held_out
