"""ESC-50's own layout (``esc50:DIR``): ``DIR/meta/esc50.csv`` (``filename``, ``fold``,
``target``, ``category``) and the clips in ``DIR/audio``; one class per clip, five folds."""

from __future__ import annotations

from pathlib import Path

from passt.data.folder import FolderDataset
from passt.data.labels import LabelRow, LabelVocabulary, parse_int, read_csv_rows
from passt.utils.errors import UsageError

COLUMNS = ("filename", "fold", "target", "category")


class Esc50Dataset(FolderDataset):
    """An ESC-50-layout folder as a `FolderDataset`: each clip labelled with its ``category``,
    the classes in the order of ``target``, each clip's ``fold`` in ``folds``."""

    CSV = "meta/esc50.csv"
    AUDIO = "audio"

    @staticmethod
    def read(csv_path: Path) -> tuple[list[LabelRow], LabelVocabulary]:
        """The rows of ``esc50.csv`` and its categories in the order of their ``target`` index,
        after checking that each target names one category and back."""
        rows, category_of = [], {}
        for line, r in read_csv_rows(csv_path, COLUMNS, "esc10, src_file, take"):
            target = parse_int(r["target"], "target", csv_path, line)
            category = (r["category"] or "").strip()
            known = category_of.setdefault(target, category)
            if known != category:
                raise UsageError(f"{csv_path}: line {line}: target {target} is {category!r} "
                                 f"here and {known!r} above; each target names one category")
            rows.append(LabelRow(filename=(r["filename"] or "").strip(), labels=(category,),
                                 split=None, line=line,
                                 fold=parse_int(r["fold"], "fold", csv_path, line)))
        names = [category_of[t] for t in sorted(category_of)]
        if len(set(names)) != len(names):
            twice = sorted({n for n in names if names.count(n) > 1})
            raise UsageError(f"{csv_path}: category {twice[0]!r} has more than one target")
        return rows, LabelVocabulary(names)
