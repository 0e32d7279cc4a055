"""Label CSVs (``filename,labels[,split][,fold]``) and the label vocabulary that maps names to
columns."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from passt.utils.errors import UsageError
from passt.utils.values import parse_number


@dataclass(frozen=True)
class LabelRow:
    """One CSV row: the file (as written), its label names, its split and cross-validation
    fold (None without the column), its line."""

    filename: str
    labels: tuple[str, ...]
    split: str | None
    line: int
    fold: int | None = None


def split_labels(field: str) -> tuple[str, ...]:
    """Label names of a ``labels`` field: separated by ``;`` if it holds one (so names may
    contain commas, as AudioSet's display names do: end a lone such name with ``;``),
    else by ``,``."""
    parts = field.split(";" if ";" in field else ",")
    return tuple(part.strip() for part in parts if part.strip())


def read_csv_rows(path: Path, required: tuple[str, ...],
                  optional: str) -> list[tuple[int, dict[str, str]]]:
    """``(line, row)`` of each row of ``path``, which must have the ``required`` columns
    (``optional`` names the others, for the message)."""
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = set(required) - set(reader.fieldnames or ())
        if missing:
            raise UsageError(f"{path}: missing column(s) {sorted(missing)}; need "
                             f"{','.join(required)} and optionally {optional}, found "
                             f"{','.join(reader.fieldnames or ()) or 'no header'}")
        return [(reader.line_num, row) for row in reader]


def parse_int(value: str | None, column: str, path: Path, line: int) -> int:
    """The integer of a CSV field; `UsageError` naming file, line and column otherwise."""
    return parse_number(value, f"{path}: line {line}: {column}", int)


def read_label_csv(path: str | Path) -> list[LabelRow]:
    """Read a CSV with columns ``filename`` and ``labels`` (see `split_labels`) and optional
    ``split`` and ``fold`` (an integer: cross-validation folds)."""
    path = Path(path)
    return [LabelRow(filename=(row["filename"] or "").strip(),
                     labels=split_labels(row["labels"] or ""),
                     split=(row["split"] or "").strip() if "split" in row else None,
                     line=line,
                     fold=parse_int(row["fold"], "fold", path, line) if "fold" in row else None)
            for line, row in read_csv_rows(path, ("filename", "labels"), "split, fold")]


class LabelVocabulary:
    """Ordered label names; `encode` maps names (or AudioSet mids) to a multi-hot target."""

    def __init__(self, names: list[str], aliases: dict[str, int] | None = None):
        self.names = names
        self.index = {name: i for i, name in enumerate(names)} | (aliases or {})

    @classmethod
    def from_rows(cls, rows: list[LabelRow]) -> LabelVocabulary:
        """All labels used in ``rows``, sorted."""
        return cls(sorted({label for row in rows for label in row.labels}))

    @classmethod
    def from_file(cls, path: str | Path) -> LabelVocabulary:
        """An AudioSet ``class_labels_indices.csv``-style file: ``index,display_name`` and
        optionally ``mid``; labels may then be given by display name or mid."""
        path = Path(path)
        rows = []
        for line, r in read_csv_rows(path, ("index", "display_name"), "mid"):
            index = parse_int(r["index"], "index", path, line)
            rows.append((index, (r.get("mid") or "").strip(), r["display_name"].strip()))
        rows.sort()
        if [r[0] for r in rows] != list(range(len(rows))):
            raise UsageError(f"{path}: indices must be 0..{len(rows) - 1}, each once")
        return cls([name for _, _, name in rows], {mid: i for i, mid, _ in rows if mid})

    def __len__(self) -> int:
        return len(self.names)

    def unknown(self, labels: tuple[str, ...]) -> list[str]:
        """The labels that are not in the vocabulary."""
        return [label for label in labels if label not in self.index]

    def encode(self, labels: tuple[str, ...]) -> np.ndarray:
        """Multi-hot float32 target ``[len(self)]``; unknown labels raise `KeyError`."""
        target = np.zeros(len(self.names), dtype=np.float32)
        target[[self.index[label] for label in labels]] = 1.0
        return target


def column_map(source: Sequence[str], target: LabelVocabulary, what: str) -> np.ndarray:
    """For each class of ``target``, the column of the class named so in ``source`` (a name or,
    where ``target`` has them, a mid), or -1 where ``source`` lacks it; `UsageError` naming the
    classes of ``source`` (``what``) that ``target`` lacks."""
    unknown = target.unknown(tuple(source))
    if unknown:
        shown = ", ".join(map(repr, unknown[:10])) + (f", ... ({len(unknown)} in all)"
                                                       if len(unknown) > 10 else "")
        raise UsageError(f"{what}: class(es) {shown} not in the class list "
                         f"({len(target)} classes: {', '.join(target.names[:5])}, ...)")
    columns = np.full(len(target), -1, dtype=np.int64)
    for column, name in enumerate(source):
        columns[target.index[name]] = column
    return columns


def remap_targets(targets: np.ndarray, columns: np.ndarray) -> np.ndarray:
    """``targets`` ``[..., C]`` with its columns chosen by ``columns`` (`column_map`; -1: 0)."""
    picked = np.take(targets, np.maximum(columns, 0), axis=-1)
    return np.where(columns >= 0, picked, 0).astype(targets.dtype, copy=False)
